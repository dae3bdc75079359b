//! Strict request parsing: form and query parameters, cookies, credentials.
//!
//! Parsing refuses rather than guesses: a duplicated parameter, an invalid percent
//! escape or bytes that are not UTF-8 are errors (RFC 6749 §3.1: parameters must not
//! be included more than once), so two layers can never read different values from
//! the same request.

use base64::Engine;
use http::HeaderMap;

use crate::error::PageError;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};

/// Largest request body read; larger ones get 413. Adapters stop reading past it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why parameters could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadParams {
    /// A name appears twice.
    Duplicate(String),
    /// A malformed `%` escape.
    BadEscape,
    /// Decoded bytes are not UTF-8.
    NotUtf8,
}

impl BadParams {
    /// Human-readable description for `error_description`.
    pub fn describe(&self) -> String {
        match self {
            BadParams::Duplicate(name) => format!("parameter {name} is included more than once"),
            BadParams::BadEscape => "malformed percent-encoding".into(),
            BadParams::NotUtf8 => "parameters must be UTF-8".into(),
        }
    }
}

/// Decoded `application/x-www-form-urlencoded` parameters without duplicates.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(part: &[u8]) -> Result<String, BadParams> {
    percent_decode(part, true)
}

/// One path segment, percent-decoded (`+` stays `+`, as RFC 3986 paths have it);
/// `None` for a bad escape or non-UTF-8.
pub fn decode_path_segment(segment: &str) -> Option<String> {
    percent_decode(segment.as_bytes(), false).ok()
}

fn percent_decode(part: &[u8], plus_is_space: bool) -> Result<String, BadParams> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let hi = part.get(i + 1).copied().and_then(hex_val).ok_or(BadParams::BadEscape)?;
                let lo = part.get(i + 2).copied().and_then(hex_val).ok_or(BadParams::BadEscape)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| BadParams::NotUtf8)
}

impl Params {
    /// Parses `a=1&b=2`. Empty segments are skipped.
    ///
    /// # Errors
    /// [`BadParams`] for duplicates, bad escapes or non-UTF-8.
    pub fn parse(raw: &[u8]) -> Result<Self, BadParams> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for segment in raw.split(|&b| b == b'&').filter(|s| !s.is_empty()) {
            let (name, value) = match segment.iter().position(|&b| b == b'=') {
                Some(eq) => (&segment[..eq], &segment[eq + 1..]),
                None => (segment, &b""[..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(BadParams::Duplicate(name));
            }
            pairs.push((name, value));
        }
        Ok(Params { pairs })
    }

    /// The value of `name`; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// All pairs, in request order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Merges `other` into `self`; a name present in both is a duplicate.
    ///
    /// # Errors
    /// [`BadParams::Duplicate`].
    pub fn merge(mut self, other: Params) -> Result<Self, BadParams> {
        for (n, v) in other.pairs {
            if self.pairs.iter().any(|(m, _)| *m == n) {
                return Err(BadParams::Duplicate(n));
            }
            self.pairs.push((n, v));
        }
        Ok(self)
    }
}

/// Whether the request body is declared as a form.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// The value of cookie `name`, if sent (the first one when repeated).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// What the `Authorization` header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization<'a> {
    /// No header.
    None,
    /// `Bearer <token>`.
    Bearer(&'a str),
    /// `Basic <credentials>`, decoded to client id and secret (RFC 6749 §2.3.1:
    /// each form-urlencoded before base64).
    Basic(String, String),
    /// A header that is present but unusable (unknown scheme, bad encoding).
    Malformed,
}

/// Reads the `Authorization` header.
pub fn authorization(headers: &HeaderMap) -> Authorization<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Authorization::None;
    };
    if values.next().is_some() {
        return Authorization::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return Authorization::Malformed;
    };
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Authorization::Malformed;
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Authorization::Bearer(rest);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(rest).ok().and_then(|b| String::from_utf8(b).ok());
        if let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':'))
            && let (Ok(id), Ok(secret)) = (decode(id.as_bytes()), decode(secret.as_bytes()))
        {
            return Authorization::Basic(id, secret);
        }
    }
    Authorization::Malformed
}

/// A header value as text, if it is visible ASCII.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The parameters of a browser endpoint: the query of a GET, the form body of a POST.
///
/// # Errors
/// A 400 page for a POST that is not a form, or for malformed parameters.
pub fn page_params(req: &http::Request<bytes::Bytes>) -> Result<Params, PageError> {
    if req.method() == http::Method::POST {
        if !is_form(req.headers()) {
            return Err(PageError::BadRequest("The form must be sent as application/x-www-form-urlencoded.".into()));
        }
        Ok(Params::parse(req.body())?)
    } else {
        Ok(Params::parse(req.uri().query().unwrap_or_default().as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_strict() {
        let p = Params::parse(b"a=1&b=x+y%20z&c=").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("x y z"));
        assert_eq!(p.get("c"), None);
        assert_eq!(Params::parse(b"a=1&a=2").unwrap_err(), BadParams::Duplicate("a".into()));
        assert_eq!(Params::parse(b"a=%FF").unwrap_err(), BadParams::NotUtf8);
        assert_eq!(Params::parse(b"a=\xff").unwrap_err(), BadParams::NotUtf8);
        assert_eq!(Params::parse(b"a=%G1").unwrap_err(), BadParams::BadEscape);
        assert_eq!(Params::parse(b"a=%").unwrap_err(), BadParams::BadEscape);
    }

    #[test]
    fn authorization_schemes() {
        let mut h = HeaderMap::new();
        assert_eq!(authorization(&h), Authorization::None);
        h.insert(AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(authorization(&h), Authorization::Bearer("abc"));
        h.insert(AUTHORIZATION, "Basic YSUzQWI6cyUyNg==".parse().unwrap());
        assert_eq!(authorization(&h), Authorization::Basic("a:b".into(), "s&".into()));
        h.insert(AUTHORIZATION, "Digest x".parse().unwrap());
        assert_eq!(authorization(&h), Authorization::Malformed);
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; session=abc.def; b=2".parse().unwrap());
        assert_eq!(cookie(&h, "session"), Some("abc.def"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
