//! `params`: the strict request parser. `Params::parse` and `Params::merge` on
//! arbitrary bytes, and `request::cookie`, `request::authorization`, `request::is_form`
//! on arbitrary header values (values `HeaderValue::from_bytes` rejects never reach the
//! service, so they are skipped).
//!
//! Invariants: nothing panics; `pairs()` never holds a name twice (also after a merge);
//! `get` agrees with `pairs`; form-encoding the pairs and parsing again gives them back;
//! a cookie value never contains ';' or surrounding quotes; `Authorization::None` only
//! without the header; a bearer token is non-empty and trimmed.

use std::collections::HashSet;

use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use latchkey_endpoints::request::{Authorization, BadParams, Params, authorization, cookie, header_text, is_form};

fn check_params(raw: &[u8]) -> Option<Params> {
    let params = Params::parse(raw).ok()?;
    let mut names = HashSet::new();
    for (name, value) in params.pairs() {
        assert!(names.insert(name.as_str()), "duplicate name {name:?} in pairs() of {raw:?}");
        let expected = (!value.is_empty()).then_some(value.as_str());
        assert_eq!(params.get(name), expected, "get({name:?}) disagrees with pairs()");
    }
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(params.pairs()).finish();
    let again = Params::parse(encoded.as_bytes()).unwrap_or_else(|e| panic!("re-parsing {encoded:?}: {e:?}"));
    assert_eq!(again.pairs(), params.pairs(), "form-encoding round trip of {raw:?}");
    Some(params)
}

fn check_merge(a: &[u8], b: &[u8]) {
    let (Some(pa), Some(pb)) = (check_params(a), check_params(b)) else { return };
    let total = pa.pairs().len() + pb.pairs().len();
    let in_a: HashSet<String> = pa.pairs().iter().map(|(n, _)| n.clone()).collect();
    let shared = pb.pairs().iter().find(|(n, _)| in_a.contains(n)).map(|(n, _)| n.clone());
    match pa.merge(pb) {
        Ok(merged) => {
            assert!(shared.is_none(), "merge accepted the duplicate {shared:?}");
            assert_eq!(merged.pairs().len(), total);
            let mut names = HashSet::new();
            assert!(merged.pairs().iter().all(|(n, _)| names.insert(n.as_str())), "duplicate after merge");
        }
        Err(BadParams::Duplicate(n)) => assert!(in_a.contains(&n), "merge refused {n:?}, which is not in both"),
        Err(other) => panic!("merge failed with {other:?}"),
    }
}

const NAMES: [HeaderName; 4] = [COOKIE, AUTHORIZATION, CONTENT_TYPE, COOKIE];

fn check_headers(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').take(8) {
        let Some((&first, value)) = line.split_first() else { continue };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(NAMES[usize::from(first) % NAMES.len()].clone(), v);
        }
    }
    for name in ["session", "csrf", "", "a"] {
        if let Some(v) = cookie(&headers, name) {
            assert!(!v.contains(';'), "cookie {name:?} value {v:?} contains ';'");
            assert!(!v.starts_with('"') && !v.ends_with('"'), "cookie {name:?} value {v:?} keeps its quotes");
        }
    }
    match authorization(&headers) {
        Authorization::None => assert!(headers.get(AUTHORIZATION).is_none(), "None with an Authorization header"),
        Authorization::Bearer(t) => {
            assert!(!t.is_empty() && t.trim() == t, "bearer token {t:?} is empty or untrimmed");
            assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1, "bearer from several headers");
        }
        Authorization::Basic(..) => {
            assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1, "basic from several headers");
        }
        Authorization::Malformed => {}
    }
    let _ = is_form(&headers);
    let _ = header_text(&headers, "cookie");
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    check_params(data);
    if let Some(nul) = data.iter().position(|&b| b == 0) {
        check_merge(&data[..nul], &data[nul + 1..]);
    }
    check_headers(data);
}
