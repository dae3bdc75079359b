//! Tests that need the store's internals: the per-connection settings, a short busy
//! timeout, and rows written behind the store's back.

use std::time::Duration;

use latchkey_store::conformance::token_session;
use latchkey_store::{Store, StoreError, User};
use rusqlite::Connection;

use super::{READERS, SqliteStore};

fn temp_store() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.db");
    let store = SqliteStore::open(&path).expect("open");
    (dir, path, store)
}

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        username: name.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        disabled_reason: None,
        is_verified: false,
        roles: vec![],
        created_at: 1,
    }
}

fn settings(conn: &Connection) -> rusqlite::Result<(String, i64, i64, i64)> {
    Ok((
        conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
        conn.pragma_query_value(None, "synchronous", |r| r.get(0))?,
        conn.pragma_query_value(None, "busy_timeout", |r| r.get(0))?,
        conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?,
    ))
}

fn assert_settings(found: (String, i64, i64, i64), what: &str) {
    // WAL, synchronous=FULL (2), the busy timeout, foreign keys on.
    assert_eq!(found, ("wal".to_owned(), 2, 5000, 1), "{what}");
}

#[test]
fn every_connection_has_the_durability_settings() {
    let (_dir, _path, store) = temp_store();
    let writer = pollster::block_on(store.write("reading the settings", |tx| settings(tx))).unwrap();
    assert_settings(writer, "writer");
    assert_eq!(store.inner.readers.len(), READERS);
    for (i, reader) in store.inner.readers.iter().enumerate() {
        assert_settings(settings(&reader.lock().unwrap()).unwrap(), &format!("reader {i}"));
    }
}

#[test]
fn the_store_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<SqliteStore>();
}

#[test]
fn readers_cannot_write() {
    let (_dir, _path, store) = temp_store();
    let reader = store.reader().unwrap();
    let err = reader.execute("DELETE FROM users", []).expect_err("reader is read-only");
    assert!(err.to_string().contains("readonly"), "{err}");
}

#[test]
fn reads_wait_for_a_reader_when_all_are_busy() {
    let (_dir, _path, store) = temp_store();
    let guards: Vec<_> = store.inner.readers.iter().map(|r| r.lock().unwrap()).collect();
    std::thread::scope(|scope| {
        let reading = scope.spawn(|| pollster::block_on(store.user_by_id("nobody")));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reading.is_finished(), "the read waits for a reader");
        drop(guards);
        assert_eq!(reading.join().unwrap(), Ok(None));
    });
}

#[test]
fn a_locked_file_makes_writes_unavailable_while_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    let store = SqliteStore::open_with(&path, Duration::from_millis(100)).unwrap();
    pollster::block_on(store.create_user(&user("u1", "one"))).unwrap();

    // Another process holding the write lock past the busy timeout.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let err = pollster::block_on(store.create_user(&user("u2", "two"))).unwrap_err();
    assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("locked") || m.contains("busy")), "{err:?}");
    let err = pollster::block_on(store.revoke_session("s", 5)).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // WAL: the writer's lock does not block readers.
    assert!(pollster::block_on(store.user_by_id("u1")).unwrap().is_some());

    other.execute_batch("COMMIT").unwrap();
    pollster::block_on(store.create_user(&user("u2", "two"))).unwrap();
}

/// Holds the file's write lock from another connection while `queue` runs, so that
/// everything `queue` writes waits in the writer's queue, then lets it go.
fn with_writer_held_up<T: Send>(path: &std::path::Path, queue: impl FnOnce() -> T + Send) -> T {
    let other = Connection::open(path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::scope(|scope| {
        let queued = scope.spawn(queue);
        // The writer thread is now waiting for the lock with the first write; the rest
        // have had ample time to queue behind it.
        std::thread::sleep(Duration::from_millis(300));
        assert!(!queued.is_finished(), "nothing can commit while the lock is held");
        other.execute_batch("COMMIT").unwrap();
        queued.join().unwrap()
    })
}

#[test]
fn queued_writes_share_one_commit_and_a_failed_one_fails_alone() {
    let (_dir, path, store) = temp_store();
    let before = store.write_batches();
    let results = with_writer_held_up(&path, || {
        std::thread::scope(|scope| {
            let writers: Vec<_> = (0..40)
                .map(|i| {
                    let store = store.clone();
                    // Writer 7 takes a name that writer 3 also takes: exactly one wins.
                    let name = if i == 7 { "user-3".to_owned() } else { format!("user-{i}") };
                    scope.spawn(move || pollster::block_on(store.create_user(&user(&format!("u{i}"), &name))))
                })
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).collect::<Vec<_>>()
        })
    });
    let batches = store.write_batches() - before;
    assert!(batches <= 3, "40 queued writes took {batches} commits");
    let conflicts = results.iter().filter(|r| matches!(r, Err(StoreError::Conflict(_)))).count();
    assert_eq!(conflicts, 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 39);
    // Every acknowledged write is in the file, seen by a connection of its own.
    let raw = Connection::open(&path).unwrap();
    let users: i64 = raw.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap();
    assert_eq!(users, 39);
}

