//! Passthrough calls: a request in the upstream's own wire format (OpenAI's Responses API,
//! Anthropic's token counting), forwarded by a provider that supports it
//! ([`Provider::passthrough`]) and routed like any call — retries, cooldowns, fallbacks,
//! timeouts — by the same loop ([`Op`]).
//!
//! Must not: read or change the body beyond what routing needs (the `tags` directive, a
//! size estimate): the format is the provider's business.
//!
//! [`Provider::passthrough`]: llmux_core::Provider::passthrough

use futures_util::StreamExt;
use llmux_core::provider::{PassthroughBody, PassthroughRequest, PassthroughResponse};
use llmux_core::{CallContext, Error, ErrorKind, JsonObject};
use serde_json::Value;

use crate::Deployment;
use crate::router::Op;
use crate::select::{Want, estimate_tokens};

/// A passthrough call; `STREAM` = the client asked for an event stream (then an attempt
/// succeeds only once the first event has arrived, so failures before it are retried).
pub(crate) struct PassthroughOp<const STREAM: bool> {
    pub(crate) req: PassthroughRequest,
}

impl<const STREAM: bool> Op for PassthroughOp<STREAM> {
    type Out = PassthroughResponse;
    const STREAM: bool = STREAM;

    fn model(&self) -> &str {
        self.req
            .body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn set_model(&mut self, group: &str) {
        self.req
            .body
            .insert("model".to_owned(), Value::String(group.to_owned()));
    }

    async fn call(&self, d: &Deployment, cx: &CallContext) -> Result<PassthroughResponse, Error> {
        if !d.provider.passthrough_supported(self.req.kind) {
            return Err(Error::unsupported(
                d.provider.name(),
                &format!("passing '{}' requests through", self.req.kind.as_str()),
            ));
        }
        let mut out = d.provider.passthrough(self.req.clone(), cx).await?;
        if !STREAM {
            return Ok(out);
        }
        let PassthroughBody::Events(mut events) = out.body else {
            return Ok(out);
        };
        match events.next().await {
            Some(Ok(first)) => {
                out.body = PassthroughBody::Events(Box::pin(
                    futures_util::stream::once(std::future::ready(Ok(first))).chain(events),
                ));
                Ok(out)
            }
            Some(Err(e)) => Err(e),
            None => Err(Error::new(
                ErrorKind::UpstreamError,
                "The upstream ended the stream before its first event.",
            )
            .with_provider(d.provider.name())),
        }
    }

    fn tokens(out: &PassthroughResponse) -> u64 {
        out.usage.as_ref().map_or(0, |u| u.total_tokens)
    }
}

/// The facts selection needs from a passthrough body: its size (every string in it, at
/// four characters a token) and its routing tags (a top-level `tags` array, removed — a
/// directive for llmux, not a parameter for the upstream — and `metadata.tags`).
pub(crate) fn want(req: &mut PassthroughRequest) -> Want {
    let mut tags: Vec<String> = Vec::new();
    let mut add = |v: Option<&Value>| {
        for t in v.and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = t.as_str()
                && !tags.iter().any(|x| x == t)
            {
                tags.push(t.to_owned());
            }
        }
    };
    add(req.body.get("tags"));
    add(req.body.get("metadata").and_then(|m| m.get("tags")));
    req.body.remove("tags");
    Want {
        prompt_tokens: text_tokens(&req.body),
        output_tokens: ["max_output_tokens", "max_tokens"]
            .iter()
            .find_map(|k| req.body.get(*k).and_then(Value::as_u64)),
        tags,
        stream: req.stream,
        window_tokens: None,
    }
}

