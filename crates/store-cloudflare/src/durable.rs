//! The Durable Object class and the transport that calls it (wasm32 only).

use latchkey_store::StoreError;
use worker::{
    DurableObject, Env, ListOptions, Method, ObjectNamespace, Request, RequestInit, Response, State, durable_object,
};

use crate::client::Objects;
use crate::object::{DIRECTORY_KEY_PREFIX, Record, apply, is_directory_command};
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
        if is_directory_command(&command) {
            return Response::from_json(&directory(&storage, command).await?);
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

/// Applies a `directory:` command: one storage operation over the object's
/// per-name entries (see [`crate::object::DIRECTORY`]).
async fn directory(storage: &worker::Storage, command: Command) -> worker::Result<Reply> {
    match command {
        Command::ListName { username, user_id } => {
            storage.put(&format!("{DIRECTORY_KEY_PREFIX}{username}"), user_id).await?;
            Ok(Reply::Ok)
        }
        Command::UnlistName { username } => {
            storage.delete(&format!("{DIRECTORY_KEY_PREFIX}{username}")).await?;
            Ok(Reply::Ok)
        }
        Command::ListNames { prefix, after, limit } => {
            let prefix = format!("{DIRECTORY_KEY_PREFIX}{prefix}");
            // `start` is inclusive: from the cursor itself, which is then skipped.
            let start = after.as_ref().map(|a| format!("{DIRECTORY_KEY_PREFIX}{a}"));
            let mut options = ListOptions::new().prefix(&prefix).limit(limit.saturating_add(1));
            if let Some(start) = start.as_deref().filter(|s| *s > prefix.as_str()) {
                options = options.start(start);
            }
            let map = storage.list_with_options(options).await?;
            let mut names = Vec::new();
            for entry in map.entries() {
                let pair: worker::js_sys::Array = entry?.into();
                let (Some(key), Some(id)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
                    return Err(worker::Error::RustError("a directory entry is not a string pair".into()));
                };
                let name = key.strip_prefix(DIRECTORY_KEY_PREFIX).unwrap_or(&key).to_owned();
                if after.as_deref().is_some_and(|a| name.as_str() <= a) {
                    continue;
                }
                names.push((name, id));
            }
            names.truncate(limit);
            Ok(Reply::Names { names })
        }
        other => Err(worker::Error::RustError(format!("not a directory command: {other:?}"))),
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
