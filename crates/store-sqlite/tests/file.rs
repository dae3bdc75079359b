//! The SQLite backend against real files: the conformance suite through one shared
//! handle and through a fresh store per call (separate connections, as separate
//! processes would have), persistence across reopening, and failures to open.

use std::path::{Path, PathBuf};

use latchkey_store::conformance::{run_all, token_session};
use latchkey_store::{AuthCode, Redemption, Store, StoreError, User};
use latchkey_store_sqlite::SqliteStore;

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("latchkey.db")
}

/// `PRAGMA integrity_check` through a connection of its own.
fn assert_intact(path: &Path) {
    let conn = rusqlite::Connection::open(path).expect("open for integrity check");
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, ["ok"], "integrity_check");
}

#[test]
fn conformance_through_one_shared_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = SqliteStore::open(&path).unwrap();
    run_all(|| store.clone());
    drop(store);
    assert_intact(&path);
}

#[test]
fn conformance_with_a_new_store_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    run_all(|| SqliteStore::open(&path).expect("open"));
    assert_intact(&path);
}

#[test]
fn data_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let user = User {
        id: "u-1".into(),
        username: "carol@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        disabled_reason: None,
        is_verified: true,
        roles: vec!["admin".into(), "ops".into()],
        created_at: 1_700_000_000,
    };
    let mut session = token_session("s-1", "u-1", Some("b-1"), "h0");
    session.lifetime.idle_timeout_seconds = None;
    let code = AuthCode {
        hash: "code-hash".into(),
        client_id: "demo".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        user_id: "u-1".into(),
        browser_session_id: "b-1".into(),
        scopes: vec!["openid".into()],
        nonce: None,
        code_challenge: None,
        authenticated_at: 1_700_000_000,
        amr: vec![],
        created_at: 1_700_000_000,
        expires_at: 1_700_000_300,
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        pollster::block_on(async {
            store.create_user(&user).await.unwrap();
            store.create_session(&session).await.unwrap();
            store.put_code(&code).await.unwrap();
            assert!(matches!(store.redeem_code("code-hash", "s-1", 1_700_000_001).await, Ok(Redemption::Redeemed(_))));
            store.revoke_session("s-1", 1_700_000_002).await.unwrap();
        });
    }
    let store = SqliteStore::open(&path).unwrap();
    pollster::block_on(async {
        assert_eq!(store.user_by_id("u-1").await.unwrap(), Some(user.clone()));
        let stored = store.session("s-1").await.unwrap().unwrap();
        assert_eq!(stored.revoked_at, Some(1_700_000_002));
        assert_eq!(stored.version, 1);
        assert_eq!(stored, latchkey_store::Session { revoked_at: Some(1_700_000_002), version: 1, ..session.clone() });
        assert_eq!(
            store.redeem_code("code-hash", "s-2", 1_700_000_003).await,
            Ok(Redemption::Replayed { session_id: "s-1".into() }),
            "a redemption survives reopening"
        );
        assert!(matches!(store.create_user(&user).await, Err(StoreError::Conflict(_))));
    });
    drop(store);
    assert_intact(&path);
}

#[test]
fn opening_below_a_regular_file_is_unavailable() {
    // Root ignores file permissions, so an unwritable file cannot be made here; a
    // path whose parent is a regular file fails for root as for anyone.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteStore::open(&file.join("latchkey.db")).unwrap_err();
    assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("not-a-dir")), "{err:?}");
}

#[test]
fn opening_in_a_missing_directory_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&dir.path().join("missing").join("latchkey.db")).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
