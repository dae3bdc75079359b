//! What a Durable Object does with a command, as a pure function over its stored
//! [`Record`]: the Durable Object class loads the record, calls [`apply`], and writes
//! back what it returns. Kept free of the Workers runtime so that it is tested
//! natively, by the whole conformance suite (see the crate's tests).

use latchkey_store::{AuthCode, Session, User};
use latchkey_token::UnixSeconds;
use serde::{Deserialize, Serialize};

use crate::protocol::{Command, Reply, WireCounter, WireRedemption, WireRefresh};
use latchkey_store::{RefreshDecision, decide};

/// How long a revoked-but-unknown session id (a tombstone) and a redeemed or expired
/// code are kept, so that a late replay is still recognised.
pub const GRACE_SECONDS: u64 = 24 * 3600;

/// A session in a user's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The session.
    pub id: String,
    /// Its absolute expiry; past it, the entry is pruned.
    pub expires_at: UnixSeconds,
}

/// The whole stored state of one object. Each kind of object uses its own fields and
/// leaves the others empty: `username:` objects `username_holder`; `user:` objects
/// `user` and `sessions`; `session:` objects `session` and `children`; `code:` objects
/// `code` and `redeemed_by`; `counter:` objects `counter`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<IndexEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<AuthCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_by: Option<String>,
    /// The key ring (`keyring:` objects): document and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ring: Option<(String, u64)>,
    /// The counter and when it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<(WireCounter, UnixSeconds)>,
}

impl Record {
    /// Whether nothing is stored (the object can be deleted).
    pub fn is_empty(&self) -> bool {
        *self == Record::default()
    }
}

/// What the object must do after [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effect {
    /// The record changed: write it back (or delete the object's storage if it is now empty).
    pub write: bool,
    /// Delete the object's storage after this many seconds (replacing any earlier
    /// schedule): the equivalent of a TTL, so that expired state does not linger.
    pub expire_in: Option<u64>,
}

fn revoke(session: &mut Session, now: UnixSeconds) -> bool {
    let newly = session.revoked_at.is_none();
    if newly {
        session.revoked_at = Some(now);
    }
    session.version += 1;
    newly
}

/// The name of the one `directory:` object, which lists every username for the admin
/// API. Unlike every other object it keeps one storage entry per name, under
/// [`DIRECTORY_KEY_PREFIX`], rather than one record: a record holding every user
/// would outgrow a storage value. Its three commands are one storage operation each,
/// which the Durable Object class (and the native tests' transport) apply directly.
pub const DIRECTORY: &str = "users";

/// The prefix of the directory's storage keys (`n:<username>` → user id).
pub const DIRECTORY_KEY_PREFIX: &str = "n:";

/// The prefix of an audit object's storage keys (`e:<cursor>` → the event's JSON).
/// Audit objects, `audit:<day>:<shard>`, keep one entry per event for the same reason
/// the directory does; events are spread over [`AUDIT_SHARDS`] objects a day so that
/// no one object serialises every login of the deployment.
pub const AUDIT_KEY_PREFIX: &str = "e:";

/// Audit objects per day.
pub const AUDIT_SHARDS: u32 = 8;

/// How long an audit object is kept after its day: 90 days.
pub const AUDIT_RETENTION_SECONDS: u64 = 90 * 86_400;

/// Whether `command` is one of the objects that keep one storage entry per item (the
/// directory's, an audit object's) rather than one record: the Durable Object class
/// applies those itself.
pub fn is_entries_command(command: &Command) -> bool {
    matches!(
        command,
        Command::ListName { .. }
            | Command::UnlistName { .. }
            | Command::ListNames { .. }
            | Command::AppendAudit { .. }
            | Command::ListAudit { .. }
    )
}

