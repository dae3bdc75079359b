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

/// Presents a refresh token (by hash) for session `session_id`.
///
/// `successor_hash` is the hash of the freshly generated token the caller returns if
/// the outcome is `Rotated` or `Retried`. `rotate` is the client's
/// `refresh_token_rotation_enabled`. A successful outcome also records the use.
///
/// # Errors
/// [`StoreError`] when the backend fails or a swap is lost [`MAX_ATTEMPTS`] times.
pub async fn refresh<S: Store + ?Sized>(
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
        if !session.is_active(now) {
            return Ok(RefreshOutcome::Invalid);
        }
        let Some(state) = &session.refresh else {
            return Ok(RefreshOutcome::Invalid);
        };
        let (next_state, retried) = match state.present(presented_hash, successor_hash.to_owned(), rotate) {
            Presented::Rotate(s) => (s, false),
            Presented::Retry(s) => (s, true),
            Presented::Keep => {
                if session.lifetime.should_record_use(session.last_used_at, now) {
                    store.touch_session(session_id, now).await?;
                }
                return Ok(RefreshOutcome::Kept(session));
            }
            Presented::Reuse => {
                store.revoke_session(session_id, now).await?;
                return Ok(RefreshOutcome::ReuseDetected);
            }
            Presented::Invalid => return Ok(RefreshOutcome::Invalid),
        };
        let mut next = session.clone();
        next.refresh = Some(next_state);
        next.last_used_at = now.max(session.last_used_at);
        next.version = session.version + 1;
        if store.swap_session(&next, session.version).await? {
            return Ok(if retried { RefreshOutcome::Retried(next) } else { RefreshOutcome::Rotated(next) });
        }
    }
    Err(StoreError::Unavailable("refresh lost too many races".into()))
}
