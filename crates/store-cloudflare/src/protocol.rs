//! What the store client sends a Durable Object and what it answers: one JSON
//! [`Command`] per request, one JSON [`Reply`] per response.

use latchkey_store::{AuditEvent, AuthCode, Counter, Session, User};
use latchkey_token::UnixSeconds;
use serde::{Deserialize, Serialize};

/// One operation on one object. Each command belongs to one kind of object, named by
/// the prefix in its description (see the crate docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// `username:` — claim the name for `user_id` (idempotent for the same id).
    ClaimUsername { user_id: String },
    /// `username:` — drop the claim if `user_id` holds it.
    ReleaseUsername { user_id: String },
    /// `username:` — who holds the name.
    LookupUsername,
    /// `directory:` — list `username` as held by `user_id` (one storage entry per name).
    ListName { username: String, user_id: String },
    /// `directory:` — drop the entry of `username`.
    UnlistName { username: String },
    /// `directory:` — up to `limit` entries whose names start with `prefix` and sort
    /// after `after`, in name order.
    ListNames { prefix: String, after: Option<String>, limit: usize },
    /// `user:` — insert the user record.
    CreateUser { user: User },
    /// `user:` — the user record.
    GetUser,
    /// `user:` — disable or enable; answers the user's indexed sessions.
    SetUserDisabled { disabled: bool, reason: Option<String> },
    /// `user:` — add a session to the user's index (pruning expired entries).
    IndexSession { session_id: String, expires_at: UnixSeconds, now: UnixSeconds },
    /// `user:` — replace the password hash if it is still `current`.
    ReplacePasswordHash { current: String, next: String },
    /// `user:` — every indexed session id.
    UserSessions,
    /// `user:` — delete the user record and its session index; answers whether it existed.
    DeleteUser,
    /// `session:` — insert the session.
    CreateSession { session: Session },
    /// `session:` — the session.
    GetSession,
    /// `session:` — compare-and-swap on the version.
    SwapSession { next: Session, expected_version: u64 },
    /// `session:` — record a use.
    TouchSession { at: UnixSeconds },
    /// `session:` — present a refresh token: the whole decision and its write, here.
    Refresh { presented_hash: String, successor_hash: String, rotate: bool, now: UnixSeconds },
    /// `session:` — revoke the session `id` (this object's); with `tombstone`, an
    /// unknown id is recorded as revoked.
    RevokeSession { id: String, now: UnixSeconds, tombstone: bool },
    /// `session:` — link a child session, so that revoking this one revokes it.
    AddChild { child_id: String },
    /// `audit:` — store the event (one storage entry per event).
    AppendAudit { event: AuditEvent },
    /// `audit:` — up to `limit` events after the cursor `after`, in cursor order.
    ListAudit { after: String, limit: usize },
    /// `keyring:` — the key ring and its version.
    GetKeyRing,
    /// `keyring:` — compare-and-swap the key ring.
    SwapKeyRing { document: String, expected_version: u64 },
    /// `code:` — insert the code.
    PutCode { code: AuthCode },
    /// `code:` — redeem at most once.
    RedeemCode { session_id: String, now: UnixSeconds },
    /// `counter:` — count a hit.
    BumpCounter { now: UnixSeconds, ttl: u64 },
    /// `counter:` — the live counter.
    GetCounter { now: UnixSeconds },
    /// `counter:` — forget it.
    ResetCounter,
}

/// An abuse counter on the wire ([`Counter`] itself is not serialisable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCounter {
    /// Hits.
    pub count: u32,
    /// First hit.
    pub first_at: UnixSeconds,
    /// Latest hit.
    pub last_at: UnixSeconds,
}

impl From<Counter> for WireCounter {
    fn from(c: Counter) -> Self {
        WireCounter { count: c.count, first_at: c.first_at, last_at: c.last_at }
    }
}

impl From<WireCounter> for Counter {
    fn from(c: WireCounter) -> Self {
        Counter { count: c.count, first_at: c.first_at, last_at: c.last_at }
    }
}

/// The answer to a [`Command`].
// Short-lived, one per request: boxing the session would cost more than it saves.
#[allow(clippy::large_enum_variant, reason = "one short-lived value per request")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Done.
    Ok,
    /// The key already exists.
    Conflict,
    /// A yes/no answer (a swap, whether a user exists).
    Bool { value: bool },
    /// The holder of a username.
    UserId { user_id: Option<String> },
    /// A user record.
    User { user: Option<User> },
    /// A session record.
    Session { session: Option<Session> },
    /// Session ids (a user's index).
    Ids { ids: Vec<String> },
    /// Audit events, in cursor order.
    AuditEvents { events: Vec<AuditEvent> },
    /// The key ring: its document and version.
    KeyRing { ring: Option<(String, u64)> },
    /// Directory entries: (username, user id), in name order.
    Names { names: Vec<(String, String)> },
    /// The result of disabling or enabling a user: whether it exists, and the sessions
    /// to revoke (when disabling).
    Disabled { exists: bool, sessions: Vec<String> },
    /// The result of a revocation: whether this call revoked it, and its children.
    Revoked { newly: bool, children: Vec<String> },
    /// The result of redeeming a code.
    Redemption { outcome: WireRedemption },
    /// A counter.
    Counter { counter: Option<WireCounter> },
    /// The result of presenting a refresh token.
    Refreshed { outcome: WireRefresh },
}

/// [`latchkey_store::RefreshOutcome`] on the wire.
#[allow(clippy::large_enum_variant, reason = "one short-lived value per request")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireRefresh {
    /// Rotated.
    Rotated { session: Session },
    /// A retry of the previous token.
    Retried { session: Session },
    /// Rotation off: the token stays.
    Kept { session: Session },
    /// A retired token: the session is revoked; its children must be revoked too.
    ReuseDetected { children: Vec<String> },
    /// Nothing usable.
    Invalid,
}

/// [`latchkey_store::Redemption`] on the wire.
#[allow(clippy::large_enum_variant, reason = "one short-lived value per request")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireRedemption {
    /// First redemption.
    Redeemed { code: AuthCode },
    /// Already redeemed by this session.
    Replayed { session_id: String },
    /// No such code, or expired.
    Unknown,
}
