//! The conformance suite: generic tests every backend must pass. A backend's test
//! calls [`run_all`] with a factory that returns a handle to one shared, initially empty
//! store; concurrency tests call the factory once per thread, so a backend whose
//! handles are separate connections is tested across connections.

use std::sync::Barrier;

use latchkey_token::UnixSeconds;
use latchkey_token::expiry::Lifetime;
use latchkey_token::refresh::RefreshState;

use crate::{
    AuditEvent, AuthCode, Counter, Redemption, RefreshOutcome, Session, SessionKind, Store, StoreError, User, refresh,
};

const NOW: u64 = 1_700_000_000;

/// Runs every conformance test against the store returned by `factory`.
///
/// # Panics
/// On the first failed expectation, naming it.
pub fn run_all<S, F>(factory: F)
where
    S: Store + Clone + Send + Sync + 'static,
    F: Fn() -> S + Sync,
{
    let store = factory();
    pollster::block_on(async {
        users(&store).await;
        sessions_and_swap(&store).await;
        revocation_cascades(&store).await;
        disabling_revokes(&store).await;
        directory(&store).await;
        key_ring(&store).await;
        audit(&store).await;
        codes(&store).await;
        rotation(&store).await;
        counters(&store).await;
    });
    concurrent_refresh(&factory, 50);
    concurrent_code_redemption(&factory, 20);
    // The 200-way and 100-way races share one handle: 200 separate SQLite connections
    // contend for the file lock longer than its busy timeout, which is a backend limit
    // (answered as Unavailable, a defined outcome), not a race in the protocol.
    let shared = factory();
    concurrent_refresh(&|| shared.clone(), 200);
    concurrent_code_redemption(&|| shared.clone(), 100);
    revoke_racing_chained_refresh(&factory, 8, 5);
    revoke_racing_same_token_refresh(&factory, 16, 5);
}

/// Runs every conformance test against `store` on a single-threaded runtime (Workers,
/// where there are no threads): the same checks as [`run_all`], with the races made of
/// futures interleaved on one executor. Every store call of a race is in flight at
/// once, so a backend whose calls are I/O (a Durable Object fetch) sees them
/// concurrently, as it would from many isolates.
///
/// # Panics
/// On the first failed expectation, naming it.
pub async fn run_all_async<S: Store>(store: &S) {
    for part in AsyncPart::ALL {
        run_async_part(store, part).await;
    }
}

/// One part of the single-threaded suite. A runtime that charges resources per
/// incoming request (workerd keeps every subrequest of a request until it ends) runs
/// each part as a request of its own, in this order, against one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncPart {
    /// Every check that is not a race.
    Sequential,
    /// `n` concurrent refreshes of one token.
    Refresh(usize),
    /// `n` concurrent redemptions of one code.
    Redeem(usize),
    /// Round `k` of 16 refreshers racing a revocation.
    RevokeRace(usize),
}

impl AsyncPart {
    /// The whole suite, with the native suite's sizes.
    pub const ALL: [AsyncPart; 10] = [
        AsyncPart::Sequential,
        AsyncPart::Refresh(50),
        AsyncPart::Refresh(200),
        AsyncPart::Redeem(20),
        AsyncPart::Redeem(100),
        AsyncPart::RevokeRace(0),
        AsyncPart::RevokeRace(1),
        AsyncPart::RevokeRace(2),
        AsyncPart::RevokeRace(3),
        AsyncPart::RevokeRace(4),
    ];

    /// Parses `sequential`, `refresh:N`, `redeem:N` or `revoke:K`.
    pub fn parse(s: &str) -> Option<Self> {
        let (name, n) = s.split_once(':').unwrap_or((s, ""));
        match (name, n.parse::<usize>()) {
            ("sequential", _) if n.is_empty() => Some(AsyncPart::Sequential),
            ("refresh", Ok(n)) if (1..=1000).contains(&n) => Some(AsyncPart::Refresh(n)),
            ("redeem", Ok(n)) if (1..=1000).contains(&n) => Some(AsyncPart::Redeem(n)),
            ("revoke", Ok(k)) if k < 100 => Some(AsyncPart::RevokeRace(k)),
            _ => None,
        }
    }
}

