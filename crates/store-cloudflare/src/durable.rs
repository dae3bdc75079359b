//! The Durable Object class and the transport that calls it (wasm32 only).

use latchkey_store::StoreError;
use worker::{DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, State, durable_object};

use crate::client::Objects;
use crate::object::{Record, apply};
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
