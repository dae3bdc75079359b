//! Typed configuration, validated once at start-up.
//!
//! Keys follow Authgear's `authgear.yaml` names where they exist, so client definitions
//! can be brought over. Unknown keys are errors (a typo must not silently fall back to
//! a default). Every error names the key path, e.g. `oauth.clients[0].redirect_uris[1]`.
//! Secrets (signing keys, client secrets) live in a separate document with Authgear's
//! `authgear.secrets.yaml` layout, so the config can be committed and the secrets not.

use std::collections::{BTreeSet, HashMap};

use latchkey_token::keys::KeySet;
use latchkey_token::secret::sha256_hex;
use serde::Deserialize;
use url::Url;

/// A configuration problem: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Dotted key path (`http.public_origin`, `oauth.clients[0].client_id`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { path: path.into(), message: message.into() }
}

fn parse_yaml<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        err(if path == "." || path.is_empty() { "(document)".to_owned() } else { path }, inner)
    })
}

const fn default_session_lifetime() -> u64 {
    31_449_600
}
const fn default_idle_timeout() -> u64 {
    2_592_000
}
const fn default_true() -> bool {
    true
}
const fn default_access_token_lifetime() -> u64 {
    1800
}
const fn default_tolerance() -> u64 {
    60
}

/// `http`: where the service is and how its cookies look.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The issuer and the origin every URL is built from. Required.
    pub public_origin: String,
    /// Extra origins allowed by CORS, besides the origins of registered redirect URIs.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Prefix of every cookie name (default empty: the session cookie is `session`).
    #[serde(default)]
    pub cookie_prefix: String,
    /// `Domain` of the session cookie; unset means host-only.
    #[serde(default)]
    pub cookie_domain: Option<String>,
    /// Whether a reverse proxy sits in front: then the client address used for rate
    /// limits is the last `X-Forwarded-For` entry (the one that proxy appended),
    /// otherwise the peer address. Default false: a client could forge the header.
    #[serde(default)]
    pub trust_proxy: bool,
}

/// One rate-limit bucket: at most `limit` hits per fixed window. `limit: 0` disables it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Hits allowed per window.
    pub limit: u32,
    /// Window length.
    pub window_seconds: u64,
}

const fn per_minute(limit: u32) -> Limit {
    Limit { limit, window_seconds: 60 }
}

/// `rate_limits`: Authgear's defaults (`oauth.token.general.per_ip` burst 120/min,
/// `per_user` 60/min; password 60/min per IP and 10/min per user and IP, debited on
/// failure only). `client_credentials_per_client` is 60/min (Authgear: 5).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Every `/oauth2/token` request, per client address.
    #[serde(default = "default_token_per_ip")]
    pub token_per_ip: Limit,
    /// Code and refresh grants, per user.
    #[serde(default = "default_token_per_user")]
    pub token_per_user: Limit,
    /// Client-credentials grants, per client.
    #[serde(default = "default_cc_per_client")]
    pub client_credentials_per_client: Limit,
    /// Failed sign-ins, per client address.
    #[serde(default = "default_login_per_ip")]
    pub login_failures_per_ip: Limit,
    /// Failed sign-ins, per username and client address.
    #[serde(default = "default_login_per_user_ip")]
    pub login_failures_per_user_ip: Limit,
}

fn default_token_per_ip() -> Limit {
    per_minute(120)
}
fn default_token_per_user() -> Limit {
    per_minute(60)
}
fn default_cc_per_client() -> Limit {
    per_minute(60)
}
fn default_login_per_ip() -> Limit {
    per_minute(60)
}
fn default_login_per_user_ip() -> Limit {
    per_minute(10)
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            token_per_ip: default_token_per_ip(),
            token_per_user: default_token_per_user(),
            client_credentials_per_client: default_cc_per_client(),
            login_failures_per_ip: default_login_per_ip(),
            login_failures_per_user_ip: default_login_per_user_ip(),
        }
    }
}

