//! Anthropic's Claude models on Vertex AI (`vertex_ai/claude-…`).
//!
//! Vertex serves Claude through Anthropic's own Messages format, posted to
//! `…/publishers/anthropic/models/{model}:rawPredict` (plain) and `:streamRawPredict`
//! (Anthropic's server-sent events). The body is a Messages API body without `model` (it is
//! in the URL) and with `"anthropic_version": "vertex-2023-10-16"`. So this module owns no
//! translation: requests, answers, stream events and Anthropic-shaped errors all go through
//! `llmux_provider_anthropic::codec`. What is Vertex's here: the URLs, the OAuth bearer
//! token (the same [`TokenSource`] as the Gemini deployments of that service account), and
//! errors, which come either in Google's shape (raised by Vertex itself: quota, auth, unknown
//! model) or in Anthropic's (raised by the model server: overloaded, invalid request).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, DeploymentSettings, Error,
    Provider, Secret,
};
use llmux_http::reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};
use llmux_provider_anthropic::codec as anthropic;
use serde_json::Value;

use crate::auth::TokenSource;
use crate::{STREAM_IDLE_TIMEOUT, VertexTarget, bad, check_segment, sensitive};

/// The `anthropic_version` Vertex AI requires in every Claude request body.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Model ids served by [`VertexClaude`] start with this (`claude-sonnet-4-5@20250929`).
pub const CLAUDE_MODEL_PREFIX: &str = "claude-";

const NAME: &str = "vertex_ai";
const BETA_HEADER: &str = "anthropic-beta";

/// Whether a `vertex_ai` model id names an Anthropic model ([`VertexClaude`] serves it).
pub fn is_claude_model(model: &str) -> bool {
    model.starts_with(CLAUDE_MODEL_PREFIX)
}

/// One deployment of an Anthropic Claude model on Vertex AI. URLs, headers and the token
/// source are prepared once, when it is built.
#[derive(Debug)]
pub struct VertexClaude {
    model: String,
    raw_predict_url: String,
    stream_raw_predict_url: String,
    headers: HeaderMap,
    betas: Vec<String>,
    token_source: Option<Arc<TokenSource>>,
    timeout: Duration,
    default_max_tokens: Option<u64>,
    api_key: Option<Secret>,
}

/// Appends each comma-separated value of `value` to `betas` unless already there.
fn merge_betas(betas: &mut Vec<String>, value: &str) {
    for beta in value.split(',').map(str::trim) {
        if !beta.is_empty() && !betas.iter().any(|b| b == beta) {
            betas.push(beta.to_owned());
        }
    }
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let n = HeaderName::try_from(name)
        .map_err(|_| bad(NAME, format!("invalid header name '{name}'")))?;
    let v = HeaderValue::from_str(value)
        .map_err(|_| bad(NAME, format!("invalid value for header '{name}'")))?;
    Ok((n, v))
}

