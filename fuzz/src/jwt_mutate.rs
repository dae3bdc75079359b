//! `jwt_mutate`: a structured variant of `jwt_verify`. The input picks a fixture token
//! (validly signed) and a list of mutations of its header, payload and signature
//! segments: raw text, re-encoded arbitrary bytes, bit flips in the decoded JSON,
//! members set, removed or duplicated, segments spliced from another fixture token
//! (algorithm and key confusion), base64 variants, insertions and truncations.
//!
//! Invariant: a mutated token either fails verification or verifies with exactly the
//! claims of the fixture token whose signing input it has: a mutation never verifies
//! with different claims (see [`crate::fixtures::check_verified`]).

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

use crate::fixtures::signed_tokens;
use crate::jwt_verify;

#[derive(Arbitrary, Debug)]
enum Name {
    Alg,
    Kid,
    Typ,
    Crit,
    Jku,
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Sid,
    ClientId,
    Roles,
    Other(String),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Alg => "alg",
            Name::Kid => "kid",
            Name::Typ => "typ",
            Name::Crit => "crit",
            Name::Jku => "jku",
            Name::Iss => "iss",
            Name::Sub => "sub",
            Name::Aud => "aud",
            Name::Exp => "exp",
            Name::Nbf => "nbf",
            Name::Iat => "iat",
            Name::Sid => "sid",
            Name::ClientId => "client_id",
            Name::Roles => "https://authgear.com/claims/user/roles",
            Name::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Val {
    Str(String),
    /// A string that matters: algorithm names, kids, types, our issuer and audience.
    Known(u8),
    Num(u64),
    Neg(i64),
    Float(f64),
    Bool(bool),
    Null,
    Arr(Vec<String>),
    Obj(Vec<(String, String)>),
}

const KNOWN: &[&str] = &[
    "none",
    "HS256",
    "RS256",
    "ES256",
    "EdDSA",
    "PS256",
    "fuzz-rs256",
    "fuzz-es256",
    "fuzz-ed25519",
    "at+jwt",
    "JWT",
    "https://id.example.com",
    "https://id.example.com/",
    "demo",
    "user-alice",
    "user-bob",
    "sid-alice",
    "admin",
];

impl Val {
    fn json(&self) -> Value {
        match self {
            Val::Str(s) => Value::String(s.clone()),
            Val::Known(i) => Value::String(KNOWN[usize::from(*i) % KNOWN.len()].into()),
            Val::Num(n) => Value::from(*n),
            Val::Neg(n) => Value::from(*n),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Bool(b) => Value::Bool(*b),
            Val::Null => Value::Null,
            Val::Arr(a) => Value::Array(a.iter().cloned().map(Value::String).collect()),
            Val::Obj(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Replace segment `seg % 3` with raw text.
    RawSegment { seg: u8, text: String },
    /// Replace a segment with the base64url of arbitrary bytes.
    EncodedSegment { seg: u8, bytes: Vec<u8> },
    /// Take a segment from another fixture token.
    Splice { seg: u8, from: u8 },
    /// Flip one bit of a decoded segment and re-encode it.
    FlipBit { seg: u8, index: u16, bit: u8 },
    /// Set (or, with no value, remove) a member of the header or payload JSON.
    SetMember { payload: bool, name: Name, value: Option<Val> },
    /// Prepend a second copy of a member to the raw JSON text (`{"sub":..,` + original).
    DuplicateMember { payload: bool, name: Name, value: Val },
    /// Re-encode a segment with another base64 alphabet or padding.
    Reencode { seg: u8, variant: u8 },
    /// Insert text at a byte offset of the whole token.
    Insert { at: u16, text: String },
    /// Cut the whole token to a length.
    Truncate { len: u16 },
}

#[derive(Arbitrary, Debug)]
struct Mutation {
    base: u8,
    ops: Vec<Op>,
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn decoded(segment: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(segment).unwrap_or_default()
}

fn with_segment(token: &str, seg: u8, f: impl FnOnce(&str) -> String) -> String {
    let mut parts = segments(token);
    let i = usize::from(seg) % 3;
    if i < parts.len() {
        parts[i] = f(&parts[i]);
    }
    parts.join(".")
}

fn json_segment(token: &str, payload: bool, f: impl FnOnce(&mut Map<String, Value>)) -> String {
    with_segment(token, u8::from(payload), |s| {
        let mut obj: Map<String, Value> = serde_json::from_slice(&decoded(s)).unwrap_or_default();
        f(&mut obj);
        URL_SAFE_NO_PAD.encode(Value::Object(obj).to_string())
    })
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(token: String, op: &Op) -> String {
    let tokens = signed_tokens();
    match op {
        Op::RawSegment { seg, text } => with_segment(&token, *seg, |_| text.clone()),
        Op::EncodedSegment { seg, bytes } => with_segment(&token, *seg, |_| URL_SAFE_NO_PAD.encode(bytes)),
        Op::Splice { seg, from } => {
            let other = &tokens[usize::from(*from) % tokens.len()].token;
            let i = usize::from(*seg) % 3;
            let piece = segments(other).get(i).cloned().unwrap_or_default();
            with_segment(&token, *seg, |_| piece)
        }
        Op::FlipBit { seg, index, bit } => with_segment(&token, *seg, |s| {
            let mut bytes = decoded(s);
            if !bytes.is_empty() {
                let i = usize::from(*index) % bytes.len();
                bytes[i] ^= 1 << (bit % 8);
            }
            URL_SAFE_NO_PAD.encode(bytes)
        }),
        Op::SetMember { payload, name, value } => json_segment(&token, *payload, |obj| match value {
            Some(v) => {
                obj.insert(name.as_str().to_owned(), v.json());
            }
            None => {
                obj.remove(name.as_str());
            }
        }),
        Op::DuplicateMember { payload, name, value } => with_segment(&token, u8::from(*payload), |s| {
            let text = decoded(s);
            let member = format!("{{{}:{},", Value::String(name.as_str().to_owned()), value.json());
            let mut out = member.into_bytes();
            out.extend(text.get(1..).unwrap_or_default());
            URL_SAFE_NO_PAD.encode(out)
        }),
        Op::Reencode { seg, variant } => with_segment(&token, *seg, |s| {
            let bytes = decoded(s);
            match variant % 3 {
                0 => URL_SAFE.encode(bytes),
                1 => STANDARD.encode(bytes),
                _ => format!("{s}="),
            }
        }),
        Op::Insert { at, text } => {
            let mut t = token;
            let at = floor_char_boundary(&t, usize::from(*at));
            t.insert_str(at, text);
            t
        }
        Op::Truncate { len } => {
            let mut t = token;
            let len = floor_char_boundary(&t, usize::from(*len));
            t.truncate(len);
            t
        }
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Ok(m) = Mutation::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let tokens = signed_tokens();
    let mut token = tokens[usize::from(m.base) % tokens.len()].token.clone();
    for op in m.ops.iter().take(8) {
        token = apply(token, op);
        // Every intermediate token is checked too: a mutation that verifies halfway
        // and is then cut would otherwise hide.
        jwt_verify::check(&token);
    }
}
