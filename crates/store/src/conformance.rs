//! The conformance suite: generic tests every backend must pass. A backend's test
//! calls [`run_all`] with a factory that returns a handle to one shared, initially empty
//! store; concurrency tests call the factory once per thread, so a backend whose
//! handles are separate connections is tested across connections.

use std::sync::Barrier;

use latchkey_token::expiry::Lifetime;
use latchkey_token::refresh::RefreshState;

use crate::{AuthCode, Redemption, RefreshOutcome, Session, SessionKind, Store, StoreError, User, refresh};

const NOW: u64 = 1_700_000_000;

/// Runs every conformance test against the store returned by `factory`.
///
/// # Panics
/// On the first failed expectation, naming it.
pub fn run_all<S, F>(factory: F)
where
    S: Store + Send + 'static,
    F: Fn() -> S + Sync,
{
    let store = factory();
    pollster::block_on(async {
        users(&store).await;
        sessions_and_swap(&store).await;
        revocation_cascades(&store).await;
        disabling_revokes(&store).await;
        codes(&store).await;
        rotation(&store).await;
        counters(&store).await;
    });
    concurrent_refresh(&factory, 50);
    concurrent_code_redemption(&factory, 20);
}

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        username: name.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        disabled_reason: None,
        is_verified: true,
        roles: vec!["admin".into()],
        created_at: NOW,
    }
}

/// A token session with refresh state whose current hash is `current`.
pub fn token_session(id: &str, user_id: &str, parent: Option<&str>, current: &str) -> Session {
    Session {
        id: id.into(),
        kind: SessionKind::Token,
        user_id: user_id.into(),
        client_id: Some("demo".into()),
        parent_id: parent.map(str::to_owned),
        created_at: NOW,
        authenticated_at: NOW,
        amr: vec!["pwd".into()],
        scopes: vec!["openid".into(), "offline_access".into()],
        lifetime: Lifetime { lifetime_seconds: 3600, idle_timeout_seconds: Some(600) },
        last_used_at: NOW,
        revoked_at: None,
        secret_hash: None,
        refresh: Some(RefreshState::new(current.into())),
        version: 0,
        user_agent: Some("conformance".into()),
        ip: Some("127.0.0.1".into()),
    }
}

fn browser_session(id: &str, user_id: &str) -> Session {
    Session {
        kind: SessionKind::Browser,
        client_id: None,
        refresh: None,
        scopes: vec![],
        secret_hash: Some(format!("hash-of-{id}")),
        ..token_session(id, user_id, None, "")
    }
}

async fn users<S: Store>(s: &S) {
    let u = user("u-users", "alice@example.com");
    s.create_user(&u).await.expect("create_user");
    assert_eq!(s.user_by_id("u-users").await.unwrap(), Some(u.clone()), "user_by_id round-trips");
    assert_eq!(s.user_by_username("alice@example.com").await.unwrap(), Some(u.clone()), "user_by_username");
    assert_eq!(s.user_by_username("ALICE@example.com").await.unwrap(), None, "usernames match exactly");
    assert_eq!(s.user_by_id("nobody").await.unwrap(), None);
    let dup = user("u-other", "alice@example.com");
    assert!(matches!(s.create_user(&dup).await, Err(StoreError::Conflict(_))), "duplicate username is a conflict");
    assert!(s.set_user_disabled("u-users", true, Some("test"), NOW).await.unwrap());
    let disabled = s.user_by_id("u-users").await.unwrap().unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.disabled_reason.as_deref(), Some("test"));
    assert!(s.set_user_disabled("u-users", false, None, NOW).await.unwrap());
    assert!(!s.user_by_id("u-users").await.unwrap().unwrap().disabled);
    assert!(!s.set_user_disabled("nobody", true, None, NOW).await.unwrap(), "unknown user reports false");
}

async fn sessions_and_swap<S: Store>(s: &S) {
    let sess = token_session("s-swap", "u1", None, "h0");
    s.create_session(&sess).await.expect("create_session");
    assert!(matches!(s.create_session(&sess).await, Err(StoreError::Conflict(_))), "duplicate session id");
    assert_eq!(s.session("s-swap").await.unwrap(), Some(sess.clone()), "session round-trips");
    let mut next = sess.clone();
    next.refresh = Some(RefreshState::new("h1".into()));
    next.version = 1;
    assert!(s.swap_session(&next, 0).await.unwrap(), "swap at the right version");
    assert!(!s.swap_session(&next, 0).await.unwrap(), "swap at a stale version fails");
    let stored = s.session("s-swap").await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.refresh.unwrap().current, "h1");
    s.touch_session("s-swap", NOW + 100).await.unwrap();
    s.touch_session("s-swap", NOW + 50).await.unwrap();
    let touched = s.session("s-swap").await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, NOW + 100, "last use never moves backwards");
    assert_eq!(touched.version, 1, "touch does not change the version");
    let mut older = touched.clone();
    older.last_used_at = NOW;
    assert!(s.swap_session(&older, 1).await.unwrap());
    assert_eq!(s.session("s-swap").await.unwrap().unwrap().last_used_at, NOW + 100, "swap keeps the later last use");
}

