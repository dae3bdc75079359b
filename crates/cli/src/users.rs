//! `latchkey users`: account management on the local data directory. Safe while the
//! server runs: both use the same SQLite file, and each write is one transaction.

use latchkey_native::accounts;

use crate::datadir::DataDir;

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| e.to_string())?;
    Ok(rt.block_on(f))
}

pub fn add(dir: &DataDir, username: &str, verified: bool, roles: &[String]) -> Result<(), String> {
    let password = accounts::read_password()?;
    let store = dir.open_store()?;
    let id = block_on(accounts::add(&store, username, &password, verified, roles))??;
    println!("{id}");
    Ok(())
}

pub fn set_disabled(dir: &DataDir, username: &str, disabled: bool, reason: Option<&str>) -> Result<(), String> {
    let store = dir.open_store()?;
    block_on(accounts::set_disabled(&store, username, disabled, reason))?
}
