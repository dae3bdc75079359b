//! Latchkey on Cloudflare Workers: the shared core (`latchkey-endpoints`) compiled to
//! wasm32 and served by one Worker, with every record in a Durable Object
//! (`latchkey-store-cloudflare`).
//!
//! One Worker serves every path, the resolver included. The resolver is not split into
//! a Worker of its own: its bundle would hold the same JWT verification, session and
//! user lookups and configuration parser, so a split saves little of the upload (the
//! measured sizes are in the README), while it would need a second deployment, a
//! cross-script Durable Object binding and two copies of the configuration to keep in
//! step. Workers start isolates per script, so one script also means one warm isolate
//! serves login, refresh and resolve alike.
//!
//! Bindings (see `infra/cloudflare/wrangler.toml`):
//!
//! * `LATCHKEY_CONFIG` (variable): the `latchkey.yaml` text; `LATCHKEY_PUBLIC_ORIGIN`
//!   and `LATCHKEY_COOKIE_DOMAIN` (variables) override `http.public_origin` and
//!   `http.cookie_domain`;
//! * `LATCHKEY_SECRETS` (secret, `wrangler secret put`): the `latchkey.secrets.yaml`
//!   text (signing keys, client secrets, admin key hashes);
//! * `LATCHKEY_ADMIN_KEY_SHA256` (secret, optional): SHA-256 (hex) of one more admin
//!   API key, beside the secrets document's `admin.key_hashes`; with neither, the admin
//!   API is off;
//! * `LATCHKEY_OBJECTS`: the Durable Object namespace of [`LatchkeyObject`];
//! * `LATCHKEY_LOG` (variable, optional): `error`, `warn`, `info` (default), `debug`.
//!
//! They are read once per isolate, on its first request; an isolate that cannot load
//! them answers 503 with `Retry-After` (and logs why) until it can. Time comes from
//! `Date.now()` and randomness from `crypto.getRandomValues`, the only places here that
//! read either. Logs are JSON lines on the console (Workers Logs, `wrangler tail`),
//! one access line per request, and never contain a token, cookie, code or password.

#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod webcrypto;

#[cfg(target_arch = "wasm32")]
pub use latchkey_store_cloudflare::LatchkeyObject;