async fn revocation_cascades<S: Store>(s: &S) {
    s.create_session(&browser_session("b-parent", "u2")).await.unwrap();
    s.create_session(&token_session("t-child", "u2", Some("b-parent"), "x")).await.unwrap();
    s.create_session(&token_session("t-other", "u2", None, "y")).await.unwrap();
    let before = s.session("t-child").await.unwrap().unwrap();
    s.revoke_session("b-parent", NOW + 1).await.unwrap();
    let parent = s.session("b-parent").await.unwrap().unwrap();
    let child = s.session("t-child").await.unwrap().unwrap();
    assert_eq!(parent.revoked_at, Some(NOW + 1), "parent revoked");
    assert_eq!(child.revoked_at, Some(NOW + 1), "child revoked with its parent");
    assert!(child.version > before.version, "revocation bumps the version");
    assert!(!s.swap_session(&before, before.version).await.unwrap(), "a swap in flight loses to a revocation");
    assert!(s.session("t-other").await.unwrap().unwrap().revoked_at.is_none(), "unrelated session untouched");
    s.revoke_session("b-parent", NOW + 5).await.unwrap();
    assert_eq!(s.session("b-parent").await.unwrap().unwrap().revoked_at, Some(NOW + 1), "revocation is idempotent");
    s.revoke_session("not-created-yet", NOW).await.unwrap();
    let late = token_session("not-created-yet", "u2", None, "w");
    assert!(
        matches!(s.create_session(&late).await, Err(StoreError::Conflict(_))),
        "a session id revoked before it was created can never be created"
    );
    assert!(s.session("not-created-yet").await.unwrap().unwrap().revoked_at.is_some(), "the tombstone is revoked");
}

async fn disabling_revokes<S: Store>(s: &S) {
    s.create_user(&user("u-dis", "bob@example.com")).await.unwrap();
    s.create_session(&browser_session("b-dis", "u-dis")).await.unwrap();
    s.create_session(&token_session("t-dis", "u-dis", Some("b-dis"), "z")).await.unwrap();
    assert!(s.set_user_disabled("u-dis", true, None, NOW + 2).await.unwrap());
    for id in ["b-dis", "t-dis"] {
        assert!(s.session(id).await.unwrap().unwrap().revoked_at.is_some(), "disabling revokes {id}");
    }
    s.create_session(&browser_session("b-dis-2", "u-dis")).await.unwrap();
    assert_eq!(s.revoke_user_sessions("u-dis", NOW + 3).await.unwrap(), 1, "counts newly revoked sessions");
}

fn code(hash: &str, expires_at: u64) -> AuthCode {
    AuthCode {
        hash: hash.into(),
        client_id: "demo".into(),
        redirect_uri: "http://127.0.0.1:4000/callback".into(),
        user_id: "u1".into(),
        browser_session_id: "b1".into(),
        scopes: vec!["openid".into()],
        nonce: Some("n".into()),
        code_challenge: Some("c".repeat(43)),
        authenticated_at: NOW,
        amr: vec!["pwd".into()],
        created_at: NOW,
        expires_at,
    }
}

async fn codes<S: Store>(s: &S) {
    let c = code("code-1", NOW + 300);
    s.put_code(&c).await.unwrap();
    assert!(matches!(s.put_code(&c).await, Err(StoreError::Conflict(_))), "duplicate code");
    assert_eq!(s.redeem_code("code-1", "sess-a", NOW).await.unwrap(), Redemption::Redeemed(c), "first redemption");
    assert_eq!(
        s.redeem_code("code-1", "sess-b", NOW).await.unwrap(),
        Redemption::Replayed { session_id: "sess-a".into() },
        "replay names the first session"
    );
    assert_eq!(s.redeem_code("unknown", "x", NOW).await.unwrap(), Redemption::Unknown);
    s.put_code(&code("code-old", NOW + 300)).await.unwrap();
    assert_eq!(s.redeem_code("code-old", "x", NOW + 300).await.unwrap(), Redemption::Unknown, "expired code");
}

