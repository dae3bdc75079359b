//! Runs inputs through a target on stable Rust, without libFuzzer:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay -- TARGET FILE...
//! ```
//!
//! With `LATCHKEY_FUZZ_TRACE=1`, the endpoint target prints every request and response.
//! Exits 1 if any input panics.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, files)) = args.split_first() else {
        eprintln!("usage: replay TARGET FILE...");
        std::process::exit(2);
    };
    let Some(run) = latchkey_fuzz::target(name) else {
        let names: Vec<&str> = latchkey_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("unknown target {name:?}; targets: {}", names.join(", "));
        std::process::exit(2);
    };
    let mut failed = 0;
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        eprintln!("== {file}");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed += 1;
            eprintln!("FAIL {file}");
        }
    }
    eprintln!("{} inputs, {failed} failed", files.len());
    std::process::exit(i32::from(failed > 0));
}
