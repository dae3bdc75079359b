//! The account commands shared by the native operator CLIs (`latchkey users` on the
//! local data directory, `latchkey-aws users` on a DynamoDB table), over any store.

use std::io::BufRead;

use latchkey_store::{Store, StoreError, User};
use latchkey_token::Clock;

use crate::{OsEntropy, SystemClock};

/// Reads the password from the first line of stdin (never from an argument, which
/// other users could see in the process list).
///
/// # Errors
/// A message if stdin cannot be read or the password is empty, shorter than 8 or
/// longer than 1024 characters.
pub fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        return Err("the password (first line of stdin) is empty".into());
    }
    if pw.chars().count() < 8 || pw.len() > 1024 {
        return Err("the password must be 8 to 1024 characters long".into());
    }
    Ok(pw)
}

/// Creates a user with an argon2id hash of `password`; returns the new user's id.
///
/// # Errors
/// A message for an invalid username, a taken username or a store failure.
pub async fn add<S: Store>(
    store: &S,
    username: &str,
    password: &str,
    verified: bool,
    roles: &[String],
) -> Result<String, String> {
    let user = User::with_password(&OsEntropy, SystemClock.now(), username, password, verified, roles.to_vec())?;
    store.create_user(&user).await.map_err(|e| match e {
        StoreError::Conflict(_) => format!("a user named {username:?} already exists"),
        other => other.to_string(),
    })?;
    Ok(user.id)
}

/// Disables (revoking every session) or enables the user named `username`.
///
/// # Errors
/// A message if there is no such user or the store fails.
pub async fn set_disabled<S: Store>(
    store: &S,
    username: &str,
    disabled: bool,
    reason: Option<&str>,
) -> Result<(), String> {
    let user = store.user_by_username(username).await.map_err(|e| e.to_string())?;
    let user = user.ok_or_else(|| format!("no user named {username:?}"))?;
    store.set_user_disabled(&user.id, disabled, reason, SystemClock.now()).await.map_err(|e| e.to_string())?;
    if disabled {
        eprintln!("disabled {username}; all of their sessions are revoked");
    } else {
        eprintln!("enabled {username}");
    }
    Ok(())
}
