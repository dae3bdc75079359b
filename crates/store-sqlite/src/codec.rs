//! Rows to records and rusqlite errors to [`StoreError`].

use std::fmt;

use latchkey_store::{AuthCode, Session, SessionKind, StoreError, User};
use latchkey_token::expiry::Lifetime;
use latchkey_token::refresh::RefreshState;
use rusqlite::types::Type;
use rusqlite::{ErrorCode, Row, ffi};

/// Maps a rusqlite error to the port's error. `context` names the operation.
///
/// Messages are built from SQLite's own messages, which name tables and columns but
/// never bound values, and from [`Undecodable`], which describes a bad value without
/// quoting it; so no message carries a hash, a password hash or any other stored value.
pub(crate) fn store_error(context: &'static str, e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(f, _)
            if f.code == ErrorCode::ConstraintViolation
                && matches!(f.extended_code, ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
        {
            StoreError::Conflict(format!("{context}: {e}"))
        }
        // A damaged file is stored data that cannot be decoded, not a transient
        // outage; retrying will not help, an operator must restore it.
        E::SqliteFailure(f, _) if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt(format!("{context}: {e}"))
        }
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(..) => StoreError::Corrupt(format!("{context}: {e}")),
        _ => StoreError::Unavailable(format!("{context}: {e}")),
    }
}

/// Why a stored value could not be decoded, without the value itself.
#[derive(Debug)]
struct Undecodable {
    column: &'static str,
    why: String,
}

impl fmt::Display for Undecodable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.column, self.why)
    }
}

impl std::error::Error for Undecodable {}

fn undecodable(idx: usize, column: &'static str, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(Undecodable { column, why }))
}

/// serde_json's messages can quote the offending input, which may be a hash; keep
/// only the category and the position.
fn json_error(idx: usize, column: &'static str, e: &serde_json::Error) -> rusqlite::Error {
    undecodable(
        idx,
        column,
        format!("invalid JSON ({:?} error at line {} column {})", e.classify(), e.line(), e.column()),
    )
}

fn strings(row: &Row<'_>, idx: usize, column: &'static str) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| json_error(idx, column, &e))
}

/// Encodes a string list column. Serialising strings cannot fail, but the error path
/// stays a value rather than a panic.
pub(crate) fn strings_json(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(|_| StoreError::Unavailable("encoding a string list failed".into()))
}

pub(crate) fn refresh_json(state: Option<&RefreshState>) -> Result<Option<String>, StoreError> {
    state
        .map(serde_json::to_string)
        .transpose()
        .map_err(|_| StoreError::Unavailable("encoding refresh state failed".into()))
}

/// The `users` columns in the order [`user`] reads them. A macro so that queries
/// are built with `concat!` at compile time.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, disabled, disabled_reason, is_verified, roles, created_at"
    };
}
pub(crate) use user_columns;

pub(crate) fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    user_at(row, 0)
}

/// A user whose [`user_columns!`] start at column `at` (after a session's, in a join).
pub(crate) fn user_at(row: &Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(at)?,
        username: row.get(at + 1)?,
        password_hash: row.get(at + 2)?,
        disabled: row.get(at + 3)?,
        disabled_reason: row.get(at + 4)?,
        is_verified: row.get(at + 5)?,
        roles: strings(row, at + 6, "users.roles")?,
        created_at: row.get(at + 7)?,
    })
}

/// How many columns [`session_columns!`] names.
pub(crate) const SESSION_COLUMNS: usize = 18;

/// A session and, when the join found one, its user.
pub(crate) fn session_and_user(row: &Row<'_>) -> rusqlite::Result<(Session, Option<User>)> {
    let session = session(row)?;
    let user_id: Option<String> = row.get(SESSION_COLUMNS)?;
    let user = user_id.map(|_| user_at(row, SESSION_COLUMNS)).transpose()?;
    Ok((session, user))
}

/// The `sessions` columns in the order [`session`] reads them.
macro_rules! session_columns {
    () => {
        "id, kind, user_id, client_id, parent_id, created_at, authenticated_at, amr, scopes, \
         lifetime_seconds, idle_timeout_seconds, last_used_at, revoked_at, secret_hash, \
         refresh, version, user_agent, ip"
    };
}
pub(crate) use session_columns;

pub(crate) fn session(row: &Row<'_>) -> rusqlite::Result<Session> {
    let kind: String = row.get(1)?;
    let kind =
        SessionKind::parse(&kind).ok_or_else(|| undecodable(1, "sessions.kind", "unknown session kind".into()))?;
    let refresh: Option<String> = row.get(14)?;
    let refresh = refresh
        .map(|text| serde_json::from_str(&text).map_err(|e| json_error(14, "sessions.refresh", &e)))
        .transpose()?;
    Ok(Session {
        id: row.get(0)?,
        kind,
        user_id: row.get(2)?,
        client_id: row.get(3)?,
        parent_id: row.get(4)?,
        created_at: row.get(5)?,
        authenticated_at: row.get(6)?,
        amr: strings(row, 7, "sessions.amr")?,
        scopes: strings(row, 8, "sessions.scopes")?,
        lifetime: Lifetime { lifetime_seconds: row.get(9)?, idle_timeout_seconds: row.get(10)? },
        last_used_at: row.get(11)?,
        revoked_at: row.get(12)?,
        secret_hash: row.get(13)?,
        refresh,
        version: row.get(15)?,
        user_agent: row.get(16)?,
        ip: row.get(17)?,
    })
}

/// The `codes` columns in the order [`code`] reads them, `redeemed_session_id` last.
macro_rules! code_columns {
    () => {
        "hash, client_id, redirect_uri, user_id, browser_session_id, scopes, nonce, \
         code_challenge, authenticated_at, amr, created_at, expires_at, redeemed_session_id"
    };
}
pub(crate) use code_columns;

pub(crate) fn code(row: &Row<'_>) -> rusqlite::Result<(AuthCode, Option<String>)> {
    let code = AuthCode {
        hash: row.get(0)?,
        client_id: row.get(1)?,
        redirect_uri: row.get(2)?,
        user_id: row.get(3)?,
        browser_session_id: row.get(4)?,
        scopes: strings(row, 5, "codes.scopes")?,
        nonce: row.get(6)?,
        code_challenge: row.get(7)?,
        authenticated_at: row.get(8)?,
        amr: strings(row, 9, "codes.amr")?,
        created_at: row.get(10)?,
        expires_at: row.get(11)?,
    };
    Ok((code, row.get(12)?))
}
