//! The mapping file (`connector.yaml`): what the user says about their connector and provider,
//! as plain values. Loading checks the file on its own; later stages never read YAML again.

mod load;
mod validate;

use std::collections::BTreeMap;
use std::ops::Range;

pub use load::load;
pub use validate::validate;

/// The newest mapping format this generator understands.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub version: u32,
    /// The crate and binary name, e.g. `acme-bank`.
    pub name: String,
    pub upstream: Upstream,
    /// Extra crates the user's own code needs, added to the generated `Cargo.toml`.
    pub dependencies: BTreeMap<String, Dependency>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub base_url: Setting,
}

/// A value given in the file, or read from the environment when the connector starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    Literal(String),
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Where the crate is named in the file, for diagnostics of later stages.
    pub span: Range<usize>,
    pub version: String,
    pub default_features: bool,
    pub features: Vec<String>,
}
