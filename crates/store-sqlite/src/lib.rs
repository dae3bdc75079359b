//! The embedded default backend for the Latchkey storage port: [`SqliteStore`] keeps
//! users, sessions and authorization codes in one SQLite file, so a single binary runs
//! with no database server. The server and the CLI may open the same file at once;
//! every transaction that writes takes SQLite's write lock with `BEGIN IMMEDIATE`, so
//! they serialise correctly across processes as well as across threads.
//!
//! # What it must never do
//!
//! * **Read the clock.** Every time it compares or stores arrives as a `now`/`at`
//!   parameter, as the port requires; expiry is decided by the caller's clock only.
//! * **Store a raw secret.** Cookies, refresh tokens and codes arrive as SHA-256
//!   hashes and passwords as PHC strings; nothing else is written. Error messages
//!   carry SQLite's own text and column names, never a stored or bound value.
//! * **Panic.** Every failure is a [`StoreError`]: a UNIQUE or PRIMARY KEY violation is
//!   `Conflict`, a value or file that cannot be decoded is `Corrupt`, and everything
//!   else (busy, locked, I/O, read-only, disk full, cannot open, a poisoned lock) is
//!   `Unavailable`, which callers answer with 503 rather than a guess.
//!
//! # Durability
//!
//! Every connection runs with `journal_mode=WAL`, `synchronous=FULL`,
//! `busy_timeout=5000` and `foreign_keys=ON`.
//!
//! * WAL lets readers run beside the writer, so resolving sessions does not queue
//!   behind logins and refreshes.
//! * `synchronous=FULL` syncs the WAL on every commit. With the WAL's default
//!   (`NORMAL`) the file stays consistent after a power loss but the last commits
//!   may roll back, and here a lost commit is a security bug, not lost work: a
//!   revocation or disabled user would come back to life, a redeemed code could be
//!   redeemed again, a retired refresh token would become current again.
//! * `busy_timeout` makes a second process wait up to five seconds for the write
//!   lock instead of failing at once; past that the write is `Unavailable`.
//! * **Group commit.** One thread owns the writing connection. Writes queue for it and
//!   are committed together, each in its own savepoint, in one `BEGIN IMMEDIATE` …
//!   `COMMIT`, so one fsync acknowledges every write that was waiting; a write's
//!   future resolves only after its commit returned. A write awaits a channel, so it
//!   never holds a runtime thread through the fsync or a busy file; reads are single
//!   indexed lookups and run on the caller's thread.
//! * `foreign_keys` is on so that any future migration that declares one gets it
//!   enforced; schema version 1 declares none (see below).
//!
//! # Schema
//!
//! Migrations are keyed on `PRAGMA user_version` and only ever appended; version 1:
//!
//! * `users (id PK, username UNIQUE, password_hash, disabled, disabled_reason,
//!   is_verified, roles JSON, created_at)`.
//! * `sessions (id PK, kind, user_id, client_id, parent_id, created_at,
//!   authenticated_at, amr JSON, scopes JSON, lifetime_seconds, idle_timeout_seconds,
//!   last_used_at, revoked_at, secret_hash, refresh JSON, version, user_agent, ip)`,
//!   indexed on `user_id` and on `parent_id`.
//! * `codes (hash PK, client_id, redirect_uri, user_id, browser_session_id,
//!   scopes JSON, nonce, code_challenge, authenticated_at, amr JSON, created_at,
//!   expires_at, redeemed_session_id)`.
//!
//! Tables are `STRICT`; times, lifetimes and versions are `INTEGER`, so a value above
//! `i64::MAX` cannot be stored and its write is refused as `Unavailable`. There are no
//! foreign keys, because the port does not require a session's user or parent to
//! exist. A file whose `user_version` is newer than this build knows is refused.
//! Nothing is ever deleted: the port has no purge, so expired codes and sessions stay
//! in the file until a later migration or tool removes them.

mod codec;
mod schema;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use latchkey_store::{AuditEvent, AuthCode, Counter, MemoryCounters, Redemption, Session, Store, StoreError, User};
use latchkey_token::UnixSeconds;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction};

use crate::codec::{code_columns, session_columns, store_error, user_columns};

