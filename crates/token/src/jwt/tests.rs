use super::*;
use crate::keys::{KeyError, KeySet};
use serde_json::Value;

fn jwk(text: String) -> Value {
    serde_json::from_str(&text).unwrap()
}

fn rsa_set(kid: &str) -> KeySet {
    let pair = RS256KeyPair::generate(2048).unwrap().with_key_id(kid);
    KeySet::from_private_jwks(&[jwk(pair.to_jwk())]).unwrap()
}

fn registered(now: u64) -> Registered<'static> {
    Registered {
        issuer: "https://id.example.com",
        audience: "https://id.example.com",
        subject: "user-1",
        issued_at: now,
        lifetime_seconds: 300,
        jwt_id: Some("j".into()),
        nonce: None,
    }
}

fn expect(now: u64) -> Expectations<'static> {
    Expectations {
        issuer: "https://id.example.com",
        audience: Some("https://id.example.com"),
        now,
        tolerance_seconds: 60,
    }
}

fn access_claims() -> AccessClaims {
    AccessClaims {
        client_id: "demo".into(),
        scope: "openid".into(),
        auth_time: Some(1),
        amr: vec!["pwd".into()],
        sid: Some("s1".into()),
        user: Some(UserClaims::default()),
    }
}

#[test]
fn every_algorithm_signs_and_verifies() {
    let es = ES256KeyPair::generate().with_key_id("es");
    let ed = Ed25519KeyPair::generate().with_key_id("ed");
    for set in [
        rsa_set("rs"),
        KeySet::from_private_jwks(&[jwk(es.to_jwk())]).unwrap(),
        KeySet::from_private_jwks(&[jwk(ed.to_jwk())]).unwrap(),
    ] {
        let token = set.sign_access_token(&registered(1000), access_claims()).unwrap();
        let v = set.verify_access_token(&token, &expect(1100)).unwrap();
        assert_eq!(v.subject, "user-1");
        assert_eq!(v.claims, access_claims());
        assert_eq!(v.expires_at, 1300);
        let jwks = set.jwks();
        let published = &jwks["keys"][0];
        assert_eq!(published["use"], "sig");
        assert!(published.get("d").is_none(), "private material must never be published");
    }
}

#[test]
fn header_and_payload_shape() {
    use base64::Engine;
    let set = rsa_set("k1");
    let token = set.sign_access_token(&registered(1000), access_claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let dec = |s: &str| -> Value {
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap()
    };
    let header = dec(parts[0]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], "k1");
    let payload = dec(parts[1]);
    assert_eq!(payload["aud"], serde_json::json!(["https://id.example.com"]));
    assert_eq!(payload["sid"], "s1");
    assert_eq!(payload["https://authgear.com/claims/user/roles"], serde_json::json!([]));
}

#[test]
fn time_is_checked_with_the_tolerance() {
    let set = rsa_set("k1");
    let token = set.sign_access_token(&registered(1000), access_claims()).unwrap();
    assert!(set.verify_access_token(&token, &expect(1300 + 59)).is_ok());
    assert!(set.verify_access_token(&token, &expect(1300 + 61)).is_err());
    // Issued in the future beyond the tolerance.
    assert!(set.verify_access_token(&token, &expect(1000 - 61)).is_err());
}

#[test]
fn wrong_issuer_audience_key_or_type_is_rejected() {
    let set = rsa_set("k1");
    let token = set.sign_access_token(&registered(1000), access_claims()).unwrap();
    let mut e = expect(1100);
    e.issuer = "https://evil.example.com";
    assert!(set.verify_access_token(&token, &e).is_err());
    let mut e = expect(1100);
    e.audience = Some("https://other.example.com");
    assert!(set.verify_access_token(&token, &e).is_err());
    // Same kid, different key material: signature fails.
    assert!(rsa_set("k1").verify_access_token(&token, &expect(1100)).is_err());
    assert_eq!(rsa_set("k2").verify_access_token(&token, &expect(1100)).unwrap_err(), TokenError::UnknownKey);
    let id =
        set.sign_id_token(&registered(1000), IdClaims { auth_time: 1, sid: "s".into(), ..Default::default() }).unwrap();
    assert_eq!(set.verify_access_token(&id, &expect(1100)).unwrap_err(), TokenError::WrongType);
    assert_eq!(set.verify_access_token("not.a.jwt", &expect(1100)).unwrap_err(), TokenError::Malformed);
}

#[test]
fn alg_none_is_rejected() {
    let set = rsa_set("k1");
    let token = set.sign_access_token(&registered(1000), access_claims()).unwrap();
    use base64::Engine;
    let header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#);
    let payload = token.split('.').nth(1).unwrap();
    let forged = format!("{header}.{payload}.");
    assert!(set.verify_access_token(&forged, &expect(1100)).is_err());
}

#[test]
fn bad_keys_are_named() {
    assert_eq!(KeySet::from_private_jwks(&[]).unwrap_err(), KeyError::Empty);
    let err = KeySet::from_private_jwks(&[serde_json::json!({"kty": "oct", "k": "AAAA"})]).unwrap_err();
    assert!(matches!(err, KeyError::Invalid { index: 0, .. }));
    let es = jwk(ES256KeyPair::generate().with_key_id("same").to_jwk());
    let err = KeySet::from_private_jwks(&[es.clone(), es]).unwrap_err();
    assert!(matches!(err, KeyError::DuplicateKid { index: 1, .. }));
}

#[test]
fn authgear_created_at_member_is_accepted() {
    let mut key = jwk(ES256KeyPair::generate().with_key_id("k").to_jwk());
    key["created_at"] = serde_json::json!(1700000000);
    key["use"] = serde_json::json!("sig");
    assert!(KeySet::from_private_jwks(&[key]).is_ok());
}

/// A checker that answers what it is told to, and counts its questions.
struct Scripted(Option<bool>, std::cell::Cell<u32>);

impl SignatureChecker for Scripted {
    fn check<'a>(
        &'a self,
        question: SignatureQuestion<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<bool>> + 'a>> {
        assert_eq!(question.key.kid(), "k1");
        assert_eq!(question.signature.len(), 256, "the decoded RS256 signature");
        self.1.set(self.1.get() + 1);
        let answer = self.0;
        Box::pin(async move { answer })
    }
}

#[test]
fn an_outside_checker_decides_the_signature_and_nothing_else() {
    let set = rsa_set("k1");
    let token = set.sign_access_token(&registered(1000), access_claims()).unwrap();
    let verify = |answer: Option<bool>, token: &str, now: u64| {
        let checker = Scripted(answer, std::cell::Cell::new(0));
        let result = pollster::block_on(set.verify_access_token_with(token, &expect(now), &checker));
        (result, checker.1.get())
    };
    let (ok, asked) = verify(Some(true), &token, 1100);
    assert_eq!((ok.unwrap().claims, asked), (access_claims(), 1));
    assert!(verify(Some(false), &token, 1100).0.is_err(), "the checker's no is final");
    assert!(verify(Some(true), &token, 5000).0.is_err(), "claims are still checked: expired");
    let (rejected, asked) = verify(Some(true), "not.a.token", 1100);
    assert!(rejected.is_err() && asked == 0, "header checks run before the checker");
    // No answer: the built-in backend decides, both ways.
    assert!(verify(None, &token, 1100).0.is_ok());
    // Another token's payload under this token's signature.
    let other = set.sign_access_token(&registered(1001), access_claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
    assert_eq!(verify(None, &spliced, 1100).0.unwrap_err(), TokenError::Rejected("invalid signature".into()));
}
