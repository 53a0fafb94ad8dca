//! `llmux-provider-bedrock`: AWS Bedrock Runtime behind the canonical OpenAI-shaped types
//! — chat over Converse (`POST /model/{id}/converse`) and ConverseStream
//! (`/converse-stream`, a binary event stream), embeddings over InvokeModel (`/invoke`,
//! Amazon Titan and Cohere bodies).
//!
//! Owns: the Converse translation ([`codec`]), event-stream decoding ([`stream`]), the
//! embedding bodies ([`embed`]), SigV4 signing and credential resolution ([`auth`]), and
//! the deployment's URLs (`{base}/model/{percent-encoded model id}/…`, base
//! `https://bedrock-runtime.{region}.amazonaws.com` unless `api_base` says otherwise).
//! [`Bedrock`] is the thin async glue.
//!
//! Must not: route, retry, price or authenticate clients — a provider serves one
//! deployment — fetch credentials over the network, or depend on the router, cost, store
//! or server crates. Secrets never reach logs, errors or `Debug` output.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod codec;
pub mod embed;
pub mod stream;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use llmux_core::provider::EnvLookup;
use llmux_core::{
    CallContext, Capability, ChatChunk, ChatRequest, ChatResponse, ChatStream, DeploymentSettings,
    EmbeddingRequest, EmbeddingResponse, Error, Provider, ProviderFactory, Secret,
};
use llmux_http::reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::auth::Auth;
use crate::codec::DecodeOptions;
use crate::embed::EmbedFamily;

/// A call may take this long unless the deployment says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest silence tolerated between two reads of a stream.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Titan embedding calls in flight at once for one request (Titan embeds one input per
/// call).
pub const EMBED_CONCURRENCY: usize = 8;

const NAME: &str = "bedrock";

