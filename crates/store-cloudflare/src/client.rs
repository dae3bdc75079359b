//! The [`Store`] over Durable Objects: each port method becomes one or a few commands
//! to the objects that own the records, sent through an [`Objects`] transport (the
//! Durable Object namespace on Workers; an in-process map in the native tests).

use futures_util::future::join_all;
use latchkey_store::{AuditEvent, AuthCode, Counter, Redemption, RefreshOutcome, Session, Store, StoreError, User};
use latchkey_token::UnixSeconds;

use crate::object::{AUDIT_RETENTION_SECONDS, AUDIT_SHARDS, DIRECTORY};
use crate::protocol::{Command, Reply, WireRedemption, WireRefresh};

/// Sends a command to the object with a name and returns its reply.
#[allow(async_fn_in_trait)]
pub trait Objects {
    /// One request to the object `name` (created on first use).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the object could not be reached or failed.
    async fn call(&self, name: &str, command: &Command) -> Result<Reply, StoreError>;
}

/// The store: objects named `<prefix><kind>:<key>`.
#[derive(Clone)]
pub struct ObjectStore<T> {
    objects: T,
    prefix: String,
}

fn unexpected(reply: Reply) -> StoreError {
    // A reply of the wrong shape means client and object disagree (a deploy of mixed
    // versions): no answer, never a guess.
    StoreError::Unavailable(format!("unexpected reply from a Durable Object: {reply:?}"))
}

impl<T: Objects> ObjectStore<T> {
    /// A store over `objects`. `prefix` is prepended to every object name: empty in a
    /// deployment, unique per run in tests, so that each run starts from an empty store.
    pub fn new(objects: T, prefix: impl Into<String>) -> Self {
        ObjectStore { objects, prefix: prefix.into() }
    }

    async fn call(&self, kind: &str, key: &str, command: Command) -> Result<Reply, StoreError> {
        self.objects.call(&format!("{}{kind}:{key}", self.prefix), &command).await
    }

    async fn ok(&self, kind: &str, key: &str, command: Command, conflict: &str) -> Result<(), StoreError> {
        match self.call(kind, key, command).await? {
            Reply::Ok => Ok(()),
            Reply::Conflict => Err(StoreError::Conflict(conflict.to_owned())),
            other => Err(unexpected(other)),
        }
    }

    /// Revokes each session of `ids` at once; returns how many this call revoked, and
    /// their children.
    async fn revoke_all(
        &self,
        ids: &[String],
        now: UnixSeconds,
        tombstone: bool,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let replies = join_all(
            ids.iter().map(|id| self.call("session", id, Command::RevokeSession { id: id.clone(), now, tombstone })),
        )
        .await;
        let mut newly = 0;
        let mut children = Vec::new();
        for reply in replies {
            match reply? {
                Reply::Revoked { newly: n, children: c } => {
                    newly += u64::from(n);
                    children.extend(c);
                }
                other => return Err(unexpected(other)),
            }
        }
        Ok((newly, children))
    }
}

