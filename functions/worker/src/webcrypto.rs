//! Token signatures checked by the runtime's WebCrypto (`crypto.subtle.verify`) instead
//! of the wasm code: in workerd it is 7 × faster for ES256 and 15 × for RS256
//! (`scripts/bench-worker`), and a first-seen bearer token is the resolver's one
//! expensive step. Only the signature is asked of WebCrypto; the token crate checks the
//! header before and the claims after.
//!
//! Imported keys are kept per isolate, by `kid`: a key set is fixed for the life of an
//! isolate (it comes from a secret binding). Anything WebCrypto cannot do (a key it
//! refuses to import, a runtime without Ed25519) is answered `None`, and the token
//! crate's own verifier decides instead.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use js_sys::{Array, Function, JSON, Promise, Reflect, Uint8Array};
use latchkey_token::jwt::{SignatureChecker, SignatureQuestion};
use latchkey_token::keys::Algorithm;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

thread_local! {
    static IMPORTED: RefCell<HashMap<String, JsValue>> = RefCell::new(HashMap::new());
}

/// The WebCrypto checker.
pub struct WebCrypto;

impl SignatureChecker for WebCrypto {
    fn check<'a>(&'a self, question: SignatureQuestion<'a>) -> Pin<Box<dyn Future<Output = Option<bool>> + 'a>> {
        Box::pin(async move { verify(&question).await.ok().flatten() })
    }
}

/// `importKey`'s and `verify`'s algorithm parameters, as JSON.
fn parameters(alg: Algorithm) -> (&'static str, &'static str) {
    match alg {
        Algorithm::Rs256 => (r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#, r#"{"name":"RSASSA-PKCS1-v1_5"}"#),
        Algorithm::Es256 => (r#"{"name":"ECDSA","namedCurve":"P-256"}"#, r#"{"name":"ECDSA","hash":"SHA-256"}"#),
        Algorithm::EdDsa => (r#"{"name":"Ed25519"}"#, r#"{"name":"Ed25519"}"#),
    }
}

fn subtle() -> Result<JsValue, JsValue> {
    Reflect::get(&Reflect::get(&js_sys::global(), &"crypto".into())?, &"subtle".into())
}

/// Calls `subtle[method](...args)` and awaits the promise it returns.
async fn call(subtle: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(subtle, &method.into())?.dyn_into()?;
    let promise: Promise = function.apply(subtle, &args.iter().collect::<Array>())?.dyn_into()?;
    JsFuture::from(promise).await
}

async fn key(subtle: &JsValue, question: &SignatureQuestion<'_>) -> Result<JsValue, JsValue> {
    let kid = question.key.kid();
    if let Some(key) = IMPORTED.with(|keys| keys.borrow().get(kid).cloned()) {
        return Ok(key);
    }
    let (import, _) = parameters(question.key.alg());
    let jwk = JSON::parse(&question.key.public_jwk().to_string())?;
    let usages: Array = [JsValue::from_str("verify")].into_iter().collect();
    let key =
        call(subtle, "importKey", &["jwk".into(), jwk, JSON::parse(import)?, false.into(), usages.into()]).await?;
    IMPORTED.with(|keys| keys.borrow_mut().insert(kid.to_owned(), key.clone()));
    Ok(key)
}

/// `Ok(Some(valid))`; `Ok(None)` or `Err` when WebCrypto gave no yes-or-no answer.
async fn verify(question: &SignatureQuestion<'_>) -> Result<Option<bool>, JsValue> {
    let subtle = subtle()?;
    let key = key(&subtle, question).await?;
    let (_, params) = parameters(question.key.alg());
    let signature = Uint8Array::from(question.signature);
    let data = Uint8Array::from(question.signing_input);
    let answer = call(&subtle, "verify", &[JSON::parse(params)?, key, signature.into(), data.into()]).await?;
    Ok(answer.as_bool())
}
