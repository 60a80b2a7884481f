//! Reads the user's own sources (never writes them) to warn about `Connector` methods whose
//! operation the spec no longer has: they would stop compiling after regeneration.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use syn::visit::Visit;

use crate::diagnostics::{Diagnostic, SourceFile};
use crate::ir::Protocol;
use crate::names;

/// A method of an `impl Connector for ...` block in the user's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMethod {
    pub name: String,
    /// Relative to the crate directory: `src/handlers.rs`.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 0-based.
    pub column: usize,
}

/// Every method of `impl Connector for ...` blocks under `dir/src` (outside `src/generated`),
/// with the sources they are in.
pub fn connector_methods(dir: &Path) -> (Vec<UserMethod>, Vec<SourceFile>) {
    let mut methods = Vec::new();
    let mut sources = Vec::new();
    for path in rust_files(&dir.join("src")) {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let Ok(file) = syn::parse_file(&text) else {
            continue;
        };
        let mut finder = ImplFinder::default();
        finder.visit_file(&file);
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        if finder.methods.is_empty() {
            continue;
        }
        for (method, line, column) in finder.methods {
            methods.push(UserMethod {
                name: method,
                file: name.clone(),
                line,
                column,
            });
        }
        sources.push(SourceFile::new(name, text));
    }
    (methods, sources)
}

/// Warnings for methods in `impl Connector for ...` blocks under `dir/src` (outside
/// `src/generated`), with the files they quote.
pub fn stale_methods(dir: &Path, protocol: &Protocol) -> (Vec<Diagnostic>, Vec<SourceFile>) {
    let known: BTreeSet<String> = protocol
        .operations
        .iter()
        .map(|op| names::snake(&op.id))
        .collect();
    let mut diagnostics = Vec::new();
    let (methods, all_sources) = connector_methods(dir);
    let mut sources = Vec::new();
    for source in all_sources {
        let mut found = false;
        for UserMethod {
            name: method,
            line,
            column,
            ..
        } in methods.iter().filter(|m| m.file == source.name).cloned()
        {
            let name = source.name.clone();
            if known.contains(&method) {
                continue;
            }
            found = true;
            let offset = source.offset(line, column + 1);
            diagnostics.push(
                Diagnostic::warning(format!("`{method}` is implemented in `impl Connector` but the protocol has no such operation"))
                    .at(&name, offset..offset + method.len())
                    .with_label("no operation generates this method any more")
                    .with_help("the operation was removed from the spec; delete the method or move it out of `impl Connector`"),
            );
        }
        if found {
            sources.push(source);
        }
    }
    (diagnostics, sources)
}

fn rust_files(src: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "generated") {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[derive(Default)]
struct ImplFinder {
    /// (method name, 1-based line, 0-based column)
    methods: Vec<(String, usize, usize)>,
}

impl<'ast> Visit<'ast> for ImplFinder {
    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let is_connector = item
            .trait_
            .as_ref()
            .and_then(|(_, path, _)| path.segments.last())
            .is_some_and(|segment| segment.ident == "Connector");
        if is_connector {
            for impl_item in &item.items {
                if let syn::ImplItem::Fn(function) = impl_item {
                    let start = function.sig.ident.span().start();
                    self.methods
                        .push((function.sig.ident.to_string(), start.line, start.column));
                }
            }
        }
        syn::visit::visit_item_impl(self, item);
    }
}
