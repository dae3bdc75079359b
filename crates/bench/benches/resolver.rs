//! Placeholder; see the crate docs.
fn main() {}
