//! Scale check for the SQLite store: session lookup and refresh latency with 10,000,
//! 100,000 and 1,000,000 sessions in the file (they must stay flat), bytes per session
//! on disk, and the process's resident memory.
//!
//! `cargo run --release -p latchkey-store-sqlite --example scale` (sizes overridable
//! with `SCALE_SIZES=10000,100000`). Sessions are cloned in bulk with one SQL statement
//! so setting up a million takes seconds; lookups and refreshes go through the store
//! port exactly as the server's do (each refresh is one fsync'd transaction).

use std::time::{Duration, Instant};

use latchkey_store::conformance::token_session;
use latchkey_store::{Store, refresh};
use latchkey_store_sqlite::SqliteStore;
use latchkey_token::secret::sha256_hex;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

#[expect(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
fn now() -> Instant {
    Instant::now()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<u64> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    println!(
        "| sessions | file MiB | bytes/session | lookup p50 µs | lookup p99 µs | refresh p50 µs | refresh p99 µs | RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("scale.sqlite3");
        let store = SqliteStore::open(&path)?;
        let t0 = 1_700_000_000;
        pollster::block_on(store.create_session(&token_session("t-template", "u-0", None, &sha256_hex("r0"))))?;
        {
            let conn = rusqlite::Connection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(30))?;
            conn.execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) \
                 INSERT INTO sessions SELECT printf('s-%09d', x), kind, printf('u-%d', x % 10000), client_id, \
                 parent_id, created_at, authenticated_at, amr, scopes, lifetime_seconds, idle_timeout_seconds, \
                 last_used_at, revoked_at, secret_hash, refresh, version, user_agent, ip \
                 FROM sessions, c WHERE sessions.id = 't-template'",
                [n - 1],
            )?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        let bytes = std::fs::metadata(&path)?.len();
        // Lookups of ids spread over the whole table.
        let mut lookups = Vec::with_capacity(5000);
        let mut x: u64 = 12345;
        for _ in 0..5000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let id = format!("s-{:09}", (x >> 33) % (n - 1) + 1);
            let start = now();
            let s = pollster::block_on(store.session(&id))?;
            lookups.push(start.elapsed());
            assert!(s.is_some(), "{id} exists");
        }
        lookups.sort();
        // A chain of rotations on one session among them.
        let mut refreshes = Vec::with_capacity(300);
        let mut current = sha256_hex("r0");
        for i in 0..300u64 {
            let next = sha256_hex(&format!("r{}", i + 1));
            let start = now();
            let out = pollster::block_on(refresh(&store, "t-template", &current, &next, true, t0 + 10 + i))?;
            refreshes.push(start.elapsed());
            assert!(matches!(out, latchkey_store::RefreshOutcome::Rotated(_)), "rotation {i}: {out:?}");
            current = next;
        }
        refreshes.sort();
        println!(
            "| {n} | {:.1} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.1} |",
            bytes as f64 / (1024.0 * 1024.0),
            bytes / n,
            percentile(&lookups, 0.5),
            percentile(&lookups, 0.99),
            percentile(&refreshes, 0.5),
            percentile(&refreshes, 0.99),
            rss_mib(),
        );
    }
    Ok(())
}
