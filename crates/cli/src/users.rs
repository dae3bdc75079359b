//! `latchkey users`: account management on the local data directory. Safe while the
//! server runs: both use the same SQLite file, and each write is one transaction.

use std::io::BufRead;

use latchkey_store::{Store, User};
use latchkey_token::{Clock, password, secret};

use crate::datadir::DataDir;
use crate::runtime::{OsEntropy, SystemClock};

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| e.to_string())?;
    Ok(rt.block_on(f))
}

/// Reads the password from the first line of stdin (never from an argument, which
/// other users could see in the process list).
fn read_password() -> Result<String, String> {
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

pub fn add(dir: &DataDir, username: &str, verified: bool, roles: &[String]) -> Result<(), String> {
    if username.is_empty() || username.len() > 256 || username.chars().any(char::is_control) {
        return Err("the username must be 1 to 256 characters without control characters".into());
    }
    let password = read_password()?;
    let store = dir.open_store()?;
    let hash = password::hash(&OsEntropy, &password).ok_or("password hashing failed")?;
    let user = User {
        id: secret::random_uuid(&OsEntropy),
        username: username.to_owned(),
        password_hash: hash,
        disabled: false,
        disabled_reason: None,
        is_verified: verified,
        roles: roles.to_vec(),
        created_at: SystemClock.now(),
    };
    block_on(store.create_user(&user))?.map_err(|e| match e {
        latchkey_store::StoreError::Conflict(_) => {
            format!("a user named {username:?} already exists")
        }
        other => other.to_string(),
    })?;
    println!("{}", user.id);
    Ok(())
}

pub fn set_disabled(dir: &DataDir, username: &str, disabled: bool, reason: Option<&str>) -> Result<(), String> {
    let store = dir.open_store()?;
    let user = block_on(store.user_by_username(username))?.map_err(|e| e.to_string())?;
    let user = user.ok_or_else(|| format!("no user named {username:?}"))?;
    block_on(store.set_user_disabled(&user.id, disabled, reason, SystemClock.now()))?.map_err(|e| e.to_string())?;
    if disabled {
        eprintln!("disabled {username}; all of their sessions are revoked");
    } else {
        eprintln!("enabled {username}");
    }
    Ok(())
}
