//! The stable-Rust regression runner: replays every file of `regressions/<target>/` and
//! of the committed seed corpus `corpus/<target>/` through the target's `run`, without
//! libFuzzer or nightly:
//!
//! ```sh
//! cargo test --manifest-path fuzz/Cargo.toml --no-default-features
//! ```
//!
//! A regression input whose bug is not fixed yet fails here, by design: see
//! `regressions/README.md`.

use std::fs;
use std::path::Path;

fn replay(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, run) in latchkey_fuzz::TARGETS {
        let Ok(entries) = fs::read_dir(root.join(name)) else { continue };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for file in files {
            if file.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
                || file.extension().is_some_and(|e| e == "md")
            {
                continue;
            }
            let data = fs::read(&file).expect("readable");
            count += 1;
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {}: {msg}", file.display()));
            }
        }
    }
    eprintln!("{dir}: replayed {count} inputs, {} failed", failures.len());
    failures
}

#[test]
fn regressions() {
    let failures = replay("regressions");
    assert!(failures.is_empty(), "regression inputs fail:\n{}", failures.join("\n"));
}

#[test]
fn seed_corpus() {
    let failures = replay("corpus");
    assert!(failures.is_empty(), "seed inputs fail:\n{}", failures.join("\n"));
}

/// The token seeds must still be valid tokens of the fixture keys (same signing input,
/// and they verify), or the JWT targets would start from nothing that verifies.
#[test]
fn token_seeds_verify() {
    use latchkey_fuzz::fixtures::{
        Kind, access_expectations, id_expectations, signed_tokens, signing_input, verifying_keys,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/jwt_verify");
    for t in signed_tokens() {
        let path = dir.join(format!("{}.jwt", t.name));
        let seed = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run the ignored test write_seeds", path.display()));
        assert_eq!(
            signing_input(&seed),
            Some(t.signing_input()),
            "{} is stale; run the ignored test write_seeds",
            path.display()
        );
        let ok = match t.kind {
            Kind::Access => verifying_keys().verify_access_token(&seed, &access_expectations()).is_ok(),
            Kind::Id => verifying_keys().verify_id_token(&seed, &id_expectations()).is_ok(),
        };
        assert_eq!(ok, !t.name.ends_with("expired"), "{}", path.display());
    }
}

/// Writes the seeds derived from the fixtures (the tokens of `jwt_verify`, the documents
/// of `config`):
/// `cargo test --manifest-path fuzz/Cargo.toml --no-default-features -- --ignored write_seeds`
#[test]
#[ignore = "writes files"]
fn write_seeds() {
    use latchkey_fuzz::fixtures::{CONFIG_YAML, secrets_yaml, signed_tokens};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for t in signed_tokens() {
        fs::write(root.join("jwt_verify").join(format!("{}.jwt", t.name)), &t.token).expect("write");
    }
    fs::write(root.join("config/fixture-config.yaml"), CONFIG_YAML).expect("write");
    fs::write(root.join("config/fixture-secrets.yaml"), secrets_yaml()).expect("write");
}
