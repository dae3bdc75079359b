//! The audit stream: security events (sign-ins, tokens issued, refresh-token reuse,
//! revocations, admin actions), each with its request id, client, user, address and
//! user agent, appended to the store ([`Store::append_audit`]) and written as a log
//! line (target `latchkey::audit`) for the platform's log pipeline.
//!
//! An event is written after the action it records has been stored. If the audit
//! write fails, the action stands and the request is answered as it would be: the
//! failure is logged at error level with the event, so the log keeps what the store
//! could not. Nothing here ever holds a token, cookie, code or password.

use bytes::Bytes;
use http::Request;
use latchkey_store::{AuditEvent, Store};

use crate::{App, ClientAddr, request};

/// The request id of a request, set by [`App::handle`] as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Who made an admin request, for its audit events: `admin:<sub>` for an operator's
/// JWT (already verified by the admin API), else `admin:key`.
fn admin_actor(req: &Request<Bytes>) -> String {
    let sub = match request::authorization(req.headers()) {
        request::Authorization::Bearer(token) if token.split('.').count() == 3 => token
            .split('.')
            .nth(1)
            .and_then(|p| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("sub").and_then(|s| s.as_str()).map(|s| s.chars().take(128).collect::<String>())),
        _ => None,
    };
    match sub {
        Some(s) => format!("admin:{s}"),
        None => "admin:key".into(),
    }
}

/// Who and what an event is about, beyond the request.
#[derive(Default)]
pub(crate) struct About<'a> {
    pub client_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub detail: Option<String>,
}

impl<S: Store> App<S> {
    /// Records `event` (see the module docs).
    pub(crate) async fn audit(&self, req: &Request<Bytes>, event: &'static str, about: About<'_>) {
        let at = self.now();
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        // Admin actions name who did them: an admin JWT's subject, or "admin key".
        let client_id = match about.client_id {
            Some(c) => Some(c.to_owned()),
            None if event.starts_with("admin.") => Some(admin_actor(req)),
            None => None,
        };
        let n = self.audit_counter.get().wrapping_add(1);
        self.audit_counter.set(n);
        let record = AuditEvent {
            cursor: format!("{at:010}-{}-{n}", request_id.as_deref().unwrap_or("none")),
            at,
            event: event.to_owned(),
            request_id,
            client_id,
            user_id: about.user_id.map(str::to_owned),
            ip: req.extensions().get::<ClientAddr>().map(|a| a.0.clone()),
            user_agent: request::header_text(req.headers(), "user-agent").map(|v| v.chars().take(256).collect()),
            detail: about.detail,
        };
        tracing::info!(
            target: "latchkey::audit",
            event,
            client_id = record.client_id.as_deref().unwrap_or_default(),
            user_id = record.user_id.as_deref().unwrap_or_default(),
            ip = record.ip.as_deref().unwrap_or_default(),
            detail = record.detail.as_deref().unwrap_or_default(),
            "audit"
        );
        if let Err(e) = self.store.append_audit(&record).await {
            tracing::error!(target: "latchkey::audit", event, cursor = %record.cursor, error = %e, "audit event not stored");
        }
    }
}
