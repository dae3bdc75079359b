//! Signing-key rotation: the key ring kept in the store, the schedule that moves keys
//! through it, and each instance's cached view of it.
//!
//! Until the first rotation there is no ring, and the secrets document's keys are the
//! key set (the first signs). The first rotation seeds the ring from them; from then
//! on the ring in the store is the key set, on every instance of every target, and the
//! secrets document's keys only matter again if the ring is deleted.
//!
//! A key's life: **next** (published in the JWKS, signs nothing) → **active** (signs;
//! exactly one) → **retired** (published, signs nothing) → removed. The schedule
//! ([`rotate`]) makes a next key when there is none, promotes it once it has been
//! published for `keys.prepublish_seconds` (so every verifier's cached JWKS has it
//! before the first token it signs), and removes a retired key once no token it signed
//! can still be valid: the longest access-token lifetime of any client, plus the JWT
//! time tolerance, plus `keys.cache_seconds` (an instance with a stale ring may sign
//! with the old key that long after the promotion). ID tokens live 300 s, within that.
//!
//! Each instance re-reads the ring at most every `keys.cache_seconds`, one store read;
//! if the read fails it keeps the keys it has (keys do not revoke anything, so a
//! minute-old key set is still a right answer) and only a first read's failure is a
//! 503.

use std::cell::RefCell;
use std::sync::Arc;

use latchkey_store::{Store, StoreError};
use latchkey_token::UnixSeconds;
use latchkey_token::keys::{Algorithm, KeySet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// The signing key.
    Active,
    /// Published, signing no more.
    Retired,
}

impl KeyState {
    /// The name used in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

/// One key of the ring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingKey {
    /// Its `kid`.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// Where it is in its life.
    pub state: KeyState,
    /// The private JWK (never leaves the store: the admin API shows the rest).
    pub private_jwk: Value,
    /// When it was first published.
    pub published_at: UnixSeconds,
    /// When it started signing.
    #[serde(default)]
    pub activated_at: Option<UnixSeconds>,
    /// When it stopped signing.
    #[serde(default)]
    pub retired_at: Option<UnixSeconds>,
}

/// The ring as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRing {
    /// Every key that is published.
    pub keys: Vec<RingKey>,
}

/// The timing of the schedule, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Published this long before it may sign.
    pub prepublish_seconds: u64,
    /// Published this long after it stopped signing.
    pub retire_after_seconds: u64,
}

/// What one step of the schedule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The ring was made from the secrets document's keys.
    Seeded { keys: usize },
    /// A next key was made and published.
    Added { kid: String },
    /// A next key became the signing key; the old one was retired.
    Promoted { kid: String, retired: Option<String> },
    /// A retired key was removed from the JWKS.
    Removed { kid: String },
}

impl Action {
    /// One line for operators.
    pub fn describe(&self) -> String {
        match self {
            Action::Seeded { keys } => format!("seeded the key ring with the {keys} key(s) of the secrets"),
            Action::Added { kid } => format!("published the next key {kid}"),
            Action::Promoted { kid, retired: Some(old) } => format!("{kid} signs now; {old} is retired"),
            Action::Promoted { kid, retired: None } => format!("{kid} signs now"),
            Action::Removed { kid } => format!("removed the retired key {kid} from the JWKS"),
        }
    }
}

impl KeyRing {
    /// The ring the secrets document's keys make: the first active, the others retired
    /// (they verify and are published, as before; the schedule removes them in time).
    pub fn seeded(private_jwks: &[Value], now: UnixSeconds) -> Result<KeyRing, String> {
        let set = KeySet::from_private_jwks(private_jwks).map_err(|e| e.to_string())?;
        let keys = set
            .keys()
            .iter()
            .zip(private_jwks)
            .enumerate()
            .map(|(i, (key, jwk))| RingKey {
                kid: key.kid().to_owned(),
                alg: key.alg().name().to_owned(),
                state: if i == 0 { KeyState::Active } else { KeyState::Retired },
                private_jwk: jwk.clone(),
                published_at: now,
                activated_at: (i == 0).then_some(now),
                retired_at: (i > 0).then_some(now),
            })
            .collect();
        Ok(KeyRing { keys })
    }

