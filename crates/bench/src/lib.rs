//! Criterion micro-benchmarks of Latchkey's hot paths (`cargo bench -p latchkey-bench`).
//! The benchmarks live in `benches/`; this library is empty.
