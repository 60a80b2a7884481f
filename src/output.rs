//! Rendered files -> disk, or a drift report. Generated files are only overwritten when they
//! are still what the generator wrote last (the manifest keeps their hashes); user files are
//! only ever created. Everything is staged first and then moved into place.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::plan::Owner;
use crate::render::{GENERATED_HEADER, RenderedFile};

pub const MANIFEST: &str = ".connector-gen/manifest";
const STAGING: &str = ".connector-gen/staging";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Write { force: bool },
    Check,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create(String),
    Update(String),
    Delete(String),
}

impl Change {
    pub fn path(&self) -> &str {
        match self {
            Change::Create(p) | Change::Update(p) | Change::Delete(p) => p,
        }
    }
}

/// What went wrong, by whom: a hand-edited generated file is the user's call (`--force`);
/// I/O errors are the machine's.
#[derive(Debug)]
pub enum OutputError {
    HandEdited(Vec<String>),
    BadManifest {
        path: PathBuf,
        line: usize,
        message: String,
    },
    Io {
        path: PathBuf,
        error: io::Error,
    },
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub changes: Vec<Change>,
    pub unchanged: usize,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |error| OutputError::Io {
        path: path.to_owned(),
        error,
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Previously generated files and their hashes, as recorded in the manifest.
type Recorded = BTreeMap<String, String>;

fn read_manifest(dir: &Path) -> Result<Recorded, OutputError> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Recorded::new()),
        Err(error) => return Err(OutputError::Io { path, error }),
    };
    let mut recorded = Recorded::new();
    for (index, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        match words.as_slice() {
            [comment, ..] if comment.starts_with('#') => {}
            ["generator", ..] | ["user", _] | [""] => {}
            ["generated", hash, file] if hash.len() == 64 => {
                recorded.insert((*file).to_owned(), (*hash).to_owned());
            }
            _ => {
                let message = "expected `generated <sha256> <path>` or `user <path>`".to_owned();
                return Err(OutputError::BadManifest {
                    path,
                    line: index + 1,
                    message,
                });
            }
        }
    }
    Ok(recorded)
}

fn manifest(files: &[RenderedFile]) -> RenderedFile {
    let mut text = format!(
        "# {GENERATED_HEADER}\n# The files connector-gen wrote and their hashes; keep it in version control.\ngenerator connector-gen {}\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut sorted: Vec<&RenderedFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for file in sorted {
        match file.owner {
            Owner::Generator => text.push_str(&format!(
                "generated {} {}\n",
                sha256(&file.bytes),
                file.path
            )),
            Owner::User => text.push_str(&format!("user {}\n", file.path)),
        }
    }
    RenderedFile {
        path: MANIFEST.to_owned(),
        owner: Owner::Generator,
        bytes: text.into_bytes(),
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, OutputError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(OutputError::Io {
            path: path.to_owned(),
            error,
        }),
    }
}

/// Brings `dir` in line with `files` (or, in check mode, reports how it differs).
pub fn apply(dir: &Path, files: &[RenderedFile], mode: Mode) -> Result<Outcome, OutputError> {
    let recorded = read_manifest(dir)?;
    let mut all: Vec<RenderedFile> = files.to_vec();
    all.push(manifest(files));
    let mut outcome = Outcome::default();
    let mut writes: Vec<&RenderedFile> = Vec::new();
    let mut hand_edited = Vec::new();
    for file in &all {
        let current = read_optional(&dir.join(&file.path))?;
        match (&current, file.owner) {
            (Some(bytes), _) if *bytes == file.bytes => outcome.unchanged += 1,
            (Some(_), Owner::User) => outcome.unchanged += 1,
            (None, _) => {
                outcome.changes.push(Change::Create(file.path.clone()));
                writes.push(file);
            }
            (Some(bytes), Owner::Generator) => {
                let untouched = file.path == MANIFEST
                    || recorded
                        .get(&file.path)
                        .is_some_and(|hash| *hash == sha256(bytes));
                if !untouched {
                    hand_edited.push(file.path.clone());
                }
                outcome.changes.push(Change::Update(file.path.clone()));
                writes.push(file);
            }
        }
    }
    let mut deletes = Vec::new();
    for (path, hash) in &recorded {
        if all.iter().any(|f| f.path == *path) {
            continue;
        }
        if let Some(bytes) = read_optional(&dir.join(path))? {
            if sha256(&bytes) != *hash {
                hand_edited.push(path.clone());
            }
            outcome.changes.push(Change::Delete(path.clone()));
            deletes.push(path.clone());
        }
    }
    match mode {
        Mode::Check => Ok(outcome),
        Mode::Write { force: false } if !hand_edited.is_empty() => {
            Err(OutputError::HandEdited(hand_edited))
        }
        Mode::Write { .. } => {
            commit(dir, &writes, &deletes)?;
            Ok(outcome)
        }
    }
}

