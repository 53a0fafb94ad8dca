//! Google OAuth2 for Vertex AI: a service account's key signs a JWT (RS256), the JWT is
//! exchanged at the account's `token_uri` for an access token (the JWT-bearer grant), and
//! the token is cached and refreshed by a [`TokenSource`].
//!
//! Refresh policy: a token is used until its *refresh point* — 5 minutes before expiry, or
//! half-way through its life when it lives less than 10 minutes. Past that point, one caller
//! refreshes while every other caller keeps using the still-valid token; only a caller that
//! finds no valid token at all waits for the refresh in flight. A failed early refresh is
//! not an error while the old token is still valid.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use llmux_core::{Error, ErrorKind, Origin, Secret};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

/// The OAuth2 scope Vertex AI needs.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, used when the service account names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The grant type of a JWT-bearer token request.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime requested for each signed JWT assertion.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// How long before expiry a token is refreshed (for tokens living at least twice as long).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A service account key: who signs, with which key, and where tokens are exchanged.
pub struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    key: EncodingKey,
    token_uri: String,
    project_id: Option<String>,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

fn credential_error(provider: &'static str, what: impl fmt::Display) -> Error {
    Error::bad_request(format!("{provider}: invalid vertex_credentials: {what}"))
        .with_provider(provider)
}

impl ServiceAccount {
    /// Parse a service account key file's JSON. Never echoes the key in errors.
    pub fn from_json(provider: &'static str, json: &str) -> Result<Self, Error> {
        let file: KeyFile = serde_json::from_str(json).map_err(|e| {
            // Every field is a string, so serde's message names a missing field or a
            // syntax error position, never the value of a string (the key).
            credential_error(provider, format!("not a service account key ({e})"))
        })?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(credential_error(
                provider,
                format!("type is '{kind}', expected 'service_account'"),
            ));
        }
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|_| credential_error(provider, "private_key is not an RSA key in PEM"))?;
        Ok(Self {
            client_email: file.client_email,
            private_key_id: file.private_key_id,
            key,
            token_uri: file
                .token_uri
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
            project_id: file.project_id,
        })
    }

    /// Read a key from `source`: inline JSON (starts with `{`) or a file path.
    pub fn load(provider: &'static str, source: &str) -> Result<Self, Error> {
        let trimmed = source.trim_start();
        if trimmed.starts_with('{') {
            return Self::from_json(provider, trimmed);
        }
        let text = std::fs::read_to_string(source).map_err(|e| {
            credential_error(provider, format!("cannot read the file '{source}': {e}"))
        })?;
        Self::from_json(provider, &text)
    }

    /// The account's email (`iss` of its assertions).
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The project the key belongs to, if the file says.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// Where the key file says to exchange assertions.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// A signed assertion for `aud` (the token endpoint), issued at `now` (Unix seconds).
    pub fn assertion(&self, provider: &'static str, aud: &str, now: u64) -> Result<String, Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.private_key_id);
        let claims = Claims {
            iss: &self.client_email,
            scope: CLOUD_PLATFORM_SCOPE,
            aud,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            Error::internal(format!("{provider}: could not sign the token request: {e}"))
                .with_provider(provider)
        })
    }
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Access tokens for one service account, cached and refreshed (see the module docs).
pub struct TokenSource {
    provider: &'static str,
    account: ServiceAccount,
    token_uri: String,
    timeout: Duration,
    cache: RwLock<Option<CachedToken>>,
    refresh: Mutex<()>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.account)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenSource {
    /// A source for `account`, exchanging at `token_uri` (the account's own when `None`);
    /// each exchange must finish within `timeout`.
    pub fn new(
        provider: &'static str,
        account: ServiceAccount,
        token_uri: Option<String>,
        timeout: Duration,
    ) -> Arc<Self> {
        let token_uri = token_uri.unwrap_or_else(|| account.token_uri.clone());
        Arc::new(Self {
            provider,
            account,
            token_uri,
            timeout,
            cache: RwLock::new(None),
            refresh: Mutex::new(()),
        })
    }

    /// The endpoint tokens are exchanged at.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// A valid access token: the cached one, or a fresh one.
    pub async fn token(&self) -> Result<Secret, Error> {
        let cached = self.cache.read().await.clone();
        let now = Instant::now();
        if let Some(c) = &cached {
            if now < c.refresh_at {
                return Ok(c.token.clone());
            }
            if now < c.expires_at {
                // Due for refresh but still valid: one caller refreshes, the rest go on.
                let Ok(_guard) = self.refresh.try_lock() else {
                    return Ok(c.token.clone());
                };
                if let Some(fresh) = self.still_fresh().await {
                    return Ok(fresh);
                }
                return match self.fetch().await {
                    Ok(t) => Ok(t),
                    Err(_) => Ok(c.token.clone()),
                };
            }
        }
        // No valid token: wait for whoever is refreshing, or refresh.
        let _guard = self.refresh.lock().await;
        if let Some(fresh) = self.still_fresh().await {
            return Ok(fresh);
        }
        self.fetch().await
    }

    /// The cached token if it has not reached its refresh point (someone else refreshed).
    async fn still_fresh(&self) -> Option<Secret> {
        let cache = self.cache.read().await;
        cache
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// Exchange a new assertion for a token and cache it. Call with `refresh` held.
    async fn fetch(&self) -> Result<Secret, Error> {
        let p = self.provider;
        let assertion = self.account.assertion(p, &self.token_uri, unix_now())?;
        let body = format!(
            "grant_type={}&assertion={assertion}",
            JWT_BEARER_GRANT.replace(':', "%3A")
        );
        let req = llmux_http::client()
            .post(&self.token_uri)
            .header(
                llmux_http::reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let started = Instant::now();
        let (status, _, body) = llmux_http::send_and_read(p, req, self.timeout).await?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<TokenError>(&body)
                .ok()
                .map(|e| match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                })
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
            let kind = if status.is_server_error() {
                ErrorKind::UpstreamUnavailable
            } else {
                ErrorKind::Auth
            };
            return Err(Error::new(
                kind,
                format!("{p}: could not obtain an access token ({detail})"),
            )
            .with_origin(Origin::Upstream)
            .with_provider(p)
            .with_upstream_status(status.as_u16()));
        }
        let resp: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            Error::new(
                ErrorKind::UpstreamError,
                format!("{p}: the token endpoint sent an invalid answer"),
            )
            .with_origin(Origin::Upstream)
            .with_provider(p)
        })?;
        let lifetime = Duration::from_secs(resp.expires_in.unwrap_or(3600));
        let margin = if lifetime >= REFRESH_MARGIN * 2 {
            REFRESH_MARGIN
        } else {
            lifetime / 2
        };
        let token = Secret::new(resp.access_token);
        *self.cache.write().await = Some(CachedToken {
            token: token.clone(),
            refresh_at: started + (lifetime - margin),
            expires_at: started + lifetime,
        });
        Ok(token)
    }
}
