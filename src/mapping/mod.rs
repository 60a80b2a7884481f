//! The mapping file (`connector.yaml`): what the user says about their connector and provider,
//! as plain values. Loading checks the file on its own; later stages never read YAML again.

mod load;

use std::collections::BTreeMap;

pub use load::load;

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
    pub version: String,
    pub features: Vec<String>,
}