/// Runs one [`AsyncPart`] against `store` (see [`run_all_async`]).
///
/// # Panics
/// On the first failed expectation, naming it.
pub async fn run_async_part<S: Store>(store: &S, part: AsyncPart) {
    match part {
        AsyncPart::Sequential => {
            users(store).await;
            sessions_and_swap(store).await;
            revocation_cascades(store).await;
            disabling_revokes(store).await;
            directory(store).await;
            key_ring(store).await;
            audit(store).await;
            codes(store).await;
            rotation(store).await;
            counters(store).await;
        }
        AsyncPart::Refresh(n) => {
            let sid = format!("t-race-{n}");
            let presented = format!("race-{n}-0");
            store.create_session(&token_session(&sid, "u4", None, &presented)).await.unwrap();
            let outcomes = join_all((0..n).map(|i| {
                let (sid, presented) = (&sid, &presented);
                async move {
                    let successor = format!("race-{n}-succ-{i}");
                    let out = refresh(store, sid, presented, &successor, true, NOW + 20).await;
                    (successor, out)
                }
            }))
            .await;
            let session = store.session(&sid).await.unwrap().unwrap();
            check_concurrent_refresh(n, &presented, &outcomes, session);
        }
        AsyncPart::Redeem(n) => {
            let hash = format!("code-race-{n}");
            store.put_code(&code(&hash, NOW + 300)).await.unwrap();
            let results = join_all((0..n).map(|i| {
                let hash = &hash;
                async move { store.redeem_code(hash, &format!("sess-{n}-{i}"), NOW).await.expect("redeem") }
            }))
            .await;
            let late = store.redeem_code(&hash, "sess-late", NOW).await.unwrap();
            check_code_race(n, &results, late);
        }
        AsyncPart::RevokeRace(round) => {
            let sid = &format!("t-revoke-same-{round}");
            store.create_session(&token_session(sid, "u5", None, "same-0")).await.unwrap();
            let (revoke, logs) = revocation_race_async(store, 16, sid, 2 + round, |t, attempt| async move {
                refresh(store, sid, "same-0", &format!("same-{t}-{attempt}"), true, NOW + 30).await
            })
            .await;
            let current = store.session(sid).await.unwrap().unwrap().refresh.unwrap().current;
            let what = format!("same-token refresh vs revoke, round {round}");
            check_revocation_race(&what, store, sid, &["same-0", &current], revoke, &logs).await;
        }
    }
}

