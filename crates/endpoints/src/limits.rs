//! Brute-force and abuse limits: fixed-window rate limits on the token endpoint and on
//! failed sign-ins, and account lockout with exponential backoff.
//!
//! Counters live behind the store port (`bump_counter`); on the local server they are
//! process memory shared by all workers, so they reset on restart (see the store
//! docs). Login limits are debited only on failure, as Authgear does, so a user who
//! signs in correctly is never throttled by them.

use bytes::Bytes;
use http::Request;
use latchkey_store::{Store, StoreError};
use latchkey_token::UnixSeconds;
use latchkey_token::secret::sha256_hex;

use crate::App;
use crate::config::Limit;
use crate::error::ApiError;
use crate::request::header_text;

impl<S: Store> App<S> {
    /// The client address used for limits: the peer, or behind a trusted proxy the
    /// last `X-Forwarded-For` entry (the address that proxy saw).
    pub(crate) fn client_ip(&self, req: &Request<Bytes>) -> String {
        if self.config.http.trust_proxy
            && let Some(last) = header_text(req.headers(), "x-forwarded-for").and_then(|v| v.rsplit(',').next())
            && !last.trim().is_empty()
        {
            return last.trim().to_owned();
        }
        req.extensions().get::<crate::ClientAddr>().map_or_else(|| "unknown".to_owned(), |a| a.0.clone())
    }

    fn window_key(name: &str, subject: &str, limit: &Limit, now: UnixSeconds) -> (String, UnixSeconds) {
        let start = now - now % limit.window_seconds;
        // Subjects (usernames, addresses) are hashed so counter keys hold no personal data.
        (format!("rl:{name}:{}:{start}", sha256_hex(subject)), start + limit.window_seconds)
    }

    /// Counts a hit; `Some(retry_after)` when it is over the limit.
    async fn hit(&self, name: &str, subject: &str, limit: &Limit, now: UnixSeconds) -> Result<Option<u64>, StoreError> {
        if limit.limit == 0 {
            return Ok(None);
        }
        let (key, window_end) = Self::window_key(name, subject, limit, now);
        let c = self.store.bump_counter(&key, now, limit.window_seconds).await?;
        Ok((c.count > limit.limit).then(|| (window_end - now).max(1)))
    }

    /// Whether a bucket is already exhausted, without counting.
    async fn exhausted(
        &self,
        name: &str,
        subject: &str,
        limit: &Limit,
        now: UnixSeconds,
    ) -> Result<Option<u64>, StoreError> {
        if limit.limit == 0 {
            return Ok(None);
        }
        let (key, window_end) = Self::window_key(name, subject, limit, now);
        let count = self.store.counter(&key, now).await?.map_or(0, |c| c.count);
        Ok((count >= limit.limit).then(|| (window_end - now).max(1)))
    }

    /// The token endpoint's per-address limit.
    pub(crate) async fn limit_token_ip(&self, req: &Request<Bytes>) -> Result<(), ApiError> {
        let limit = self.config.rate_limits.token_per_ip;
        match self.hit("token_ip", &self.client_ip(req), &limit, self.now()).await? {
            Some(retry) => Err(ApiError::RateLimited(retry)),
            None => Ok(()),
        }
    }

    /// The token endpoint's per-user limit (code and refresh grants).
    pub(crate) async fn limit_token_user(&self, user_id: &str) -> Result<(), ApiError> {
        let limit = self.config.rate_limits.token_per_user;
        match self.hit("token_user", user_id, &limit, self.now()).await? {
            Some(retry) => Err(ApiError::RateLimited(retry)),
            None => Ok(()),
        }
    }

    /// The client-credentials limit per client.
    pub(crate) async fn limit_client_credentials(&self, client_id: &str) -> Result<(), ApiError> {
        let limit = self.config.rate_limits.client_credentials_per_client;
        match self.hit("cc_client", client_id, &limit, self.now()).await? {
            Some(retry) => Err(ApiError::RateLimited(retry)),
            None => Ok(()),
        }
    }

    fn lockout_key(username: &str) -> String {
        format!("lockout:{}", sha256_hex(username))
    }

    /// `Some(retry_after)` when sign-in for `username` from this address must be
    /// refused before the password is even checked.
    pub(crate) async fn login_blocked(&self, req: &Request<Bytes>, username: &str) -> Result<Option<u64>, StoreError> {
        let now = self.now();
        let ip = self.client_ip(req);
        let limits = &self.config.rate_limits;
        if let Some(r) = self.exhausted("login_ip", &ip, &limits.login_failures_per_ip, now).await? {
            return Ok(Some(r));
        }
        let user_ip = format!("{username}\u{0}{ip}");
        if let Some(r) = self.exhausted("login_user_ip", &user_ip, &limits.login_failures_per_user_ip, now).await? {
            return Ok(Some(r));
        }
        let lockout = &self.config.lockout;
        if !lockout.enabled {
            return Ok(None);
        }
        let Some(c) = self.store.counter(&Self::lockout_key(username), now).await? else { return Ok(None) };
        if c.count < lockout.max_attempts {
            return Ok(None);
        }
        let exponent = c.count - lockout.max_attempts;
        let factor = u64::from(lockout.backoff_factor).saturating_pow(exponent.min(63));
        let duration = lockout.minimum_duration_seconds.saturating_mul(factor).min(lockout.maximum_duration_seconds);
        let until = c.last_at.saturating_add(duration);
        Ok((now < until).then(|| until - now))
    }

    /// Debits every sign-in failure bucket.
    pub(crate) async fn record_login_failure(&self, req: &Request<Bytes>, username: &str) -> Result<(), StoreError> {
        let now = self.now();
        let ip = self.client_ip(req);
        let limits = &self.config.rate_limits;
        self.hit("login_ip", &ip, &limits.login_failures_per_ip, now).await?;
        self.hit("login_user_ip", &format!("{username}\u{0}{ip}"), &limits.login_failures_per_user_ip, now).await?;
        let lockout = &self.config.lockout;
        if lockout.enabled {
            let ttl = lockout.history_duration_seconds.max(lockout.maximum_duration_seconds);
            self.store.bump_counter(&Self::lockout_key(username), now, ttl).await?;
        }
        Ok(())
    }

    /// A successful sign-in forgets the username's failures.
    pub(crate) async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError> {
        self.store.reset_counter(&Self::lockout_key(username)).await
    }
}
