//! The in-memory backend: the reference implementation of the port, for tests and for
//! the whole-endpoint fuzz target. State lives behind one mutex, so every method is
//! trivially atomic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use latchkey_token::UnixSeconds;

use crate::{AuditEvent, AuthCode, Counter, MemoryCounters, Redemption, Session, Store, StoreError, User};

#[derive(Default)]
struct State {
    users: HashMap<String, User>,
    sessions: HashMap<String, Session>,
    codes: HashMap<String, (AuthCode, Option<String>)>,
    key_ring: Option<(String, u64)>,
    audit: std::collections::BTreeMap<String, AuditEvent>,
}

/// An in-memory store. Clones share the same state.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    counters: MemoryCounters,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }
}

fn revoke(session: &mut Session, now: UnixSeconds) {
    if session.revoked_at.is_none() {
        session.revoked_at = Some(now);
    }
    session.version += 1;
}

impl Store for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut st = self.lock()?;
        if st.users.contains_key(&user.id) || st.users.values().any(|u| u.username == user.username) {
            return Err(StoreError::Conflict(format!("user {}", user.username)));
        }
        st.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock()?.users.get(id).cloned())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock()?.users.values().find(|u| u.username == username).cloned())
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: bool,
        reason: Option<&str>,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock()?;
        let Some(user) = st.users.get_mut(id) else {
            return Ok(false);
        };
        user.disabled = disabled;
        user.disabled_reason = if disabled { reason.map(str::to_owned) } else { None };
        if disabled {
            for s in st.sessions.values_mut().filter(|s| s.user_id == id) {
                revoke(s, now);
            }
        }
        Ok(true)
    }

    async fn key_ring(&self) -> Result<Option<(String, u64)>, StoreError> {
        Ok(self.lock()?.key_ring.clone())
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.lock()?.audit.insert(event.cursor.clone(), event.clone());
        Ok(())
    }

    async fn audit_events(&self, after: &str, limit: usize, _now: UnixSeconds) -> Result<Vec<AuditEvent>, StoreError> {
        let st = self.lock()?;
        let range = (std::ops::Bound::Excluded(after.to_owned()), std::ops::Bound::Unbounded);
        Ok(st.audit.range(range).take(limit).map(|(_, e)| e.clone()).collect())
    }

    async fn swap_key_ring(&self, document: &str, expected_version: u64) -> Result<bool, StoreError> {
        let mut st = self.lock()?;
        if st.key_ring.as_ref().map_or(0, |(_, v)| *v) != expected_version {
            return Ok(false);
        }
        st.key_ring = Some((document.to_owned(), expected_version + 1));
        Ok(true)
    }

    async fn replace_password_hash(&self, id: &str, current: &str, next: &str) -> Result<bool, StoreError> {
        let mut st = self.lock()?;
        match st.users.get_mut(id) {
            Some(u) if u.password_hash == current => {
                next.clone_into(&mut u.password_hash);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_users(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, StoreError> {
        let st = self.lock()?;
        let mut found: Vec<&User> = st
            .users
            .values()
            .filter(|u| u.username.starts_with(prefix) && after.is_none_or(|a| u.username.as_str() > a))
            .collect();
        found.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(found.into_iter().take(limit).cloned().collect())
    }

    async fn delete_user(&self, id: &str, now: UnixSeconds) -> Result<bool, StoreError> {
        let mut st = self.lock()?;
        for s in st.sessions.values_mut().filter(|s| s.user_id == id) {
            revoke(s, now);
        }
        Ok(st.users.remove(id).is_some())
    }

    async fn user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<Vec<Session>, StoreError> {
        let st = self.lock()?;
        let mut found: Vec<Session> =
            st.sessions.values().filter(|s| s.user_id == user_id && s.is_active(now)).cloned().collect();
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found)
    }

    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut st = self.lock()?;
        if st.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict(format!("session {}", session.id)));
        }
        st.sessions.insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.lock()?.sessions.get(id).cloned())
    }

    async fn swap_session(&self, next: &Session, expected_version: u64) -> Result<bool, StoreError> {
        let mut st = self.lock()?;
        let Some(stored) = st.sessions.get_mut(&next.id) else {
            return Ok(false);
        };
        if stored.version != expected_version || stored.revoked_at.is_some() {
            return Ok(false);
        }
        let last_used_at = stored.last_used_at.max(next.last_used_at);
        *stored = next.clone();
        stored.last_used_at = last_used_at;
        stored.version = expected_version + 1;
        Ok(true)
    }

    async fn touch_session(&self, id: &str, at: UnixSeconds) -> Result<(), StoreError> {
        if let Some(s) = self.lock()?.sessions.get_mut(id) {
            s.last_used_at = s.last_used_at.max(at);
        }
        Ok(())
    }

    async fn revoke_session(&self, id: &str, now: UnixSeconds) -> Result<(), StoreError> {
        let mut st = self.lock()?;
        st.sessions.entry(id.to_owned()).or_insert_with(|| Session::tombstone(id, now));
        for s in st.sessions.values_mut().filter(|s| s.id == id || s.parent_id.as_deref() == Some(id)) {
            revoke(s, now);
        }
        Ok(())
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<u64, StoreError> {
        let mut st = self.lock()?;
        let mut n = 0;
        for s in st.sessions.values_mut().filter(|s| s.user_id == user_id) {
            if s.revoked_at.is_none() {
                n += 1;
            }
            revoke(s, now);
        }
        Ok(n)
    }

    async fn put_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        let mut st = self.lock()?;
        if st.codes.contains_key(&code.hash) {
            return Err(StoreError::Conflict("code".into()));
        }
        st.codes.insert(code.hash.clone(), (code.clone(), None));
        Ok(())
    }

    async fn redeem_code(&self, hash: &str, session_id: &str, now: UnixSeconds) -> Result<Redemption, StoreError> {
        let mut st = self.lock()?;
        let Some((code, redeemed_by)) = st.codes.get_mut(hash) else {
            return Ok(Redemption::Unknown);
        };
        if let Some(first) = redeemed_by {
            return Ok(Redemption::Replayed { session_id: first.clone() });
        }
        if now >= code.expires_at {
            return Ok(Redemption::Unknown);
        }
        *redeemed_by = Some(session_id.to_owned());
        Ok(Redemption::Redeemed(code.clone()))
    }

    async fn bump_counter(&self, key: &str, now: UnixSeconds, ttl: u64) -> Result<Counter, StoreError> {
        self.counters.bump(key, now, ttl)
    }

    async fn counter(&self, key: &str, now: UnixSeconds) -> Result<Option<Counter>, StoreError> {
        self.counters.get(key, now)
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        self.counters.reset(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_conformance_suite() {
        let store = MemoryStore::new();
        crate::conformance::run_all(|| store.clone());
    }

    /// The single-threaded suite, on a store whose every call yields to the executor
    /// once first, as a call over the network would: the races then interleave.
    #[test]
    fn passes_the_single_threaded_conformance_suite() {
        let store = crate::conformance::Paced::yielding(MemoryStore::new());
        pollster::block_on(crate::conformance::run_all_async(&store));
    }
}