async fn rotation<S: Store>(s: &S) {
    s.create_session(&token_session("t-rot", "u3", None, "r0")).await.unwrap();
    let out = refresh(s, "t-rot", "r0", "r1", true, NOW + 10).await.unwrap();
    assert!(matches!(out, RefreshOutcome::Rotated(_)), "current rotates: {out:?}");
    let out = refresh(s, "t-rot", "r0", "r1b", true, NOW + 11).await.unwrap();
    assert!(matches!(out, RefreshOutcome::Retried(_)), "previous while successor unused is a retry: {out:?}");
    let out = refresh(s, "t-rot", "r1b", "r2", true, NOW + 12).await.unwrap();
    assert!(matches!(out, RefreshOutcome::Rotated(_)));
    assert_eq!(s.session("t-rot").await.unwrap().unwrap().last_used_at, NOW + 12, "refresh records use");
    let out = refresh(s, "t-rot", "guess", "x", true, NOW + 13).await.unwrap();
    assert_eq!(out, RefreshOutcome::Invalid, "an unknown secret is invalid and does not revoke");
    assert!(s.session("t-rot").await.unwrap().unwrap().revoked_at.is_none());
    let out = refresh(s, "t-rot", "r0", "x", true, NOW + 14).await.unwrap();
    assert_eq!(out, RefreshOutcome::ReuseDetected, "an old token after its successor was used");
    assert!(s.session("t-rot").await.unwrap().unwrap().revoked_at.is_some(), "reuse revokes the session");
    let out = refresh(s, "t-rot", "r2", "x", true, NOW + 15).await.unwrap();
    assert_eq!(out, RefreshOutcome::Invalid, "nothing works after reuse");

    s.create_session(&token_session("t-keep", "u3", None, "k0")).await.unwrap();
    let out = refresh(s, "t-keep", "k0", "k1", false, NOW + 10).await.unwrap();
    assert!(matches!(out, RefreshOutcome::Kept(_)), "rotation off keeps the token");
    let out = refresh(s, "t-keep", "k0", "k1", false, NOW + 10 + 3600).await.unwrap();
    assert_eq!(out, RefreshOutcome::Invalid, "lifetime enforced");

    s.create_session(&token_session("t-idle", "u3", None, "i0")).await.unwrap();
    let out = refresh(s, "t-idle", "i0", "i1", true, NOW + 601).await.unwrap();
    assert_eq!(out, RefreshOutcome::Invalid, "idle timeout enforced");
    assert_eq!(refresh(s, "missing", "a", "b", true, NOW).await.unwrap(), RefreshOutcome::Invalid);
}

fn concurrent_refresh<S, F>(factory: &F, n: usize)
where
    S: Store + Send + 'static,
    F: Fn() -> S + Sync,
{
    let setup = factory();
    pollster::block_on(setup.create_session(&token_session("t-race", "u4", None, "race-0"))).unwrap();
    let barrier = Barrier::new(n);
    let outcomes: Vec<(String, Result<RefreshOutcome, StoreError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let store = factory();
                let barrier = &barrier;
                scope.spawn(move || {
                    let successor = format!("race-succ-{i}");
                    barrier.wait();
                    let out = pollster::block_on(refresh(&store, "t-race", "race-0", &successor, true, NOW + 20));
                    (successor, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("refresh thread panicked")).collect()
    });
    let mut rotated = 0;
    for (succ, out) in &outcomes {
        match out {
            Ok(RefreshOutcome::Rotated(_)) => rotated += 1,
            Ok(RefreshOutcome::Retried(_)) => {}
            other => panic!("concurrent refresh {succ}: unexpected outcome {other:?}"),
        }
    }
    assert_eq!(rotated, 1, "exactly one refresh rotates; the rest are retries");
    let session = pollster::block_on(setup.session("t-race")).unwrap().unwrap();
    assert!(session.revoked_at.is_none(), "the session survives concurrent refreshes");
    let state = session.refresh.unwrap();
    let live: Vec<_> = outcomes.iter().filter(|(succ, _)| *succ == state.current).collect();
    assert_eq!(live.len(), 1, "exactly one live successor");
    assert_eq!(state.previous.as_deref(), Some("race-0"), "the presented token stays the previous one");
    assert_eq!(session.version, n as u64, "every refresh applied exactly one swap");
}

fn concurrent_code_redemption<S, F>(factory: &F, n: usize)
where
    S: Store + Send + 'static,
    F: Fn() -> S + Sync,
{
    let setup = factory();
    pollster::block_on(setup.put_code(&code("code-race", NOW + 300))).unwrap();
    let barrier = Barrier::new(n);
    let results: Vec<Redemption> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let store = factory();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    pollster::block_on(store.redeem_code("code-race", &format!("sess-{i}"), NOW)).expect("redeem")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("redeem thread panicked")).collect()
    });
    let winners = results.iter().filter(|r| matches!(r, Redemption::Redeemed(_))).count();
    assert_eq!(winners, 1, "exactly one redemption wins");
    let replays = results.iter().filter(|r| matches!(r, Redemption::Replayed { .. })).count();
    assert_eq!(replays, n - 1, "every other redemption is a replay");
}

async fn counters<S: Store>(s: &S) {
    assert_eq!(s.counter("c", NOW).await.unwrap(), None);
    assert_eq!(s.bump_counter("c", NOW, 10).await.unwrap().count, 1);
    let c = s.bump_counter("c", NOW + 5, 10).await.unwrap();
    assert_eq!((c.count, c.first_at, c.last_at), (2, NOW, NOW + 5), "counts within the ttl");
    assert_eq!(s.counter("c", NOW + 14).await.unwrap().map(|c| c.count), Some(2), "ttl runs from the last hit");
    assert_eq!(s.counter("c", NOW + 15).await.unwrap(), None, "expired");
    assert_eq!(s.bump_counter("c", NOW + 15, 10).await.unwrap().count, 1, "restarts after expiry");
    s.reset_counter("c").await.unwrap();
    assert_eq!(s.counter("c", NOW + 15).await.unwrap(), None, "reset");
}
