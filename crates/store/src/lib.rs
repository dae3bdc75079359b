//! Storage ports for Latchkey: the records (users, sessions, authorization codes), the
//! [`Store`] trait every backend implements, the one refresh-rotation procedure built
//! on its compare-and-swap, an in-memory backend ([`MemoryStore`]) and the [`conformance`] suite every
//! backend must pass.
//!
//! The port is one trait over three aggregates rather than three traits: every
//! backend stores all three, and revocation cuts across them (disabling a user revokes
//! their sessions in the same write). Methods are `async fn` with no `Send` bound,
//! because Workers futures are not `Send`; native runtimes run them on a per-core
//! executor. Implementations must never read the clock: `now` is a parameter.
//!
//! A refresh is decided once, by [`decide`]; [`Store::present_refresh`] applies it. Its
//! default is the compare-and-swap procedure [`refresh_by_swap`] (SQLite, DynamoDB,
//! memory); a backend that runs code where the session lives overrides it and applies
//! the decision there in one step (Durable Objects).
//!
//! The resolver's read is [`Store::session_with_user`] (a method DESIGN.md does not
//! name): the session and its user, which SQLite answers with one statement and so one
//! read transaction. Its default makes the two reads, as every backend did before.
//! Secrets are stored as SHA-256 hashes only; the store never sees a token.
//!
//! The operators' methods (also beyond DESIGN.md's port) are admin-API reads and
//! writes, off every hot path: [`Store::list_users`], [`Store::delete_user`],
//! [`Store::user_sessions`], [`Store::replace_password_hash`] (a login upgrading an
//! imported hash), the signing-key ring ([`Store::key_ring`], [`Store::swap_key_ring`],
//! one opaque document under compare-and-swap) and the append-only audit stream
//! ([`Store::append_audit`], [`Store::audit_events`]). The conformance suite covers each.

mod counters;
mod memory;
mod model;
mod refresh;

pub mod conformance;

pub use counters::{Counter, MemoryCounters};
pub use memory::MemoryStore;
pub use model::{AuditEvent, AuthCode, Redemption, Session, SessionKind, User};
pub use refresh::{RefreshDecision, RefreshOutcome, decide, refresh, refresh_by_swap};

use latchkey_token::UnixSeconds;
use thiserror::Error;