/// Polls every future to completion, concurrently, and returns their outputs in order.
/// (A small join, so that the suite needs no executor crate.)
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut all = true;
        for (fut, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(done.iter_mut().map(|o| o.take().expect("polled to completion")).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The single-threaded form of [`revocation_race`]: `n` refreshers (`step(refresher,
/// attempt)`) run as interleaved futures while a revoker waits `delay` reads of the
/// session (its only way to let time pass without a clock) and then revokes `sid`. A
/// refresher notes whether the revocation had returned before each refresh started.
async fn revocation_race_async<S, R, Fut>(
    store: &S,
    n: usize,
    sid: &str,
    delay: usize,
    step: R,
) -> (RevokeLog, Vec<RaceLog>)
where
    S: Store,
    R: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<RefreshOutcome, StoreError>>,
{
    use std::cell::Cell;
    let revoked = Cell::new(false);
    let revoker = async {
        for _ in 0..delay {
            let _ = store.session(sid).await;
        }
        let result = store.revoke_session(sid, NOW + 31).await;
        revoked.set(true);
        RevokeLog { result, unavailable: 0 }
    };
    let refreshers = join_all((0..n).map(|t| {
        let (revoked, step) = (&revoked, &step);
        async move {
            let mut log = RaceLog { succeeded: 0, unavailable: 0, after_revoke: Vec::new(), unexpected: Vec::new() };
            // Bounded, so that a revocation that never returns fails the check instead
            // of hanging the suite.
            for attempt in 0..1000 {
                let started_after_revoke = revoked.get();
                let out = step(t, attempt).await;
                match &out {
                    Ok(RefreshOutcome::Rotated(_) | RefreshOutcome::Retried(_)) => log.succeeded += 1,
                    Ok(RefreshOutcome::Invalid) => {}
                    Err(StoreError::Unavailable(_)) => log.unavailable += 1,
                    other => log.unexpected.push(format!("refresher {t} attempt {attempt}: {other:?}")),
                }
                if started_after_revoke {
                    log.after_revoke.push(out);
                    if log.after_revoke.len() >= AFTER_REVOKE_ATTEMPTS {
                        break;
                    }
                }
            }
            log
        }
    }));
    let mut revoke_log = None;
    let mut logs = None;
    join_all([
        Box::pin(async { revoke_log = Some(revoker.await) })
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
        Box::pin(async { logs = Some(refreshers.await) }),
    ])
    .await;
    (revoke_log.expect("the revoker ran"), logs.expect("the refreshers ran"))
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
    let imported = u.password_hash.clone();
    assert!(s.replace_password_hash("u-users", &imported, "$argon2id$next").await.unwrap(), "replaced");
    assert!(!s.replace_password_hash("u-users", &imported, "$argon2id$other").await.unwrap(), "only from the current");
    assert!(!s.replace_password_hash("nobody", &imported, "$argon2id$other").await.unwrap(), "unknown user");
    let upgraded = s.user_by_id("u-users").await.unwrap().unwrap();
    assert_eq!(upgraded.password_hash, "$argon2id$next");
    assert!(!upgraded.disabled, "nothing else changes");
    assert!(s.replace_password_hash("u-users", "$argon2id$next", &imported).await.unwrap());

    let with_user = browser_session("b-users", "u-users");
    s.create_session(&with_user).await.unwrap();
    let enabled = s.user_by_id("u-users").await.unwrap();
    assert_eq!(s.session_with_user("b-users").await.unwrap(), Some((with_user.clone(), enabled)), "session and user");
    assert!(s.set_user_disabled("u-users", true, None, NOW).await.unwrap());
    let (revoked, disabled) = s.session_with_user("b-users").await.unwrap().unwrap();
    assert!(
        revoked.revoked_at.is_some() && disabled.unwrap().disabled,
        "one read sees the disabling and its revocation"
    );
    assert!(s.set_user_disabled("u-users", false, None, NOW).await.unwrap());
    let orphan = browser_session("b-orphan", "no-such-user");
    s.create_session(&orphan).await.unwrap();
    assert_eq!(s.session_with_user("b-orphan").await.unwrap(), Some((orphan, None)), "a session whose user is gone");
    assert_eq!(s.session_with_user("no-such-session").await.unwrap(), None);
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

/// Listing, searching, deleting users and listing their sessions. Every name starts
/// with `dir-`, which no other check uses, since the store is shared.
async fn directory<S: Store>(s: &S) {
    let names = ["dir-carol", "dir-alice", "dir-bob", "dir-alicia", "dir-ålvar", "dir-zed"];
    for (i, name) in names.iter().enumerate() {
        s.create_user(&user(&format!("u-dir-{i}"), name)).await.expect("create_user");
    }
    let listed = |users: Vec<User>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();
    assert_eq!(
        listed(s.list_users("dir-", None, 100).await.unwrap()),
        ["dir-alice", "dir-alicia", "dir-bob", "dir-carol", "dir-zed", "dir-ålvar"],
        "every match, in byte order of the usernames"
    );
    assert_eq!(listed(s.list_users("dir-", None, 2).await.unwrap()), ["dir-alice", "dir-alicia"], "a first page");
    assert_eq!(
        listed(s.list_users("dir-", Some("dir-alicia"), 2).await.unwrap()),
        ["dir-bob", "dir-carol"],
        "the next page starts after the cursor"
    );
    assert_eq!(listed(s.list_users("dir-", Some("dir-ålvar"), 2).await.unwrap()), Vec::<String>::new(), "past the end");
    assert_eq!(
        listed(s.list_users("dir-ali", None, 10).await.unwrap()),
        ["dir-alice", "dir-alicia"],
        "a prefix search"
    );
    assert_eq!(listed(s.list_users("dir-ålv", None, 10).await.unwrap()), ["dir-ålvar"], "a non-ASCII prefix");
    assert_eq!(listed(s.list_users("dir-x", None, 10).await.unwrap()), Vec::<String>::new(), "no match");
    assert_eq!(listed(s.list_users("DIR-", None, 10).await.unwrap()), Vec::<String>::new(), "prefixes match exactly");

    // dir-bob (u-dir-2) has a browser session, a token session made from it, one that
    // is revoked and one that has expired.
    let mut browser = browser_session("b-dir", "u-dir-2");
    browser.created_at = NOW + 1;
    s.create_session(&browser).await.unwrap();
    let mut child = token_session("t-dir", "u-dir-2", Some("b-dir"), "d0");
    child.created_at = NOW + 2;
    s.create_session(&child).await.unwrap();
    s.create_session(&token_session("t-dir-revoked", "u-dir-2", None, "d1")).await.unwrap();
    s.revoke_session("t-dir-revoked", NOW + 3).await.unwrap();
    let mut expired = token_session("t-dir-expired", "u-dir-2", None, "d2");
    expired.created_at = NOW - 7200;
    expired.last_used_at = NOW - 7200;
    s.create_session(&expired).await.unwrap();
    let ids = |sessions: Vec<Session>| sessions.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.user_sessions("u-dir-2", NOW + 10).await.unwrap()),
        ["b-dir", "t-dir"],
        "the active sessions, oldest first"
    );
    assert_eq!(ids(s.user_sessions("u-dir-0", NOW + 10).await.unwrap()), Vec::<String>::new(), "a user without any");

    assert!(s.delete_user("u-dir-2", NOW + 20).await.unwrap(), "delete_user finds the user");
    assert_eq!(s.user_by_id("u-dir-2").await.unwrap(), None, "the record is gone");
    assert_eq!(s.user_by_username("dir-bob").await.unwrap(), None, "so is the name");
    for id in ["b-dir", "t-dir"] {
        assert!(s.session(id).await.unwrap().unwrap().revoked_at.is_some(), "deleting revokes {id}");
    }
    assert_eq!(
        ids(s.user_sessions("u-dir-2", NOW + 21).await.unwrap()),
        Vec::<String>::new(),
        "nothing active is left"
    );
    assert_eq!(
        listed(s.list_users("dir-b", None, 10).await.unwrap()),
        Vec::<String>::new(),
        "a deleted user is not listed"
    );
    assert!(!s.delete_user("u-dir-2", NOW + 22).await.unwrap(), "deleting again reports false");
    s.create_user(&user("u-dir-new", "dir-bob")).await.expect("the name can be taken again");
    assert_eq!(s.user_by_username("dir-bob").await.unwrap().map(|u| u.id).as_deref(), Some("u-dir-new"));
    assert_eq!(ids(s.user_sessions("u-dir-new", NOW + 23).await.unwrap()), Vec::<String>::new(), "and has no sessions");
}

/// The key ring's compare-and-swap. The store holds one ring, so this is the only
/// check that touches it.
async fn key_ring<S: Store>(s: &S) {
    assert_eq!(s.key_ring().await.unwrap(), None, "no ring at first");
    assert!(!s.swap_key_ring("{\"v\":1}", 1).await.unwrap(), "none stored: only version 0 swaps");
    assert!(s.swap_key_ring("{\"v\":1}", 0).await.unwrap(), "the first ring");
    assert_eq!(s.key_ring().await.unwrap(), Some(("{\"v\":1}".to_owned(), 1)));
    assert!(!s.swap_key_ring("{\"v\":\"lost\"}", 0).await.unwrap(), "a second first ring loses");
    assert!(s.swap_key_ring("{\"v\":2}", 1).await.unwrap());
    assert!(!s.swap_key_ring("{\"v\":\"stale\"}", 1).await.unwrap(), "a stale version loses");
    let big = format!("{{\"keys\":\"{}\"}}", "k".repeat(60_000));
    assert!(s.swap_key_ring(&big, 2).await.unwrap(), "a ring of several RSA keys fits");
    assert_eq!(s.key_ring().await.unwrap(), Some((big, 3)));
}

fn audit_event(at: u64, request: &str, n: u32) -> AuditEvent {
    AuditEvent {
        cursor: format!("{at:010}-{request}-{n}"),
        at,
        event: "login.succeeded".into(),
        request_id: Some(request.into()),
        client_id: Some("demo".into()),
        user_id: Some("u1".into()),
        ip: Some("192.0.2.1".into()),
        user_agent: Some("conformance".into()),
        detail: None,
    }
}

/// The audit stream: appended events come back in cursor order, after a cursor, a
/// page at a time, across days (backends that partition by day must span them). The
/// events are in the past of every other check's, so only the times chosen here
/// (two days before NOW) are used.
async fn audit<S: Store>(s: &S) {
    let day = 86_400;
    let base = NOW - 2 * day - (NOW % day);
    let events = [
        audit_event(base + 10, "r1", 1),
        audit_event(base + 10, "r1", 2),
        audit_event(base + 20, "r2", 1),
        audit_event(base + day - 1, "r3", 1),
        audit_event(base + day + 5, "r4", 1),
        audit_event(base + 2 * day + 1, "r5", 1),
    ];
    // Out of order on purpose: the stream is ordered by cursor, not by arrival.
    for i in [2, 0, 5, 1, 4, 3] {
        s.append_audit(&events[i]).await.expect("append_audit");
    }
    let from = format!("{:010}", base);
    let cursors = |list: Vec<AuditEvent>| list.into_iter().map(|e| e.cursor).collect::<Vec<_>>();
    let all: Vec<String> = events.iter().map(|e| e.cursor.clone()).collect();
    let got = s.audit_events(&from, 100, base + 3 * day).await.unwrap();
    assert_eq!(got[0], events[0], "events round-trip");
    assert_eq!(cursors(got), all, "every event, oldest first, across days");
    assert_eq!(cursors(s.audit_events(&from, 2, base + 3 * day).await.unwrap()), all[..2], "a page");
    assert_eq!(
        cursors(s.audit_events(&all[1], 3, base + 3 * day).await.unwrap()),
        all[2..5],
        "the next page starts after the cursor, into the next day"
    );
    assert_eq!(
        cursors(s.audit_events(&format!("{:010}", base + day), 100, base + 3 * day).await.unwrap()),
        all[4..],
        "from a time"
    );
    assert_eq!(cursors(s.audit_events(&all[5], 100, base + 3 * day).await.unwrap()), Vec::<String>::new(), "the end");
}

/// An authorization code with hash `hash`, valid until `expires_at`.
pub fn code(hash: &str, expires_at: u64) -> AuthCode {
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
    // Ids depend on n, so the test can run at several sizes against one store.
    let sid = format!("t-race-{n}");
    let presented = format!("race-{n}-0");
    let setup = factory();
    pollster::block_on(setup.create_session(&token_session(&sid, "u4", None, &presented))).unwrap();
    let barrier = Barrier::new(n);
    let outcomes: Vec<(String, Result<RefreshOutcome, StoreError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let store = factory();
                let barrier = &barrier;
                let (sid, presented) = (&sid, &presented);
                scope.spawn(move || {
                    let successor = format!("race-{n}-succ-{i}");
                    barrier.wait();
                    let out = pollster::block_on(refresh(&store, sid, presented, &successor, true, NOW + 20));
                    (successor, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("refresh thread panicked")).collect()
    });
    let session = pollster::block_on(setup.session(&sid)).unwrap().unwrap();
    check_concurrent_refresh(n, &presented, &outcomes, session);
}

/// The expectations of an `n`-way refresh race on one token: exactly one rotation, the
/// rest retries, one live successor, and one swap per refresh.
fn check_concurrent_refresh(
    n: usize,
    presented: &str,
    outcomes: &[(String, Result<RefreshOutcome, StoreError>)],
    session: Session,
) {
    // Failures first, counted: a refresh that gives up (too many lost swaps, a busy
    // backend) is reported with how many of the n calls did.
    let failed: Vec<_> = outcomes.iter().filter(|(_, out)| out.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{n}-way concurrent refresh: {} of {n} calls failed; first: {:?}",
        failed.len(),
        failed.first().map(|(s, out)| (s, out))
    );
    let mut rotated = 0;
    for (succ, out) in outcomes {
        match out {
            Ok(RefreshOutcome::Rotated(_)) => rotated += 1,
            Ok(RefreshOutcome::Retried(_)) => {}
            other => panic!("{n}-way concurrent refresh {succ}: unexpected outcome {other:?}"),
        }
    }
    assert_eq!(rotated, 1, "{n}-way: exactly one refresh rotates; the rest are retries");
    assert!(session.revoked_at.is_none(), "{n}-way: the session survives concurrent refreshes");
    let state = session.refresh.unwrap();
    let live: Vec<_> = outcomes.iter().filter(|(succ, _)| *succ == state.current).collect();
    assert_eq!(live.len(), 1, "{n}-way: exactly one live successor");
    assert_eq!(state.previous.as_deref(), Some(presented), "{n}-way: the presented token stays the previous one");
    assert_eq!(session.version, n as u64, "{n}-way: every refresh applied exactly one swap");
}

fn concurrent_code_redemption<S, F>(factory: &F, n: usize)
where
    S: Store + Send + 'static,
    F: Fn() -> S + Sync,
{
    let hash = format!("code-race-{n}");
    let setup = factory();
    pollster::block_on(setup.put_code(&code(&hash, NOW + 300))).unwrap();
    let barrier = Barrier::new(n);
    let results: Vec<Redemption> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let store = factory();
                let barrier = &barrier;
                let hash = &hash;
                scope.spawn(move || {
                    barrier.wait();
                    pollster::block_on(store.redeem_code(hash, &format!("sess-{n}-{i}"), NOW)).expect("redeem")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("redeem thread panicked")).collect()
    });
    let late = pollster::block_on(setup.redeem_code(&hash, "sess-late", NOW)).unwrap();
    check_code_race(n, &results, late);
}

/// The expectations of an `n`-way race to redeem one code; `late` is a redemption after it.
fn check_code_race(n: usize, results: &[Redemption], late: Redemption) {
    let winners: Vec<usize> = (0..n).filter(|i| matches!(results[*i], Redemption::Redeemed(_))).collect();
    assert_eq!(winners.len(), 1, "{n}-way: exactly one redemption wins");
    let winner = format!("sess-{n}-{}", winners[0]);
    for (i, r) in results.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(
                r,
                &Redemption::Replayed { session_id: winner.clone() },
                "{n}-way: every other redemption is a replay naming the winner's session"
            );
        }
    }
    assert_eq!(late, Redemption::Replayed { session_id: winner }, "{n}-way: the code stays bound to the winner");
}