/// `lockout`: account lockout with exponential backoff, per username (known or not,
/// so a lockout reveals nothing about which accounts exist).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutConfig {
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Failures before the first lockout (default 10).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Failures are forgotten this long after the last one (default 900 s; at least
    /// `maximum_duration_seconds` is kept while locked).
    #[serde(default = "default_history")]
    pub history_duration_seconds: u64,
    /// First lockout (default 60 s); each further failure multiplies it by `backoff_factor`.
    #[serde(default = "default_min_lock")]
    pub minimum_duration_seconds: u64,
    /// Longest lockout (default 3600 s).
    #[serde(default = "default_max_lock")]
    pub maximum_duration_seconds: u64,
    /// Default 2.
    #[serde(default = "default_backoff")]
    pub backoff_factor: u32,
}

const fn default_max_attempts() -> u32 {
    10
}
const fn default_history() -> u64 {
    900
}
const fn default_min_lock() -> u64 {
    60
}
const fn default_max_lock() -> u64 {
    3600
}
const fn default_backoff() -> u32 {
    2
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            enabled: true,
            max_attempts: default_max_attempts(),
            history_duration_seconds: default_history(),
            minimum_duration_seconds: default_min_lock(),
            maximum_duration_seconds: default_max_lock(),
            backoff_factor: default_backoff(),
        }
    }
}

/// `session`: browser (cookie) sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Absolute lifetime (default 52 weeks).
    #[serde(default = "default_session_lifetime")]
    pub lifetime_seconds: u64,
    /// Whether an idle session expires (default true).
    #[serde(default = "default_true")]
    pub idle_timeout_enabled: bool,
    /// Idle timeout (default 30 days).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            lifetime_seconds: default_session_lifetime(),
            idle_timeout_enabled: true,
            idle_timeout_seconds: default_idle_timeout(),
        }
    }
}

/// `jwt`: verification policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Clock skew tolerated for `exp`, `nbf` and `iat` (default 60 s).
    #[serde(default = "default_tolerance")]
    pub time_tolerance_seconds: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig { time_tolerance_seconds: default_tolerance() }
    }
}

/// `keys`: signing-key rotation (see the `keyring` module).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// How long a new key is published in the JWKS before it signs (default one day).
    /// Verifiers cache the JWKS (Latchkey's says `max-age=300`) and every instance
    /// re-reads the ring every `cache_seconds`: below their sum, a verifier can meet a
    /// token signed by a key it has not fetched yet.
    #[serde(default = "default_prepublish")]
    pub prepublish_seconds: u64,
    /// How long an instance keeps the key ring it read from the store (default 60 s).
    #[serde(default = "default_key_cache")]
    pub cache_seconds: u64,
    /// The algorithm of keys that rotation makes (default: the signing key's).
    #[serde(default)]
    pub algorithm: Option<String>,
}

fn default_prepublish() -> u64 {
    86_400
}

fn default_key_cache() -> u64 {
    60
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig { prepublish_seconds: default_prepublish(), cache_seconds: default_key_cache(), algorithm: None }
    }
}

/// `resolver`: the forward-auth endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    /// Answer 401 instead of `Session-Valid: false` or an anonymous 200 (default false).
    #[serde(default)]
    pub strict: bool,
}

/// `ui`: branding of the login page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Shown as the page title and heading (default "Latchkey").
    #[serde(default = "default_product_name")]
    pub product_name: String,
    /// An https (or same-origin) image URL shown above the form.
    #[serde(default)]
    pub logo_url: Option<String>,
    /// Accent colour, `#rrggbb` (default `#1f6feb`).
    #[serde(default = "default_primary_color")]
    pub primary_color: String,
}

fn default_product_name() -> String {
    "Latchkey".into()
}
fn default_primary_color() -> String {
    "#1f6feb".into()
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig { product_name: default_product_name(), logo_url: None, primary_color: default_primary_color() }
    }
}

/// `x_application_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    /// Single-page app: public, PKCE required.
    Spa,
    /// Mobile or desktop app: public, PKCE required.
    Native,
    /// Server-rendered app: public unless it has a secret, then it must authenticate.
    TraditionalWebapp,
    /// First-party confidential client: needs a secret; may use client_credentials.
    Confidential,
    /// Machine-to-machine: needs a secret; client_credentials only.
    M2m,
}

/// Grant types a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `authorization_code`
    AuthorizationCode,
    /// `refresh_token`
    RefreshToken,
    /// `client_credentials`
    ClientCredentials,
}