    /// The key set: the active key first (it signs), then the others.
    ///
    /// # Errors
    /// A message if a stored key does not load or no key is active.
    pub fn key_set(&self) -> Result<KeySet, String> {
        let active = self.keys.iter().filter(|k| k.state == KeyState::Active).count();
        if active != 1 {
            return Err(format!("the key ring has {active} active keys; it must have exactly one"));
        }
        let mut ordered: Vec<&RingKey> = self.keys.iter().collect();
        ordered.sort_by_key(|k| k.state != KeyState::Active);
        let jwks: Vec<Value> = ordered.iter().map(|k| k.private_jwk.clone()).collect();
        KeySet::from_private_jwks(&jwks).map_err(|e| e.to_string())
    }

    /// The active key's algorithm.
    pub fn active_alg(&self) -> Option<Algorithm> {
        self.keys.iter().find(|k| k.state == KeyState::Active).and_then(|k| Algorithm::from_name(&k.alg))
    }

    /// When a retired key may be removed.
    pub fn removable_at(key: &RingKey, schedule: Schedule) -> Option<UnixSeconds> {
        key.retired_at.map(|at| at.saturating_add(schedule.retire_after_seconds))
    }

    /// Publishes `key` as the next key. Refused if there is one already.
    pub fn add_next(&mut self, key: RingKey) -> Result<(), String> {
        if let Some(next) = self.keys.iter().find(|k| k.state == KeyState::Next) {
            return Err(format!("{} is the next key already; promote or retire it first", next.kid));
        }
        if self.keys.iter().any(|k| k.kid == key.kid) {
            return Err(format!("a key {} exists", key.kid));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Makes the next key `kid` sign, retiring the active one. Refused before its
    /// pre-publication is over, unless `force`.
    pub fn promote(&mut self, kid: &str, schedule: Schedule, now: UnixSeconds, force: bool) -> Result<Action, String> {
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or_else(|| format!("no key {kid}"))?;
        if key.state != KeyState::Next {
            return Err(format!("{kid} is {}; only the next key can be promoted", key.state.as_str()));
        }
        let ready_at = key.published_at.saturating_add(schedule.prepublish_seconds);
        if now < ready_at && !force {
            return Err(format!(
                "{kid} has been published for {} s of the {} s before it may sign (verifiers may not have it yet); \
                 wait, or force",
                now - key.published_at,
                schedule.prepublish_seconds
            ));
        }
        let mut retired = None;
        for k in &mut self.keys {
            if k.state == KeyState::Active {
                k.state = KeyState::Retired;
                k.retired_at = Some(now);
                retired = Some(k.kid.clone());
            } else if k.kid == kid {
                k.state = KeyState::Active;
                k.activated_at = Some(now);
            }
        }
        Ok(Action::Promoted { kid: kid.to_owned(), retired })
    }

    /// Retires the key `kid`: a next key is dropped (it never signed); the active key
    /// cannot be retired (promote its successor instead).
    pub fn retire(&mut self, kid: &str) -> Result<Action, String> {
        let at = self.keys.iter().position(|k| k.kid == kid).ok_or_else(|| format!("no key {kid}"))?;
        match self.keys[at].state {
            KeyState::Active => Err(format!("{kid} is the signing key; promote a next key to retire it")),
            KeyState::Next => {
                self.keys.remove(at);
                Ok(Action::Removed { kid: kid.to_owned() })
            }
            KeyState::Retired => Err(format!("{kid} is retired already")),
        }
    }

    /// Removes the retired key `kid` from the JWKS: refused while a token it signed may
    /// still be valid, unless `force`.
    pub fn remove(&mut self, kid: &str, schedule: Schedule, now: UnixSeconds, force: bool) -> Result<Action, String> {
        let at = self.keys.iter().position(|k| k.kid == kid).ok_or_else(|| format!("no key {kid}"))?;
        let key = &self.keys[at];
        if key.state != KeyState::Retired {
            return Err(format!("{kid} is {}; only a retired key can be removed", key.state.as_str()));
        }
        let removable = Self::removable_at(key, schedule).unwrap_or(0);
        if now < removable && !force {
            return Err(format!(
                "tokens {kid} signed may be valid for {} s more; wait, or force (they would stop verifying)",
                removable - now
            ));
        }
        self.keys.remove(at);
        Ok(Action::Removed { kid: kid.to_owned() })
    }
}

/// One run of the schedule over `ring` at `now` (see the module docs); `make_key`
/// makes a next key when one is due. Returns what it did, in order.
///
/// # Errors
/// A message if a key cannot be made.
pub fn rotate(
    ring: &mut KeyRing,
    schedule: Schedule,
    now: UnixSeconds,
    make_key: impl FnOnce() -> Result<RingKey, String>,
) -> Result<Vec<Action>, String> {
    let mut actions = Vec::new();
    let removable: Vec<String> = ring
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Retired && KeyRing::removable_at(k, schedule).is_some_and(|at| now >= at))
        .map(|k| k.kid.clone())
        .collect();
    for kid in removable {
        actions.push(ring.remove(&kid, schedule, now, false)?);
    }
    match ring.keys.iter().find(|k| k.state == KeyState::Next) {
        Some(next) if now >= next.published_at.saturating_add(schedule.prepublish_seconds) => {
            let kid = next.kid.clone();
            actions.push(ring.promote(&kid, schedule, now, false)?);
        }
        Some(_) => {}
        None => {
            let key = make_key()?;
            let kid = key.kid.clone();
            ring.add_next(key)?;
            actions.push(Action::Added { kid });
        }
    }
    Ok(actions)
}

/// A new next key of `alg`, published at `now`.
///
/// # Errors
/// A message if the key cannot be made.
pub fn new_next_key(alg: Algorithm, now: UnixSeconds) -> Result<RingKey, String> {
    let jwk = latchkey_token::keys::generate_private_jwk(alg).map_err(|e| e.to_string())?;
    let kid = jwk["kid"].as_str().ok_or("the new key has no kid")?.to_owned();
    Ok(RingKey {
        kid,
        alg: alg.name().to_owned(),
        state: KeyState::Next,
        private_jwk: jwk,
        published_at: now,
        activated_at: None,
        retired_at: None,
    })
}

/// The key set an instance uses, and where it came from.
struct Cached {
    /// When the store was last asked.
    checked_at: UnixSeconds,
    /// The ring's version (0: no ring; the secrets document's keys).
    version: u64,
    keys: Arc<KeySet>,
}

/// Each instance's view of the key set: the secrets document's keys until a ring is
/// stored, then the ring, re-read at most every `cache_seconds`.
pub struct KeySource {
    seed: Arc<KeySet>,
    seed_jwks: Vec<Value>,
    cache_seconds: u64,
    cached: RefCell<Option<Cached>>,
}

impl KeySource {
    /// Starts from the secrets document's key set (and its private JWKs, which seed
    /// the ring at the first rotation; empty where the caller has none).
    pub fn new(seed: Arc<KeySet>, seed_jwks: Vec<Value>, cache_seconds: u64) -> Self {
        KeySource { seed, seed_jwks, cache_seconds, cached: RefCell::new(None) }
    }