#[test]
fn swaps_in_one_batch_see_each_other() {
    let (_dir, path, store) = temp_store();
    let session = token_session("s1", "u1", None, "h");
    pollster::block_on(store.create_session(&session)).unwrap();
    let won = with_writer_held_up(&path, || {
        std::thread::scope(|scope| {
            let swaps: Vec<_> = (0..10)
                .map(|_| {
                    let (store, next) = (store.clone(), session.clone());
                    scope.spawn(move || pollster::block_on(store.swap_session(&next, session.version)).unwrap())
                })
                .collect();
            swaps.into_iter().map(|s| s.join().unwrap()).filter(|won| *won).count()
        })
    });
    assert_eq!(won, 1, "ten swaps from one version in one batch: exactly one wins");
}

#[test]
fn undecodable_rows_are_corrupt_and_the_message_quotes_nothing() {
    let (_dir, path, store) = temp_store();
    pollster::block_on(store.create_session(&token_session("s1", "u1", None, "h"))).unwrap();
    let raw = Connection::open(&path).unwrap();
    raw.execute("UPDATE sessions SET refresh = '\"hash-of-a-token\"' WHERE id = 's1'", []).unwrap();
    let err = pollster::block_on(store.session("s1")).unwrap_err();
    match &err {
        StoreError::Corrupt(m) => {
            assert!(m.contains("sessions.refresh"), "{m}");
            assert!(!m.contains("hash-of-a-token"), "message leaks the value: {m}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    raw.execute("UPDATE sessions SET refresh = NULL, version = -1 WHERE id = 's1'", []).unwrap();
    let err = pollster::block_on(store.session("s1")).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "negative u64: {err:?}");

    raw.execute("UPDATE users SET roles = 'x'", []).unwrap();
    pollster::block_on(store.create_user(&user("u9", "nine"))).unwrap();
    raw.execute("UPDATE users SET roles = '[1]' WHERE id = 'u9'", []).unwrap();
    let err = pollster::block_on(store.user_by_username("nine")).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[test]
fn conflicts_name_the_constraint() {
    let (_dir, _path, store) = temp_store();
    pollster::block_on(store.create_user(&user("u1", "one"))).unwrap();
    let by_id = pollster::block_on(store.create_user(&user("u1", "other"))).unwrap_err();
    assert!(matches!(&by_id, StoreError::Conflict(m) if m.contains("users.id")), "{by_id:?}");
    let by_name = pollster::block_on(store.create_user(&user("u2", "one"))).unwrap_err();
    assert!(matches!(&by_name, StoreError::Conflict(m) if m.contains("users.username")), "{by_name:?}");
    // The failed transactions rolled back and left the writer usable.
    pollster::block_on(store.create_user(&user("u2", "two"))).unwrap();
}

#[test]
fn values_beyond_sqlite_integers_are_refused_not_wrapped() {
    let (_dir, _path, store) = temp_store();
    let mut s = token_session("s-big", "u1", None, "h");
    s.lifetime.lifetime_seconds = u64::MAX;
    let err = pollster::block_on(store.create_session(&s)).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(pollster::block_on(store.session("s-big")), Ok(None));
    assert_eq!(pollster::block_on(store.swap_session(&s, u64::MAX)), Ok(false));
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let (_dir, path, store) = temp_store();
    drop(store);
    let raw = Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("99")), "{err:?}");
}

#[test]
fn reopening_keeps_the_schema_version() {
    let (_dir, path, store) = temp_store();
    drop(store);
    let _again = SqliteStore::open(&path).unwrap();
    let raw = Connection::open(&path).unwrap();
    let v: i64 = raw.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, super::schema::CURRENT_VERSION as i64);
}

#[test]
fn revocations_use_the_indexes() {
    let (_dir, path, _store) = temp_store();
    let raw = Connection::open(&path).unwrap();
    for sql in [
        "UPDATE sessions SET version = version + 1 WHERE id = 'a' OR parent_id = 'a'",
        "UPDATE sessions SET version = version + 1 WHERE user_id = 'u'",
    ] {
        let plan: Vec<String> = raw
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().all(|step| !step.starts_with("SCAN")), "{sql}: {plan:?}");
    }
}

#[test]
fn a_write_that_panics_fails_its_batch_and_the_writer_goes_on() {
    let (_dir, path, store) = temp_store();
    let err =
        pollster::block_on(store.write("panicking", |_tx| -> rusqlite::Result<()> { panic!("a bug") })).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    pollster::block_on(store.create_user(&user("u1", "one"))).unwrap();
    let raw = Connection::open(&path).unwrap();
    let users: i64 = raw.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap();
    assert_eq!(users, 1, "the writer still commits after a panicking write");
}
