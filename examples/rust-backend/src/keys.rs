//! The issuer's public signing keys, cached, with a bounded refetch.
//!
//! Tokens name their key with `kid`. A `kid` we do not know may mean that the issuer
//! started signing with a new key, so we fetch the JWKS again — but at most once per
//! [`CachePolicy::refetch_cooldown`]. The `kid` comes from an unauthenticated token
//! header: without the cooldown anyone could make this service send one JWKS request to
//! the issuer per bogus token. Concurrent lookups that miss share one fetch, and a failed
//! fetch counts against the cooldown just like a successful one.
//!
//! Keys older than [`CachePolicy::max_age`] are fetched again on the next lookup, so a
//! key the issuer stopped publishing stops being trusted here too. If that fetch fails,
//! the old keys keep working (the issuer being down must not log everybody out).
//!
//! The algorithm of a key is taken from the key's own `alg` member, never from the
//! token: a token cannot choose how it is checked. Keys without `kid` or `alg`, and
//! algorithms other than RS256, ES256 and EdDSA, are ignored.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jwt_simple::prelude::{ES256PublicKey, Ed25519PublicKey, RS256PublicKey};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

/// How often the JWKS may be fetched.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    /// Minimum time between two JWKS requests, whatever triggers them.
    pub refetch_cooldown: Duration,
    /// Keys fetched longer ago than this are fetched again before use.
    pub max_age: Duration,
    /// One JWKS request (connect, headers and body) may take this long.
    pub fetch_timeout: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            refetch_cooldown: Duration::from_secs(30),
            max_age: Duration::from_secs(300),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// Where the JWKS document comes from. The real one is an HTTP GET of the issuer's
/// `jwks_uri` ([`crate::issuer::HttpJwks`]); tests use a fake.
pub trait JwksSource: Send + Sync + 'static {
    /// The body of the JWKS document, or why it could not be fetched.
    fn fetch(&self) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// A public key and the one algorithm it verifies.
#[expect(clippy::large_enum_variant, reason = "one per published key, always behind an Arc")]
pub enum VerifyingKey {
    Rs256(RS256PublicKey),
    Es256(ES256PublicKey),
    EdDsa(Ed25519PublicKey),
}

/// The usable keys of one JWKS document, by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
}

impl KeySet {
    /// Parse a JWKS document. Fails only if it is not `{"keys": [...]}`; single keys
    /// that cannot be used are skipped (and logged).
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct Document<'a> {
            #[serde(borrow)]
            keys: Vec<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Meta {
            kid: Option<String>,
            alg: Option<String>,
        }
        let doc: Document<'_> = serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = HashMap::new();
        for raw in doc.keys {
            let Ok(Meta { kid: Some(kid), alg: Some(alg) }) = serde_json::from_str(raw.get()) else {
                tracing::debug!("jwks: skipping a key without kid or alg");
                continue;
            };
            // jwt-simple checks the rest (kty, crv, use, key_ops, key size, duplicate
            // members) against the type we ask for.
            let key = match alg.as_str() {
                "RS256" => RS256PublicKey::from_jwk(raw.get()).map(VerifyingKey::Rs256),
                "ES256" => ES256PublicKey::from_jwk(raw.get()).map(VerifyingKey::Es256),
                "EdDSA" => Ed25519PublicKey::from_jwk(raw.get()).map(VerifyingKey::EdDsa),
                _ => {
                    tracing::debug!(%kid, %alg, "jwks: skipping a key with an unsupported alg");
                    continue;
                }
            };
            match key {
                Ok(key) if !keys.contains_key(&kid) => {
                    keys.insert(kid, Arc::new(key));
                }
                Ok(_) => tracing::warn!(%kid, "jwks: duplicate kid, keeping the first key"),
                Err(e) => tracing::warn!(%kid, %alg, error = %e, "jwks: skipping an invalid key"),
            }
        }
        Ok(KeySet { keys })
    }

    pub fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.get(kid).cloned()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why no key was found for a `kid`.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The issuer does not publish this `kid` (as of the last successful fetch): the
    /// token is invalid.
    UnknownKid,
    /// The `kid` is unknown and the last JWKS fetch failed: we cannot tell.
    Unavailable,
}