/// One `oauth.clients[]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    client_name: Option<String>,
    x_application_type: ApplicationType,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Option<Vec<GrantType>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default = "default_access_token_lifetime")]
    access_token_lifetime_seconds: u64,
    #[serde(default)]
    refresh_token_lifetime_seconds: Option<u64>,
    #[serde(default = "default_true")]
    refresh_token_idle_timeout_enabled: bool,
    #[serde(default = "default_idle_timeout")]
    refresh_token_idle_timeout_seconds: u64,
    #[serde(default = "default_true")]
    refresh_token_rotation_enabled: bool,
    #[serde(default)]
    issue_jwt_access_token: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOauth {
    #[serde(default)]
    clients: Vec<RawClient>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    http: HttpConfig,
    #[serde(default)]
    session: SessionConfig,
    #[serde(default)]
    jwt: JwtConfig,
    #[serde(default)]
    resolver: ResolverConfig,
    #[serde(default)]
    keys: KeysConfig,
    #[serde(default)]
    ui: UiConfig,
    #[serde(default)]
    rate_limits: RateLimits,
    #[serde(default)]
    lockout: LockoutConfig,
    #[serde(default)]
    oauth: RawOauth,
}

/// A validated client.
#[derive(Debug, Clone)]
pub struct Client {
    /// `client_id`
    pub id: String,
    /// Display name.
    pub name: String,
    /// `x_application_type`
    pub application_type: ApplicationType,
    /// Exact-match redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Exact-match post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed grants.
    pub grant_types: BTreeSet<GrantType>,
    /// Access-token lifetime.
    pub access_token_lifetime_seconds: u64,
    /// Token-session (refresh) absolute lifetime.
    pub refresh_token_lifetime_seconds: u64,
    /// Token-session idle timeout, `None` when disabled.
    pub refresh_token_idle_timeout_seconds: Option<u64>,
    /// Whether refresh tokens rotate.
    pub refresh_token_rotation_enabled: bool,
    /// SHA-256 hex of each accepted secret; empty for public clients.
    pub secret_hashes: Vec<String>,
}

impl Client {
    /// Whether the client authenticates with a secret (confidential).
    pub fn is_confidential(&self) -> bool {
        !self.secret_hashes.is_empty()
    }

    /// Whether `grant` is allowed.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// The validated configuration the endpoints run with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The issuer: `http.public_origin`, normalised (no trailing slash).
    pub issuer: String,
    /// Whether the public origin is https (cookies get `Secure`).
    pub https: bool,
    /// `http.*`
    pub http: HttpConfig,
    /// `session.*`
    pub session: SessionConfig,
    /// `jwt.*`
    pub jwt: JwtConfig,
    /// `resolver.*`
    pub resolver: ResolverConfig,
    /// `keys.*`
    pub keys: KeysConfig,
    /// `ui.*`
    pub ui: UiConfig,
    /// `rate_limits.*`
    pub rate_limits: RateLimits,
    /// `lockout.*`
    pub lockout: LockoutConfig,
    /// Clients by id, in file order.
    pub clients: Vec<Client>,
    /// Every origin CORS allows.
    pub cors_origins: BTreeSet<String>,
}

impl Config {
    /// The client with `id`.
    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// The browser session lifetime policy.
    pub fn browser_lifetime(&self) -> latchkey_token::expiry::Lifetime {
        latchkey_token::expiry::Lifetime {
            lifetime_seconds: self.session.lifetime_seconds,
            idle_timeout_seconds: self.session.idle_timeout_enabled.then_some(self.session.idle_timeout_seconds),
        }
    }

    /// Name of the session cookie (`<prefix>session`).
    pub fn session_cookie_name(&self) -> String {
        format!("{}session", self.http.cookie_prefix)
    }

    /// Name of the login-form CSRF cookie (`<prefix>csrf`).
    pub fn csrf_cookie_name(&self) -> String {
        format!("{}csrf", self.http.cookie_prefix)
    }
}

/// The origin (`scheme://host[:port]`) of an absolute http(s) URL.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn parse_origin(path: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| err(path, format!("not a URL ({e}): {value:?}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(path, "must be an http or https origin"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(err(path, "must be an origin only (scheme, host, optional port), without path or query"));
    }
    Ok(url)
}