/// The Bedrock Runtime endpoint of `region`.
pub fn default_base(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// One Bedrock deployment: a model (foundation model id, inference profile or ARN) in a
/// region, with its credentials. URLs are prepared once, here.
pub struct Bedrock {
    model: String,
    region: String,
    auth: Auth,
    converse_url: String,
    converse_stream_url: String,
    invoke_url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

impl std::fmt::Debug for Bedrock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bedrock")
            .field("model", &self.model)
            .field("region", &self.region)
            .field("auth", &self.auth)
            .field("converse_url", &self.converse_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request(format!("{NAME}: {}", message.into())).with_provider(NAME)
}

/// Whether a header may be set by deployment or call settings (the ones the signature
/// and transport own may not).
fn settable_header(name: &str) -> bool {
    !(name == "authorization"
        || name == "host"
        || name == "content-length"
        || name.starts_with("x-amz-"))
}

impl Bedrock {
    /// Build for `settings`, falling back to the process environment for credentials and
    /// region (see [`Bedrock::with_env`]).
    pub fn new(settings: &DeploymentSettings) -> Result<Self, Error> {
        Self::with_env(settings, &process_env)
    }

    /// Build for `settings` with `env` as the environment: credentials from
    /// `params.aws_access_key_id` / `aws_secret_access_key` / `aws_session_token`, else
    /// `api_key` (a Bedrock API key, sent as a bearer token), else `AWS_BEARER_TOKEN_BEDROCK`,
    /// else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`; region from
    /// `params.aws_region_name`, an ARN model id, `AWS_REGION` or `AWS_DEFAULT_REGION`;
    /// base URL from `api_base` or `params.aws_bedrock_runtime_endpoint`, else the
    /// region's endpoint; `headers` sent (and signed) with every call.
    pub fn with_env(settings: &DeploymentSettings, env: EnvLookup<'_>) -> Result<Self, Error> {
        if settings.model.is_empty() {
            return Err(bad("the deployment names no model id"));
        }
        let auth = auth::resolve_auth(settings, env)?;
        let region = auth::resolve_region(settings, env)?;
        let endpoint = settings
            .params
            .get("aws_bedrock_runtime_endpoint")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let base = settings.api_base.as_deref().or(endpoint).map_or_else(
            || default_base(&region),
            |b| b.trim_end_matches('/').to_owned(),
        );
        let parsed = llmux_http::reqwest::Url::parse(&base)
            .map_err(|_| bad("api_base is not a valid URL"))?;
        if parsed.host_str().is_none() || !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("api_base must be an http(s) URL with a host"));
        }
        let model_url = format!(
            "{base}/model/{}",
            auth::encode_path_segment(&settings.model)
        );
        let mut headers = Vec::with_capacity(settings.headers.len());
        for (k, v) in &settings.headers {
            let k = k.to_ascii_lowercase();
            if !settable_header(&k) {
                return Err(bad(format!("header '{k}' is set by the provider itself")));
            }
            HeaderName::try_from(k.as_str())
                .map_err(|_| bad(format!("invalid header name '{k}'")))?;
            HeaderValue::from_str(v).map_err(|_| bad(format!("invalid value for header '{k}'")))?;
            headers.push((k, v.clone()));
        }
        Ok(Self {
            model: settings.model.clone(),
            region,
            auth,
            converse_url: format!("{model_url}/converse"),
            converse_stream_url: format!("{model_url}/converse-stream"),
            invoke_url: format!("{model_url}/invoke"),
            headers,
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
        })
    }

    /// The Converse URL (for tests and diagnostics).
    pub fn converse_url(&self) -> &str {
        &self.converse_url
    }

    fn timeout(&self, cx: &CallContext) -> Duration {
        cx.timeout.unwrap_or(self.timeout)
    }

    /// The signed POST of `body` to `url`.
    fn post(
        &self,
        url: &str,
        accept: &str,
        body: Vec<u8>,
        cx: &CallContext,
    ) -> Result<llmux_http::reqwest::RequestBuilder, Error> {
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("accept".to_owned(), accept.to_owned()),
        ];
        let mut set = |k: String, v: String| {
            if let Some(slot) = headers.iter_mut().find(|(n, _)| *n == k) {
                slot.1 = v;
            } else {
                headers.push((k, v));
            }
        };
        for (k, v) in &self.headers {
            set(k.clone(), v.clone());
        }
        for (k, v) in &cx.headers {
            let k = k.to_ascii_lowercase();
            if settable_header(&k) {
                set(k, v.clone());
            }
        }
        let signed = auth::auth_headers(
            &self.auth,
            &self.region,
            url,
            &headers,
            &body,
            SystemTime::now(),
        )?;
        let mut map = HeaderMap::with_capacity(headers.len() + signed.len());
        for (k, v) in headers
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .chain(signed.iter().map(|(k, v)| (*k, v)))
        {
            let name =
                HeaderName::try_from(k).map_err(|_| bad(format!("invalid header name '{k}'")))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| bad(format!("invalid value for header '{k}'")))?;
            if k == "authorization" || k == "x-amz-security-token" {
                value.set_sensitive(true);
            }
            map.insert(name, value);
        }
        Ok(llmux_http::client().post(url).headers(map).body(body))
    }

    fn upstream_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        codec::decode_error(
            status,
            headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            body,
            llmux_http::retry_after(headers),
            &self.auth.secrets(),
        )
    }

    fn decode_options(
        &self,
        headers: &HeaderMap,
        cx: &CallContext,
        json_mode: bool,
    ) -> DecodeOptions {
        let request_id = headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .unwrap_or(cx.request_id.as_str());
        DecodeOptions {
            id: if request_id.is_empty() {
                "chatcmpl-bedrock".to_owned()
            } else {
                format!("chatcmpl-{request_id}")
            },
            model: self.model.clone(),
            created: unix_now(),
            json_mode,
        }
    }

    /// One InvokeModel call: the answer body and the input-token header.
    async fn invoke(
        &self,
        body: &Value,
        cx: &CallContext,
    ) -> Result<(Vec<u8>, Option<u64>), Error> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("could not encode the upstream request: {e}")))?;
        let post = self.post(&self.invoke_url, "application/json", bytes, cx)?;
        let (status, headers, body) =
            llmux_http::send_and_read(NAME, post, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        let tokens = headers
            .get("x-amzn-bedrock-input-token-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Ok((body.to_vec(), tokens))
    }
}

/// What the stream adapter carries between polls.
struct StreamState<S> {
    body: S,
    decoder: stream::ConverseStreamDecoder,
    ready: VecDeque<Result<ChatChunk, Error>>,
    scratch: Vec<ChatChunk>,
    done: bool,
}