struct State {
    keys: Arc<KeySet>,
    /// Last successful fetch.
    fetched_at: Option<Instant>,
    /// Last fetch started, successful or not: the cooldown counts from here.
    attempted_at: Option<Instant>,
    last_attempt_failed: bool,
}

/// The JWKS cache. Share one per process (it lives in the application state).
pub struct KeyCache<S> {
    source: S,
    policy: CachePolicy,
    state: RwLock<State>,
    /// Held while deciding on and running a fetch, so that concurrent misses share one.
    fetching: tokio::sync::Mutex<()>,
}

impl<S: JwksSource> KeyCache<S> {
    /// An empty cache. Call [`KeyCache::load`] at start-up, or let the first lookup fetch.
    pub fn new(source: S, policy: CachePolicy) -> Self {
        KeyCache {
            source,
            policy,
            state: RwLock::new(State {
                keys: Arc::new(KeySet::default()),
                fetched_at: None,
                attempted_at: None,
                last_attempt_failed: false,
            }),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Fetch the keys now (at start-up). Returns how many usable keys the issuer
    /// publishes. Counts against the cooldown like any other fetch.
    pub async fn load(&self) -> Result<usize, String> {
        let _fetching = self.fetching.lock().await;
        self.fetch("startup").await
    }

    /// The key for `kid`, fetching the JWKS again if the `kid` is unknown or the keys are
    /// older than `max_age` — unless the last fetch started less than `refetch_cooldown`
    /// ago.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, KeyError> {
        // The common case: a known key, no lock held across an await.
        if let Some(key) = self.fresh_key(kid, Instant::now()) {
            return Ok(key);
        }
        let _fetching = self.fetching.lock().await;
        let now = Instant::now();
        // Another task may have fetched while we waited for the lock.
        if let Some(key) = self.fresh_key(kid, now) {
            return Ok(key);
        }
        let (stale, may_fetch) = {
            let state = self.read();
            let stale = !is_fresh(&state, now, self.policy.max_age);
            let may_fetch = state.attempted_at.is_none_or(|at| now.duration_since(at) >= self.policy.refetch_cooldown);
            (stale, may_fetch)
        };
        if may_fetch {
            // The outcome is in the state; a failure was logged.
            let _ = self.fetch(if stale { "max_age" } else { "unknown_kid" }).await;
        }
        let state = self.read();
        match state.keys.get(kid) {
            Some(key) => Ok(key),
            None if state.last_attempt_failed => Err(KeyError::Unavailable),
            None => Err(KeyError::UnknownKid),
        }
    }

    fn fresh_key(&self, kid: &str, now: Instant) -> Option<Arc<VerifyingKey>> {
        let state = self.read();
        if is_fresh(&state, now, self.policy.max_age) { state.keys.get(kid) } else { None }
    }

    /// Must be called with `self.fetching` held.
    async fn fetch(&self, reason: &'static str) -> Result<usize, String> {
        self.write().attempted_at = Some(Instant::now());
        let result = match tokio::time::timeout(self.policy.fetch_timeout, self.source.fetch()).await {
            Ok(Ok(body)) => KeySet::parse(&body),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {:?}", self.policy.fetch_timeout)),
        };
        let mut state = self.write();
        match result {
            Ok(keys) => {
                let count = keys.len();
                state.keys = Arc::new(keys);
                state.fetched_at = Some(Instant::now());
                state.last_attempt_failed = false;
                if reason == "startup" {
                    tracing::info!(keys = count, "jwks loaded");
                } else {
                    tracing::info!(reason, keys = count, "jwks refetched");
                }
                Ok(count)
            }
            Err(e) => {
                state.last_attempt_failed = true;
                tracing::warn!(reason, error = %e, "jwks fetch failed");
                Err(e)
            }
        }
    }

    // No code panics while holding the lock, so a poisoned lock still holds a
    // consistent state.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn is_fresh(state: &State, now: Instant, max_age: Duration) -> bool {
    state.fetched_at.is_some_and(|at| now.duration_since(at) < max_age)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use jwt_simple::prelude::{ES256KeyPair, Ed25519KeyPair};
    use tokio::time::advance;

    use super::*;

    /// A JWKS endpoint in memory that counts its requests.
    pub(crate) struct FakeJwks {
        pub(crate) body: Mutex<Result<String, String>>,
        pub(crate) delay: Mutex<Duration>,
        pub(crate) calls: AtomicUsize,
    }

    impl FakeJwks {
        pub(crate) fn new(jwks: &str) -> Arc<Self> {
            Arc::new(FakeJwks {
                body: Mutex::new(Ok(jwks.to_string())),
                delay: Mutex::new(Duration::ZERO),
                calls: AtomicUsize::new(0),
            })
        }
        pub(crate) fn serve(&self, jwks: &str) {
            *self.body.lock().unwrap() = Ok(jwks.to_string());
        }
        fn fail(&self) {
            *self.body.lock().unwrap() = Err("connection refused".to_string());
        }
        pub(crate) fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl JwksSource for Arc<FakeJwks> {
        async fn fetch(&self) -> Result<Vec<u8>, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let delay = *self.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.body.lock().unwrap().clone().map(String::into_bytes)
        }
    }

    pub(crate) fn jwks(keys: &[String]) -> String {
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    pub(crate) fn es256_jwk(kid: &str) -> String {
        ES256KeyPair::generate().with_key_id(kid).public_key().to_jwk()
    }

    fn eddsa_jwk(kid: &str) -> String {
        Ed25519KeyPair::generate().with_key_id(kid).public_key().to_jwk()
    }

    const POLICY: CachePolicy = CachePolicy {
        refetch_cooldown: Duration::from_secs(30),
        max_age: Duration::from_secs(300),
        fetch_timeout: Duration::from_secs(5),
    };

    async fn loaded(fake: &Arc<FakeJwks>) -> KeyCache<Arc<FakeJwks>> {
        let cache = KeyCache::new(fake.clone(), POLICY);
        cache.load().await.expect("load");
        assert_eq!(fake.calls(), 1);
        cache
    }

    #[tokio::test(start_paused = true)]
    async fn known_kids_are_served_from_the_cache() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("a"), eddsa_jwk("b")]));
        let cache = loaded(&fake).await;
        for _ in 0..100 {
            assert!(matches!(*cache.key("a").await.unwrap(), VerifyingKey::Es256(_)));
            assert!(matches!(*cache.key("b").await.unwrap(), VerifyingKey::EdDsa(_)));
        }
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_kids_refetch_at_most_once_per_cooldown() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("a")]));
        let cache = loaded(&fake).await;

        // Right after the start-up fetch: no refetch, the kid is simply unknown.
        assert_eq!(cache.key("bogus-0").await.err(), Some(KeyError::UnknownKid));
        assert_eq!(fake.calls(), 1);

        advance(POLICY.refetch_cooldown).await;
        for i in 0..1000 {
            assert_eq!(cache.key(&format!("bogus-{i}")).await.err(), Some(KeyError::UnknownKid));
        }
        assert_eq!(fake.calls(), 2, "a flood of bogus kids costs one JWKS request");

        advance(POLICY.refetch_cooldown - Duration::from_secs(1)).await;
        assert_eq!(cache.key("bogus-x").await.err(), Some(KeyError::UnknownKid));
        assert_eq!(fake.calls(), 2, "still within the cooldown");

        advance(Duration::from_secs(1)).await;
        assert_eq!(cache.key("bogus-y").await.err(), Some(KeyError::UnknownKid));
        assert_eq!(fake.calls(), 3, "the cooldown is over");

        // Known keys are never held up by the misses.
        assert!(cache.key("a").await.is_ok());
        assert_eq!(fake.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_kid_finds_a_newly_published_key() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("old")]));
        let cache = loaded(&fake).await;
        fake.serve(&jwks(&[es256_jwk("old"), eddsa_jwk("new")]));
        advance(POLICY.refetch_cooldown).await;
        assert!(matches!(*cache.key("new").await.unwrap(), VerifyingKey::EdDsa(_)));
        assert_eq!(fake.calls(), 2);
        assert!(cache.key("old").await.is_ok());
        assert!(cache.key("new").await.is_ok());
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_share_one_fetch() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("a")]));
        let cache = Arc::new(loaded(&fake).await);
        *fake.delay.lock().unwrap() = Duration::from_secs(2);
        fake.serve(&jwks(&[es256_jwk("a"), es256_jwk("b")]));
        advance(POLICY.refetch_cooldown).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let cache = cache.clone();
            tasks.spawn(async move {
                let kid = if i % 2 == 0 { "b".to_string() } else { format!("bogus-{i}") };
                (i, cache.key(&kid).await.is_ok())
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (i, ok) = r.unwrap();
            assert_eq!(ok, i % 2 == 0, "task {i}");
        }
        assert_eq!(fake.calls(), 2, "50 concurrent misses, one fetch");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_answers_unavailable_and_still_counts_against_the_cooldown() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("a")]));
        let cache = loaded(&fake).await;
        fake.fail();
        advance(POLICY.refetch_cooldown).await;
        for _ in 0..100 {
            assert_eq!(cache.key("new").await.err(), Some(KeyError::Unavailable));
        }
        assert_eq!(fake.calls(), 2, "an issuer outage is not hammered either");
        assert!(cache.key("a").await.is_ok(), "known keys keep working");

        fake.serve(&jwks(&[es256_jwk("a"), es256_jwk("new")]));
        advance(POLICY.refetch_cooldown).await;
        assert!(cache.key("new").await.is_ok());
        assert_eq!(fake.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_issuer_times_out() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("a")]));
        *fake.delay.lock().unwrap() = Duration::from_secs(3600);
        let cache = KeyCache::new(fake.clone(), POLICY);
        let started = Instant::now();
        assert_eq!(cache.key("a").await.err(), Some(KeyError::Unavailable));
        assert_eq!(started.elapsed(), POLICY.fetch_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn old_keys_are_refetched_and_removed_keys_stop_working() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("a"), es256_jwk("retired")]));
        let cache = loaded(&fake).await;
        fake.serve(&jwks(&[es256_jwk("a")]));
        advance(POLICY.max_age).await;
        assert_eq!(cache.key("retired").await.err(), Some(KeyError::UnknownKid));
        assert_eq!(fake.calls(), 2);
        assert!(cache.key("a").await.is_ok());
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn old_keys_keep_working_while_the_issuer_is_down() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("a")]));
        let cache = loaded(&fake).await;
        fake.fail();
        advance(POLICY.max_age).await;
        assert!(cache.key("a").await.is_ok());
        assert!(cache.key("a").await.is_ok());
        assert_eq!(fake.calls(), 2, "one attempt, then the cooldown");
        advance(POLICY.refetch_cooldown).await;
        assert!(cache.key("a").await.is_ok());
        assert_eq!(fake.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_start_up_fetch_is_retried_after_the_cooldown() {
        let fake = FakeJwks::new(&jwks(&[es256_jwk("a")]));
        fake.fail();
        let cache = KeyCache::new(fake.clone(), POLICY);
        assert!(cache.load().await.is_err());
        assert_eq!(cache.key("a").await.err(), Some(KeyError::Unavailable));
        assert_eq!(fake.calls(), 1);
        fake.serve(&jwks(&[es256_jwk("a")]));
        advance(POLICY.refetch_cooldown).await;
        assert!(cache.key("a").await.is_ok());
        assert_eq!(fake.calls(), 2);
    }

    #[test]
    fn parse_keeps_usable_keys_only() {
        let set = KeySet::parse(
            jwks(&[
                es256_jwk("es"),
                eddsa_jwk("ed"),
                // no kid
                ES256KeyPair::generate().public_key().to_jwk(),
                // no alg
                r#"{"kty":"EC","kid":"noalg","crv":"P-256","x":"x","y":"y"}"#.to_string(),
                // symmetric keys are never accepted
                r#"{"kty":"oct","kid":"hs","alg":"HS256","k":"c2VjcmV0"}"#.to_string(),
                // alg does not match the key type
                es256_jwk("mismatch").replace("ES256", "EdDSA"),
                // duplicate members
                r#"{"kty":"OKP","kid":"dup","alg":"EdDSA","crv":"Ed25519","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#.to_string(),
            ])
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.get("es").is_some());
        assert!(set.get("ed").is_some());
    }

    #[test]
    fn parse_rejects_what_is_not_a_jwks() {
        assert!(KeySet::parse(b"<html>").is_err());
        assert!(KeySet::parse(br#"{"keys":{}}"#).is_err());
        assert!(KeySet::parse(br#"{"keys":[]}"#).unwrap().is_empty());
    }
}