/// Applies `command` to `record`. Never fails: every outcome is a [`Reply`].
pub fn apply(record: &mut Record, command: Command) -> (Reply, Effect) {
    let write = Effect { write: true, expire_in: None };
    let read = Effect::default();
    match command {
        Command::ClaimUsername { user_id } => match &record.username_holder {
            Some(holder) if *holder != user_id => (Reply::Conflict, read),
            Some(_) => (Reply::Ok, read),
            None => {
                record.username_holder = Some(user_id);
                (Reply::Ok, write)
            }
        },
        Command::ReleaseUsername { user_id } => {
            if record.username_holder.as_deref() == Some(user_id.as_str()) {
                record.username_holder = None;
                (Reply::Ok, write)
            } else {
                (Reply::Ok, read)
            }
        }
        Command::LookupUsername => (Reply::UserId { user_id: record.username_holder.clone() }, read),
        Command::CreateUser { user } => {
            if record.user.is_some() {
                return (Reply::Conflict, read);
            }
            record.user = Some(user);
            (Reply::Ok, write)
        }
        Command::GetUser => (Reply::User { user: record.user.clone() }, read),
        Command::SetUserDisabled { disabled, reason } => {
            let Some(user) = record.user.as_mut() else {
                return (Reply::Disabled { exists: false, sessions: Vec::new() }, read);
            };
            user.disabled = disabled;
            user.disabled_reason = if disabled { reason } else { None };
            let sessions = if disabled { record.sessions.iter().map(|e| e.id.clone()).collect() } else { Vec::new() };
            (Reply::Disabled { exists: true, sessions }, write)
        }
        Command::IndexSession { session_id, expires_at, now } => {
            // Entries past their absolute expiry are dead sessions: pruned here, so
            // the index holds only sessions that can still be used.
            record.sessions.retain(|e| e.expires_at > now && e.id != session_id);
            record.sessions.push(IndexEntry { id: session_id, expires_at });
            (Reply::Ok, write)
        }
        Command::UserSessions => (Reply::Ids { ids: record.sessions.iter().map(|e| e.id.clone()).collect() }, read),
        Command::ReplacePasswordHash { current, next } => match record.user.as_mut() {
            Some(user) if user.password_hash == current => {
                user.password_hash = next;
                (Reply::Bool { value: true }, write)
            }
            _ => (Reply::Bool { value: false }, read),
        },
        Command::DeleteUser => {
            let changed = record.user.is_some() || !record.sessions.is_empty();
            let existed = record.user.take().is_some();
            record.sessions.clear();
            (Reply::Bool { value: existed }, Effect { write: changed, expire_in: None })
        }
        // Not a record's (see [`DIRECTORY`]): a reply no client accepts for them, so a
        // transport that failed to apply them itself fails loudly.
        Command::ListName { .. }
        | Command::UnlistName { .. }
        | Command::ListNames { .. }
        | Command::AppendAudit { .. }
        | Command::ListAudit { .. } => (Reply::Bool { value: false }, read),
        Command::CreateSession { session } => {
            if record.session.is_some() {
                return (Reply::Conflict, read);
            }
            let expire_in = session.lifetime.lifetime_seconds.saturating_add(GRACE_SECONDS);
            record.session = Some(session);
            (Reply::Ok, Effect { write: true, expire_in: Some(expire_in) })
        }
        Command::GetSession => (Reply::Session { session: record.session.clone() }, read),
        Command::SwapSession { next, expected_version } => {
            let Some(stored) = record.session.as_mut() else {
                return (Reply::Bool { value: false }, read);
            };
            if stored.id != next.id || stored.version != expected_version || stored.revoked_at.is_some() {
                return (Reply::Bool { value: false }, read);
            }
            let last_used_at = stored.last_used_at.max(next.last_used_at);
            *stored = next;
            stored.last_used_at = last_used_at;
            stored.version = expected_version + 1;
            (Reply::Bool { value: true }, write)
        }
        Command::TouchSession { at } => match record.session.as_mut() {
            Some(s) if at > s.last_used_at => {
                s.last_used_at = at;
                (Reply::Ok, write)
            }
            _ => (Reply::Ok, read),
        },
        Command::Refresh { presented_hash, successor_hash, rotate, now } => {
            let Some(session) = record.session.as_mut() else {
                return (Reply::Refreshed { outcome: WireRefresh::Invalid }, read);
            };
            match decide(session, &presented_hash, &successor_hash, rotate, now) {
                RefreshDecision::Invalid => (Reply::Refreshed { outcome: WireRefresh::Invalid }, read),
                RefreshDecision::Keep { touch } => {
                    if touch {
                        session.last_used_at = session.last_used_at.max(now);
                    }
                    (
                        Reply::Refreshed { outcome: WireRefresh::Kept { session: session.clone() } },
                        Effect { write: touch, expire_in: None },
                    )
                }
                RefreshDecision::Reuse => {
                    revoke(session, now);
                    let children = record.children.clone();
                    (Reply::Refreshed { outcome: WireRefresh::ReuseDetected { children } }, write)
                }
                RefreshDecision::Swap { next, retried } => {
                    *session = next.clone();
                    let outcome = if retried {
                        WireRefresh::Retried { session: next }
                    } else {
                        WireRefresh::Rotated { session: next }
                    };
                    (Reply::Refreshed { outcome }, write)
                }
            }
        }
        Command::RevokeSession { id, now, tombstone } => {
            let children = record.children.clone();
            match record.session.as_mut() {
                Some(s) => {
                    let newly = revoke(s, now);
                    (Reply::Revoked { newly, children }, write)
                }
                None if tombstone => {
                    // The id of a session that may still be being created (a replayed
                    // code revokes the session its first redemption creates): recorded
                    // revoked, so that the creation fails. Kept for a day.
                    record.session = Some(Session::tombstone(&id, now));
                    (Reply::Revoked { newly: false, children }, Effect { write: true, expire_in: Some(GRACE_SECONDS) })
                }
                None => (Reply::Revoked { newly: false, children }, read),
            }
        }
        Command::AddChild { child_id } => {
            if record.children.contains(&child_id) {
                return (Reply::Ok, read);
            }
            record.children.push(child_id);
            (Reply::Ok, write)
        }
        Command::GetKeyRing => (Reply::KeyRing { ring: record.key_ring.clone() }, read),
        Command::SwapKeyRing { document, expected_version } => {
            if record.key_ring.as_ref().map_or(0, |(_, v)| *v) != expected_version {
                return (Reply::Bool { value: false }, read);
            }
            record.key_ring = Some((document, expected_version + 1));
            (Reply::Bool { value: true }, write)
        }
        Command::PutCode { code } => {
            if record.code.is_some() {
                return (Reply::Conflict, read);
            }
            let expire_in = code.expires_at.saturating_sub(code.created_at).saturating_add(GRACE_SECONDS);
            record.code = Some(code);
            (Reply::Ok, Effect { write: true, expire_in: Some(expire_in) })
        }
        Command::RedeemCode { session_id, now } => {
            let Some(code) = &record.code else {
                return (Reply::Redemption { outcome: WireRedemption::Unknown }, read);
            };
            if let Some(first) = &record.redeemed_by {
                return (Reply::Redemption { outcome: WireRedemption::Replayed { session_id: first.clone() } }, read);
            }
            if now >= code.expires_at {
                return (Reply::Redemption { outcome: WireRedemption::Unknown }, read);
            }
            let code = code.clone();
            record.redeemed_by = Some(session_id);
            (Reply::Redemption { outcome: WireRedemption::Redeemed { code } }, write)
        }
        Command::BumpCounter { now, ttl } => {
            let live = record.counter.filter(|(_, expires)| *expires > now).map(|(c, _)| c);
            let mut counter = live.unwrap_or(WireCounter { count: 0, first_at: now, last_at: now });
            counter.count = counter.count.saturating_add(1);
            counter.last_at = now;
            record.counter = Some((counter, now.saturating_add(ttl)));
            (Reply::Counter { counter: Some(counter) }, Effect { write: true, expire_in: Some(ttl) })
        }
        Command::GetCounter { now } => {
            let live = record.counter.filter(|(_, expires)| *expires > now).map(|(c, _)| c);
            (Reply::Counter { counter: live }, read)
        }
        Command::ResetCounter => {
            let had = record.counter.take().is_some();
            (Reply::Ok, Effect { write: had, expire_in: None })
        }
    }
}
