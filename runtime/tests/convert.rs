//! The conversions every generated connector uses (`src/generated/runtime/convert.rs` there):
//! amounts, currencies, times, served timestamps, enums, metadata.

use connector_runtime::convert::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// 2026-11-24T12:00:05Z.
const T0: i64 = 1_795_521_605;

fn at(seconds: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, nanos).expect("time in range")
}

fn rfc3339(text: &str) -> DateTime<Utc> {
    parse_time(&json!(text), &TimeFormat::Rfc3339).expect("valid RFC 3339")
}

fn err<T: std::fmt::Debug>(result: Result<T, ConversionError>) -> String {
    result.expect_err("expected a conversion error").to_string()
}

// ------------------------------------------------------------------ amounts

#[test]
fn decimal_amounts_become_minor_units() {
    let long = "1234567890123456789012345678901234567890";
    let cases: &[(Value, u32, &str)] = &[
        (json!("12.34"), 2, "1234"),
        (json!("12.3"), 2, "1230"),
        (json!("12"), 2, "1200"),
        (json!("12.340"), 2, "1234"),
        (json!("0012.50"), 2, "1250"),
        (json!("0.05"), 2, "5"),
        (json!("-12.34"), 2, "-1234"),
        (json!("+12.34"), 2, "1234"),
        (json!("0"), 2, "0"),
        (json!("-0"), 2, "0"),
        (json!("-0.00"), 2, "0"),
        (json!("0e5"), 2, "0"),
        (json!(12.34), 2, "1234"),
        (json!(12), 2, "1200"),
        (json!(-7), 2, "-700"),
        (json!(0.1), 2, "10"),
        (json!("100"), 0, "100"),
        (json!("1.234"), 3, "1234"),
        (json!("1.2345"), 4, "12345"),
        (json!("1e-7"), 8, "10"),
        (json!(1e-7), 8, "10"),
        (json!("1.5E3"), 2, "150000"),
        (json!("1.5e+3"), 2, "150000"),
        (json!(1.5E3), 2, "150000"),
        (json!("12345e-2"), 2, "12345"),
        (json!("0.00000001"), 8, "1"),
        (json!(long), 2, "123456789012345678901234567890123456789000"),
        (
            json!(format!("-{long}.12")),
            2,
            "-123456789012345678901234567890123456789012",
        ),
    ];
    for (value, precision, expected) in cases {
        let got = minor_units(value, *precision, AmountFormat::Decimal, Sign::Keep);
        assert_eq!(
            got.as_deref(),
            Ok(*expected),
            "{value} at precision {precision}"
        );
    }
}

#[test]
fn decimal_amounts_are_never_rounded() {
    assert_eq!(
        err(minor_units(
            &json!("12.345"),
            2,
            AmountFormat::Decimal,
            Sign::Keep
        )),
        r#""12.345" has 3 decimals but the precision is 2; amounts are never rounded"#
    );
    assert_eq!(
        err(minor_units(
            &json!(1.5),
            0,
            AmountFormat::Decimal,
            Sign::Keep
        )),
        "1.5 has 1 decimal but the precision is 0; amounts are never rounded"
    );
    for (value, precision) in [(json!("1e-3"), 2), (json!(1e-7), 6), (json!("0.001"), 2)] {
        let message = err(minor_units(
            &value,
            precision,
            AmountFormat::Decimal,
            Sign::Keep,
        ));
        assert!(message.contains("never rounded"), "{value}: {message}");
    }
}

#[test]
fn malformed_decimal_amounts_are_errors() {
    let cases = [
        json!(""),
        json!("1.2.3"),
        json!("12,34"),
        json!("1,234.56"),
        json!("abc"),
        json!("+"),
        json!("-"),
        json!("NaN"),
        json!("Infinity"),
        json!(" 12"),
        json!("12 "),
        json!(".5"),
        json!("5."),
        json!("1e"),
        json!("1e+"),
        json!("0x10"),
        json!("١٢"),
        json!(null),
        json!(true),
        json!([]),
        json!({"amount": "12"}),
    ];
    for value in cases {
        let message = err(minor_units(&value, 2, AmountFormat::Decimal, Sign::Keep));
        assert!(
            message.starts_with("expected "),
            "{value}: message should say what was expected: {message}"
        );
        assert!(message.contains(&value.to_string()), "{value}: {message}");
    }
}

#[test]
fn huge_exponents_are_refused_without_exhausting_memory() {
    let message = err(minor_units(
        &json!("1e999999999"),
        2,
        AmountFormat::Decimal,
        Sign::Keep,
    ));
    assert!(message.contains("more than 1000 digits"), "{message}");
    let message = err(minor_units(
        &json!("1e9999999999"),
        2,
        AmountFormat::Decimal,
        Sign::Keep,
    ));
    assert!(
        message.starts_with("expected a decimal amount"),
        "{message}"
    );
}

