//! `connector-gen draft`'s files: read the documents, write connector.yaml and
//! draft-report.json together (both staged beside their place first, then renamed).

use std::fs;
use std::path::{Path, PathBuf};

use crate::cli::{Failure, read_source, report};

pub(crate) fn draft(
    documents: &[PathBuf],
    name: Option<String>,
    out: &Path,
    hints: Option<&Path>,
    force: bool,
) -> Result<(), Failure> {
    let sources = documents
        .iter()
        .map(|p| read_source(p))
        .collect::<Result<Vec<_>, _>>()?;
    let hints = hints.map(read_source).transpose()?;
    let name = name.unwrap_or_else(|| super::default_name(&documents[0].display().to_string()));
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(Failure::Usage(format!(
            "cannot make a crate name from `{name}`; pass --name"
        )));
    }
    let mapping_path = out.join("connector.yaml");
    if mapping_path.exists() && !force {
        return Err(Failure::Usage(format!(
            "{} already exists; pass --force to replace it (pin the choices to keep with --hints)",
            mapping_path.display()
        )));
    }
    let drafted = super::draft(&sources, &name, hints.as_ref()).map_err(|diagnostics| {
        let mut all = sources.clone();
        all.extend(hints.clone());
        report(&diagnostics, &all);
        Failure::Diagnostics
    })?;
    write_both(
        out,
        &[
            ("connector.yaml", &drafted.mapping),
            ("draft-report.json", &drafted.report),
        ],
    )
    .map_err(|(path, error)| Failure::Usage(format!("{}: {error}", path.display())))?;
    println!(
        "Drafted {} and {}.",
        mapping_path.display(),
        out.join("draft-report.json").display()
    );
    println!(
        "Next: connector-gen check --mapping {} lists every todo left.",
        mapping_path.display()
    );
    Ok(())
}

/// Every file written to a temporary name first; only when all are, each is renamed into
/// place, so that a failure leaves the old files (or none), never half of a draft.
fn write_both(dir: &Path, files: &[(&str, &str)]) -> Result<(), (PathBuf, std::io::Error)> {
    fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
    let mut staged = Vec::new();
    for (name, text) in files {
        let temp = dir.join(format!(".{name}.draft-tmp"));
        if let Err(error) = fs::write(&temp, text) {
            for (temp, _) in &staged {
                let _ = fs::remove_file(temp);
            }
            return Err((temp, error));
        }
        staged.push((temp, dir.join(name)));
    }
    for (temp, target) in &staged {
        fs::rename(temp, target).map_err(|e| (target.clone(), e))?;
    }
    Ok(())
}