fn check_redirect_uri(path: &str, value: &str) -> Result<(), ConfigError> {
    let url = Url::parse(value).map_err(|e| err(path, format!("not an absolute URL ({e}): {value:?}")))?;
    if url.fragment().is_some() {
        return Err(err(path, "must not contain a fragment"));
    }
    if matches!(url.scheme(), "javascript" | "data" | "file" | "vbscript") {
        return Err(err(path, format!("scheme {} is not allowed", url.scheme())));
    }
    Ok(())
}

fn cookie_domain_ok(domain: &str, host: &str) -> bool {
    let d = domain.trim_start_matches('.').to_ascii_lowercase();
    let h = host.to_ascii_lowercase();
    !d.is_empty() && (h == d || h.ends_with(&format!(".{d}")))
}

fn is_color(value: &str) -> bool {
    value.len() == 7 && value.starts_with('#') && value[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Secrets in Authgear's `authgear.secrets.yaml` layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    secrets: Vec<RawSecret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    key: String,
    data: serde_yaml_ng::Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningKeys {
    keys: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSecrets {
    items: Vec<ClientSecretItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSecretItem {
    client_id: String,
    /// Authgear's form: oct JWKs whose `k` is the base64url secret.
    #[serde(default)]
    keys: Vec<OctKey>,
    /// Latchkey's at-rest form: `sha256:<hex of SHA-256 of the secret>`.
    #[serde(default)]
    secret_hashes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct OctKey {
    kty: String,
    k: String,
    #[serde(flatten)]
    _rest: HashMap<String, serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminKeys {
    /// `sha256:<hex>` of each admin API key (several, so that a key can be replaced
    /// without an outage).
    #[serde(default)]
    key_hashes: Vec<String>,
    /// Public JWKs whose private keys sign operators' short-lived admin JWTs.
    #[serde(default)]
    jwt_keys: Vec<serde_json::Value>,
}

/// Loaded secrets: the key set, client secret hashes and admin key hashes.
pub struct Secrets {
    /// Signing and verification keys.
    pub keys: KeySet,
    /// The same keys as private JWKs, in order: what seeds the key ring in the store
    /// at the first rotation.
    pub private_jwks: Vec<serde_json::Value>,
    client_secret_hashes: HashMap<String, Vec<String>>,
    /// SHA-256 (hex) of each admin API key.
    pub admin_key_hashes: Vec<String>,
    /// The public keys of operators' admin JWTs. With neither these nor key hashes, the
    /// admin API is off.
    pub admin_jwt_keys: std::sync::Arc<latchkey_token::admin_jwt::AdminJwtKeys>,
}

/// `sha256:<64 hex digits>` → the lowercase hex, or `None`.
fn parse_sha256_ref(text: &str) -> Option<String> {
    text.strip_prefix("sha256:")
        .filter(|x| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

/// Parses the secrets document.
///
/// # Errors
/// A [`ConfigError`] naming the entry at fault.
pub fn parse_secrets(text: &str) -> Result<Secrets, ConfigError> {
    use base64::Engine;
    let raw: RawSecrets = parse_yaml(text)?;
    let mut keys = None;
    let mut client_secret_hashes: HashMap<String, Vec<String>> = HashMap::new();
    let mut admin_key_hashes = Vec::new();
    let mut admin_jwt_keys = Vec::new();
    for (i, secret) in raw.secrets.iter().enumerate() {
        let path = format!("secrets[{i}].data");
        match secret.key.as_str() {
            "oauth" => {
                let data: SigningKeys =
                    serde_yaml_ng::from_value(secret.data.clone()).map_err(|e| err(&path, e.to_string()))?;
                let set =
                    KeySet::from_private_jwks(&data.keys).map_err(|e| err(format!("{path}.keys"), e.to_string()))?;
                keys = Some((set, data.keys));
            }
            "oauth.client_secrets" => {
                let data: ClientSecrets =
                    serde_yaml_ng::from_value(secret.data.clone()).map_err(|e| err(&path, e.to_string()))?;
                for (j, item) in data.items.iter().enumerate() {
                    let entry = client_secret_hashes.entry(item.client_id.clone()).or_default();
                    for (k, key) in item.keys.iter().enumerate() {
                        let kpath = format!("{path}.items[{j}].keys[{k}]");
                        if key.kty != "oct" {
                            return Err(err(kpath, "client secrets must be oct keys"));
                        }
                        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(key.k.trim_end_matches('='))
                            .map_err(|_| err(format!("{kpath}.k"), "not base64url"))?;
                        let secret = String::from_utf8(bytes)
                            .map_err(|_| err(format!("{kpath}.k"), "secret must be UTF-8 text"))?;
                        if secret.len() < 16 {
                            return Err(err(
                                format!("{kpath}.k"),
                                format!("the secret of client {:?} must be at least 16 characters", item.client_id),
                            ));
                        }
                        entry.push(sha256_hex(&secret));
                    }
                    for (k, h) in item.secret_hashes.iter().enumerate() {
                        let Some(hex) = parse_sha256_ref(h) else {
                            return Err(err(
                                format!("{path}.items[{j}].secret_hashes[{k}]"),
                                "must be sha256:<64 hex digits>",
                            ));
                        };
                        entry.push(hex);
                    }
                }
            }
            "admin" => {
                let data: AdminKeys =
                    serde_yaml_ng::from_value(secret.data.clone()).map_err(|e| err(&path, e.to_string()))?;
                for (k, h) in data.key_hashes.iter().enumerate() {
                    let hex = parse_sha256_ref(h)
                        .ok_or_else(|| err(format!("{path}.key_hashes[{k}]"), "must be sha256:<64 hex digits>"))?;
                    admin_key_hashes.push(hex);
                }
                admin_jwt_keys.extend(data.jwt_keys);
            }
            other => {
                return Err(err(
                    format!("secrets[{i}].key"),
                    format!("unknown secret {other:?} (expected oauth, oauth.client_secrets or admin)"),
                ));
            }
        }
    }
    let (keys, private_jwks) =
        keys.ok_or_else(|| err("secrets", "an `oauth` secret with at least one signing key is required"))?;
    // Every admin entry's keys together, so a kid is unique across them.
    let admin_jwt_keys = latchkey_token::admin_jwt::AdminJwtKeys::from_public_jwks(&admin_jwt_keys)
        .map_err(|e| err("secrets[admin].data.jwt_keys", e.to_string()))?;
    let admin_jwt_keys = std::sync::Arc::new(admin_jwt_keys);
    Ok(Secrets { keys, private_jwks, client_secret_hashes, admin_key_hashes, admin_jwt_keys })
}

/// Parses and validates the config document against the loaded secrets.
///
/// # Errors
/// The first [`ConfigError`] found.
pub fn parse_config(text: &str, secrets: &Secrets) -> Result<Config, ConfigError> {
    let raw: RawConfig = parse_yaml(text)?;
    let origin_url = parse_origin("http.public_origin", &raw.http.public_origin)?;
    let issuer = origin_of(&origin_url);
    let https = origin_url.scheme() == "https";
    let mut cors_origins = BTreeSet::new();
    for (i, o) in raw.http.allowed_origins.iter().enumerate() {
        cors_origins.insert(origin_of(&parse_origin(&format!("http.allowed_origins[{i}]"), o)?));
    }
    if let Some(domain) = &raw.http.cookie_domain {
        let host = origin_url.host_str().unwrap_or_default();
        if !cookie_domain_ok(domain, host) {
            return Err(err(
                "http.cookie_domain",
                format!("{domain:?} is neither {host} nor a parent domain of it, so browsers would drop the cookie"),
            ));
        }
    }
    if !raw.http.cookie_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(err("http.cookie_prefix", "may contain only letters, digits, '_' and '-'"));
    }
    for (path, v) in [
        ("session.lifetime_seconds", raw.session.lifetime_seconds),
        ("session.idle_timeout_seconds", raw.session.idle_timeout_seconds),
    ] {
        if v == 0 {
            return Err(err(path, "must be at least 1"));
        }
    }
    let limits = &raw.rate_limits;
    for (name, l) in [
        ("token_per_ip", limits.token_per_ip),
        ("token_per_user", limits.token_per_user),
        ("client_credentials_per_client", limits.client_credentials_per_client),
        ("login_failures_per_ip", limits.login_failures_per_ip),
        ("login_failures_per_user_ip", limits.login_failures_per_user_ip),
    ] {
        if l.limit > 0 && l.window_seconds == 0 {
            return Err(err(format!("rate_limits.{name}.window_seconds"), "must be at least 1"));
        }
    }
    let lockout = &raw.lockout;
    if lockout.enabled {
        if lockout.max_attempts == 0 {
            return Err(err("lockout.max_attempts", "must be at least 1"));
        }
        if lockout.minimum_duration_seconds == 0 || lockout.minimum_duration_seconds > lockout.maximum_duration_seconds
        {
            return Err(err(
                "lockout.minimum_duration_seconds",
                "must be at least 1 and at most maximum_duration_seconds",
            ));
        }
        if lockout.backoff_factor == 0 {
            return Err(err("lockout.backoff_factor", "must be at least 1"));
        }
    }
    if let Some(logo) = &raw.ui.logo_url {
        let ok = Url::parse(logo).map(|u| u.scheme() == "https" || origin_of(&u) == issuer).unwrap_or(false);
        if !ok {
            return Err(err("ui.logo_url", "must be an https URL (or on the public origin)"));
        }
    }
    if !is_color(&raw.ui.primary_color) {
        return Err(err("ui.primary_color", "must be a colour like #1f6feb"));
    }
    let mut clients: Vec<Client> = Vec::new();
    for (i, c) in raw.oauth.clients.iter().enumerate() {
        let p = format!("oauth.clients[{i}]");
        if c.client_id.is_empty()
            || c.client_id.len() > 128
            || !c.client_id.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        {
            return Err(err(format!("{p}.client_id"), "must be 1-128 printable characters without ':' or spaces"));
        }
        if clients.iter().any(|o| o.id == c.client_id) {
            return Err(err(format!("{p}.client_id"), format!("duplicate client_id {:?}", c.client_id)));
        }
        for (j, u) in c.redirect_uris.iter().enumerate() {
            check_redirect_uri(&format!("{p}.redirect_uris[{j}]"), u)?;
            if let Ok(url) = Url::parse(u)
                && matches!(url.scheme(), "http" | "https")
            {
                cors_origins.insert(origin_of(&url));
            }
        }
        for (j, u) in c.post_logout_redirect_uris.iter().enumerate() {
            check_redirect_uri(&format!("{p}.post_logout_redirect_uris[{j}]"), u)?;
        }
        let m2m = c.x_application_type == ApplicationType::M2m;
        if !m2m && c.redirect_uris.is_empty() {
            return Err(err(format!("{p}.redirect_uris"), "at least one redirect URI is required"));
        }
        let secret_hashes = secrets.client_secret_hashes.get(&c.client_id).cloned().unwrap_or_default();
        let needs_secret = matches!(c.x_application_type, ApplicationType::Confidential | ApplicationType::M2m);
        let forbids_secret = matches!(c.x_application_type, ApplicationType::Spa | ApplicationType::Native);
        if needs_secret && secret_hashes.is_empty() {
            return Err(err(
                format!("{p}.client_id"),
                format!(
                    "client {:?} is {:?} and needs a secret in oauth.client_secrets",
                    c.client_id, c.x_application_type
                ),
            ));
        }
        if forbids_secret && !secret_hashes.is_empty() {
            return Err(err(
                format!("{p}.x_application_type"),
                format!("client {:?} is public ({:?}) and must not have a secret", c.client_id, c.x_application_type),
            ));
        }
        let grant_types: BTreeSet<GrantType> = match (&c.grant_types, c.x_application_type) {
            (_, ApplicationType::M2m) => BTreeSet::from([GrantType::ClientCredentials]),
            (Some(g), _) => g.iter().copied().collect(),
            (None, ApplicationType::Confidential) => {
                BTreeSet::from([GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials])
            }
            (None, _) => BTreeSet::from([GrantType::AuthorizationCode, GrantType::RefreshToken]),
        };
        if m2m && c.grant_types.as_ref().is_some_and(|g| g.iter().any(|g| *g != GrantType::ClientCredentials)) {
            return Err(err(format!("{p}.grant_types"), "m2m clients may only use client_credentials"));
        }
        if grant_types.contains(&GrantType::ClientCredentials) && !needs_secret {
            return Err(err(format!("{p}.grant_types"), "client_credentials needs a confidential or m2m client"));
        }
        if let Some(rt) = &c.response_types {
            for (j, t) in rt.iter().enumerate() {
                if !matches!(t.as_str(), "code" | "none") {
                    return Err(err(format!("{p}.response_types[{j}]"), format!("unsupported response type {t:?}")));
                }
            }
        }
        if c.issue_jwt_access_token == Some(false) {
            return Err(err(
                format!("{p}.issue_jwt_access_token"),
                "opaque access tokens are not supported; access tokens are always JWTs",
            ));
        }
        let at = c.access_token_lifetime_seconds;
        if at == 0 || (m2m && at > 2_419_200) {
            return Err(err(format!("{p}.access_token_lifetime_seconds"), "must be at least 1 (m2m: at most 2419200)"));
        }
        let rt_lifetime = c.refresh_token_lifetime_seconds.unwrap_or_else(|| at.max(31_449_600));
        if rt_lifetime == 0 {
            return Err(err(format!("{p}.refresh_token_lifetime_seconds"), "must be at least 1"));
        }
        if c.refresh_token_idle_timeout_seconds == 0 {
            return Err(err(format!("{p}.refresh_token_idle_timeout_seconds"), "must be at least 1"));
        }
        clients.push(Client {
            id: c.client_id.clone(),
            name: c.client_name.clone().or_else(|| c.name.clone()).unwrap_or_else(|| c.client_id.clone()),
            application_type: c.x_application_type,
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            grant_types,
            access_token_lifetime_seconds: at,
            refresh_token_lifetime_seconds: rt_lifetime,
            refresh_token_idle_timeout_seconds: c
                .refresh_token_idle_timeout_enabled
                .then_some(c.refresh_token_idle_timeout_seconds),
            refresh_token_rotation_enabled: c.refresh_token_rotation_enabled,
            secret_hashes,
        });
    }
    if let Some(alg) = &raw.keys.algorithm
        && latchkey_token::keys::Algorithm::from_name(alg).is_none()
    {
        return Err(err("keys.algorithm", format!("unsupported algorithm {alg:?} (expected RS256, ES256 or EdDSA)")));
    }
    for id in secrets.client_secret_hashes.keys() {
        if !clients.iter().any(|c| &c.id == id) {
            return Err(err("oauth.client_secrets", format!("secret for unknown client {id:?}")));
        }
    }
    Ok(Config {
        issuer,
        https,
        http: raw.http,
        session: raw.session,
        jwt: raw.jwt,
        resolver: raw.resolver,
        keys: raw.keys,
        ui: raw.ui,
        rate_limits: raw.rate_limits,
        lockout: raw.lockout,
        clients,
        cors_origins,
    })
}

/// The configuration text with `http.public_origin` and `http.cookie_domain` replaced
/// where the deployment sets them (Lambda and Workers take both from their platform's
/// variables, so that one `latchkey.yaml` serves every stage). Without either, the text
/// is returned unchanged.
///
/// # Errors
/// A message if the text is not a YAML mapping.
pub fn with_http_overrides(
    text: &str,
    public_origin: Option<&str>,
    cookie_domain: Option<&str>,
) -> Result<String, String> {
    if public_origin.is_none() && cookie_domain.is_none() {
        return Ok(text.to_owned());
    }
    let mut doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("the configuration is not YAML: {e}"))?;
    let http = doc
        .as_mapping_mut()
        .ok_or("the configuration is not a mapping")?
        .entry("http".into())
        .or_insert_with(|| serde_yaml_ng::Value::Mapping(Default::default()));
    let http = http.as_mapping_mut().ok_or("http is not a mapping")?;
    if let Some(origin) = public_origin {
        http.insert("public_origin".into(), origin.into());
    }
    if let Some(domain) = cookie_domain {
        http.insert("cookie_domain".into(), domain.into());
    }
    serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `config` fuzz target (fuzz/regressions/config/empty-key-error-path.yaml):
    /// an error at the document root must still name where it is.
    #[test]
    fn errors_at_the_root_name_the_document() {
        for text in ["&r", "", "- 1", "x"] {
            let e = parse_yaml::<RawConfig>(text).unwrap_err();
            assert!(!e.path.is_empty(), "{text:?} gave an empty path: {e}");
        }
    }
}