/// A store that passes every call through to `S`, paced. [`Paced::yielding`] yields to
/// the executor once before each call, as a call over the network would, so that the
/// single-threaded suite's races interleave on a store whose calls never wait. The
/// suite's own slow-swap form pauses before each compare-and-swap, so that in a race a
/// revocation reliably lands between a refresh's read and its swap (which must then
/// lose). Refreshes run the port's compare-and-swap procedure over the wrapper, so the
/// pacing applies between their read and their swap.
pub struct Paced<S>(S, Pace);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    YieldEachCall,
    PauseSwaps,
}

impl<S> Paced<S> {
    /// `inner`, yielding once before each call.
    pub fn yielding(inner: S) -> Self {
        Paced(inner, Pace::YieldEachCall)
    }

    fn slow_swap(inner: S) -> Self {
        Paced(inner, Pace::PauseSwaps)
    }

    async fn pace(&self) {
        if self.1 == Pace::YieldEachCall {
            yield_now().await;
        }
    }
}

/// Returns `Pending` once (waking itself at once), then `Ready`: one turn of the
/// executor, as a call over the network gives other tasks.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

impl<S: Store> Store for Paced<S> {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.pace().await;
        self.0.create_user(user).await
    }
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.pace().await;
        self.0.user_by_id(id).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.pace().await;
        self.0.user_by_username(username).await
    }
    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: bool,
        reason: Option<&str>,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        self.pace().await;
        self.0.set_user_disabled(id, disabled, reason, now).await
    }
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.pace().await;
        self.0.append_audit(event).await
    }
    async fn audit_events(&self, after: &str, limit: usize, now: UnixSeconds) -> Result<Vec<AuditEvent>, StoreError> {
        self.pace().await;
        self.0.audit_events(after, limit, now).await
    }
    async fn key_ring(&self) -> Result<Option<(String, u64)>, StoreError> {
        self.pace().await;
        self.0.key_ring().await
    }
    async fn swap_key_ring(&self, document: &str, expected_version: u64) -> Result<bool, StoreError> {
        self.pace().await;
        self.0.swap_key_ring(document, expected_version).await
    }
    async fn replace_password_hash(&self, id: &str, current: &str, next: &str) -> Result<bool, StoreError> {
        self.pace().await;
        self.0.replace_password_hash(id, current, next).await
    }
    async fn list_users(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, StoreError> {
        self.pace().await;
        self.0.list_users(prefix, after, limit).await
    }
    async fn delete_user(&self, id: &str, now: UnixSeconds) -> Result<bool, StoreError> {
        self.pace().await;
        self.0.delete_user(id, now).await
    }
    async fn user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<Vec<Session>, StoreError> {
        self.pace().await;
        self.0.user_sessions(user_id, now).await
    }
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.pace().await;
        self.0.create_session(session).await
    }
    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.pace().await;
        self.0.session(id).await
    }
    async fn swap_session(&self, next: &Session, expected_version: u64) -> Result<bool, StoreError> {
        if self.1 == Pace::PauseSwaps {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        self.pace().await;
        self.0.swap_session(next, expected_version).await
    }
    async fn touch_session(&self, id: &str, at: UnixSeconds) -> Result<(), StoreError> {
        self.pace().await;
        self.0.touch_session(id, at).await
    }
    async fn revoke_session(&self, id: &str, now: UnixSeconds) -> Result<(), StoreError> {
        self.pace().await;
        self.0.revoke_session(id, now).await
    }
    async fn revoke_user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<u64, StoreError> {
        self.pace().await;
        self.0.revoke_user_sessions(user_id, now).await
    }
    async fn put_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        self.pace().await;
        self.0.put_code(code).await
    }
    async fn redeem_code(&self, hash: &str, session_id: &str, now: UnixSeconds) -> Result<Redemption, StoreError> {
        self.pace().await;
        self.0.redeem_code(hash, session_id, now).await
    }
    async fn bump_counter(&self, key: &str, now: UnixSeconds, ttl: u64) -> Result<Counter, StoreError> {
        self.pace().await;
        self.0.bump_counter(key, now, ttl).await
    }
    async fn counter(&self, key: &str, now: UnixSeconds) -> Result<Option<Counter>, StoreError> {
        self.pace().await;
        self.0.counter(key, now).await
    }
    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        self.pace().await;
        self.0.reset_counter(key).await
    }
}