/// How many read-only connections each store keeps. Reads are single indexed
/// lookups, so a few connections keep the server's threads from queueing on one.
const READERS: usize = 4;

/// How long a write waits for another connection or process to release the lock.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// The SQLite backend. Clones share the same connections; the store is `Send + Sync`
/// and meant to be opened once per process and cloned into every handler.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The only connection that writes, on its own thread, committing whatever is
    /// queued in one transaction (group commit, see `writer`): SQLite admits one
    /// writer at a time anyway, and one fsync then acknowledges many writes.
    writer: writer::Writer,
    readers: Vec<Mutex<Connection>>,
    /// Where the next reader search starts, so load spreads over the pool.
    next_reader: AtomicUsize,
    /// Abuse counters live in process memory, not in the file: they need no
    /// durability, and a write per rate-limited request would cost an fsync.
    counters: MemoryCounters,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file if it is missing and migrating
    /// its schema to the current version.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or created, its
    /// journal cannot be switched to WAL, or its schema is newer than this build;
    /// [`StoreError::Corrupt`] if it is not a SQLite database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, BUSY_TIMEOUT)
    }

    fn open_with(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        // Without URI parsing a path is always a path, whatever characters it has.
        let write_flags =
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer = connect(path, write_flags, busy_timeout)?;
        schema::migrate(&mut writer)?;
        // Readers are opened read-only so that a write routed to one by mistake fails
        // loudly instead of bypassing the writer's lock discipline.
        let read_flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let readers = (0..READERS)
            .map(|_| connect(path, read_flags, busy_timeout).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: writer::Writer::start(writer)?,
                readers,
                next_reader: AtomicUsize::new(0),
                counters: MemoryCounters::default(),
            }),
        })
    }

    /// How many write transactions (batches of queued writes, committed or not) the
    /// store has finished since it was opened; writes ÷ this is the group-commit factor.
    pub fn write_batches(&self) -> u64 {
        self.inner.writer.batches()
    }

    /// Runs `f` on a reader connection.
    fn read<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.reader()?;
        f(&conn).map_err(|e| store_error(context, e))
    }

    /// A free reader if there is one, else waits for one.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        let readers = &self.inner.readers;
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
        for conn in readers.iter().cycle().skip(start).take(readers.len()) {
            match conn.try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
            }
        }
        readers
            .get(start)
            .ok_or_else(|| StoreError::Unavailable("sqlite store has no reader connections".into()))?
            .lock()
            .map_err(|_| poisoned())
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer, with whatever other
    /// writes are queued (each in its own savepoint), and answers once that commit is
    /// durable; an error rolls back `f`'s changes only.
    async fn write<T: Send + 'static>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.writer.write(context, f).await
    }
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("sqlite connection lock poisoned".into())
}

/// Opens one connection and applies the per-connection settings the crate docs
/// explain.
fn connect(path: &Path, flags: OpenFlags, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let err = |e| store_error("opening the database", e);
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        // The path is configuration, not a secret, and the first thing an operator
        // needs when the file cannot be opened.
        match store_error("opening the database", e) {
            StoreError::Unavailable(msg) => StoreError::Unavailable(format!("{msg} ({})", path.display())),
            other => other,
        }
    })?;
    // Set first, so that switching the journal mode waits for other processes too.
    conn.busy_timeout(busy_timeout).map_err(err)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        // SQLite keeps the old mode when WAL is impossible (some network file
        // systems); the concurrency design above does not hold then.
        return Err(StoreError::Unavailable(format!("cannot use WAL journal mode on {} (got {mode})", path.display())));
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(err)?;
    // Reading the schema here surfaces a non-database file (`NotADatabase`) at open
    // rather than on the first request.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())).map_err(err)?;
    Ok(conn)
}

/// The session's columns in [`session_columns!`] order, with `version` given
/// separately because a swap stores its own.
fn session_params<'a>(s: &'a Session, enc: &'a Encoded, version: &'a u64) -> [&'a dyn ToSql; 18] {
    [
        &s.id,
        &enc.kind,
        &s.user_id,
        &s.client_id,
        &s.parent_id,
        &s.created_at,
        &s.authenticated_at,
        &enc.amr,
        &enc.scopes,
        &s.lifetime.lifetime_seconds,
        &s.lifetime.idle_timeout_seconds,
        &s.last_used_at,
        &s.revoked_at,
        &s.secret_hash,
        &enc.refresh,
        version,
        &s.user_agent,
        &s.ip,
    ]
}