fn text_tokens(body: &JsonObject) -> u64 {
    fn walk(v: &Value, n: &mut u64) {
        match v {
            Value::String(s) => *n += estimate_tokens(s),
            Value::Array(a) => a.iter().for_each(|v| walk(v, n)),
            Value::Object(o) => o.values().for_each(|v| walk(v, n)),
            _ => {}
        }
    }
    let mut n = 0;
    body.iter()
        .filter(|(k, _)| k.as_str() != "model")
        .for_each(|(_, v)| walk(v, &mut n));
    n
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{Router, RouterConfig, RouterSettings};
    use llmux_core::provider::{PassthroughEvent, PassthroughKind};
    use llmux_core::{ChatRequest, ChatResponse, ChatStream, Provider};

    /// Answers passthrough calls (when `supported`) after failing the first `fail` ones;
    /// a stream's failure is its first item (before any event).
    #[derive(Debug)]
    struct Fake {
        supported: bool,
        fail: usize,
        calls: AtomicUsize,
    }

    impl Fake {
        fn new(supported: bool, fail: usize) -> Arc<Self> {
            Arc::new(Self {
                supported,
                fail,
                calls: AtomicUsize::new(0),
            })
        }
    }

    #[async_trait::async_trait]
    impl Provider for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn model(&self) -> &str {
            "fake-model"
        }
        async fn chat(&self, _: ChatRequest, _: &CallContext) -> Result<ChatResponse, Error> {
            Err(Error::internal("not used"))
        }
        async fn chat_stream(&self, _: ChatRequest, _: &CallContext) -> Result<ChatStream, Error> {
            Err(Error::internal("not used"))
        }
        fn passthrough_supported(&self, kind: PassthroughKind) -> bool {
            self.supported && kind == PassthroughKind::Responses
        }
        async fn passthrough(
            &self,
            req: PassthroughRequest,
            _: &CallContext,
        ) -> Result<PassthroughResponse, Error> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let failed = n < self.fail;
            let down = || Error::new(ErrorKind::UpstreamUnavailable, "down");
            let model = req
                .body
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let body = if req.stream {
                let first = if failed {
                    Err(down())
                } else {
                    Ok(PassthroughEvent::default())
                };
                PassthroughBody::Events(Box::pin(futures_util::stream::iter(vec![first])))
            } else if failed {
                return Err(down());
            } else {
                PassthroughBody::Json(serde_json::to_vec(&req.body).unwrap_or_default().into())
            };
            Ok(PassthroughResponse {
                body,
                usage: None,
                model,
            })
        }
    }

    fn router(groups: Vec<(&str, Vec<Arc<Fake>>)>) -> Router {
        let settings = RouterSettings {
            seed: Some(7),
            num_retries: 2,
            allowed_fails: None,
            cooldown_time: std::time::Duration::ZERO,
            ..RouterSettings::default()
        };
        let mut config = RouterConfig::new(settings);
        for (name, fakes) in groups {
            let deployments = fakes
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let p: Arc<dyn Provider> = f;
                    Deployment::new(format!("{name}#{i}"), p)
                })
                .collect();
            config = config.group(name, deployments);
        }
        Router::new(config).expect("valid config")
    }

    fn request(model: &str, stream: bool) -> PassthroughRequest {
        let Value::Object(body) = serde_json::json!({"model": model, "input": "hi"}) else {
            unreachable!()
        };
        PassthroughRequest {
            kind: PassthroughKind::Responses,
            body,
            stream,
        }
    }

    #[test]
    fn a_group_passes_through_only_when_every_deployment_can() {
        let r = router(vec![
            ("all", vec![Fake::new(true, 0), Fake::new(true, 0)]),
            ("mixed", vec![Fake::new(true, 0), Fake::new(false, 0)]),
        ]);
        assert!(r.passthrough_supported("all", PassthroughKind::Responses));
        assert!(!r.passthrough_supported("all", PassthroughKind::CountTokens));
        assert!(!r.passthrough_supported("mixed", PassthroughKind::Responses));
        assert!(!r.passthrough_supported("unknown", PassthroughKind::Responses));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_before_the_answer_or_the_first_event_are_retried() {
        for stream in [false, true] {
            let flaky = Fake::new(true, 1);
            let r = router(vec![("g", vec![flaky.clone()])]);
            let out = r
                .passthrough(request("g", stream), &CallContext::default())
                .await
                .expect("answered on retry");
            assert_eq!(flaky.calls.load(Ordering::SeqCst), 2, "stream: {stream}");
            let t = out.trace.snapshot();
            assert_eq!((t.attempts, t.retries), (2, 1));
            assert_eq!(t.deployment_id.as_deref(), Some("g#0"));
            // The provider saw the group's name (it puts its own model in).
            assert_eq!(out.value.model.as_deref(), Some("g"));
            if let PassthroughBody::Events(mut ev) = out.value.body {
                assert!(ev.next().await.is_some_and(|e| e.is_ok()));
            } else {
                assert!(!stream);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fallback_group_that_cannot_pass_through_is_a_clear_error() {
        let mut r = RouterConfig::new(RouterSettings {
            num_retries: 0,
            allowed_fails: None,
            fallbacks: [("a".to_owned(), vec!["b".to_owned()])]
                .into_iter()
                .collect(),
            ..RouterSettings::default()
        });
        let down: Arc<dyn Provider> = Fake::new(true, 9);
        let other: Arc<dyn Provider> = Fake::new(false, 0);
        r = r
            .group("a", vec![Deployment::new("a#0", down)])
            .group("b", vec![Deployment::new("b#0", other)]);
        let r = Router::new(r).expect("valid");
        let f = r
            .passthrough(request("a", false), &CallContext::default())
            .await
            .expect_err("b cannot pass through");
        assert_eq!(
            f.error.code(),
            Some("unsupported_operation"),
            "{:?}",
            f.error
        );
        assert_eq!(f.trace.fallbacks.len(), 1);
    }
    use serde_json::json;

    #[test]
    fn want_takes_the_tags_directive_out_of_the_body() {
        let Value::Object(body) = json!({
            "model": "m", "input": "abcdefgh", "tags": ["a"],
            "metadata": {"tags": ["b", "a"]}, "max_output_tokens": 50
        }) else {
            unreachable!()
        };
        let mut req = PassthroughRequest {
            kind: PassthroughKind::Responses,
            body,
            stream: true,
        };
        let w = want(&mut req);
        assert_eq!(w.tags, ["a", "b"]);
        assert!(!req.body.contains_key("tags"));
        assert_eq!(w.output_tokens, Some(50));
        assert!(w.stream);
        // "abcdefgh" (2) + "b" (1) + "a" (1); the model name is not prompt.
        assert_eq!(w.prompt_tokens, 4);
    }
}