/// What one refresher thread of a revocation race saw.
struct RaceLog {
    /// Successful refreshes (rotated, retried).
    succeeded: usize,
    /// Refreshes that answered `Unavailable` (a busy backend: allowed, never a success).
    unavailable: usize,
    /// Outcomes of the refreshes that started after the revocation had returned.
    after_revoke: Vec<Result<RefreshOutcome, StoreError>>,
    /// Anything no refresh of a live-then-revoked session may answer.
    unexpected: Vec<String>,
}

/// How the revoker of a revocation race fared.
struct RevokeLog {
    /// The final result: `Ok` once a revocation succeeded.
    result: Result<(), StoreError>,
    /// Attempts answered `Unavailable` before that (a busy backend), retried as a client
    /// retries a 503.
    unavailable: usize,
}

/// How many refreshes each thread makes after it has seen the revocation return.
const AFTER_REVOKE_ATTEMPTS: usize = 3;

/// How often the revoker retries a revocation answered `Unavailable` (each answer can
/// take a backend's whole busy timeout).
const MAX_REVOKE_RETRIES: usize = 5;

/// Runs `n` refresher threads (`step(thread, attempt)` makes one refresh and returns its
/// outcome) against one revoker thread, which revokes `sid` once `min_successes`
/// refreshes succeeded. Returns the revoker's result and every refresher's log.
fn revocation_race<S, F, R>(
    factory: &F,
    n: usize,
    sid: &str,
    min_successes: usize,
    step: R,
) -> (RevokeLog, Vec<RaceLog>)
where
    S: Store + Send + 'static,
    F: Fn() -> S + Sync,
    R: Fn(&Paced<S>, usize, usize) -> Result<RefreshOutcome, StoreError> + Sync,
{
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let successes = AtomicUsize::new(0);
    let revoked = AtomicBool::new(false);
    let barrier = Barrier::new(n + 1);
    std::thread::scope(|scope| {
        let refreshers: Vec<_> = (0..n)
            .map(|t| {
                let store = Paced::slow_swap(factory());
                let (successes, revoked, barrier, step) = (&successes, &revoked, &barrier, &step);
                scope.spawn(move || {
                    let mut log =
                        RaceLog { succeeded: 0, unavailable: 0, after_revoke: Vec::new(), unexpected: Vec::new() };
                    barrier.wait();
                    for attempt in 0.. {
                        // Read before the refresh starts: if set, the revocation has
                        // already returned, so this refresh must fail.
                        let started_after_revoke = revoked.load(SeqCst);
                        let out = step(&store, t, attempt);
                        match &out {
                            Ok(RefreshOutcome::Rotated(_) | RefreshOutcome::Retried(_)) => {
                                log.succeeded += 1;
                                successes.fetch_add(1, SeqCst);
                            }
                            Ok(RefreshOutcome::Invalid) => {}
                            Err(StoreError::Unavailable(_)) => log.unavailable += 1,
                            other => log.unexpected.push(format!("thread {t} attempt {attempt}: {other:?}")),
                        }
                        if started_after_revoke {
                            log.after_revoke.push(out);
                            if log.after_revoke.len() >= AFTER_REVOKE_ATTEMPTS {
                                break;
                            }
                        }
                        // A short pause, as real clients make: without it, writers on
                        // separate connections can starve the revoker past the backend's
                        // busy timeout (SQLite's busy handler polls; it does not queue).
                        std::thread::sleep(std::time::Duration::from_micros(300));
                    }
                    log
                })
            })
            .collect();
        let revoker = {
            let store = factory();
            let (successes, revoked, barrier) = (&successes, &revoked, &barrier);
            scope.spawn(move || {
                barrier.wait();
                // Wait (20 s at most: the suite reads no clock) for some refreshes first.
                for _ in 0..20_000 {
                    if successes.load(SeqCst) >= min_successes {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let mut log = RevokeLog { result: Ok(()), unavailable: 0 };
                loop {
                    log.result = pollster::block_on(store.revoke_session(sid, NOW + 31));
                    match &log.result {
                        Err(StoreError::Unavailable(_)) if log.unavailable < MAX_REVOKE_RETRIES => log.unavailable += 1,
                        _ => break,
                    }
                }
                // Set even if the revocation failed, so the refreshers stop.
                revoked.store(true, SeqCst);
                log
            })
        };
        let revoke = revoker.join().expect("revoker thread panicked");
        let logs = refreshers.into_iter().map(|h| h.join().expect("refresher thread panicked")).collect();
        (revoke, logs)
    })
}

/// Checks a finished revocation race: the revocation succeeded, refreshes succeeded
/// before it, none after it, and the stored session is revoked for good.
async fn check_revocation_race<S: Store>(
    what: &str,
    store: &S,
    sid: &str,
    presented_after: &[&str],
    revoke: RevokeLog,
    logs: &[RaceLog],
) {
    let unavailable: usize = logs.iter().map(|l| l.unavailable).sum();
    if let Err(e) = &revoke.result {
        panic!(
            "{what}: the revocation failed after {} busy retries (refreshes answered Unavailable {unavailable} times): {e:?}",
            revoke.unavailable
        );
    }
    let unexpected: Vec<&String> = logs.iter().flat_map(|l| &l.unexpected).collect();
    assert!(unexpected.is_empty(), "{what}: unexpected outcomes: {unexpected:?}");
    let succeeded: usize = logs.iter().map(|l| l.succeeded).sum();
    assert!(succeeded > 0, "{what}: no refresh succeeded before the revocation, so nothing raced");
    for (t, log) in logs.iter().enumerate() {
        assert_eq!(log.after_revoke.len(), AFTER_REVOKE_ATTEMPTS, "{what}: thread {t} saw the revocation");
        for out in &log.after_revoke {
            assert_eq!(
                out,
                &Ok(RefreshOutcome::Invalid),
                "{what}: thread {t}: a refresh started after the revocation returned must fail"
            );
        }
    }
    for token in presented_after {
        let out = refresh(store, sid, token, "after-join", true, NOW + 40).await.unwrap();
        assert_eq!(out, RefreshOutcome::Invalid, "{what}: {token} refreshes nothing after the race");
    }
    let stored = store.session(sid).await.unwrap().expect("the session still exists");
    assert_eq!(stored.revoked_at, Some(NOW + 31), "{what}: the session stays revoked");
    assert!(
        !store.swap_session(&stored, stored.version).await.unwrap(),
        "{what}: a revoked session cannot be swapped back to life"
    );
}

/// `n` threads refresh one token chain, one at a time (each presents the chain's current
/// token, as tabs sharing one token store would), while another thread revokes the
/// session. The revocation lands between any refresh's read and its swap.
fn revoke_racing_chained_refresh<S, F>(factory: &F, n: usize, rounds: usize)
where
    S: Store + Send + 'static,
    F: Fn() -> S + Sync,
{
    for round in 0..rounds {
        let sid = &format!("t-revoke-chain-{round}");
        let setup = factory();
        pollster::block_on(setup.create_session(&token_session(sid, "u5", None, "chain-0"))).unwrap();
        // The chain's current token and a counter for unique successors. The lock is held
        // across each refresh, so refreshes form one chain; the revoker never takes it.
        let chain = std::sync::Mutex::new(("chain-0".to_owned(), 0usize));
        // The revocation lands at a different point of the chain in every round.
        let (revoke, logs) = revocation_race(factory, n, sid, 2 * n + 3 * round, |store, _, _| {
            let mut chain = chain.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            chain.1 += 1;
            let successor = format!("chain-{}", chain.1);
            let out = pollster::block_on(refresh(store, sid, &chain.0, &successor, true, NOW + 30));
            if matches!(out, Ok(RefreshOutcome::Rotated(_))) {
                chain.0 = successor;
            }
            out
        });
        let last = chain.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).0;
        let what = format!("chained refresh vs revoke, round {round}");
        pollster::block_on(check_revocation_race(&what, &setup, sid, &[&last, "chain-0"], revoke, &logs));
    }
}

/// `n` threads refresh the same token over and over (the first rotates, every later one
/// is a retry of the previous token) while another thread revokes the session.
fn revoke_racing_same_token_refresh<S, F>(factory: &F, n: usize, rounds: usize)
where
    S: Store + Send + 'static,
    F: Fn() -> S + Sync,
{
    for round in 0..rounds {
        let sid = &format!("t-revoke-same-{round}");
        let setup = factory();
        pollster::block_on(setup.create_session(&token_session(sid, "u5", None, "same-0"))).unwrap();
        let (revoke, logs) = revocation_race(factory, n, sid, n + 3 * round, |store, t, attempt| {
            pollster::block_on(refresh(store, sid, "same-0", &format!("same-{t}-{attempt}"), true, NOW + 30))
        });
        let current = pollster::block_on(setup.session(sid)).unwrap().unwrap().refresh.unwrap().current;
        let what = format!("same-token refresh vs revoke, round {round}");
        pollster::block_on(check_revocation_race(&what, &setup, sid, &["same-0", &current], revoke, &logs));
    }
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
