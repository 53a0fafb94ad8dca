//! How a Bedrock call proves who it is: AWS Signature Version 4 over the exact bytes sent
//! (service `bedrock`), or a Bedrock API key sent as `Authorization: Bearer`.
//!
//! Owns: resolving credentials and the region from deployment settings (LiteLLM's
//! parameter names) with the process environment as the fallback, signing one request,
//! and percent-encoding a model id into a URL path segment.
//!
//! Must not: log or print a secret (the [`Auth`] `Debug` shows only which kind it is and
//! the access key id's last four characters), fetch credentials over the network (no
//! instance metadata, no STS, no profiles), or know any body format.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use llmux_core::provider::EnvLookup;
use llmux_core::{DeploymentSettings, Error, Secret};
use serde_json::Value;

/// The SigV4 signing name of Bedrock Runtime (the host says `bedrock-runtime`).
pub const SIGNING_NAME: &str = "bedrock";

const NAME: &str = "bedrock";

/// Deployment parameters that ask for a credential source llmux does not implement.
/// Rejected at start-up rather than silently ignored.
const UNSUPPORTED_PARAMS: [&str; 6] = [
    "aws_profile_name",
    "aws_role_name",
    "aws_session_name",
    "aws_web_identity_token",
    "aws_sts_endpoint",
    "aws_external_id",
];

/// How calls are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// SigV4 with static (possibly temporary) credentials.
    SigV4 {
        /// `AKIA…` / `ASIA…`.
        access_key_id: Secret,
        /// The secret key.
        secret_access_key: Secret,
        /// For temporary credentials: sent (and signed) as `x-amz-security-token`.
        session_token: Option<Secret>,
    },
    /// A Bedrock API key: `Authorization: Bearer …`, no signature.
    Bearer(Secret),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SigV4 {
                access_key_id,
                session_token,
                ..
            } => {
                let id = access_key_id.expose();
                let tail = id.get(id.len().saturating_sub(4)..).unwrap_or("");
                f.debug_struct("SigV4")
                    .field("access_key_id", &format_args!("…{tail}"))
                    .field("session_token", &session_token.is_some())
                    .finish_non_exhaustive()
            }
            Self::Bearer(_) => f.write_str("Bearer([redacted])"),
        }
    }
}

impl Auth {
    /// The secret values, for redaction from upstream messages.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Self::SigV4 {
                secret_access_key,
                session_token,
                ..
            } => {
                let mut v = vec![secret_access_key.expose()];
                v.extend(session_token.as_ref().map(Secret::expose));
                v
            }
            Self::Bearer(t) => vec![t.expose()],
        }
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request(format!("{NAME}: {}", message.into())).with_provider(NAME)
}

/// A string parameter (`params.name`), `None` when absent or empty.
fn param<'a>(settings: &'a DeploymentSettings, name: &str) -> Result<Option<&'a str>, Error> {
    match settings.params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("params.{name} must be a string"))),
    }
}

fn env_value(env: EnvLookup<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// The credentials of a deployment, in this order: `params.aws_access_key_id` +
/// `params.aws_secret_access_key` (+ `params.aws_session_token`); the deployment's
/// `api_key` as a Bedrock API key; `AWS_BEARER_TOKEN_BEDROCK`; `AWS_ACCESS_KEY_ID` +
/// `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
pub fn resolve_auth(settings: &DeploymentSettings, env: EnvLookup<'_>) -> Result<Auth, Error> {
    for p in UNSUPPORTED_PARAMS {
        if param(settings, p)?.is_some() {
            return Err(bad(format!(
                "params.{p} is not supported: give static credentials \
                 (aws_access_key_id, aws_secret_access_key, aws_session_token) or an API key"
            )));
        }
    }
    let id = param(settings, "aws_access_key_id")?;
    let secret = param(settings, "aws_secret_access_key")?;
    let token = param(settings, "aws_session_token")?;
    match (id, secret) {
        (Some(id), Some(secret)) => {
            return Ok(Auth::SigV4 {
                access_key_id: Secret::new(id),
                secret_access_key: Secret::new(secret),
                session_token: token.map(Secret::new),
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(bad(
                "params.aws_access_key_id and params.aws_secret_access_key go together",
            ));
        }
        (None, None) => {}
    }
    if let Some(key) = settings.api_key.as_ref().filter(|k| !k.expose().is_empty()) {
        return Ok(Auth::Bearer(key.clone()));
    }
    if let Some(key) = env_value(env, "AWS_BEARER_TOKEN_BEDROCK") {
        return Ok(Auth::Bearer(Secret::new(key)));
    }
    match (
        env_value(env, "AWS_ACCESS_KEY_ID"),
        env_value(env, "AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Ok(Auth::SigV4 {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(secret),
            session_token: env_value(env, "AWS_SESSION_TOKEN").map(Secret::new),
        }),
        _ => Err(bad(
            "no AWS credentials: set params.aws_access_key_id and params.aws_secret_access_key, \
             an api_key (Bedrock API key), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or \
             AWS_BEARER_TOKEN_BEDROCK in the environment",
        )),
    }
}

/// The region named by an ARN model id (`arn:aws:bedrock:REGION:…`).
fn arn_region(model: &str) -> Option<&str> {
    let mut parts = model.split(':');
    (parts.next()? == "arn").then_some(())?;
    parts.next()?;
    (parts.next()? == "bedrock").then_some(())?;
    parts.next().filter(|r| !r.is_empty())
}

/// The deployment's region: `params.aws_region_name`, the region of an ARN model id,
/// `AWS_REGION`, `AWS_DEFAULT_REGION`.
pub fn resolve_region(settings: &DeploymentSettings, env: EnvLookup<'_>) -> Result<String, Error> {
    let region = param(settings, "aws_region_name")?
        .map(str::to_owned)
        .or_else(|| arn_region(&settings.model).map(str::to_owned))
        .or_else(|| env_value(env, "AWS_REGION"))
        .or_else(|| env_value(env, "AWS_DEFAULT_REGION"))
        .ok_or_else(|| {
            bad("no AWS region: set params.aws_region_name or AWS_REGION / AWS_DEFAULT_REGION")
        })?;
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad(format!("'{region}' is not an AWS region name")));
    }
    Ok(region)
}