/// The session fields stored as text of another shape (the kind's name, JSON lists),
/// encoded before the transaction starts so no encoding happens under the lock.
struct Encoded {
    kind: &'static str,
    amr: String,
    scopes: String,
    refresh: Option<String>,
}

impl Encoded {
    fn new(s: &Session) -> Result<Self, StoreError> {
        Ok(Self {
            kind: s.kind.as_str(),
            amr: codec::strings_json(&s.amr)?,
            scopes: codec::strings_json(&s.scopes)?,
            refresh: codec::refresh_json(s.refresh.as_ref())?,
        })
    }
}

/// Revokes every session of `user_id` and returns how many were not revoked before.
/// Already revoked sessions get their version bumped too, as in the reference
/// backend, so any swap prepared against them loses.
fn revoke_user(tx: &Transaction<'_>, user_id: &str, now: UnixSeconds) -> rusqlite::Result<u64> {
    let newly: u64 = tx
        .prepare_cached("SELECT count(*) FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL")?
        .query_row([user_id], |row| row.get(0))?;
    tx.prepare_cached(
        "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?2), version = version + 1 \
         WHERE user_id = ?1",
    )?
    .execute(rusqlite::params![user_id, now])?;
    Ok(newly)
}

impl Store for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let roles = codec::strings_json(&user.roles)?;
        let user = user.clone();
        self.write("create_user", move |tx| {
            tx.prepare_cached(concat!(
                "INSERT INTO users (",
                user_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(rusqlite::params![
                user.id,
                user.username,
                user.password_hash,
                user.disabled,
                user.disabled_reason,
                user.is_verified,
                roles,
                user.created_at,
            ])?;
            Ok(())
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.read("user_by_id", |conn| {
            conn.prepare_cached(concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1"))?
                .query_row([id], codec::user)
                .optional()
        })
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        // `=` on TEXT compares bytes (BINARY collation): usernames match exactly.
        self.read("user_by_username", |conn| {
            conn.prepare_cached(concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?1"))?
                .query_row([username], codec::user)
                .optional()
        })
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: bool,
        reason: Option<&str>,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        // An enabled user has no reason to be disabled; a stale one would mislead
        // operators.
        let reason = if disabled { reason.map(str::to_owned) } else { None };
        let id = id.to_owned();
        self.write("set_user_disabled", move |tx| {
            let changed = tx
                .prepare_cached("UPDATE users SET disabled = ?2, disabled_reason = ?3 WHERE id = ?1")?
                .execute(rusqlite::params![id, disabled, reason])?;
            if changed == 0 {
                return Ok(false);
            }
            if disabled {
                revoke_user(tx, &id, now)?;
            }
            Ok(true)
        })
        .await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let document = serde_json::to_string(event).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (cursor, at) = (event.cursor.clone(), event.at);
        self.write("append_audit", move |tx| {
            tx.prepare_cached("INSERT OR IGNORE INTO audit_events (cursor, at, document) VALUES (?1, ?2, ?3)")?
                .execute(rusqlite::params![cursor, at, document])?;
            Ok(())
        })
        .await
    }

    async fn audit_events(&self, after: &str, limit: usize, _now: UnixSeconds) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let documents = self.read("audit_events", |conn| {
            conn.prepare_cached("SELECT document FROM audit_events WHERE cursor > ?1 ORDER BY cursor LIMIT ?2")?
                .query_map(rusqlite::params![after, limit], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })?;
        documents
            .iter()
            .map(|d| serde_json::from_str(d).map_err(|e| StoreError::Corrupt(format!("audit event: {e}"))))
            .collect()
    }

    async fn key_ring(&self) -> Result<Option<(String, u64)>, StoreError> {
        self.read("key_ring", |conn| {
            conn.prepare_cached("SELECT document, version FROM key_ring WHERE id = 1")?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
    }

    async fn swap_key_ring(&self, document: &str, expected_version: u64) -> Result<bool, StoreError> {
        let document = document.to_owned();
        self.write("swap_key_ring", move |tx| {
            let changed = if expected_version == 0 {
                tx.prepare_cached("INSERT OR IGNORE INTO key_ring (id, document, version) VALUES (1, ?1, 1)")?
                    .execute([&document])?
            } else {
                tx.prepare_cached("UPDATE key_ring SET document = ?1, version = ?2 + 1 WHERE id = 1 AND version = ?2")?
                    .execute(rusqlite::params![document, expected_version])?
            };
            Ok(changed > 0)
        })
        .await
    }

    async fn replace_password_hash(&self, id: &str, current: &str, next: &str) -> Result<bool, StoreError> {
        let (id, current, next) = (id.to_owned(), current.to_owned(), next.to_owned());
        self.write("replace_password_hash", move |tx| {
            let changed = tx
                .prepare_cached("UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2")?
                .execute(rusqlite::params![id, current, next])?;
            Ok(changed > 0)
        })
        .await
    }

    async fn list_users(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, StoreError> {
        // The usernames that start with `prefix` are one run of the unique index, from
        // `prefix` on: seek there (or past the cursor) and stop at the first name that
        // no longer matches. `>` and `>=` on TEXT compare bytes (BINARY collation).
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let users = self.read("list_users", |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE username >= ?1 AND username > ?2 ORDER BY username LIMIT ?3"
            ))?
            .query_map(rusqlite::params![prefix, after.unwrap_or(""), limit], codec::user)?
            .collect::<rusqlite::Result<Vec<User>>>()
        })?;
        Ok(users.into_iter().take_while(|u| u.username.starts_with(prefix)).collect())
    }

    async fn delete_user(&self, id: &str, now: UnixSeconds) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write("delete_user", move |tx| {
            revoke_user(tx, &id, now)?;
            Ok(tx.prepare_cached("DELETE FROM users WHERE id = ?1")?.execute([&id])? > 0)
        })
        .await
    }

    async fn user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<Vec<Session>, StoreError> {
        let sessions = self.read("user_sessions", |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY created_at, id"
            ))?
            .query_map([user_id], codec::session)?
            .collect::<rusqlite::Result<Vec<Session>>>()
        })?;
        // Expiry is min(created + lifetime, last use + idle): decided by the record.
        Ok(sessions.into_iter().filter(|s| s.is_active(now)).collect())
    }

    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let enc = Encoded::new(session)?;
        let session = session.clone();
        self.write("create_session", move |tx| {
            tx.prepare_cached(concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                 ?16, ?17, ?18)"
            ))?
            .execute(session_params(&session, &enc, &session.version))?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.read("session", |conn| {
            conn.prepare_cached(concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = ?1"))?
                .query_row([id], codec::session)
                .optional()
        })
    }

    async fn session_with_user(&self, id: &str) -> Result<Option<(Session, Option<User>)>, StoreError> {
        // One statement is one read transaction: half the WAL-index locking of two
        // reads, which is most of what a resolve costs here.
        self.read("session_with_user", |conn| {
            conn.prepare_cached(concat!(
                "SELECT * FROM (SELECT ",
                session_columns!(),
                " FROM sessions WHERE id = ?1) AS s LEFT JOIN (SELECT ",
                user_columns!(),
                " FROM users) AS u ON u.id = s.user_id"
            ))?
            .query_row([id], codec::session_and_user)
            .optional()
        })
    }

    async fn swap_session(&self, next: &Session, expected_version: u64) -> Result<bool, StoreError> {
        // No stored version can be u64::MAX (versions are i64 in SQLite), so this
        // swap could never match.
        let Some(new_version) = expected_version.checked_add(1) else {
            return Ok(false);
        };
        let enc = Encoded::new(next)?;
        let next = next.clone();
        self.write("swap_session", move |tx| {
            let mut params = session_params(&next, &enc, &new_version).to_vec();
            params.push(&expected_version);
            // The whole record is replaced, as in the reference backend, except that
            // `last_used_at` keeps the later of the two: a rotation prepared before a
            // concurrent touch must not undo it.
            let changed = tx
                .prepare_cached(
                    "UPDATE sessions SET kind = ?2, user_id = ?3, client_id = ?4, \
                     parent_id = ?5, created_at = ?6, authenticated_at = ?7, amr = ?8, \
                     scopes = ?9, lifetime_seconds = ?10, idle_timeout_seconds = ?11, \
                     last_used_at = max(last_used_at, ?12), revoked_at = ?13, \
                     secret_hash = ?14, refresh = ?15, version = ?16, user_agent = ?17, \
                     ip = ?18 \
                     WHERE id = ?1 AND version = ?19 AND revoked_at IS NULL",
                )?
                .execute(&params[..])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn touch_session(&self, id: &str, at: UnixSeconds) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write("touch_session", move |tx| {
            tx.prepare_cached("UPDATE sessions SET last_used_at = ?2 WHERE id = ?1 AND last_used_at < ?2")?
                .execute(rusqlite::params![id, at])?;
            Ok(())
        })
        .await
    }

    async fn revoke_session(&self, id: &str, now: UnixSeconds) -> Result<(), StoreError> {
        // Children are one level deep (a browser session's token sessions), as in the
        // reference backend. The version bump on already revoked rows keeps the
        // operation idempotent in effect while still failing any swap in flight.
        let tombstone = Session::tombstone(id, now);
        let enc = Encoded::new(&tombstone)?;
        let id = id.to_owned();
        self.write("revoke_session", move |tx| {
            // An unknown id is recorded as revoked first (see the port docs).
            tx.prepare_cached(concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                 ?16, ?17, ?18) ON CONFLICT(id) DO NOTHING"
            ))?
            .execute(session_params(&tombstone, &enc, &tombstone.version))?;
            tx.prepare_cached(
                "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?2), \
                 version = version + 1 WHERE id = ?1 OR parent_id = ?1",
            )?
            .execute(rusqlite::params![id, now])?;
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixSeconds) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        self.write("revoke_user_sessions", move |tx| revoke_user(tx, &user_id, now)).await
    }

    async fn put_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        let scopes = codec::strings_json(&code.scopes)?;
        let amr = codec::strings_json(&code.amr)?;
        let code = code.clone();
        self.write("put_code", move |tx| {
            tx.prepare_cached(
                "INSERT INTO codes (hash, client_id, redirect_uri, user_id, \
                 browser_session_id, scopes, nonce, code_challenge, authenticated_at, amr, \
                 created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(rusqlite::params![
                code.hash,
                code.client_id,
                code.redirect_uri,
                code.user_id,
                code.browser_session_id,
                scopes,
                code.nonce,
                code.code_challenge,
                code.authenticated_at,
                amr,
                code.created_at,
                code.expires_at,
            ])?;
            Ok(())
        })
        .await
    }

    async fn redeem_code(&self, hash: &str, session_id: &str, now: UnixSeconds) -> Result<Redemption, StoreError> {
        // Read and bind under the write lock, so that of two processes redeeming the
        // same code exactly one sees it unbound.
        let (hash, session_id) = (hash.to_owned(), session_id.to_owned());
        self.write("redeem_code", move |tx| {
            let found = tx
                .prepare_cached(concat!("SELECT ", code_columns!(), " FROM codes WHERE hash = ?1"))?
                .query_row([&hash], codec::code)
                .optional()?;
            let Some((code, redeemed_by)) = found else {
                return Ok(Redemption::Unknown);
            };
            // A replay is reported even after expiry, as in the reference backend: the
            // session the first redemption created must still be revoked (RFC 6749
            // §4.1.2), and expiry does not make the replay less suspicious.
            if let Some(first) = redeemed_by {
                return Ok(Redemption::Replayed { session_id: first });
            }
            if now >= code.expires_at {
                return Ok(Redemption::Unknown);
            }
            tx.prepare_cached("UPDATE codes SET redeemed_session_id = ?2 WHERE hash = ?1")?
                .execute([&hash, &session_id])?;
            Ok(Redemption::Redeemed(code))
        })
        .await
    }

    async fn bump_counter(&self, key: &str, now: UnixSeconds, ttl: u64) -> Result<Counter, StoreError> {
        self.inner.counters.bump(key, now, ttl)
    }

    async fn counter(&self, key: &str, now: UnixSeconds) -> Result<Option<Counter>, StoreError> {
        self.inner.counters.get(key, now)
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        self.inner.counters.reset(key)
    }
}

#[cfg(test)]
mod tests;
