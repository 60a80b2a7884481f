//! The mapping model as the runtime's types. Generated crates write paths, patterns and list
//! descriptions as `'static` literals; preview builds the same values once per run from the
//! loaded mapping, interning their texts (a handful of short strings per mapping file, kept
//! for the life of the process).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use connector_runtime::convert::{Step, TimeFormat};
use connector_runtime::listing::{
    CursorFrom, Filter, ListSpec, Order, Paging, Since, WindowStart, Windows,
};

use crate::mapping::{self, CursorSource, ListMapping, Path};

/// `text` as a `'static` string, allocated once per distinct text.
pub fn intern(text: &str) -> &'static str {
    static TEXTS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut texts = TEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = texts.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    texts.insert(leaked);
    leaked
}

fn leak<T>(items: Vec<T>) -> &'static [T] {
    Box::leak(items.into_boxed_slice())
}

/// A path's steps as `convert::lookup` takes them (`[]` steps are the list walk's, not the
/// lookup's, and are left out, as the generated code does).
pub fn steps(path: &[mapping::Step]) -> Vec<Step> {
    path.iter()
        .filter_map(|step| match step {
            mapping::Step::Key(key) => Some(Step::Key(intern(key))),
            mapping::Step::Index(index) => Some(Step::Index(*index)),
            mapping::Step::Each => None,
        })
        .collect()
}

fn static_steps(path: &Path) -> &'static [Step] {
    leak(steps(&path.steps))
}

pub fn time_format(format: &mapping::TimeFormat) -> TimeFormat {
    match format {
        mapping::TimeFormat::Rfc3339 => TimeFormat::Rfc3339,
        mapping::TimeFormat::UnixSeconds => TimeFormat::UnixSeconds,
        mapping::TimeFormat::UnixMillis => TimeFormat::UnixMillis,
        mapping::TimeFormat::Pattern {
            pattern,
            utc_offset_seconds,
        } => TimeFormat::Custom {
            pattern: intern(pattern),
            utc_offset_seconds: *utc_offset_seconds,
        },
        mapping::TimeFormat::Zoned { pattern, zone } => TimeFormat::Zoned {
            pattern: intern(pattern),
            zone: intern(zone),
        },
    }
}

/// The list description a generated crate has as a `static` (`list_spec` in render/mapped.rs).
pub fn list_spec(operation: &str, list: &ListMapping, movable: bool) -> ListSpec {
    let segments: Vec<&'static [Step]> = list
        .records
        .steps
        .split(|step| *step == mapping::Step::Each)
        .map(|segment| leak(steps(segment)))
        .collect();
    let paging = match &list.paging {
        mapping::Paging::None => Paging::None,
        mapping::Paging::Cursor {
            param,
            next,
            has_more,
        } => Paging::Cursor {
            param: intern(param),
            from: match next {
                CursorSource::LastRecord(path) => CursorFrom::LastRecord(static_steps(path)),
                CursorSource::Body(path) => CursorFrom::Body(static_steps(path)),
            },
            has_more: has_more.as_ref().map(static_steps),
        },
        mapping::Paging::NextUrl { path } => Paging::NextUrl(static_steps(path)),
        mapping::Paging::LinkHeader => Paging::LinkHeader,
        mapping::Paging::PageNumber {
            param,
            first,
            total_pages,
        } => Paging::PageNumber {
            param: intern(param),
            first: *first,
            total_pages: total_pages.as_ref().map(static_steps),
        },
        mapping::Paging::Offset { param, total } => Paging::Offset {
            param: intern(param),
            total: total.as_ref().map(static_steps),
        },
    };
    let rules = |rules: &[(Path, Vec<String>)]| {
        leak(
            rules
                .iter()
                .map(|(path, values)| {
                    let values: Vec<&'static str> = values.iter().map(|v| intern(v)).collect();
                    (static_steps(path), leak(values))
                })
                .collect(),
        )
    };
    ListSpec {
        operation: intern(operation),
        records: leak(segments),
        paging,
        page_size: list
            .page_size
            .as_ref()
            .map(|size| (intern(&size.param), size.value)),
        max_pages: list.max_pages,
        order: match list.order {
            mapping::Order::OldestFirst => Order::OldestFirst,
            mapping::Order::NewestFirst => Order::NewestFirst,
            mapping::Order::Unordered => Order::Unordered,
        },
        since: list.since.as_ref().map(|since| Since {
            param: intern(&since.param),
            format: time_format(&since.format),
            inclusive: since.inclusive,
        }),
        windows: list
            .since
            .as_ref()
            .and_then(|since| since.window.as_ref())
            .map(|window| Windows {
                to_param: intern(&window.to),
                max_span: window.max_span_secs,
                start: match window.start {
                    mapping::WindowStart::At(at) => WindowStart::At(at),
                    mapping::WindowStart::Ago(ago) => WindowStart::Ago(ago),
                },
            }),
        filter: Filter {
            exclude: rules(&list.filter.exclude),
            only: rules(&list.filter.only),
        },
        // A sample is previewed as it is: joins are not called (their fields come out
        // missing, with a note).
        joins: &[],
        movable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_one_allocation_per_text() {
        let a = intern("created[gte]");
        let b = intern(&String::from("created[gte]"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "created[gte]");
    }

    #[test]
    fn each_steps_split_record_segments_and_vanish_from_lookups() {
        let path = Path {
            text: "data[].entries".into(),
            steps: vec![
                mapping::Step::Key("data".into()),
                mapping::Step::Each,
                mapping::Step::Key("entries".into()),
            ],
        };
        assert_eq!(
            steps(&path.steps),
            vec![Step::Key("data"), Step::Key("entries")]
        );
        let list = ListMapping {
            span: 0..0,
            records: path,
            paging: mapping::Paging::None,
            page_size: None,
            max_pages: 10,
            order: mapping::Order::Unordered,
            since: None,
            filter: Default::default(),
            joins: Vec::new(),
        };
        let spec = list_spec("getTransactions", &list, false);
        assert_eq!(spec.records.len(), 2);
        assert_eq!(spec.records[0], &[Step::Key("data")]);
        assert_eq!(spec.records[1], &[Step::Key("entries")]);
    }
}
