//! Schema migrations, keyed on `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to version `i + 1`. Released
//! entries are never edited, only appended to: a file written by any earlier build must
//! upgrade by replaying exactly the steps it has not seen.

use rusqlite::{Connection, TransactionBehavior};

use latchkey_store::StoreError;

use crate::codec::store_error;

/// Version 1: the initial schema.
///
/// Tables are `STRICT` so that a value of the wrong type (written by hand, or by a
/// buggy tool) is refused on write instead of surfacing later as a decode error.
/// There are no foreign keys: the port lets a session name a user or parent that is
/// not stored (the reference backend does not check), and a constraint here would make
/// this backend refuse writes the others accept.
const V1: &str = "
CREATE TABLE users (
    id              TEXT NOT NULL PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    disabled        INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    disabled_reason TEXT,
    is_verified     INTEGER NOT NULL CHECK (is_verified IN (0, 1)),
    roles           TEXT NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id                   TEXT NOT NULL PRIMARY KEY,
    kind                 TEXT NOT NULL CHECK (kind IN ('browser', 'token')),
    user_id              TEXT NOT NULL,
    client_id            TEXT,
    parent_id            TEXT,
    created_at           INTEGER NOT NULL,
    authenticated_at     INTEGER NOT NULL,
    amr                  TEXT NOT NULL,
    scopes               TEXT NOT NULL,
    lifetime_seconds     INTEGER NOT NULL,
    idle_timeout_seconds INTEGER,
    last_used_at         INTEGER NOT NULL,
    revoked_at           INTEGER,
    secret_hash          TEXT,
    refresh              TEXT,
    version              INTEGER NOT NULL,
    user_agent           TEXT,
    ip                   TEXT
) STRICT;

-- Revoking a user's sessions and cascading a revocation to children must not scan
-- every session ever issued.
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_parent ON sessions (parent_id);

CREATE TABLE codes (
    hash                TEXT NOT NULL PRIMARY KEY,
    client_id           TEXT NOT NULL,
    redirect_uri        TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    browser_session_id  TEXT NOT NULL,
    scopes              TEXT NOT NULL,
    nonce               TEXT,
    code_challenge      TEXT,
    authenticated_at    INTEGER NOT NULL,
    amr                 TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    redeemed_session_id TEXT
) STRICT;
";

/// Version 2: the signing-key ring (one row; see `Store::key_ring`).
const V2: &str = "
CREATE TABLE key_ring (
    id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL,
    version  INTEGER NOT NULL
) STRICT;
";

/// Version 3: the audit stream (append-only; see `Store::append_audit`).
const V3: &str = "
CREATE TABLE audit_events (
    cursor   TEXT NOT NULL PRIMARY KEY,
    at       INTEGER NOT NULL,
    document TEXT NOT NULL
) STRICT;
";

const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The schema version this build writes.
pub(crate) const CURRENT_VERSION: usize = MIGRATIONS.len();

/// Brings the file up to [`CURRENT_VERSION`].
///
/// The version is read inside a `BEGIN IMMEDIATE` transaction so that two processes
/// opening a fresh file at once cannot both apply version 1; `user_version` lives in
/// the database header, so it commits or rolls back together with the DDL.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let err = |e| store_error("migrating schema", e);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(err)?;
    let found = usize::try_from(found)
        .map_err(|_| StoreError::Corrupt(format!("schema version {found} is not a Latchkey version")))?;
    if found > CURRENT_VERSION {
        // An older build must not write to a schema whose invariants it does not know.
        return Err(StoreError::Unavailable(format!(
            "database schema version {found} is newer than this build supports \
             ({CURRENT_VERSION}); upgrade Latchkey"
        )));
    }
    for (applied, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", applied + 1).map_err(err)?;
    }
    tx.commit().map_err(err)
}