/// Writes every file into a staging folder first, so that a failure part-way (a full disk, a
/// permission) leaves the crate as it was; then moves them into place, manifest last.
fn commit(dir: &Path, writes: &[&RenderedFile], deletes: &[String]) -> Result<(), OutputError> {
    let staging = dir.join(STAGING);
    let staged = stage(&staging, writes);
    if let Err(error) = staged {
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }
    let mut ordered: Vec<&&RenderedFile> = writes.iter().collect();
    ordered.sort_by_key(|file| file.path == MANIFEST);
    create_parents(dir, writes)?;
    for file in ordered {
        let target = dir.join(&file.path);
        fs::rename(staging.join(&file.path), &target).map_err(io_error(&target))?;
    }
    for path in deletes {
        let target = dir.join(path);
        fs::remove_file(&target).map_err(io_error(&target))?;
    }
    let _ = fs::remove_dir_all(&staging);
    Ok(())
}

fn stage(staging: &Path, writes: &[&RenderedFile]) -> Result<(), OutputError> {
    if staging.exists() {
        fs::remove_dir_all(staging).map_err(io_error(staging))?;
    }
    create_parents(staging, writes)?;
    for file in writes {
        let path = staging.join(&file.path);
        fs::write(&path, &file.bytes).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Creates, once each, the folders the files go in.
fn create_parents(root: &Path, files: &[&RenderedFile]) -> Result<(), OutputError> {
    let parents: std::collections::BTreeSet<&Path> = files
        .iter()
        .filter_map(|file| Path::new(&file.path).parent())
        .collect();
    for parent in parents {
        let path = root.join(parent);
        fs::create_dir_all(&path).map_err(io_error(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, owner: Owner, text: &str) -> RenderedFile {
        RenderedFile {
            path: path.into(),
            owner,
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn user_files_are_created_once_and_hand_edits_are_protected() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            file("gen.rs", Owner::Generator, "v1"),
            file("user.rs", Owner::User, "template"),
        ];
        let first = apply(dir.path(), &files, Mode::Write { force: false }).unwrap();
        assert_eq!(first.changes.len(), 3);
        fs::write(dir.path().join("user.rs"), "mine").unwrap();
        let again = apply(dir.path(), &files, Mode::Write { force: false }).unwrap();
        assert!(again.changes.is_empty());
        assert_eq!(
            fs::read_to_string(dir.path().join("user.rs")).unwrap(),
            "mine"
        );

        fs::write(dir.path().join("gen.rs"), "edited").unwrap();
        let next = vec![
            file("gen.rs", Owner::Generator, "v2"),
            file("user.rs", Owner::User, "template"),
        ];
        let Err(OutputError::HandEdited(paths)) =
            apply(dir.path(), &next, Mode::Write { force: false })
        else {
            panic!("hand edit not detected")
        };
        assert_eq!(paths, ["gen.rs"]);
        apply(dir.path(), &next, Mode::Write { force: true }).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("gen.rs")).unwrap(), "v2");
        assert!(!dir.path().join(STAGING).exists());
    }

    #[test]
    fn files_no_longer_generated_are_removed_and_check_reports_drift() {
        let dir = tempfile::tempdir().unwrap();
        let old = vec![
            file("a.rs", Owner::Generator, "a"),
            file("b.rs", Owner::Generator, "b"),
        ];
        apply(dir.path(), &old, Mode::Write { force: false }).unwrap();
        let new = vec![file("a.rs", Owner::Generator, "a")];
        let drift = apply(dir.path(), &new, Mode::Check).unwrap();
        assert!(
            drift.changes.contains(&Change::Delete("b.rs".into())),
            "{drift:?}"
        );
        assert!(dir.path().join("b.rs").exists(), "check must not write");
        apply(dir.path(), &new, Mode::Write { force: false }).unwrap();
        assert!(!dir.path().join("b.rs").exists());
        assert!(
            apply(dir.path(), &new, Mode::Check)
                .unwrap()
                .changes
                .is_empty()
        );
    }
}
