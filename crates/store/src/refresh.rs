//! The refresh procedure: read the session, let [`RefreshState::present`] decide, apply
//! the decision with one compare-and-swap, and on a lost race read and decide again.
//! It is written once here over the port, so every backend gets the same semantics.

use latchkey_token::UnixSeconds;
use latchkey_token::refresh::Presented;

use crate::{Session, Store, StoreError};

/// How many times a lost compare-and-swap is retried before answering 503. Each loss
/// means another refresh of the same session won in between, so with n concurrent
/// refreshes of one token a caller loses at most n - 1 times; 256 covers far more than
/// any client sends, while a true livelock still ends.
const MAX_ATTEMPTS: usize = 256;

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Rotated: the successor is now current.
    Rotated(Session),
    /// A retry of the previous token: a fresh successor replaced the unused one.
    Retried(Session),
    /// Rotation is off for this client: the same token stays valid.
    Kept(Session),
    /// A retired token was presented; the session has been revoked.
    ReuseDetected,
    /// Unknown session, not a token of it, revoked or expired.
    Invalid,
}

/// What presenting a refresh token to a session decides, before anything is written.
// A short-lived return value, never stored: boxing the session would cost more than it saves.
#[allow(clippy::large_enum_variant, reason = "short-lived return value")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Not a usable token of an active session.
    Invalid,
    /// Rotation is off: keep the token; `touch`: record the use.
    Keep {
        /// Whether the last-use stamp is due.
        touch: bool,
    },
    /// A retired token: revoke the session.
    Reuse,
    /// Store `next` (at `session.version + 1`); `retried`: a retry of the previous token.
    Swap {
        /// The session after the refresh.
        next: Session,
        /// Whether this was a retry rather than a rotation.
        retried: bool,
    },
}

/// The refresh decision for `session` (the one place it is made; every backend applies
/// it, by compare-and-swap or where the session lives).
pub fn decide(
    session: &Session,
    presented_hash: &str,
    successor_hash: &str,
    rotate: bool,
    now: UnixSeconds,
) -> RefreshDecision {
    if !session.is_active(now) {
        return RefreshDecision::Invalid;
    }
    let Some(state) = &session.refresh else {
        return RefreshDecision::Invalid;
    };
    let (next_state, retried) = match state.present(presented_hash, successor_hash.to_owned(), rotate) {
        Presented::Rotate(s) => (s, false),
        Presented::Retry(s) => (s, true),
        Presented::Keep => {
            return RefreshDecision::Keep { touch: session.lifetime.should_record_use(session.last_used_at, now) };
        }
        Presented::Reuse => return RefreshDecision::Reuse,
        Presented::Invalid => return RefreshDecision::Invalid,
    };
    let mut next = session.clone();
    next.refresh = Some(next_state);
    next.last_used_at = now.max(session.last_used_at);
    next.version = session.version + 1;
    RefreshDecision::Swap { next, retried }
}

/// Presents a refresh token (by hash) for session `session_id`: the backend's
/// [`Store::present_refresh`] (by default, [`refresh_by_swap`]).
///
/// `successor_hash` is the hash of the freshly generated token the caller returns if
/// the outcome is `Rotated` or `Retried`. `rotate` is the client's
/// `refresh_token_rotation_enabled`. A successful outcome also records the use.
///
/// # Errors
/// [`StoreError`] when the backend fails.
pub async fn refresh<S: Store + ?Sized>(
    store: &S,
    session_id: &str,
    presented_hash: &str,
    successor_hash: &str,
    rotate: bool,
    now: UnixSeconds,
) -> Result<RefreshOutcome, StoreError> {
    store.present_refresh(session_id, presented_hash, successor_hash, rotate, now).await
}

/// The refresh procedure over the port's compare-and-swap (see the module docs).
///
/// # Errors
/// [`StoreError`] when the backend fails or a swap is lost [`MAX_ATTEMPTS`] times.
pub async fn refresh_by_swap<S: Store + ?Sized>(
    store: &S,
    session_id: &str,
    presented_hash: &str,
    successor_hash: &str,
    rotate: bool,
    now: UnixSeconds,
) -> Result<RefreshOutcome, StoreError> {
    for _ in 0..MAX_ATTEMPTS {
        let Some(session) = store.session(session_id).await? else {
            return Ok(RefreshOutcome::Invalid);
        };
        match decide(&session, presented_hash, successor_hash, rotate, now) {
            RefreshDecision::Invalid => return Ok(RefreshOutcome::Invalid),
            RefreshDecision::Keep { touch } => {
                if touch {
                    store.touch_session(session_id, now).await?;
                }
                return Ok(RefreshOutcome::Kept(session));
            }
            RefreshDecision::Reuse => {
                store.revoke_session(session_id, now).await?;
                return Ok(RefreshOutcome::ReuseDetected);
            }
            RefreshDecision::Swap { next, retried } => {
                if store.swap_session(&next, session.version).await? {
                    return Ok(if retried { RefreshOutcome::Retried(next) } else { RefreshOutcome::Rotated(next) });
                }
            }
        }
    }
    Err(StoreError::Unavailable("refresh lost too many races".into()))
}