#[async_trait]
impl Provider for Bedrock {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let enc = codec::encode_request(req, &codec::EncodeOptions { model: &self.model })?;
        let post = self.post(&self.converse_url, "application/json", enc.to_vec()?, cx)?;
        let (status, headers, body) =
            llmux_http::send_and_read(NAME, post, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        codec::decode_response(&body, &self.decode_options(&headers, cx, enc.json_mode))
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let enc = codec::encode_request(req, &codec::EncodeOptions { model: &self.model })?;
        let post = self.post(
            &self.converse_stream_url,
            "application/vnd.amazon.eventstream",
            enc.to_vec()?,
            cx,
        )?;
        let resp = llmux_http::send_streaming(NAME, post, self.timeout(cx)).await?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        let opts = self.decode_options(resp.headers(), cx, enc.json_mode);
        let state = StreamState {
            body: Box::pin(resp.bytes_stream()),
            decoder: stream::ConverseStreamDecoder::new(opts),
            ready: VecDeque::new(),
            scratch: Vec::new(),
            done: false,
        };
        let chunks = futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.ready.pop_front() {
                    return Some((item, st));
                }
                if st.done {
                    return None;
                }
                let next = match tokio::time::timeout(STREAM_IDLE_TIMEOUT, st.body.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        st.done = true;
                        return Some((
                            Err(llmux_http::timeout_error(NAME, STREAM_IDLE_TIMEOUT)),
                            st,
                        ));
                    }
                };
                match next {
                    Some(Ok(bytes)) => {
                        let r = st.decoder.feed(&bytes, &mut st.scratch);
                        st.ready.extend(st.scratch.drain(..).map(Ok));
                        if let Err(e) = r {
                            st.ready.push_back(Err(e));
                            st.done = true;
                        } else if st.decoder.is_done() {
                            // `metadata` is the last event Bedrock sends.
                            st.done = true;
                        }
                    }
                    Some(Err(e)) => {
                        st.ready
                            .push_back(Err(llmux_http::transport_error(NAME, e)));
                        st.done = true;
                    }
                    None => {
                        if let Err(e) = st.decoder.finish() {
                            st.ready.push_back(Err(e));
                        }
                        st.done = true;
                    }
                }
            }
        });
        Ok(Box::pin(chunks))
    }

    async fn embed(
        &self,
        req: EmbeddingRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingResponse, Error> {
        let Some(family) = embed::family(&self.model) else {
            return Err(Error::bad_request(format!(
                "{NAME}: '{}' is not an embedding model llmux speaks (Amazon Titan text \
                 embeddings or Cohere Embed)",
                self.model
            ))
            .with_code("unsupported_operation")
            .with_provider(NAME));
        };
        let bodies = embed::encode(&req, family)?;
        let answers: Vec<Result<(Vec<u8>, Option<u64>), Error>> = match family {
            EmbedFamily::Titan { .. } => {
                let calls: Vec<_> = bodies.iter().map(|b| self.invoke(b, cx)).collect();
                futures_util::stream::iter(calls)
                    .buffered(EMBED_CONCURRENCY)
                    .collect()
                    .await
            }
            EmbedFamily::Cohere => {
                let mut out = Vec::with_capacity(bodies.len());
                for b in &bodies {
                    out.push(self.invoke(b, cx).await);
                }
                out
            }
        };
        let mut vectors = Vec::new();
        let mut tokens = 0u64;
        for answer in answers {
            let (body, header_tokens) = answer?;
            let (v, t) = embed::decode(family, &body, header_tokens)?;
            vectors.extend(v);
            tokens += t;
        }
        let base64 = req.encoding_format.as_deref() == Some("base64");
        Ok(embed::response(&self.model, vectors, tokens, base64))
    }
}

fn build(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Bedrock::new(settings)?))
}