#[test]
fn json_numbers_that_lost_digits_are_refused() {
    let probe = "0.10000000000000000555";
    let read_back = serde_json::from_str::<Value>(probe).unwrap().to_string();
    let exact = read_back == probe;
    let result = minor_units(
        &json!(12345678901234.567),
        3,
        AmountFormat::Decimal,
        Sign::Keep,
    );
    if exact {
        assert!(result.is_ok());
    } else {
        assert!(err(result).contains("must come as strings"));
    }
    // 15 significant digits are always exact.
    assert_eq!(
        minor_units(
            &json!(1234567890123.45),
            2,
            AmountFormat::Decimal,
            Sign::Keep
        )
        .as_deref(),
        Ok("123456789012345")
    );
}

#[test]
fn minor_unit_amounts_are_normalised() {
    let long = "1234567890123456789012345678901234567890";
    let cases: &[(Value, &str)] = &[
        (json!("1234"), "1234"),
        (json!(1234), "1234"),
        (json!("-1234"), "-1234"),
        (json!(-1234), "-1234"),
        (json!("+5"), "5"),
        (json!("007"), "7"),
        (json!("0"), "0"),
        (json!("-0"), "0"),
        (json!("000"), "0"),
        (json!(u64::MAX), "18446744073709551615"),
        (json!(long), long),
    ];
    for (value, expected) in cases {
        for precision in [0, 2, 8] {
            let got = minor_units(value, precision, AmountFormat::MinorUnits, Sign::Keep);
            assert_eq!(got.as_deref(), Ok(*expected), "{value}");
        }
    }
}

#[test]
fn minor_unit_amounts_must_be_whole() {
    let message = err(minor_units(
        &json!("12.5"),
        2,
        AmountFormat::MinorUnits,
        Sign::Keep,
    ));
    assert_eq!(
        message,
        r#"expected a whole number of minor units like "1234", got "12.5" (is it in major units? then its format is Decimal)"#
    );
    for value in [
        json!(12.5),
        json!(12.0),
        json!("12.0"),
        json!("1e3"),
        json!(""),
        json!("abc"),
        json!("-"),
        json!(null),
    ] {
        let message = err(minor_units(&value, 2, AmountFormat::MinorUnits, Sign::Keep));
        assert!(message.starts_with("expected "), "{value}: {message}");
    }
}

#[test]
fn signs() {
    let cases = [
        ("-1", Sign::Keep, "-1"),
        ("-1", Sign::Absolute, "1"),
        ("-1", Sign::Negate, "1"),
        ("1", Sign::Keep, "1"),
        ("1", Sign::Absolute, "1"),
        ("1", Sign::Negate, "-1"),
        ("0", Sign::Negate, "0"),
        ("-0", Sign::Keep, "0"),
        ("-0", Sign::Negate, "0"),
    ];
    for (text, sign, expected) in cases {
        let got = minor_units(&json!(text), 2, AmountFormat::MinorUnits, sign);
        assert_eq!(got.as_deref(), Ok(expected), "{text} {sign:?}");
        let decimal = minor_units(&json!(text), 0, AmountFormat::Decimal, sign);
        assert_eq!(
            decimal.as_deref(),
            Ok(expected),
            "{text} {sign:?} as a decimal"
        );
    }
    let got = minor_units(&json!("-0.00"), 2, AmountFormat::Decimal, Sign::Negate);
    assert_eq!(got.as_deref(), Ok("0"));
    let got = minor_units(&json!(-12.5), 2, AmountFormat::Decimal, Sign::Absolute);
    assert_eq!(got.as_deref(), Ok("1250"));
}

#[test]
fn decimals_from_minor_units() {
    let cases = [
        ("1234", 2, "12.34"),
        ("5", 2, "0.05"),
        ("-5", 2, "-0.05"),
        ("100", 0, "100"),
        ("1200", 2, "12.00"),
        ("0", 2, "0.00"),
        ("0", 0, "0"),
        ("-0", 2, "0.00"),
        ("007", 2, "0.07"),
        ("1", 8, "0.00000001"),
        ("1234", 3, "1.234"),
    ];
    for (minor, precision, expected) in cases {
        let got = decimal_from_minor(minor, precision);
        assert_eq!(got.as_deref(), Ok(expected), "{minor} at {precision}");
    }
    for minor in ["12.5", "", "-", "abc", "1e3", "+5", " 5", "5 "] {
        let message = err(decimal_from_minor(minor, 2));
        assert!(
            message.starts_with("expected an amount in minor units"),
            "{minor}: {message}"
        );
    }
}

#[test]
fn protocol_amount_syntax() {
    for text in [
        "0",
        "1",
        "1234",
        "-5",
        "-1234",
        "1234567890123456789012345678901234567890",
    ] {
        assert!(is_minor_units(text), "{text}");
    }
    for text in [
        "", "-", "-0", "007", "-07", "12.5", "1e3", "+1", " 1", "1 ", "abc", "１",
    ] {
        assert!(!is_minor_units(text), "{text}");
    }
}

