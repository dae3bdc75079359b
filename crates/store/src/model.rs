//! The records the ports store.

use latchkey_token::UnixSeconds;
use latchkey_token::expiry::Lifetime;
use latchkey_token::refresh::RefreshState;
use serde::{Deserialize, Serialize};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// UUID.
    pub id: String,
    /// Login name, unique.
    pub username: String,
    /// PHC string: argon2id, or an imported scheme until the next login upgrades it
    /// (see `latchkey_token::password`).
    pub password_hash: String,
    /// A disabled user cannot log in, refresh or resolve.
    pub disabled: bool,
    /// Why the user was disabled, for operators.
    pub disabled_reason: Option<String>,
    /// `X-Authgear-User-Verified`.
    pub is_verified: bool,
    /// Role keys, `X-Authgear-User-Roles`.
    pub roles: Vec<String>,
    /// Creation time.
    pub created_at: UnixSeconds,
}

/// The checks every way of creating a user shares, on what it is given.
fn check_account(username: &str, roles: &[String]) -> Result<(), String> {
    if username.is_empty() || username.len() > 256 || username.chars().any(char::is_control) {
        return Err("the username must be 1 to 256 characters without control characters".into());
    }
    if roles.iter().any(|r| r.is_empty() || r.len() > 256 || r.chars().any(|c| c.is_control() || c == ',')) {
        return Err("a role must be 1 to 256 characters without commas or control characters".into());
    }
    Ok(())
}

impl User {
    /// A new, enabled user with an argon2id hash of `password`, after the checks every
    /// way of creating a user shares (the operator CLIs, the admin API).
    ///
    /// # Errors
    /// A message safe to show: a username that is empty, over 256 bytes or has control
    /// characters; a password under 8 characters or over 1024 bytes; a hashing failure.
    pub fn with_password(
        entropy: &dyn latchkey_token::Entropy,
        now: UnixSeconds,
        username: &str,
        password: &str,
        is_verified: bool,
        roles: Vec<String>,
    ) -> Result<User, String> {
        check_account(username, &roles)?;
        if password.chars().count() < 8 || password.len() > 1024 {
            return Err("the password must be 8 to 1024 characters long".into());
        }
        let password_hash = latchkey_token::password::hash(entropy, password).ok_or("password hashing failed")?;
        Ok(User::new(entropy, now, username, password_hash, is_verified, roles))
    }

    /// A new, enabled user whose password hash comes from another system (an import):
    /// any scheme [`latchkey_token::password::check_importable`] accepts. It is
    /// replaced by an argon2id hash at the user's first login.
    ///
    /// # Errors
    /// A message safe to show (never the hash): the account checks of
    /// [`User::with_password`], or why the hash cannot be used.
    pub fn with_imported_hash(
        entropy: &dyn latchkey_token::Entropy,
        now: UnixSeconds,
        username: &str,
        password_hash: &str,
        is_verified: bool,
        roles: Vec<String>,
    ) -> Result<User, String> {
        check_account(username, &roles)?;
        if password_hash.len() > 1024 {
            return Err("the password hash is over 1024 bytes".into());
        }
        latchkey_token::password::check_importable(password_hash)?;
        Ok(User::new(entropy, now, username, password_hash.to_owned(), is_verified, roles))
    }

    fn new(
        entropy: &dyn latchkey_token::Entropy,
        now: UnixSeconds,
        username: &str,
        password_hash: String,
        is_verified: bool,
        roles: Vec<String>,
    ) -> User {
        User {
            id: latchkey_token::secret::random_uuid(entropy),
            username: username.to_owned(),
            password_hash,
            disabled: false,
            disabled_reason: None,
            is_verified,
            roles,
            created_at: now,
        }
    }
}

/// One security event of the audit stream (see [`crate::Store::append_audit`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Orders the stream and names the event: `<at, 10 digits>-<request id>-<n>`, so
    /// it is unique and cursors sort by time.
    pub cursor: String,
    /// When it happened.
    pub at: UnixSeconds,
    /// What happened: `login.succeeded`, `token.issued`, `refresh.reuse_detected`, ...
    pub event: String,
    /// The request it happened in (`X-Request-Id`).
    pub request_id: Option<String>,
    /// The OAuth client, if one was involved.
    pub client_id: Option<String>,
    /// The user it concerns.
    pub user_id: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// The user agent.
    pub user_agent: Option<String>,
    /// More about it, for people (never a token, cookie, code or password).
    pub detail: Option<String>,
}

