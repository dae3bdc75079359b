//! Fuzz targets for Latchkey's portable core, as plain functions of the input bytes.
//!
//! Each module is one target; `fuzz_targets/<name>.rs` is a one-line libFuzzer wrapper
//! around its `run`, and `tests/regressions.rs` replays `regressions/<name>/*` and
//! `corpus/<name>/*` through the same `run` on stable Rust. A target fails by
//! panicking: every invariant is an assertion.

pub mod compound_token;
pub mod config;
pub mod endpoint;
pub mod fixtures;
pub mod jwt_mutate;
pub mod jwt_verify;
pub mod params;

/// A target: runs one input, panicking when an invariant fails.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("jwt_verify", jwt_verify::run),
    ("jwt_mutate", jwt_mutate::run),
    ("compound_token", compound_token::run),
    ("params", params::run),
    ("config", config::run),
    ("endpoint", endpoint::run),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