/// Percent-encodes `s` as one URL path segment: everything but RFC 3986's unreserved
/// characters, so `:` and `/` of inference-profile ids and ARNs stay inside the segment.
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers that authenticate one request, to add to it as given.
///
/// For SigV4 the signature covers the method, `url` (already percent-encoded; AWS's
/// canonical form encodes the path once more), `headers` (names lower-case), the host
/// taken from `url`, `x-amz-date`, the session token, and the SHA-256 of `body`.
pub fn auth_headers(
    auth: &Auth,
    region: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>, Error> {
    signed_headers(auth, region, SIGNING_NAME, url, headers, body, now)
}

fn signed_headers(
    auth: &Auth,
    region: &str,
    service: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>, Error> {
    let (access_key_id, secret_access_key, session_token) = match auth {
        Auth::Bearer(token) => {
            return Ok(vec![(
                "authorization",
                format!("Bearer {}", token.expose()),
            )]);
        }
        Auth::SigV4 {
            access_key_id,
            secret_access_key,
            session_token,
        } => (access_key_id, secret_access_key, session_token),
    };
    let identity = Credentials::new(
        access_key_id.expose(),
        secret_access_key.expose(),
        session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "llmux-deployment",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::internal(format!("{NAME}: could not sign the request: {e}")))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| Error::internal(format!("{NAME}: could not sign the request: {e}")))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| Error::internal(format!("{NAME}: could not sign the request: {e}")))?
        .into_parts();
    let (signed, _query) = instructions.into_parts();
    Ok(signed
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(params: Value) -> DeploymentSettings {
        let mut s =
            DeploymentSettings::new("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0");
        s.params = params.as_object().cloned().unwrap_or_default();
        s
    }

    #[test]
    fn path_segments_keep_colons_and_slashes_inside() {
        assert_eq!(
            encode_path_segment("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            "us.anthropic.claude-3-5-haiku-20241022-v1%3A0"
        );
        assert_eq!(
            encode_path_segment(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0"
            ),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-2-1b-instruct-v1%3A0"
        );
        assert_eq!(encode_path_segment("a b~é"), "a%20b~%C3%A9");
    }

    #[test]
    fn credentials_come_from_params_then_api_key_then_env() {
        let none = |_: &str| None;
        let s = settings(serde_json::json!({
            "aws_access_key_id": "AKIDPARAMS0001", "aws_secret_access_key": "secret-params",
            "aws_session_token": "token-params"}));
        let Auth::SigV4 {
            access_key_id,
            session_token,
            ..
        } = resolve_auth(&s, &none).unwrap()
        else {
            panic!("sigv4 expected")
        };
        assert_eq!(access_key_id.expose(), "AKIDPARAMS0001");
        assert_eq!(session_token.unwrap().expose(), "token-params");

        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret-env".to_owned()),
            "AWS_BEARER_TOKEN_BEDROCK" => Some("bedrock-api-key-env".to_owned()),
            _ => None,
        };
        let mut s = settings(serde_json::json!({}));
        s.api_key = Some(Secret::new("bedrock-api-key-settings"));
        assert!(
            matches!(resolve_auth(&s, &env).unwrap(), Auth::Bearer(k) if k.expose() == "bedrock-api-key-settings")
        );
        s.api_key = None;
        assert!(
            matches!(resolve_auth(&s, &env).unwrap(), Auth::Bearer(k) if k.expose() == "bedrock-api-key-env")
        );
        let env_keys = |k: &str| (k != "AWS_BEARER_TOKEN_BEDROCK").then(|| env(k)).flatten();
        assert!(
            matches!(resolve_auth(&s, &env_keys).unwrap(), Auth::SigV4 { access_key_id, session_token: None, .. } if access_key_id.expose() == "AKIDENV")
        );
        assert!(resolve_auth(&s, &none).is_err());
        let half = settings(serde_json::json!({"aws_access_key_id": "AKID"}));
        assert!(resolve_auth(&half, &env).is_err());
        let role = settings(serde_json::json!({"aws_role_name": "arn:aws:iam::1:role/x"}));
        let e = resolve_auth(&role, &env).unwrap_err();
        assert!(e.message().contains("aws_role_name"), "{e}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let a = Auth::SigV4 {
            access_key_id: Secret::new("AKIDEXAMPLE1234"),
            secret_access_key: Secret::new("wJalrXUtnFEMI-secret"),
            session_token: Some(Secret::new("session-token-value")),
        };
        let d = format!("{a:?}");
        assert!(
            !d.contains("wJalr") && !d.contains("session-token") && !d.contains("AKIDEXAMPLE"),
            "{d}"
        );
        assert!(d.contains("1234"));
        assert!(!format!("{:?}", Auth::Bearer(Secret::new("api-key-123"))).contains("api-key"));
    }

    #[test]
    fn region_comes_from_params_arn_then_env() {
        let env = |k: &str| (k == "AWS_DEFAULT_REGION").then(|| "eu-west-1".to_owned());
        let none = |_: &str| None;
        let s = settings(serde_json::json!({"aws_region_name": "us-west-2"}));
        assert_eq!(resolve_region(&s, &env).unwrap(), "us-west-2");
        let mut arn = settings(serde_json::json!({}));
        arn.model = "arn:aws:bedrock:ap-south-1:123456789012:inference-profile/apac.x-v1:0".into();
        assert_eq!(resolve_region(&arn, &env).unwrap(), "ap-south-1");
        assert_eq!(
            resolve_region(&settings(serde_json::json!({})), &env).unwrap(),
            "eu-west-1"
        );
        assert!(resolve_region(&settings(serde_json::json!({})), &none).is_err());
        let bad = settings(serde_json::json!({"aws_region_name": "us-east-1/../x"}));
        assert!(resolve_region(&bad, &none).is_err());
    }

    #[test]
    fn signs_the_aws_test_suite_post_vanilla_request() {
        // aws-signing-test-suite v4/post-vanilla: POST / to example.amazonaws.com.
        let auth = Auth::SigV4 {
            access_key_id: Secret::new("AKIDEXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        };
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let out = signed_headers(
            &auth,
            "us-east-1",
            "service",
            "https://example.amazonaws.com/",
            &[],
            b"",
            at,
        )
        .unwrap();
        let authz = &out.iter().find(|(k, _)| *k == "authorization").unwrap().1;
        assert_eq!(
            authz,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn sigv4_headers_have_the_aws_shape() {
        let auth = Auth::SigV4 {
            access_key_id: Secret::new("AKIDEXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("session-token")),
        };
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.x-v1%3A0/converse";
        let out = auth_headers(&auth, "us-east-1", url, &headers, b"{}", now).unwrap();
        let get = |n: &str| out.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-amz-date"), Some("20231114T221320Z"));
        assert_eq!(get("x-amz-security-token"), Some("session-token"));
        let a = get("authorization").unwrap();
        assert!(
            a.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{a}"
        );
        // Deterministic: the same inputs sign the same; another body signs differently.
        let again = auth_headers(&auth, "us-east-1", url, &headers, b"{}", now).unwrap();
        assert_eq!(out, again);
        let other = auth_headers(&auth, "us-east-1", url, &headers, b"{ }", now).unwrap();
        assert_ne!(out, other);
        let bearer = auth_headers(
            &Auth::Bearer(Secret::new("k")),
            "r",
            url,
            &headers,
            b"",
            now,
        );
        assert_eq!(bearer.unwrap(), [("authorization", "Bearer k".to_owned())]);
    }
}