    /// The same, with the secrets document's private JWKs.
    pub fn with_seed_jwks(mut self, jwks: Vec<Value>) -> Self {
        self.seed_jwks = jwks;
        self
    }

    /// The secrets document's private JWKs.
    pub fn seed_jwks(&self) -> &[Value] {
        &self.seed_jwks
    }

    /// Forgets the cached set, so the next use reads the store (after this instance
    /// changed the ring itself).
    pub fn invalidate(&self) {
        self.cached.borrow_mut().take();
    }

    /// The current key set.
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot be read and no key set was read before.
    pub async fn current<S: Store>(&self, store: &S, now: UnixSeconds) -> Result<Arc<KeySet>, StoreError> {
        if let Some(c) = self.cached.borrow().as_ref()
            && now < c.checked_at.saturating_add(self.cache_seconds)
        {
            return Ok(c.keys.clone());
        }
        let read = store.key_ring().await;
        // No borrow is held across the await above: another request on this thread
        // may have refreshed the cache meanwhile, which only means it was read twice.
        let mut cached = self.cached.borrow_mut();
        let (version, document) = match read {
            Ok(Some((document, version))) => (version, Some(document)),
            Ok(None) => (0, None),
            Err(e) => {
                return match cached.as_mut() {
                    Some(c) => {
                        tracing::warn!(error = %e, "the key ring could not be read; the keys read before stay in use");
                        c.checked_at = now;
                        Ok(c.keys.clone())
                    }
                    None => Err(e),
                };
            }
        };
        if let Some(c) = cached.as_mut()
            && c.version == version
        {
            c.checked_at = now;
            return Ok(c.keys.clone());
        }
        let keys = match document {
            None => self.seed.clone(),
            Some(text) => {
                let ring: KeyRing = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("the key ring does not parse: {e}")))?;
                Arc::new(ring.key_set().map_err(StoreError::Corrupt)?)
            }
        };
        *cached = Some(Cached { checked_at: now, version, keys: keys.clone() });
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, state: KeyState, published_at: u64) -> RingKey {
        RingKey {
            kid: kid.into(),
            alg: "ES256".into(),
            state,
            private_jwk: Value::Null,
            published_at,
            activated_at: None,
            retired_at: None,
        }
    }

    const SCHEDULE: Schedule = Schedule { prepublish_seconds: 100, retire_after_seconds: 1000 };

    #[test]
    fn the_schedule_adds_then_promotes_then_removes() {
        let mut ring = KeyRing { keys: vec![key("k1", KeyState::Active, 0)] };
        let made = |kid: &'static str| move || Ok(key(kid, KeyState::Next, 10));
        assert_eq!(rotate(&mut ring, SCHEDULE, 10, made("k2")).unwrap(), [Action::Added { kid: "k2".into() }]);
        assert_eq!(rotate(&mut ring, SCHEDULE, 109, made("x")).unwrap(), [], "not before its pre-publication ends");
        assert_eq!(
            rotate(&mut ring, SCHEDULE, 110, made("x")).unwrap(),
            [Action::Promoted { kid: "k2".into(), retired: Some("k1".into()) }]
        );
        let k1 = ring.keys.iter().find(|k| k.kid == "k1").unwrap();
        assert_eq!((k1.state, k1.retired_at), (KeyState::Retired, Some(110)));
        assert_eq!(rotate(&mut ring, SCHEDULE, 111, made("k3")).unwrap(), [Action::Added { kid: "k3".into() }]);
        assert_eq!(
            rotate(&mut ring, SCHEDULE, 1109, made("x")).unwrap(),
            [Action::Promoted { kid: "k3".into(), retired: Some("k2".into()) }]
        );
        assert_eq!(
            rotate(&mut ring, SCHEDULE, 1110, made("k4")).unwrap(),
            [Action::Removed { kid: "k1".into() }, Action::Added { kid: "k4".into() }],
            "k1 goes once no token it signed can be valid"
        );
        assert_eq!(ring.keys.iter().filter(|k| k.state == KeyState::Active).count(), 1);
    }

    #[test]
    fn manual_steps_are_refused_when_unsafe() {
        let mut ring = KeyRing { keys: vec![key("k1", KeyState::Active, 0), key("k2", KeyState::Next, 50)] };
        assert!(ring.promote("k2", SCHEDULE, 60, false).unwrap_err().contains("published for 10 s of the 100 s"));
        assert!(ring.promote("k1", SCHEDULE, 60, false).unwrap_err().contains("only the next key"));
        assert!(ring.retire("k1").unwrap_err().contains("signing key"));
        assert!(ring.add_next(key("k3", KeyState::Next, 60)).unwrap_err().contains("next key already"));
        ring.promote("k2", SCHEDULE, 60, true).unwrap();
        assert!(ring.remove("k1", SCHEDULE, 500, false).unwrap_err().contains("valid for 560 s more"));
        ring.remove("k1", SCHEDULE, 500, true).unwrap();
        assert_eq!(ring.keys.len(), 1);
        ring.add_next(key("k3", KeyState::Next, 600)).unwrap();
        assert_eq!(ring.retire("k3").unwrap(), Action::Removed { kid: "k3".into() }, "a next key is dropped");
    }
}