/// `bedrock/*` is served when the environment holds credentials (`AWS_BEARER_TOKEN_BEDROCK`,
/// or `AWS_ACCESS_KEY_ID` with `AWS_SECRET_ACCESS_KEY`) and a region (`AWS_REGION` or
/// `AWS_DEFAULT_REGION`). Access keys stay in the environment (the provider reads them
/// when built); only the region and a bearer token are copied into the template.
fn from_env(env: EnvLookup<'_>) -> Option<DeploymentSettings> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION"))?;
    let bearer = get("AWS_BEARER_TOKEN_BEDROCK");
    let keys = get("AWS_ACCESS_KEY_ID").is_some() && get("AWS_SECRET_ACCESS_KEY").is_some();
    if bearer.is_none() && !keys {
        return None;
    }
    let mut s = DeploymentSettings::new(NAME, "*");
    s.api_key = bearer.map(Secret::new);
    s.params
        .insert("aws_region_name".into(), Value::String(region));
    Some(s)
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "bedrock",
        description: "AWS Bedrock: Converse and ConverseStream chat (tools, images, reasoning), Titan and Cohere embeddings; SigV4 or API key",
        default_api_base: "",
        capabilities: &[Capability::Chat, Capability::Embeddings],
        build,
        from_env,
    }
}

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(model: &str) -> DeploymentSettings {
        let mut s = DeploymentSettings::new("bedrock", model);
        s.params =
            json!({"aws_access_key_id": "AKIDTEST0000", "aws_secret_access_key": "very-secret-key",
            "aws_region_name": "eu-central-1"})
            .as_object()
            .cloned()
            .unwrap();
        s
    }

    #[test]
    fn registers_itself() {
        let f = llmux_core::find_provider("bedrock").expect("registered");
        assert_eq!(f.default_api_base, "");
        assert_eq!(f.capabilities, [Capability::Chat, Capability::Embeddings]);
        let p = (f.build)(&settings("amazon.nova-lite-v1:0")).unwrap();
        assert_eq!((p.name(), p.model()), ("bedrock", "amazon.nova-lite-v1:0"));
    }

    #[test]
    fn urls_encode_the_model_id_and_follow_the_region() {
        let p = Bedrock::with_env(
            &settings("us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            p.converse_url,
            "https://bedrock-runtime.eu-central-1.amazonaws.com/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
        );
        assert!(p.converse_stream_url.ends_with("-v1%3A0/converse-stream"));
        assert!(p.invoke_url.ends_with("-v1%3A0/invoke"));
        let mut s = settings("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x-v1:0");
        s.api_base = Some("http://127.0.0.1:9/".into());
        let p = Bedrock::with_env(&s, &|_| None).unwrap();
        assert_eq!(
            p.converse_url,
            "http://127.0.0.1:9/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x-v1%3A0/converse"
        );
        assert_eq!(p.region, "eu-central-1");
        s.api_base = Some("not a url".into());
        assert!(Bedrock::with_env(&s, &|_| None).is_err());
        let mut h = settings("m");
        h.headers.insert("X-Amz-Date".into(), "x".into());
        assert!(Bedrock::with_env(&h, &|_| None).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let p = Bedrock::with_env(&settings("m"), &|_| None).unwrap();
        let d = format!("{p:?}");
        assert!(
            !d.contains("very-secret-key") && !d.contains("AKIDTEST0000"),
            "{d}"
        );
    }

    #[test]
    fn env_template_needs_credentials_and_a_region() {
        let none = |_: &str| None;
        assert!(from_env(&none).is_none());
        let keys_no_region = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("x".to_owned()),
            _ => None,
        };
        assert!(from_env(&keys_no_region).is_none());
        let keys = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("x".to_owned()),
            "AWS_DEFAULT_REGION" => Some("us-west-2".to_owned()),
            _ => None,
        };
        let s = from_env(&keys).unwrap();
        assert_eq!((s.provider.as_str(), s.model.as_str()), ("bedrock", "*"));
        assert_eq!(s.params["aws_region_name"], "us-west-2");
        assert!(s.api_key.is_none() && !s.params.contains_key("aws_secret_access_key"));
        let bearer = |k: &str| match k {
            "AWS_BEARER_TOKEN_BEDROCK" => Some("bedrock-api-key".to_owned()),
            "AWS_REGION" => Some("us-east-1".to_owned()),
            _ => None,
        };
        let s = from_env(&bearer).unwrap();
        assert_eq!(s.api_key.unwrap().expose(), "bedrock-api-key");
    }
}