// ------------------------------------------------------------------ currencies

#[test]
fn iso_table_is_sorted_and_complete() {
    assert!(
        ISO_4217.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "ISO_4217 must be sorted and unique"
    );
    assert!(ISO_4217.len() >= 150, "{} codes", ISO_4217.len());
    for (code, precision) in ISO_4217 {
        assert!(
            code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()),
            "{code}"
        );
        assert!(*precision <= 4, "{code}");
    }
}

#[test]
fn currency_precisions() {
    let cases = [
        ("EUR", 2),
        ("eur", 2),
        ("Eur", 2),
        ("USD", 2),
        ("GBP", 2),
        ("CHF", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("VND", 0),
        ("ISK", 0),
        ("XAF", 0),
        ("XOF", 0),
        ("UGX", 0),
        ("CLP", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("TND", 3),
        ("CLF", 4),
        ("UYW", 4),
        ("AED", 2),
        ("ZWG", 2),
    ];
    for (code, expected) in cases {
        assert_eq!(currency_precision(code, &[]), Some(expected), "{code}");
    }
    for code in ["BTC", "XAU", "XXX", "", "EU", "EUR/2", "EURO"] {
        assert_eq!(currency_precision(code, &[]), None, "{code}");
    }
    let extra = [("BTC", 8), ("usdc", 6), ("JPY", 2)];
    assert_eq!(currency_precision("btc", &extra), Some(8));
    assert_eq!(currency_precision("USDC", &extra), Some(6));
    assert_eq!(
        currency_precision("JPY", &extra),
        Some(2),
        "extra overrides ISO"
    );
    assert_eq!(currency_precision("EUR", &extra), Some(2));
}

#[test]
fn umn_currencies() {
    let extra = [("BTC", 8)];
    let cases = [
        ("eur", "EUR/2"),
        ("EUR", "EUR/2"),
        ("jpy", "JPY/0"),
        ("kwd", "KWD/3"),
        ("EUR/2", "EUR/2"),
        ("eur/2", "EUR/2"),
        ("JPY/0", "JPY/0"),
        ("btc", "BTC/8"),
        ("BTC/8", "BTC/8"),
    ];
    for (code, expected) in cases {
        assert_eq!(umn(code, &extra).as_deref(), Ok(expected), "{code}");
    }
    assert_eq!(
        err(umn("EUR/3", &[])),
        r#""EUR/3" says 3 decimals but EUR has 2"#
    );
    assert_eq!(
        err(umn("BTC/2", &extra)),
        r#""BTC/2" says 2 decimals but BTC has 8"#
    );
    let unknown = err(umn("xyz", &[]));
    assert!(
        unknown.starts_with(r#"unknown currency "xyz""#) && unknown.contains("currencies:"),
        "{unknown}"
    );
    assert!(err(umn("BTC/8", &[])).contains("currencies:"));
    for code in ["", "/2", "EUR/", "EUR/x", "EUR/-1", "E UR", "EUR ", "€"] {
        let message = err(umn(code, &[]));
        assert!(
            message.starts_with("expected a currency"),
            "{code}: {message}"
        );
    }
}

#[test]
fn currency_values_carry_code_and_precision() {
    let eur = currency("eur", &[]).unwrap();
    assert_eq!((eur.code(), eur.precision()), ("EUR", 2));
    assert_eq!(eur.to_string(), "EUR/2");
    assert_eq!(
        eur.minor_units(&json!("12.34"), AmountFormat::Decimal, Sign::Keep)
            .as_deref(),
        Ok("1234")
    );
    assert_eq!(
        err(eur.minor_units(&json!("12.345"), AmountFormat::Decimal, Sign::Keep)),
        r#""12.345" has 3 decimals but EUR has 2; amounts are never rounded"#
    );
}

// ------------------------------------------------------------------ times

#[test]
fn rfc3339_times_become_utc() {
    let cases = [
        ("2026-11-24T12:00:05Z", T0, 0),
        ("2026-11-24T12:00:05z", T0, 0),
        ("2026-11-24T12:00:05+00:00", T0, 0),
        ("2026-11-24T14:00:05+02:00", T0, 0),
        ("2026-11-24T06:30:05-05:30", T0, 0),
        ("2026-11-24T12:00:05.5Z", T0, 500_000_000),
        ("2026-11-24T14:00:05.123+02:00", T0, 123_000_000),
        ("2026-11-24T12:00:05.123456789Z", T0, 123_456_789),
        ("2026-11-25T01:00:05+13:00", T0, 0),
    ];
    for (text, seconds, nanos) in cases {
        assert_eq!(rfc3339(text), at(seconds, nanos), "{text}");
    }
    let no_zone = err(parse_time(
        &json!("2026-11-24T12:00:05"),
        &TimeFormat::Rfc3339,
    ));
    assert!(no_zone.contains("has no zone"), "{no_zone}");
    for value in [json!("24/11/2026"), json!(""), json!(T0), json!(null)] {
        let message = err(parse_time(&value, &TimeFormat::Rfc3339));
        assert!(
            message.starts_with("expected an RFC 3339"),
            "{value}: {message}"
        );
    }
}

#[test]
fn unix_times() {
    let seconds = [
        (json!(T0), at(T0, 0)),
        (json!(T0.to_string()), at(T0, 0)),
        (json!(1_795_521_605.25), at(T0, 250_000_000)),
        (json!("1795521605.25"), at(T0, 250_000_000)),
        (json!("1795521605.123456789"), at(T0, 123_456_789)),
        (json!(0), at(0, 0)),
        (json!(-1), at(-1, 0)),
        (json!("-0.5"), at(-1, 500_000_000)),
        (json!("+17"), at(17, 0)),
        (json!("0017"), at(17, 0)),
        (json!(17e2), at(1700, 0)),
    ];
    for (value, expected) in seconds {
        assert_eq!(
            parse_time(&value, &TimeFormat::UnixSeconds),
            Ok(expected),
            "{value}"
        );
    }
    let millis = [
        (json!(1_795_521_605_250_i64), at(T0, 250_000_000)),
        (json!("1795521605250"), at(T0, 250_000_000)),
        (json!(1_795_521_605_000_i64), at(T0, 0)),
        (json!(-1), at(-1, 999_000_000)),
    ];
    for (value, expected) in millis {
        assert_eq!(
            parse_time(&value, &TimeFormat::UnixMillis),
            Ok(expected),
            "{value}"
        );
    }
    for value in [
        json!("abc"),
        json!(""),
        json!(true),
        json!(null),
        json!("12:00"),
    ] {
        let message = err(parse_time(&value, &TimeFormat::UnixSeconds));
        assert!(
            message.starts_with("expected Unix seconds"),
            "{value}: {message}"
        );
        let message = err(parse_time(&value, &TimeFormat::UnixMillis));
        assert!(
            message.starts_with("expected Unix milliseconds"),
            "{value}: {message}"
        );
    }
    let sub_nano = err(parse_time(&json!("1.0000000001"), &TimeFormat::UnixSeconds));
    assert!(
        sub_nano.contains("more precise than a nanosecond"),
        "{sub_nano}"
    );
    let far = err(parse_time(&json!("1e30"), &TimeFormat::UnixSeconds));
    assert!(far.contains("too far from 1970"), "{far}");
}

#[test]
fn custom_time_patterns() {
    let with_zone = TimeFormat::Custom {
        pattern: "%Y-%m-%d %H:%M:%S %z",
        utc_offset_seconds: None,
    };
    for text in [
        "2026-11-24 14:00:05 +0200",
        "2026-11-24 06:30:05 -05:30",
        "2026-11-24 12:00:05 +0000",
    ] {
        assert_eq!(
            parse_time(&json!(text), &with_zone),
            Ok(at(T0, 0)),
            "{text}"
        );
    }
    // The value's offset wins over a configured one.
    let both = TimeFormat::Custom {
        pattern: "%Y-%m-%d %H:%M:%S %:z",
        utc_offset_seconds: Some(3600),
    };
    assert_eq!(
        parse_time(&json!("2026-11-24 14:00:05 +02:00"), &both),
        Ok(at(T0, 0))
    );

    let paris = TimeFormat::Custom {
        pattern: "%d/%m/%Y %H:%M:%S",
        utc_offset_seconds: Some(3600),
    };
    assert_eq!(
        parse_time(&json!("24/11/2026 13:00:05"), &paris),
        Ok(at(T0, 0))
    );
    let india = TimeFormat::Custom {
        pattern: "%d/%m/%Y %H:%M:%S%.f",
        utc_offset_seconds: Some(19_800),
    };
    assert_eq!(
        parse_time(&json!("24/11/2026 17:30:05.5"), &india),
        Ok(at(T0, 500_000_000))
    );
    let date = TimeFormat::Custom {
        pattern: "%Y%m%d",
        utc_offset_seconds: Some(0),
    };
    assert_eq!(
        parse_time(&json!("20261124"), &date),
        Ok(at(T0 - 12 * 3600 - 5, 0))
    );
    assert_eq!(
        parse_time(&json!(20261124), &date),
        Ok(at(T0 - 12 * 3600 - 5, 0))
    );

    let no_zone = TimeFormat::Custom {
        pattern: "%d/%m/%Y %H:%M:%S",
        utc_offset_seconds: None,
    };
    let message = err(parse_time(&json!("24/11/2026 13:00:05"), &no_zone));
    assert!(message.contains("a zone is needed"), "{message}");
    let literal = TimeFormat::Custom {
        pattern: "%Y-%m-%d %%z",
        utc_offset_seconds: None,
    };
    assert!(err(parse_time(&json!("2026-11-24 %z"), &literal)).contains("a zone is needed"));

    let message = err(parse_time(&json!("2026-11-24"), &paris));
    assert!(
        message.starts_with(
            r#"expected a date-time in the pattern "%d/%m/%Y %H:%M:%S", got "2026-11-24""#
        ),
        "{message}"
    );
    let bad_offset = TimeFormat::Custom {
        pattern: "%Y%m%d",
        utc_offset_seconds: Some(86_400),
    };
    assert!(err(parse_time(&json!("20261124"), &bad_offset)).contains("utc_offset_seconds"));
    let invalid = TimeFormat::Custom {
        pattern: "%Y-%m-%d %",
        utc_offset_seconds: Some(0),
    };
    assert!(
        err(parse_time(&json!("2026-11-24 "), &invalid))
            .contains("not a valid chrono strftime pattern")
    );
}

#[test]
fn times_are_written_for_upstream_filters() {
    let time = at(T0, 987_654_321);
    let cases = [
        (TimeFormat::Rfc3339, "2026-11-24T12:00:05Z"),
        (TimeFormat::UnixSeconds, "1795521605"),
        (TimeFormat::UnixMillis, "1795521605987"),
        (
            TimeFormat::Custom {
                pattern: "%d/%m/%Y %H:%M:%S",
                utc_offset_seconds: Some(3600),
            },
            "24/11/2026 13:00:05",
        ),
        (
            TimeFormat::Custom {
                pattern: "%Y-%m-%dT%H:%M:%S%:z",
                utc_offset_seconds: Some(-19_800),
            },
            "2026-11-24T06:30:05-05:30",
        ),
        (
            TimeFormat::Custom {
                pattern: "%Y-%m-%d %H:%M:%S %z",
                utc_offset_seconds: None,
            },
            "2026-11-24 12:00:05 +0000",
        ),
    ];
    for (format, expected) in cases {
        assert_eq!(
            format_time(time, &format).as_deref(),
            Ok(expected),
            "{format:?}"
        );
        // Parsing what was written gives the time back, cut to what the format carries.
        let parsed = parse_time(&json!(expected), &format).unwrap();
        assert!(
            (0..1_000_000_000).contains(&nanos_between(parsed, time)),
            "{format:?}"
        );
    }
    assert_eq!(
        format_time(at(-1, 500_000_000), &TimeFormat::UnixSeconds).as_deref(),
        Ok("-1")
    );
    let no_zone = TimeFormat::Custom {
        pattern: "%H:%M",
        utc_offset_seconds: None,
    };
    assert!(err(format_time(time, &no_zone)).contains("a zone is needed"));
    let invalid = TimeFormat::Custom {
        pattern: "%Y %",
        utc_offset_seconds: Some(0),
    };
    assert!(err(format_time(time, &invalid)).contains("not a valid chrono strftime pattern"));
}

// ------------------------------------------------------------------ served timestamps

fn nanos_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_nanoseconds().expect("small difference")
}

#[test]
fn served_time_separates_ties_by_id_alone() {
    // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector).
    let hash_a: u64 = 0xaf63_dc4c_8601_ec8c;
    let cases = [
        (at(T0, 0), 1_000_000_000_u64),
        (at(T0, 250_000_000), 1_000_000),
        (at(T0, 250_123_000), 1_000),
        (at(T0, 250_123_456), 1),
    ];
    for (time, unit) in cases {
        let served = served_time(time, "a");
        assert_eq!(nanos_between(time, served) as u64, hash_a % unit, "{time}");
        assert_eq!(served.timestamp(), time.timestamp(), "stays in its second");
    }
    assert_eq!(served_time(at(T0, 0), "a"), at(T0, 555_641_996));
    assert_eq!(served_time(at(T0, 0), "foobar"), at(T0, 332_436_968));
    assert_eq!(served_time(at(T0, 0), "tx_1"), at(T0, 392_333_073));
    assert_eq!(served_time(at(T0, 0), "tx_2"), at(T0, 857_448_440));
    assert_eq!(served_time(at(T0, 0), ""), at(T0, 346_656_037));
    // Same id, same offset whatever the time (at one precision); no neighbours involved.
    let offset = nanos_between(at(T0, 0), served_time(at(T0, 0), "tx_1"));
    for seconds in [0, 1, T0 + 86_400, -T0] {
        assert_eq!(
            nanos_between(at(seconds, 0), served_time(at(seconds, 0), "tx_1")),
            offset
        );
    }
    assert_eq!(
        served_time(at(T0, 0), "tx_1"),
        served_time(at(T0, 0), "tx_1")
    );
    assert_ne!(
        served_time(at(T0, 0), "tx_1"),
        served_time(at(T0, 0), "tx_2")
    );
}

// ------------------------------------------------------------------ enums

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Succeeded,
    Other,
}

#[test]
fn enum_values() {
    let table = [
        ("PENDING", Status::Pending),
        ("succeeded", Status::Succeeded),
    ];
    let cases = [
        ("PENDING", Status::Pending),
        ("pending", Status::Pending),
        ("Pending", Status::Pending),
        ("succeeded", Status::Succeeded),
        ("SUCCEEDED", Status::Succeeded),
    ];
    for (value, expected) in cases {
        assert_eq!(
            map_enum(value, &table, None),
            Ok((expected, false)),
            "{value}"
        );
        assert_eq!(
            map_enum(value, &table, Some(Status::Other)),
            Ok((expected, false)),
            "{value}"
        );
    }
    assert_eq!(
        map_enum("refunded", &table, Some(Status::Other)),
        Ok((Status::Other, true))
    );
    assert_eq!(
        map_enum("", &table, Some(Status::Other)),
        Ok((Status::Other, true))
    );
    assert_eq!(
        err(map_enum("refunded", &table, None)),
        r#"unknown value "refunded"; expected one of "PENDING", "succeeded""#
    );
    // An exact match wins over an earlier case-insensitive one.
    let cased = [("a", 1), ("A", 2)];
    assert_eq!(map_enum("A", &cased, None), Ok((2, false)));
    assert_eq!(map_enum("a", &cased, None), Ok((1, false)));
}

#[test]
fn enum_prefixes_match_what_no_exact_entry_does_longest_first() {
    let table = [
        ("PI_*", "payin"),
        ("PI_REV*", "reversal"),
        ("PI_FAST", "fast"),
        ("PO_*", "payout"),
        ("X*", "first"),
        ("X*", "second"),
    ];
    for (value, expected) in [
        ("PI_SEPA_INST", "payin"),
        ("PI_REVERSED", "reversal"),
        ("PI_FAST", "fast"),
        ("pi_fast", "fast"),
        ("PO_", "payout"),
        ("XY", "first"),
    ] {
        assert_eq!(
            map_enum(value, &table, None),
            Ok((expected, false)),
            "{value}"
        );
    }
    // Prefixes are case-sensitive, and `*` only counts at the end.
    assert_eq!(
        map_enum("pi_sepa", &table, Some("other")),
        Ok(("other", true))
    );
    assert_eq!(map_enum("PI", &table, Some("other")), Ok(("other", true)));
    let literal = [("a*b", 1)];
    assert_eq!(map_enum("a*b", &literal, None), Ok((1, false)));
    assert!(map_enum("axb", &literal, None).is_err());
}

// ------------------------------------------------------------------ paths and metadata

#[test]
fn lookups() {
    let record = json!({"a": {"b": [10, {"c": "x"}, null]}, "n": null});
    let cases: &[(&[Step], Option<Value>)] = &[
        (&[], Some(record.clone())),
        (
            &[Step::Key("a"), Step::Key("b"), Step::Index(0)],
            Some(json!(10)),
        ),
        (
            &[
                Step::Key("a"),
                Step::Key("b"),
                Step::Index(1),
                Step::Key("c"),
            ],
            Some(json!("x")),
        ),
        (&[Step::Key("a"), Step::Key("b"), Step::Index(2)], None),
        (&[Step::Key("a"), Step::Key("b"), Step::Index(3)], None),
        (&[Step::Key("n")], None),
        (&[Step::Key("missing")], None),
        (&[Step::Index(0)], None),
        (&[Step::Key("a"), Step::Key("b"), Step::Key("0")], None),
        (
            &[
                Step::Key("a"),
                Step::Key("b"),
                Step::Index(0),
                Step::Key("x"),
            ],
            None,
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(lookup(&record, path), expected.as_ref(), "{path:?}");
    }
    assert_eq!(to_text(&json!("x")).as_deref(), Some("x"));
    assert_eq!(to_text(&json!(1.5)).as_deref(), Some("1.5"));
    assert_eq!(to_text(&json!(false)).as_deref(), Some("false"));
    assert_eq!(
        to_text(&json!({"k": [1, "v"]})).as_deref(),
        Some(r#"{"k":[1,"v"]}"#)
    );
    assert_eq!(to_text(&json!(null)), None);
}

#[test]
fn metadata_fields_and_flattening() {
    let record = json!({
        "reference": "INV-1",
        "amount": 12.5,
        "count": 3,
        "flag": true,
        "tags": ["a", "b"],
        "object": {"k": "v", "n": 1},
        "gone": null,
        "lines": [{"sku": "S-1"}],
        "metadata": {
            "a": 1,
            "b": {"c": "x", "d": null, "e": {"f": false}},
            "list": [1, {"x": 2}],
            "text": "plain",
            "note": "from flatten"
        },
        "extra": {"z": "top"},
        "scalar": "alone"
    });
    let got = metadata(
        &record,
        &[
            ("reference", &[Step::Key("reference")]),
            ("amount", &[Step::Key("amount")]),
            ("count", &[Step::Key("count")]),
            ("flag", &[Step::Key("flag")]),
            ("tags", &[Step::Key("tags")]),
            ("object", &[Step::Key("object")]),
            ("gone", &[Step::Key("gone")]),
            ("missing", &[Step::Key("missing")]),
            (
                "sku",
                &[Step::Key("lines"), Step::Index(0), Step::Key("sku")],
            ),
            ("meta.note", &[Step::Key("reference")]),
        ],
        &[
            ("meta", &[Step::Key("metadata")]),
            ("", &[Step::Key("extra")]),
            ("single", &[Step::Key("scalar")]),
            ("none", &[Step::Key("missing")]),
        ],
    );
    let expected: Vec<(&str, &str)> = vec![
        ("amount", "12.5"),
        ("count", "3"),
        ("flag", "true"),
        ("meta.a", "1"),
        ("meta.b.c", "x"),
        ("meta.b.e.f", "false"),
        ("meta.list", r#"[1,{"x":2}]"#),
        ("meta.note", "INV-1"),
        ("meta.text", "plain"),
        ("object", r#"{"k":"v","n":1}"#),
        ("reference", "INV-1"),
        ("single", "alone"),
        ("sku", "S-1"),
        ("tags", r#"["a","b"]"#),
        ("z", "top"),
    ];
    let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, expected);
    assert!(metadata(&json!(null), &[("a", &[Step::Key("a")])], &[("m", &[])]).is_empty());
}

#[test]
fn conversion_errors() {
    let error = ConversionError::new("expected x, got y");
    assert_eq!(error.message(), "expected x, got y");
    assert_eq!(
        error.clone().context("amount").to_string(),
        "amount: expected x, got y"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(error);
    assert_eq!(boxed.to_string(), "expected x, got y");
    let long = "9".repeat(500);
    let message = err(minor_units(
        &json!(format!("{long}x")),
        2,
        AmountFormat::Decimal,
        Sign::Keep,
    ));
    assert!(message.len() < 200 && message.contains("..."), "{message}");
}

// ------------------------------------------------------------------ properties

fn integer_text() -> impl Strategy<Value = String> {
    prop_oneof![Just("0".to_owned()), "-?[1-9][0-9]{0,40}"]
}

fn subsec_nanos() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        (0..1_000u32).prop_map(|ms| ms * 1_000_000),
        (0..1_000_000u32).prop_map(|us| us * 1_000),
        0..1_000_000_000u32,
    ]
}

fn unit_of(nanos: u32) -> i64 {
    match nanos {
        0 => 1_000_000_000,
        n if n.is_multiple_of(1_000_000) => 1_000_000,
        n if n.is_multiple_of(1_000) => 1_000,
        _ => 1,
    }
}

/// What `serialize_time` writes, as JSON.
fn serialized(time: DateTime<Utc>) -> String {
    let mut out = Vec::new();
    serialize_time(&time, &mut serde_json::Serializer::new(&mut out)).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn times_serialize_as_rfc3339_with_the_fraction_they_need() {
    assert_eq!(serialized(at(T0, 0)), r#""2026-11-24T12:00:05Z""#);
    assert_eq!(
        serialized(at(T0, 250_000_000)),
        r#""2026-11-24T12:00:05.250Z""#
    );
    assert_eq!(
        serialized(at(T0, 250_000)),
        r#""2026-11-24T12:00:05.000250Z""#
    );
    assert_eq!(serialized(at(T0, 7)), r#""2026-11-24T12:00:05.000000007Z""#);
    assert_eq!(serialized(at(-1, 0)), r#""1969-12-31T23:59:59Z""#);
    // Outside 0000-9999, as chrono writes it.
    let far = at(400_000_000_000, 0);
    assert_eq!(serialized(far), serde_json::to_string(&far).unwrap());
    let mut out = Vec::new();
    serialize_optional_time(&None, &mut serde_json::Serializer::new(&mut out)).unwrap();
    assert_eq!(out, b"null");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn times_serialize_as_chrono_serializes_them(
        seconds in -62_167_219_200i64..253_402_300_800,
        nanos in subsec_nanos(),
    ) {
        let time = at(seconds, nanos);
        prop_assert_eq!(serialized(time), serde_json::to_string(&time).unwrap());
    }

    #[test]
    fn whole_unix_seconds_read_as_their_decimal_reading(seconds in -100_000_000_000i64..100_000_000_000) {
        let whole = parse_time(&json!(seconds), &TimeFormat::UnixSeconds);
        let decimal = parse_time(&json!(format!("{seconds}.0")), &TimeFormat::UnixSeconds);
        prop_assert_eq!(whole, decimal);
        let millis = parse_time(&json!(seconds), &TimeFormat::UnixMillis);
        let decimal = parse_time(&json!(format!("{seconds}.000")), &TimeFormat::UnixMillis);
        prop_assert_eq!(millis, decimal);
    }

    #[test]
    fn minor_units_round_trip_through_decimals(minor in integer_text(), precision in 0..=18u32) {
        prop_assert!(is_minor_units(&minor));
        let decimal = decimal_from_minor(&minor, precision).unwrap();
        let back = minor_units(&json!(decimal), precision, AmountFormat::Decimal, Sign::Keep).unwrap();
        prop_assert_eq!(back, minor);
    }

    #[test]
    fn served_time_stays_within_the_values_precision(
        seconds in -10_000_000_000i64..10_000_000_000,
        nanos in subsec_nanos(),
        id in ".{0,24}",
    ) {
        let time = at(seconds, nanos);
        let served = served_time(time, &id);
        let offset = nanos_between(time, served);
        prop_assert!((0..unit_of(nanos)).contains(&offset), "offset {} for {}", offset, time);
        prop_assert_eq!(served.timestamp(), seconds);
        prop_assert_eq!(served, served_time(time, &id));
    }

    #[test]
    fn served_time_keeps_the_order_of_different_seconds(
        first in -10_000_000_000i64..10_000_000_000,
        gap in 1i64..1_000_000,
        nanos in (subsec_nanos(), subsec_nanos()),
        ids in (".{0,24}", ".{0,24}"),
    ) {
        let earlier = at(first, nanos.0);
        let later = at(first + gap, nanos.1);
        prop_assert!(served_time(earlier, &ids.0) < served_time(later, &ids.1));
    }
}

// ------------------------------------------------------------------ local times of a named zone

#[cfg(feature = "zones")]
#[test]
fn local_times_of_a_named_zone_follow_its_daylight_saving() {
    let oslo = TimeFormat::Zoned {
        pattern: "%Y-%m-%dT%H:%M:%S%.3f",
        zone: "Europe/Oslo",
    };
    let utc = |text: &str| parse_time(&json!(text), &oslo).unwrap().to_rfc3339();
    assert_eq!(
        utc("2026-01-15T12:00:00.000"),
        "2026-01-15T11:00:00+00:00",
        "winter: +01:00"
    );
    assert_eq!(
        utc("2026-07-01T12:00:00.250"),
        "2026-07-01T10:00:00.250+00:00",
        "summer: +02:00"
    );
    // The autumn hour shown twice is the earlier instant, before the clocks went back.
    assert_eq!(utc("2025-10-26T02:30:00.000"), "2025-10-26T00:30:00+00:00");
    assert_eq!(utc("2025-10-26T03:30:00.000"), "2025-10-26T02:30:00+00:00");
    // The spring hour the clocks skipped is read at the offset in force before.
    assert_eq!(utc("2026-03-29T02:30:00.000"), "2026-03-29T01:30:00+00:00");
    assert_eq!(utc("2026-03-29T03:00:00.000"), "2026-03-29T01:00:00+00:00");
    // Milliseconds are kept, ties inside one are split below them.
    let tied = parse_time(&json!("2026-07-01T12:00:00.250"), &oslo).unwrap();
    assert_eq!(
        served_time(tied, "a").timestamp_millis(),
        tied.timestamp_millis()
    );
    let written = format_time(tied, &oslo).unwrap();
    assert_eq!(written, "2026-07-01T12:00:00.250");
    let wrong = parse_time(&json!("2026-07-01 12:00"), &oslo).unwrap_err();
    assert!(wrong.message().contains("%Y-%m-%dT%H:%M:%S%.3f"), "{wrong}");
    let zone = TimeFormat::Zoned {
        pattern: "%Y-%m-%d",
        zone: "Mars/Olympus",
    };
    assert!(
        parse_time(&json!("2026-01-01"), &zone)
            .unwrap_err()
            .message()
            .contains("IANA")
    );
}

#[test]
fn json_number_amounts_are_read_from_their_text() {
    let eur = currency("EUR", &[]).unwrap();
    let kwd = currency("KWD", &[]).unwrap();
    let number = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    assert_eq!(
        eur.minor_units(&number("12.5"), AmountFormat::Decimal, Sign::Keep)
            .unwrap(),
        "1250"
    );
    assert_eq!(
        eur.minor_units(&number("1500"), AmountFormat::Decimal, Sign::Keep)
            .unwrap(),
        "150000"
    );
    assert_eq!(
        kwd.minor_units(&number("0.005"), AmountFormat::Decimal, Sign::Keep)
            .unwrap(),
        "5"
    );
    // More digits than a 64-bit float keeps, still exact.
    assert_eq!(
        eur.minor_units(
            &number("12345678901234567.89"),
            AmountFormat::Decimal,
            Sign::Keep
        )
        .unwrap(),
        "1234567890123456789"
    );
    let rounded = eur.minor_units(&number("12.345"), AmountFormat::Decimal, Sign::Keep);
    assert!(rounded.unwrap_err().message().contains("never rounded"));
}