/// A storage failure. Every variant means "no answer": callers answer 503 with
/// `Retry-After`, never "valid" and never "invalid".
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time (locked, I/O
    /// error, throttled). Retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique key already exists (a username, a record id).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// The storage port. See the crate docs for the rules every implementation keeps.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Inserts a user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the id or username is taken.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// The user with `id`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// The user with `username` (exact match).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Disables or enables a user. Disabling revokes every session of the user in the
    /// same atomic write, so no refresh or resolve can succeed after this returns.
    /// Returns whether the user exists.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: bool,
        reason: Option<&str>,
        now: UnixSeconds,
    ) -> Result<bool, StoreError>;

    /// Appends a security event to the audit stream. Events are never changed or
    /// deleted by Latchkey (a backend may expire them after its retention period,
    /// which it documents).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Up to `limit` audit events whose cursor sorts after `after`, oldest first.
    /// Cursors start with the time as 10 digits, so `after = "1700000000"` is every
    /// event from that second on. `now` bounds the search of backends that partition
    /// events by day.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn audit_events(&self, after: &str, limit: usize, now: UnixSeconds) -> Result<Vec<AuditEvent>, StoreError>;

    /// The signing-key ring and its version, if one was stored: an opaque document
    /// (the endpoints crate's `keyring` module defines it) that the admin API changes
    /// with [`Store::swap_key_ring`] and every instance re-reads, so a rotation
    /// reaches every target. Strongly consistent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn key_ring(&self) -> Result<Option<(String, u64)>, StoreError>;

    /// Compare-and-swap of the key ring: stores `document` as version
    /// `expected_version + 1` if the stored version is `expected_version` (0: none is
    /// stored yet). Returns whether it did.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn swap_key_ring(&self, document: &str, expected_version: u64) -> Result<bool, StoreError>;

    /// Replaces the user's password hash by `next` if it is still `current` (a
    /// compare-and-swap, so a hash set meanwhile is never overwritten): how a login
    /// upgrades an imported hash. Returns whether it was replaced.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn replace_password_hash(&self, id: &str, current: &str, next: &str) -> Result<bool, StoreError>;

    /// Up to `limit` users whose username starts with `prefix` (empty: every user) and
    /// sorts after `after` (the last username of the previous page), in byte order of
    /// their usernames: the admin API's list and search. Backends whose listing index
    /// is eventually consistent (DynamoDB's) say so; every other read stays strong.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn list_users(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, StoreError>;

    /// Deletes a user: every session of the user is revoked first, then the record and
    /// its username go (the name can be taken again; the id never matches again, as ids
    /// are random). Safe to repeat after a failure part-way. Returns whether the user
    /// existed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn delete_user(&self, id: &str, now: UnixSeconds) -> Result<bool, StoreError>;

    /// The sessions of `user_id` that are active at `now` (neither revoked nor expired),
    /// in creation order: what an operator looks at before revoking one.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<Vec<Session>, StoreError>;

    /// Inserts a session.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the id exists.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    /// The session with `id`, revoked or expired ones included (callers decide).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError>;

    /// The session with `id` and its user, if that user exists: what every resolve
    /// needs. The default makes the two reads; a backend that can answer both in one
    /// read (SQLite: one statement, so one read transaction and one set of WAL locks)
    /// overrides it. Both come from one snapshot there, or from two reads in order here;
    /// either way a revocation or a disabled user committed before the call is seen.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn session_with_user(&self, id: &str) -> Result<Option<(Session, Option<User>)>, StoreError> {
        let Some(session) = self.session(id).await? else {
            return Ok(None);
        };
        let user = self.user_by_id(&session.user_id).await?;
        Ok(Some((session, user)))
    }

    /// Compare-and-swap: stores `next` only if the stored version is `expected_version`
    /// and the session is not revoked, and then sets its version to
    /// `expected_version + 1`. The stored `last_used_at` never moves backwards.
    /// Returns whether the swap happened.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn swap_session(&self, next: &Session, expected_version: u64) -> Result<bool, StoreError>;

    /// Presents a refresh token (see [`refresh`]). The default runs [`refresh_by_swap`]
    /// over [`Store::swap_session`]; a backend that can apply [`decide`] where the
    /// session lives, serialised there (a Durable Object), overrides it with one call.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn present_refresh(
        &self,
        session_id: &str,
        presented_hash: &str,
        successor_hash: &str,
        rotate: bool,
        now: UnixSeconds,
    ) -> Result<RefreshOutcome, StoreError> {
        refresh_by_swap(self, session_id, presented_hash, successor_hash, rotate, now).await
    }

    /// Records a use: sets `last_used_at` to `at` if it is later than the stored value.
    /// Does not change the version (a use never conflicts with a rotation).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn touch_session(&self, id: &str, at: UnixSeconds) -> Result<(), StoreError>;

    /// Revokes the session `id` and every session created from it (its children), and
    /// bumps their versions so that a rotation in flight loses its swap. Idempotent.
    /// An unknown `id` is recorded as revoked ([`Session::tombstone`]), so a later
    /// `create_session` with it fails with [`StoreError::Conflict`]: a replayed
    /// authorization code can revoke the session its first redemption is still creating.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn revoke_session(&self, id: &str, now: UnixSeconds) -> Result<(), StoreError>;

    /// Revokes every session of `user_id`. Returns how many were newly revoked.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn revoke_user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<u64, StoreError>;

    /// Stores an authorization code (by hash).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the hash exists.
    async fn put_code(&self, code: &AuthCode) -> Result<(), StoreError>;

    /// Redeems a code, atomically and at most once: the first caller gets
    /// [`Redemption::Redeemed`] and the code is bound to `session_id`; every later caller
    /// gets [`Redemption::Replayed`] naming that session, so it can be revoked
    /// (RFC 6749 §4.1.2). An unknown or expired code is [`Redemption::Unknown`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn redeem_code(&self, hash: &str, session_id: &str, now: UnixSeconds) -> Result<Redemption, StoreError>;

    /// Counts a hit on the abuse counter `key` (a rate-limit window, a username's login
    /// failures) and returns the counter after it. A counter expires `ttl` seconds
    /// after its last hit. Counters need not be durable (see [`MemoryCounters`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn bump_counter(&self, key: &str, now: UnixSeconds, ttl: u64) -> Result<Counter, StoreError>;

    /// The live counter `key`, if any.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn counter(&self, key: &str, now: UnixSeconds) -> Result<Option<Counter>, StoreError>;

    /// Forgets the counter `key` (a successful login clears its failures).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on backend failure.
    async fn reset_counter(&self, key: &str) -> Result<(), StoreError>;
}
