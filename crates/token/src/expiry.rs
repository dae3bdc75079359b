//! Session expiry: `min(created + lifetime, last use + idle timeout)`, Authgear's rule
//! for IdP sessions and offline grants alike.

use serde::{Deserialize, Serialize};

use crate::UnixSeconds;

/// How long a session may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetime {
    /// Absolute lifetime from creation, in seconds.
    pub lifetime_seconds: u64,
    /// Idle timeout from last use, in seconds; `None` when idle timeout is disabled.
    pub idle_timeout_seconds: Option<u64>,
}

impl Lifetime {
    /// When a session created at `created_at` and last used at `last_used_at` expires.
    pub fn expires_at(&self, created_at: UnixSeconds, last_used_at: UnixSeconds) -> UnixSeconds {
        let absolute = created_at.saturating_add(self.lifetime_seconds);
        match self.idle_timeout_seconds {
            Some(idle) => absolute.min(last_used_at.saturating_add(idle)),
            None => absolute,
        }
    }
}

/// How often at most a session's last-use stamp is written. The resolver reads on
/// every request; writing on every read would turn it into a write path.
pub const LAST_USE_RESOLUTION_SECONDS: u64 = 60;

impl Lifetime {
    /// Whether a use at `now` should be recorded, given the stored `last_used_at`: at
    /// most once a minute, and at least twice per idle timeout, so that a session in
    /// use never idles out because its stamp was throttled (a 3 s idle timeout records
    /// every 1.5 s).
    pub fn should_record_use(&self, last_used_at: UnixSeconds, now: UnixSeconds) -> bool {
        let resolution = match self.idle_timeout_seconds {
            Some(idle) => (idle / 2).clamp(1, LAST_USE_RESOLUTION_SECONDS),
            None => LAST_USE_RESOLUTION_SECONDS,
        };
        now >= last_used_at.saturating_add(resolution)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute() {
        let l = Lifetime { lifetime_seconds: 100, idle_timeout_seconds: Some(10) };
        assert_eq!(l.expires_at(1000, 1000), 1010);
        assert_eq!(l.expires_at(1000, 1095), 1100);
        let no_idle = Lifetime { idle_timeout_seconds: None, ..l };
        assert_eq!(no_idle.expires_at(1000, 1000), 1100);
    }

    #[test]
    fn use_is_throttled_below_the_idle_timeout() {
        let long = Lifetime { lifetime_seconds: 1 << 30, idle_timeout_seconds: Some(2_592_000) };
        assert!(!long.should_record_use(1000, 1059));
        assert!(long.should_record_use(1000, 1060));
        let short = Lifetime { lifetime_seconds: 100, idle_timeout_seconds: Some(3) };
        assert!(!short.should_record_use(1000, 1000));
        assert!(short.should_record_use(1000, 1001));
        let none = Lifetime { lifetime_seconds: 100, idle_timeout_seconds: None };
        assert!(!none.should_record_use(1000, 1059));
    }
}
