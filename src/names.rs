//! The one place where spec strings become Rust identifiers. Nothing else calls `format_ident!`
//! on raw spec text, so naming rules (case, keywords, leading digits) are applied everywhere alike.

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use proc_macro2::Ident;
use quote::format_ident;

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// `accountID` -> `account_id`, `type` -> `type_`.
pub fn snake(text: &str) -> String {
    sanitize(text.to_snake_case(), "x_")
}

/// `TransactionStatus` -> `TransactionStatus`, `createdAt:asc` -> `CreatedAtAsc`.
pub fn pascal(text: &str) -> String {
    sanitize(text.to_upper_camel_case(), "X")
}

/// `acme-bank` -> `ACME_BANK`.
pub fn shouty(text: &str) -> String {
    sanitize(text.to_shouty_snake_case(), "X_")
}

pub fn snake_ident(text: &str) -> Ident {
    ident(&snake(text))
}

pub fn pascal_ident(text: &str) -> Ident {
    ident(&pascal(text))
}

fn ident(name: &str) -> Ident {
    format_ident!("{}", name)
}

fn sanitize(mut name: String, digit_prefix: &str) -> String {
    name.retain(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() {
        name.push_str("value");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, digit_prefix);
    }
    if KEYWORDS.contains(&name.as_str()) || name == "_" {
        name.push('_');
    }
    name
}

/// A connector name as a Cargo package name: lower-case, words joined by `-`.
pub fn package(text: &str) -> String {
    snake(text).replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_become_idiomatic_rust() {
        assert_eq!(snake("accountID"), "account_id");
        assert_eq!(snake("sourceAccountId"), "source_account_id");
        assert_eq!(snake("type"), "type_");
        assert_eq!(snake("Title"), "title");
        assert_eq!(pascal("REFUNDED_FAILURE"), "RefundedFailure");
        assert_eq!(pascal("createdAt:asc"), "CreatedAtAsc");
        assert_eq!(pascal("3ds"), "X3ds");
        assert_eq!(snake("è"), "value");
        assert_eq!(shouty("acme-bank"), "ACME_BANK");
        assert_eq!(package("Acme Bank"), "acme-bank");
    }
}
