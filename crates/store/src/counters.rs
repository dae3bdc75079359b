//! Abuse counters (rate limits, login failures) kept in process memory.
//!
//! Counters are not part of the durable state: losing them on restart only resets
//! throttling, never lets anything in that is not otherwise allowed. Backends that
//! run as one process (memory, SQLite) share one [`MemoryCounters`] between their
//! clones, so every worker thread sees the same counts. Distributed backends keep them
//! in their own store with the same semantics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use latchkey_token::UnixSeconds;

use crate::StoreError;

/// A counter's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Hits since the counter (re)started.
    pub count: u32,
    /// The first hit.
    pub first_at: UnixSeconds,
    /// The latest hit.
    pub last_at: UnixSeconds,
}

/// Above this many live counters, expired ones are swept on the next bump.
const SWEEP_ABOVE: usize = 100_000;

#[derive(Default)]
struct Inner {
    counters: HashMap<String, (Counter, UnixSeconds)>,
}

/// Counters in memory, shared by clones. Each expires `ttl` seconds after its last hit.
#[derive(Clone, Default)]
pub struct MemoryCounters {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryCounters {
    /// Counts a hit on `key` and returns the counter after it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the lock is poisoned.
    pub fn bump(&self, key: &str, now: UnixSeconds, ttl: u64) -> Result<Counter, StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Unavailable("counters poisoned".into()))?;
        if inner.counters.len() > SWEEP_ABOVE {
            inner.counters.retain(|_, (_, expires)| *expires > now);
        }
        let entry =
            inner.counters.entry(key.to_owned()).or_insert((Counter { count: 0, first_at: now, last_at: now }, 0));
        if entry.1 <= now {
            entry.0 = Counter { count: 0, first_at: now, last_at: now };
        }
        entry.0.count = entry.0.count.saturating_add(1);
        entry.0.last_at = now;
        entry.1 = now.saturating_add(ttl);
        Ok(entry.0)
    }

    /// The live counter of `key`, if any.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the lock is poisoned.
    pub fn get(&self, key: &str, now: UnixSeconds) -> Result<Option<Counter>, StoreError> {
        let inner = self.inner.lock().map_err(|_| StoreError::Unavailable("counters poisoned".into()))?;
        Ok(inner.counters.get(key).filter(|(_, expires)| *expires > now).map(|(c, _)| *c))
    }

    /// Forgets `key`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the lock is poisoned.
    pub fn reset(&self, key: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Unavailable("counters poisoned".into()))?;
        inner.counters.remove(key);
        Ok(())
    }
}