impl<T: Objects> Store for ObjectStore<T> {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let conflict = format!("user {}", user.username);
        self.ok("username", &user.username, Command::ClaimUsername { user_id: user.id.clone() }, &conflict).await?;
        // Listed before the record exists; listings skip entries without a record.
        let entry = Command::ListName { username: user.username.clone(), user_id: user.id.clone() };
        self.ok("directory", DIRECTORY, entry, "directory").await?;
        match self.ok("user", &user.id, Command::CreateUser { user: user.clone() }, &conflict).await {
            Err(StoreError::Conflict(c)) => {
                // The id is taken: give the name back (best effort; a stale claim only
                // makes the name look taken, and lookups check the user record).
                let _ =
                    self.call("username", &user.username, Command::ReleaseUsername { user_id: user.id.clone() }).await;
                Err(StoreError::Conflict(c))
            }
            other => other,
        }
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        match self.call("user", id, Command::GetUser).await? {
            Reply::User { user } => Ok(user),
            other => Err(unexpected(other)),
        }
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let user_id = match self.call("username", username, Command::LookupUsername).await? {
            Reply::UserId { user_id: Some(id) } => id,
            Reply::UserId { user_id: None } => return Ok(None),
            other => return Err(unexpected(other)),
        };
        // The claim comes first when a user is created: a claim whose user record does
        // not exist (yet, or after a failed creation) is no user.
        Ok(self.user_by_id(&user_id).await?.filter(|u| u.username == username))
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: bool,
        reason: Option<&str>,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let command = Command::SetUserDisabled { disabled, reason: reason.map(str::to_owned) };
        let (exists, sessions) = match self.call("user", id, command).await? {
            Reply::Disabled { exists, sessions } => (exists, sessions),
            other => return Err(unexpected(other)),
        };
        // Every endpoint checks the user record on each use, so the user is locked out
        // from here on; revoking the sessions makes it permanent (enabling again does
        // not revive them). Only then does this return.
        if disabled && !sessions.is_empty() {
            self.revoke_all(&sessions, now, false).await?;
        }
        Ok(exists)
    }

    /// To the object of the event's day and of a shard its cursor picks.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        // FNV-1a: any stable spread will do; the cursor holds a random request id.
        let hash = event.cursor.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        let name = format!("{}:{}", event.at / 86_400, hash % AUDIT_SHARDS);
        self.ok("audit", &name, Command::AppendAudit { event: event.clone() }, "audit").await
    }

    /// Day by day from the cursor's, every shard of a day at once, merged in order.
    async fn audit_events(&self, after: &str, limit: usize, now: UnixSeconds) -> Result<Vec<AuditEvent>, StoreError> {
        let from: u64 = after.get(..10).unwrap_or(after).parse().unwrap_or(0);
        let first_day = (from / 86_400).max(now.saturating_sub(AUDIT_RETENTION_SECONDS) / 86_400);
        let mut events: Vec<AuditEvent> = Vec::new();
        for day in first_day..=now / 86_400 {
            let want = limit - events.len();
            let names: Vec<String> = (0..AUDIT_SHARDS).map(|shard| format!("{day}:{shard}")).collect();
            let replies = join_all(
                names
                    .iter()
                    .map(|name| self.call("audit", name, Command::ListAudit { after: after.to_owned(), limit: want })),
            )
            .await;
            let mut of_day = Vec::new();
            for reply in replies {
                match reply? {
                    Reply::AuditEvents { events } => of_day.extend(events),
                    other => return Err(unexpected(other)),
                }
            }
            of_day.sort_by(|a, b| a.cursor.cmp(&b.cursor));
            events.extend(of_day.into_iter().take(want));
            if events.len() >= limit {
                break;
            }
        }
        Ok(events)
    }

    async fn key_ring(&self) -> Result<Option<(String, u64)>, StoreError> {
        match self.call("keyring", "main", Command::GetKeyRing).await? {
            Reply::KeyRing { ring } => Ok(ring),
            other => Err(unexpected(other)),
        }
    }

    async fn swap_key_ring(&self, document: &str, expected_version: u64) -> Result<bool, StoreError> {
        let command = Command::SwapKeyRing { document: document.to_owned(), expected_version };
        match self.call("keyring", "main", command).await? {
            Reply::Bool { value } => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    async fn replace_password_hash(&self, id: &str, current: &str, next: &str) -> Result<bool, StoreError> {
        let command = Command::ReplacePasswordHash { current: current.to_owned(), next: next.to_owned() };
        match self.call("user", id, command).await? {
            Reply::Bool { value } => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    async fn list_users(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, StoreError> {
        let command = Command::ListNames { prefix: prefix.to_owned(), after: after.map(str::to_owned), limit };
        let names = match self.call("directory", DIRECTORY, command).await? {
            Reply::Names { names } => names,
            other => return Err(unexpected(other)),
        };
        // The entry is written before the user record and dropped before it is deleted:
        // an entry whose record does not exist (yet, or any more) is no user.
        let users = join_all(names.iter().map(|(_, id)| self.user_by_id(id))).await;
        let mut found = Vec::with_capacity(names.len());
        for ((name, _), user) in names.iter().zip(users) {
            if let Some(user) = user?.filter(|u| u.username == *name) {
                found.push(user);
            }
        }
        Ok(found)
    }

    /// In an order that a failure part-way leaves the user findable by id, so that
    /// deleting again finishes the job: revoke the sessions, unlist the name, release
    /// it, then delete the record.
    async fn delete_user(&self, id: &str, now: UnixSeconds) -> Result<bool, StoreError> {
        let Some(user) = self.user_by_id(id).await? else {
            return Ok(false);
        };
        self.revoke_user_sessions(id, now).await?;
        self.ok("directory", DIRECTORY, Command::UnlistName { username: user.username.clone() }, "directory").await?;
        self.ok("username", &user.username, Command::ReleaseUsername { user_id: id.to_owned() }, "username").await?;
        match self.call("user", id, Command::DeleteUser).await? {
            Reply::Bool { value } => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    async fn user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<Vec<Session>, StoreError> {
        let ids = match self.call("user", user_id, Command::UserSessions).await? {
            Reply::Ids { ids } => ids,
            other => return Err(unexpected(other)),
        };
        let mut sessions = Vec::with_capacity(ids.len());
        for session in join_all(ids.iter().map(|id| self.session(id))).await {
            if let Some(s) = session?.filter(|s| s.user_id == user_id && s.is_active(now)) {
                sessions.push(s);
            }
        }
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        // Links first, the session last: a revocation of the parent or of all of the
        // user's sessions that runs meanwhile finds the link and revokes the id (a
        // tombstone when it does not exist yet), and the creation then fails.
        if let Some(parent) = &session.parent_id {
            self.ok("session", parent, Command::AddChild { child_id: session.id.clone() }, "link").await?;
        }
        if !session.user_id.is_empty() {
            let expires_at = session.created_at.saturating_add(session.lifetime.lifetime_seconds);
            let index = Command::IndexSession { session_id: session.id.clone(), expires_at, now: session.created_at };
            self.ok("user", &session.user_id, index, "index").await?;
        }
        let conflict = format!("session {}", session.id);
        self.ok("session", &session.id, Command::CreateSession { session: session.clone() }, &conflict).await
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        match self.call("session", id, Command::GetSession).await? {
            Reply::Session { session } => Ok(session),
            other => Err(unexpected(other)),
        }
    }

    async fn swap_session(&self, next: &Session, expected_version: u64) -> Result<bool, StoreError> {
        match self.call("session", &next.id, Command::SwapSession { next: next.clone(), expected_version }).await? {
            Reply::Bool { value } => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    /// One command to the session's object, which decides and writes in one step: the
    /// object serialises concurrent refreshes, so none has to retry a lost swap.
    async fn present_refresh(
        &self,
        session_id: &str,
        presented_hash: &str,
        successor_hash: &str,
        rotate: bool,
        now: UnixSeconds,
    ) -> Result<RefreshOutcome, StoreError> {
        let command = Command::Refresh {
            presented_hash: presented_hash.to_owned(),
            successor_hash: successor_hash.to_owned(),
            rotate,
            now,
        };
        match self.call("session", session_id, command).await? {
            Reply::Refreshed { outcome } => Ok(match outcome {
                WireRefresh::Rotated { session } => RefreshOutcome::Rotated(session),
                WireRefresh::Retried { session } => RefreshOutcome::Retried(session),
                WireRefresh::Kept { session } => RefreshOutcome::Kept(session),
                WireRefresh::ReuseDetected { children } => {
                    // The session itself is revoked; its children go the same way.
                    self.revoke_all(&children, now, true).await?;
                    RefreshOutcome::ReuseDetected
                }
                WireRefresh::Invalid => RefreshOutcome::Invalid,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn touch_session(&self, id: &str, at: UnixSeconds) -> Result<(), StoreError> {
        self.ok("session", id, Command::TouchSession { at }, "touch").await
    }

    async fn revoke_session(&self, id: &str, now: UnixSeconds) -> Result<(), StoreError> {
        let (_, children) = self.revoke_all(&[id.to_owned()], now, true).await?;
        // Children too, tombstoned if they are still being created.
        self.revoke_all(&children, now, true).await?;
        Ok(())
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<u64, StoreError> {
        let ids = match self.call("user", user_id, Command::UserSessions).await? {
            Reply::Ids { ids } => ids,
            other => return Err(unexpected(other)),
        };
        Ok(self.revoke_all(&ids, now, false).await?.0)
    }

    async fn put_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        self.ok("code", &code.hash, Command::PutCode { code: code.clone() }, "code").await
    }

    async fn redeem_code(&self, hash: &str, session_id: &str, now: UnixSeconds) -> Result<Redemption, StoreError> {
        match self.call("code", hash, Command::RedeemCode { session_id: session_id.to_owned(), now }).await? {
            Reply::Redemption { outcome } => Ok(match outcome {
                WireRedemption::Redeemed { code } => Redemption::Redeemed(code),
                WireRedemption::Replayed { session_id } => Redemption::Replayed { session_id },
                WireRedemption::Unknown => Redemption::Unknown,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn bump_counter(&self, key: &str, now: UnixSeconds, ttl: u64) -> Result<Counter, StoreError> {
        match self.call("counter", key, Command::BumpCounter { now, ttl }).await? {
            Reply::Counter { counter: Some(c) } => Ok(c.into()),
            other => Err(unexpected(other)),
        }
    }

    async fn counter(&self, key: &str, now: UnixSeconds) -> Result<Option<Counter>, StoreError> {
        match self.call("counter", key, Command::GetCounter { now }).await? {
            Reply::Counter { counter } => Ok(counter.map(Into::into)),
            other => Err(unexpected(other)),
        }
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        self.ok("counter", key, Command::ResetCounter, "counter").await
    }
}
