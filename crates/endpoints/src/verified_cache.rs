//! A bounded cache of verified access tokens, so a token presented again is not
//! verified again (signature verification is the resolver's main cost).
//!
//! Only the signature and claim checks are cached. Expiry is re-checked against the
//! clock on every hit, and the session named by `sid` is read from the store on every
//! request, so a cached token never hides a revocation. Keys are SHA-256 of the token,
//! so the cache holds no credential. One cache per `App` (per worker thread), no locks.

use std::cell::RefCell;
use std::collections::HashMap;

use latchkey_token::UnixSeconds;
use latchkey_token::jwt::{AccessClaims, Verified};
use latchkey_token::secret::sha256_hex;

/// Most tokens kept per worker. At about 1 KiB each, 10,000 entries bound the cache
/// near 10 MiB.
pub const CAPACITY: usize = 10_000;

/// Verified tokens by hash.
#[derive(Default)]
pub struct VerifiedCache {
    entries: RefCell<HashMap<String, Verified<AccessClaims>>>,
}

impl VerifiedCache {
    /// The cache key of `token`.
    pub fn key(token: &str) -> String {
        sha256_hex(token)
    }

    /// A cached verification, if present and not expired at `now` (with `tolerance`).
    pub fn get(&self, key: &str, now: UnixSeconds, tolerance: u64) -> Option<Verified<AccessClaims>> {
        let mut entries = self.entries.borrow_mut();
        let hit = entries.get(key)?;
        if now > hit.expires_at.saturating_add(tolerance) {
            entries.remove(key);
            return None;
        }
        Some(hit.clone())
    }

    /// Remembers a verification. When full, expired entries are dropped first, and if
    /// that is not enough, everything (a cache miss costs one verification, nothing more).
    pub fn insert(&self, key: String, verified: Verified<AccessClaims>, now: UnixSeconds, tolerance: u64) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= CAPACITY {
            entries.retain(|_, v| now <= v.expires_at.saturating_add(tolerance));
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, verified);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(exp: u64) -> Verified<AccessClaims> {
        Verified {
            subject: "u".into(),
            expires_at: exp,
            issued_at: None,
            jwt_id: None,
            audiences: vec![],
            nonce: None,
            claims: AccessClaims::default(),
            kid: "k".into(),
        }
    }

    #[test]
    fn hits_until_expiry_and_stays_bounded() {
        let cache = VerifiedCache::default();
        cache.insert(VerifiedCache::key("t"), verified(100), 0, 10);
        assert!(cache.get(&VerifiedCache::key("t"), 110, 10).is_some(), "within tolerance");
        assert!(cache.get(&VerifiedCache::key("t"), 111, 10).is_none(), "expired");
        assert!(cache.get(&VerifiedCache::key("t"), 0, 10).is_none(), "expired entries are dropped");
        for i in 0..CAPACITY + 5 {
            cache.insert(VerifiedCache::key(&i.to_string()), verified(1000), 0, 0);
        }
        assert!(cache.entries.borrow().len() <= CAPACITY);
    }
}
