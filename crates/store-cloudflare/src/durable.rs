//! The Durable Object class and the transport that calls it (wasm32 only).

use latchkey_store::StoreError;
use worker::{
    DurableObject, Env, ListOptions, Method, ObjectNamespace, Request, RequestInit, Response, State, durable_object,
};

use crate::client::Objects;
use crate::object::{
    AUDIT_KEY_PREFIX, AUDIT_RETENTION_SECONDS, DIRECTORY_KEY_PREFIX, Record, apply, is_entries_command,
};
use crate::protocol::{Command, Reply};

/// The storage key of an object's record.
const RECORD: &str = "record";

/// One record of Latchkey's state (see the crate docs for the kinds).
#[durable_object(alarm)]
pub struct LatchkeyObject {
    state: State,
}

impl DurableObject for LatchkeyObject {
    fn new(state: State, _env: Env) -> Self {
        LatchkeyObject { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let command: Command = match req.json().await {
            Ok(c) => c,
            Err(e) => return Response::error(format!("bad command: {e}"), 400),
        };
        let storage = self.state.storage();
        if is_entries_command(&command) {
            return Response::from_json(&entries(&storage, command).await?);
        }
        let mut record: Record = storage.get(RECORD).await?.unwrap_or_default();
        let (reply, effect) = apply(&mut record, command);
        if effect.write {
            if record.is_empty() {
                storage.delete_all().await?;
            } else {
                storage.put(RECORD, &record).await?;
            }
        }
        if let Some(seconds) = effect.expire_in {
            let ms = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
            storage.set_alarm(ms).await?;
        }
        Response::from_json(&reply)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        // The record's lifetime is over: delete it (and with it, the object's storage).
        self.state.storage().delete_all().await?;
        Response::ok("expired")
    }
}

/// Up to `limit` entries under `prefix` whose keys sort after `prefix + after`.
async fn list_after(
    storage: &worker::Storage,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> worker::Result<Vec<(String, String)>> {
    // `start` is inclusive: from the cursor itself, which is then skipped.
    let start = after.map(|a| format!("{prefix}{a}"));
    let mut options = ListOptions::new().prefix(prefix).limit(limit.saturating_add(1));
    if let Some(start) = start.as_deref() {
        options = options.start(start);
    }
    let map = storage.list_with_options(options).await?;
    let mut found = Vec::new();
    for entry in map.entries() {
        let pair: worker::js_sys::Array = entry?.into();
        let (Some(key), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            return Err(worker::Error::RustError("a storage entry is not a string pair".into()));
        };
        let key = key.strip_prefix(prefix).unwrap_or(&key).to_owned();
        if after.is_some_and(|a| key.as_str() <= a) {
            continue;
        }
        found.push((key, value));
    }
    found.truncate(limit);
    Ok(found)
}

/// Applies a command of an object that keeps one storage entry per item: the
/// directory (see [`crate::object::DIRECTORY`]) and the audit objects.
async fn entries(storage: &worker::Storage, command: Command) -> worker::Result<Reply> {
    match command {
        Command::AppendAudit { event } => {
            let json = serde_json::to_string(&event).map_err(|e| worker::Error::RustError(e.to_string()))?;
            storage.put(&format!("{AUDIT_KEY_PREFIX}{}", event.cursor), json).await?;
            // The whole object goes once its day is past the retention.
            let ms =
                i64::try_from(AUDIT_RETENTION_SECONDS.saturating_add(86_400).saturating_mul(1000)).unwrap_or(i64::MAX);
            if storage.get_alarm().await?.is_none() {
                storage.set_alarm(ms).await?;
            }
            Ok(Reply::Ok)
        }
        Command::ListAudit { after, limit } => {
            let mut events = Vec::new();
            for (_, json) in list_after(storage, AUDIT_KEY_PREFIX, Some(&after), limit).await? {
                events.push(serde_json::from_str(&json).map_err(|e| worker::Error::RustError(e.to_string()))?);
            }
            Ok(Reply::AuditEvents { events })
        }
        Command::ListName { username, user_id } => {
            storage.put(&format!("{DIRECTORY_KEY_PREFIX}{username}"), user_id).await?;
            Ok(Reply::Ok)
        }
        Command::UnlistName { username } => {
            storage.delete(&format!("{DIRECTORY_KEY_PREFIX}{username}")).await?;
            Ok(Reply::Ok)
        }
        Command::ListNames { prefix, after, limit } => {
            // Keys are `n:<name>`: list those under `n:<prefix>`, after the cursor's
            // remainder when the cursor is inside the prefix.
            let key_prefix = format!("{DIRECTORY_KEY_PREFIX}{prefix}");
            let start_after = match after.as_deref() {
                None => None,
                Some(a) if a.starts_with(prefix.as_str()) => Some(&a[prefix.len()..]),
                Some(a) if a < prefix.as_str() => None,
                // Past every name under the prefix.
                Some(_) => return Ok(Reply::Names { names: Vec::new() }),
            };
            let found = list_after(storage, &key_prefix, start_after, limit).await?;
            Ok(Reply::Names { names: found.into_iter().map(|(rest, id)| (format!("{prefix}{rest}"), id)).collect() })
        }
        other => Err(worker::Error::RustError(format!("not an entries command: {other:?}"))),
    }
}

/// The [`Objects`] transport over the Durable Object namespace binding.
#[derive(Clone)]
pub struct Namespace(pub ObjectNamespace);

fn unavailable(what: &str, e: worker::Error) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

impl Objects for Namespace {
    async fn call(&self, name: &str, command: &Command) -> Result<Reply, StoreError> {
        let stub = self.0.get_by_name(name).map_err(|e| unavailable("Durable Object stub", e))?;
        let body = serde_json::to_string(command).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let req = Request::new_with_init("https://latchkey-object/", &init)
            .map_err(|e| unavailable("Durable Object request", e))?;
        let mut resp = stub.fetch_with_request(req).await.map_err(|e| unavailable("Durable Object", e))?;
        if resp.status_code() != 200 {
            let text = resp.text().await.unwrap_or_default();
            return Err(StoreError::Unavailable(format!("Durable Object answered {}: {text}", resp.status_code())));
        }
        resp.json().await.map_err(|e| unavailable("Durable Object reply", e))
    }
}