/// What kind of credential a session backs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// A browser login, carried by the session cookie (Authgear's IdP session).
    Browser,
    /// Tokens issued to one client by `/oauth2/token` (Authgear's offline grant).
    Token,
}

impl SessionKind {
    /// Stable name used by storage backends.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Browser => "browser",
            SessionKind::Token => "token",
        }
    }

    /// Parses [`SessionKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "browser" => Some(SessionKind::Browser),
            "token" => Some(SessionKind::Token),
            _ => None,
        }
    }
}

/// A session: a browser login or a client's token grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Random id; the public half of the cookie or refresh token.
    pub id: String,
    /// Browser or token.
    pub kind: SessionKind,
    /// Owner.
    pub user_id: String,
    /// The client a token session was issued to.
    pub client_id: Option<String>,
    /// The browser session a token session was created from; revoking the parent
    /// revokes the child.
    pub parent_id: Option<String>,
    /// Creation time.
    pub created_at: UnixSeconds,
    /// When the user authenticated (`auth_time`).
    pub authenticated_at: UnixSeconds,
    /// Authentication methods (`amr`).
    pub amr: Vec<String>,
    /// Granted scopes (token sessions).
    pub scopes: Vec<String>,
    /// Absolute lifetime and idle timeout, fixed at creation.
    pub lifetime: Lifetime,
    /// Last recorded use (throttled).
    pub last_used_at: UnixSeconds,
    /// Set once revoked; a revoked session never becomes valid again.
    pub revoked_at: Option<UnixSeconds>,
    /// SHA-256 of the whole cookie value (browser sessions).
    pub secret_hash: Option<String>,
    /// Refresh-token state (token sessions that were granted `offline_access`).
    pub refresh: Option<RefreshState>,
    /// Incremented by every swap and revocation; the compare-and-swap key.
    pub version: u64,
    /// User agent at creation.
    pub user_agent: Option<String>,
    /// Client IP at creation.
    pub ip: Option<String>,
}

impl Session {
    /// A revoked placeholder for an id that has no session yet: `revoke_session` on an
    /// unknown id stores one, so a session created later under that id is refused.
    pub fn tombstone(id: &str, now: UnixSeconds) -> Self {
        Session {
            id: id.to_owned(),
            kind: SessionKind::Token,
            user_id: String::new(),
            client_id: None,
            parent_id: None,
            created_at: now,
            authenticated_at: now,
            amr: Vec::new(),
            scopes: Vec::new(),
            lifetime: Lifetime { lifetime_seconds: 0, idle_timeout_seconds: None },
            last_used_at: now,
            revoked_at: Some(now),
            secret_hash: None,
            refresh: None,
            version: 0,
            user_agent: None,
            ip: None,
        }
    }

    /// When the session expires, by `min(created + lifetime, last use + idle)`.
    pub fn expires_at(&self) -> UnixSeconds {
        self.lifetime.expires_at(self.created_at, self.last_used_at)
    }

    /// Whether the session is neither revoked nor expired at `now`.
    pub fn is_active(&self, now: UnixSeconds) -> bool {
        self.revoked_at.is_none() && now < self.expires_at()
    }
}

/// An authorization code awaiting redemption. Stored by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    /// SHA-256 of the code.
    pub hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The `redirect_uri` of the authorization request, which the token request must repeat.
    pub redirect_uri: String,
    /// The authenticated user.
    pub user_id: String,
    /// The browser session the user authenticated in.
    pub browser_session_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// OpenID `nonce`, echoed in the ID token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge, when one was sent.
    pub code_challenge: Option<String>,
    /// `auth_time`.
    pub authenticated_at: UnixSeconds,
    /// `amr`.
    pub amr: Vec<String>,
    /// Issue time.
    pub created_at: UnixSeconds,
    /// The code is unusable from this time on.
    pub expires_at: UnixSeconds,
}

/// The result of redeeming a code.
// A short-lived return value, never stored in bulk: boxing would cost more than it saves.
#[allow(clippy::large_enum_variant, reason = "short-lived return value; the size difference depends on the target")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// First redemption.
    Redeemed(AuthCode),
    /// Already redeemed; the session created by the first redemption.
    Replayed {
        /// Session to revoke.
        session_id: String,
    },
    /// No such code, or expired.
    Unknown,
}