/// `params.max_output_tokens`: a whole positive number (JSON integer or float like 64000.0).
fn max_output_tokens(settings: &DeploymentSettings) -> Option<u64> {
    match settings.params.get("max_output_tokens")? {
        Value::Number(n) => n.as_u64().filter(|v| *v > 0).or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 1.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether `body` is Anthropic's error envelope (`{"type":"error","error":{"type",…}}`)
/// rather than Google's (`{"error":{"code","message","status"}}`, maybe in an array).
fn is_anthropic_error(body: &[u8]) -> bool {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    v.get("type").and_then(Value::as_str) == Some("error")
        || v.get("error")
            .and_then(|e| e.get("type"))
            .is_some_and(Value::is_string)
}

/// Map a non-2xx Vertex answer for a Claude model onto the taxonomy, whichever shape it
/// has: Anthropic's envelope goes through the Anthropic codec, anything else (Google's
/// error, or a body that is neither) through the Gemini codec's Google error mapping.
/// `secrets` (the access token, a pre-issued token) are redacted from the message.
pub fn decode_error(
    provider: &'static str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    if is_anthropic_error(body) {
        anthropic::decode_error(provider, status, body, retry_after, secrets)
    } else {
        crate::codec::decode_error(provider, status, body, retry_after, secrets)
    }
}

impl VertexClaude {
    /// Build for `settings` (provider `vertex_ai`, model `claude-…`). The Vertex `params`
    /// are those of [`crate::Gemini::vertex_ai`] (`vertex_project`, `vertex_location`,
    /// `vertex_credentials`, `vertex_token_uri`; or a pre-issued token in `api_key`);
    /// besides, `params.max_output_tokens` is the output limit when a request sets none, and
    /// `anthropic-beta` values in `headers` are merged with those each call needs.
    pub fn new(settings: &DeploymentSettings) -> Result<Self, Error> {
        let model = settings.model.as_str();
        if !is_claude_model(model) {
            return Err(bad(
                NAME,
                format!(
                    "'{model}' is not an Anthropic model id (expected '{CLAUDE_MODEL_PREFIX}…')"
                ),
            )
            .with_code("unsupported_model"));
        }
        check_segment(NAME, "model", model)?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut betas = Vec::new();
        for (k, v) in &settings.headers {
            if k.eq_ignore_ascii_case(BETA_HEADER) {
                merge_betas(&mut betas, v);
            } else {
                let (n, v) = header_pair(k, v)?;
                headers.insert(n, v);
            }
        }
        let target = VertexTarget::new(NAME, settings)?;
        let root = target.model_url("anthropic", model);
        let token_source = target.auth.apply(NAME, &mut headers)?;
        Ok(Self {
            model: model.to_owned(),
            raw_predict_url: format!("{root}:rawPredict"),
            stream_raw_predict_url: format!("{root}:streamRawPredict"),
            headers,
            betas,
            token_source,
            timeout: target.timeout,
            default_max_tokens: max_output_tokens(settings),
            api_key: settings.api_key.clone(),
        })
    }

    /// The URL plain calls are posted to (`…:rawPredict`).
    pub fn raw_predict_url(&self) -> &str {
        &self.raw_predict_url
    }

    /// The URL streamed calls are posted to (`…:streamRawPredict`).
    pub fn stream_raw_predict_url(&self) -> &str {
        &self.stream_raw_predict_url
    }

    fn timeout(&self, cx: &CallContext) -> Duration {
        cx.timeout.unwrap_or(self.timeout)
    }

    fn encode(&self, req: ChatRequest, stream: bool) -> Result<anthropic::Encoded, Error> {
        let opts = anthropic::EncodeOptions::model_in_url(NAME, VERTEX_ANTHROPIC_VERSION)
            .with_default_max_tokens(self.default_max_tokens)
            .streaming(stream);
        anthropic::encode_request(req, &opts)
    }

    /// The POST for one call, and the access token it carries (to redact from errors).
    async fn post(
        &self,
        url: &str,
        enc: &anthropic::Encoded,
        cx: &CallContext,
    ) -> Result<(llmux_http::reqwest::RequestBuilder, Option<Secret>), Error> {
        let mut headers = self.headers.clone();
        let mut betas = self.betas.clone();
        for (k, v) in &cx.headers {
            if k.eq_ignore_ascii_case(BETA_HEADER) {
                merge_betas(&mut betas, v);
            } else {
                let (n, v) = header_pair(k, v)?;
                headers.insert(n, v);
            }
        }
        for b in &enc.betas {
            merge_betas(&mut betas, b);
        }
        if !betas.is_empty() {
            let (n, v) = header_pair(BETA_HEADER, &betas.join(","))?;
            headers.insert(n, v);
        }
        let token = match &self.token_source {
            Some(source) => {
                let token = source.token().await?;
                headers.insert(
                    AUTHORIZATION,
                    sensitive(NAME, &format!("Bearer {}", token.expose()))?,
                );
                Some(token)
            }
            None => None,
        };
        let req = llmux_http::client()
            .post(url)
            .headers(headers)
            .body(enc.to_vec()?);
        Ok((req, token))
    }

    fn upstream_error(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        token: Option<&Secret>,
    ) -> Error {
        let secrets: Vec<&str> = self
            .api_key
            .iter()
            .chain(token)
            .map(Secret::expose)
            .collect();
        decode_error(
            NAME,
            status,
            body,
            llmux_http::retry_after(headers),
            &secrets,
        )
    }
}

/// What the stream adapter carries between polls.
struct StreamState<S> {
    events: S,
    decoder: anthropic::StreamDecoder,
    model: String,
    ready: VecDeque<Result<ChatChunk, Error>>,
    scratch: Vec<ChatChunk>,
    done: bool,
}

impl<S> StreamState<S> {
    /// Queue what the decoder produced, naming the deployment's model when the upstream's
    /// `message_start` named none.
    fn queue_chunks(&mut self) {
        for mut c in self.scratch.drain(..) {
            if c.model.is_empty() {
                c.model.clone_from(&self.model);
            }
            self.ready.push_back(Ok(c));
        }
    }
}

#[async_trait]
impl Provider for VertexClaude {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let enc = self.encode(req, false)?;
        let (post, token) = self.post(&self.raw_predict_url, &enc, cx).await?;
        let (status, headers, body) =
            llmux_http::send_and_read(NAME, post, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(self.upstream_error(status.as_u16(), &headers, &body, token.as_ref()));
        }
        let mut resp = anthropic::decode_response(NAME, &body, &enc.decode_options(unix_now()))?;
        if resp.model.is_empty() {
            resp.model.clone_from(&self.model);
        }
        Ok(resp)
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let enc = self.encode(req, true)?;
        let (post, token) = self.post(&self.stream_raw_predict_url, &enc, cx).await?;
        let resp = llmux_http::send_streaming(NAME, post, self.timeout(cx)).await?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.upstream_error(status.as_u16(), &headers, &body, token.as_ref()));
        }
        let state = StreamState {
            events: Box::pin(llmux_http::sse_events(NAME, resp, STREAM_IDLE_TIMEOUT)),
            decoder: anthropic::StreamDecoder::new(NAME, &enc.decode_options(unix_now())),
            model: self.model.clone(),
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
                match st.events.next().await {
                    Some(Ok(ev)) => {
                        let fed = st
                            .decoder
                            .feed(ev.event.as_deref(), &ev.data, &mut st.scratch);
                        st.queue_chunks();
                        match fed {
                            Err(e) => {
                                st.ready.push_back(Err(e));
                                st.done = true;
                            }
                            // Nothing after message_stop belongs to this answer.
                            Ok(()) => st.done = st.decoder.is_done(),
                        }
                    }
                    Some(Err(e)) => {
                        st.ready.push_back(Err(e));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::ErrorKind;
    use serde_json::json;

    fn settings(params: Value) -> DeploymentSettings {
        let mut s = DeploymentSettings::new("vertex_ai", "claude-sonnet-4-5@20250929");
        s.params = params.as_object().cloned().unwrap_or_default();
        s.api_key = Some(Secret::new("ya29.preissued-token"));
        s
    }

    #[test]
    fn urls_per_location_and_the_global_host() {
        let c = VertexClaude::new(&settings(json!({"vertex_project": "p-1"}))).unwrap();
        assert_eq!(
            c.raw_predict_url(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p-1/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        assert_eq!(
            c.stream_raw_predict_url(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p-1/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        let c = VertexClaude::new(&settings(
            json!({"vertex_project": "p-1", "vertex_location": "global"}),
        ))
        .unwrap();
        assert_eq!(
            c.raw_predict_url(),
            "https://aiplatform.googleapis.com/v1/projects/p-1/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        assert!(c.headers[AUTHORIZATION].is_sensitive());
        assert!(!format!("{c:?}").contains("preissued-token"));
    }

    #[test]
    fn betas_and_output_limit_are_read_once() {
        let mut s = settings(json!({"vertex_project": "p", "max_output_tokens": 64000.0}));
        s.headers
            .insert("Anthropic-Beta".into(), "b-1, b-2,b-1".into());
        s.headers.insert("x-extra".into(), "yes".into());
        let c = VertexClaude::new(&s).unwrap();
        assert_eq!(c.betas, ["b-1", "b-2"]);
        assert!(!c.headers.contains_key(BETA_HEADER));
        assert_eq!(c.headers["x-extra"], "yes");
        assert_eq!(c.default_max_tokens, Some(64000));
        for bad in [json!("64000"), json!(0), json!(1.5), json!(-3)] {
            let s = settings(json!({"vertex_project": "p", "max_output_tokens": bad}));
            assert_eq!(VertexClaude::new(&s).unwrap().default_max_tokens, None);
        }
    }

    #[test]
    fn build_errors_are_400s() {
        let mut s = settings(json!({"vertex_project": "p"}));
        s.model = "gemini-2.5-pro".into();
        let e = VertexClaude::new(&s).unwrap_err();
        assert_eq!(e.code(), Some("unsupported_model"));
        s.model = "claude-x/../../y".into();
        assert_eq!(VertexClaude::new(&s).unwrap_err().http_status(), 400);
        let e = VertexClaude::new(&settings(json!({}))).unwrap_err();
        assert!(e.message().contains("vertex_project"), "{}", e.message());
    }

    #[test]
    fn errors_of_either_shape() {
        let anthropic_body =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = decode_error(NAME, 529, anthropic_body, None, &[]);
        assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
        let google_body =
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#;
        let e = decode_error(NAME, 429, google_body, None, &[]);
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        // Google's shape says PERMISSION_DENIED where the status alone would not.
        let e = decode_error(
            NAME,
            400,
            br#"[{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}]"#,
            None,
            &[],
        );
        assert_eq!(e.kind(), ErrorKind::Permission);
        // Anthropic's shape without the top-level type still counts as Anthropic's.
        let e = decode_error(
            NAME,
            400,
            br#"{"error":{"type":"invalid_request_error","message":"prompt is too long: 300000 tokens > 200000 maximum"}}"#,
            None,
            &[],
        );
        assert_eq!(e.kind(), ErrorKind::ContextWindowExceeded);
        let e = decode_error(NAME, 503, b"<html>busy</html>", None, &[]);
        assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
        let e = decode_error(
            NAME,
            401,
            br#"{"type":"error","error":{"type":"authentication_error","message":"token ya29.abcdef is bad"}}"#,
            None,
            &["ya29.abcdef"],
        );
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(!e.message().contains("ya29.abcdef"), "{}", e.message());
    }
}
