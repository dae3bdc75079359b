//! What a presented refresh token means, as a pure decision over the session's refresh
//! state. Storage applies the decision with one compare-and-swap; losing that race
//! means re-reading and deciding again, so every outcome is one of the variants below,
//! never an error.
//!
//! The rules (after matrix-authentication-service's idempotent double refresh):
//! - the **current** token rotates: a fresh successor becomes current, the presented
//!   token becomes **previous**;
//! - the **previous** token, while its successor has never been presented, is a retry
//!   after a lost response: the unused successor is retired and a fresh one issued;
//! - any **retired** token (older than previous, or a successor that was replaced) is
//!   reuse: the session is revoked, since someone holds a token they should not;
//! - anything else is simply invalid (it may be a guess at a session id, which must not
//!   let an attacker revoke someone else's session).

use serde::{Deserialize, Serialize};

use crate::secret::constant_time_eq;

/// How many retired token hashes a session remembers for reuse detection. Older ones
/// fall off and are then answered as merely invalid.
pub const RETIRED_HISTORY: usize = 64;

/// The refresh-token part of a session record. Hashes only; never the tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshState {
    /// Hash of the one token that rotates normally.
    pub current: String,
    /// Hash of the token that `current` replaced, accepted once more as a retry while
    /// `current` has never been presented.
    pub previous: Option<String>,
    /// Hashes of tokens that must never be presented again, newest last.
    pub retired: Vec<String>,
}

/// The decision for one presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// Normal rotation; store this state.
    Rotate(RefreshState),
    /// A retry of the previous token; store this state (a fresh successor).
    Retry(RefreshState),
    /// Rotation is disabled for this client and the token is current: nothing changes.
    Keep,
    /// A retired token was presented: revoke the session.
    Reuse,
    /// Not a token of this session.
    Invalid,
}

impl RefreshState {
    /// A new state whose current token has hash `current`.
    pub fn new(current: String) -> Self {
        RefreshState { current, previous: None, retired: Vec::new() }
    }

    fn retire(&mut self, hash: String) {
        self.retired.push(hash);
        if self.retired.len() > RETIRED_HISTORY {
            let excess = self.retired.len() - RETIRED_HISTORY;
            self.retired.drain(..excess);
        }
    }

    /// Decides what presenting a token with hash `presented` means. `successor` is the
    /// hash of a freshly generated token, used when the decision issues one; `rotate`
    /// is the client's `refresh_token_rotation_enabled`.
    ///
    /// Security: comparisons are constant-time; all of the state is compared on every
    /// call so timing does not reveal which slot matched.
    pub fn present(&self, presented: &str, successor: String, rotate: bool) -> Presented {
        let is_current = constant_time_eq(presented, &self.current);
        let is_previous = self.previous.as_deref().is_some_and(|p| constant_time_eq(presented, p));
        let is_retired = self.retired.iter().fold(false, |acc, r| acc | constant_time_eq(presented, r));
        if is_current {
            if !rotate {
                return Presented::Keep;
            }
            let mut next = self.clone();
            if let Some(old_previous) = next.previous.take() {
                next.retire(old_previous);
            }
            next.previous = Some(std::mem::replace(&mut next.current, successor));
            Presented::Rotate(next)
        } else if is_previous {
            let mut next = self.clone();
            let unused = std::mem::replace(&mut next.current, successor);
            next.retire(unused);
            Presented::Retry(next)
        } else if is_retired {
            Presented::Reuse
        } else {
            Presented::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotated(p: Presented) -> RefreshState {
        match p {
            Presented::Rotate(s) | Presented::Retry(s) => s,
            other => panic!("expected a new state, got {other:?}"),
        }
    }

    #[test]
    fn rotation_retry_and_reuse() {
        let s0 = RefreshState::new("a".into());
        let s1 = rotated(s0.present("a", "b".into(), true));
        assert_eq!(s1.current, "b");
        assert_eq!(s1.previous.as_deref(), Some("a"));
        // Lost response: "a" again while "b" was never presented.
        let s2 = s1.present("a", "c".into(), true);
        assert!(matches!(s2, Presented::Retry(_)));
        let s2 = rotated(s2);
        assert_eq!(s2.current, "c");
        assert_eq!(s2.retired, vec!["b".to_string()]);
        // The replaced successor is reuse.
        assert_eq!(s2.present("b", "x".into(), true), Presented::Reuse);
        // "c" is used, then "a" is older than previous: reuse.
        let s3 = rotated(s2.present("c", "d".into(), true));
        assert_eq!(s3.present("a", "x".into(), true), Presented::Reuse);
        assert_eq!(s3.present("zzz", "x".into(), true), Presented::Invalid);
    }

    #[test]
    fn without_rotation_the_token_is_kept() {
        let s = RefreshState::new("a".into());
        assert_eq!(s.present("a", "b".into(), false), Presented::Keep);
        assert_eq!(s.present("b", "c".into(), false), Presented::Invalid);
    }

    #[test]
    fn history_is_bounded() {
        let mut s = RefreshState::new("t0".into());
        for i in 1..100 {
            s = rotated(s.present(&s.current.clone(), format!("t{i}"), true));
        }
        assert_eq!(s.retired.len(), RETIRED_HISTORY);
        assert_eq!(s.present("t97", "x".into(), true), Presented::Reuse);
        assert_eq!(s.present("t1", "x".into(), true), Presented::Invalid);
    }
}
