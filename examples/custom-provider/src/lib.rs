//! `llmux-provider-reverse`: a provider crate written outside llmux, the way a third
//! party adds a provider without forking — it implements [`Provider`] and registers a
//! [`ProviderFactory`] named `reverse` with `inventory`. The stock `llmux::Client` and any
//! gateway built with `llmux-server` then route `reverse/<model>` (or a config entry with
//! `model: reverse/<model>`) to it, with retries, fallbacks, metering and sinks as for any
//! built-in provider.
//!
//! Its "upstream" answers with the last user message reversed, so it needs no network.
//! A real provider would encode the canonical request into its API's format, send it with
//! `llmux-http`, and decode the answer (see the crates under `providers/`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! llmux_provider_reverse::link(); // keep the registration in the binary
//! let client = llmux::Client::builder()
//!     .model_group("rev", [llmux::DeploymentSettings::new("reverse", "v1")])
//!     .build()?;
//! let answer = client.chat(llmux::ChatRequest::new("rev").user("stressed")).await?;
//! assert_eq!(answer.text(), Some("desserts"));
//! # Ok(()) }
//! ```
//!
//! Must not: depend on anything of llmux but `llmux-core` (the contract a provider sees).

#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, Choice, ChunkChoice, Delta,
    DeploymentSettings, Error, FinishReason, Provider, ProviderFactory, ResponseMessage, Role,
    Usage,
};

/// The provider's name: models are addressed as `reverse/<model>`.
pub const NAME: &str = "reverse";

/// Answers with the last user message reversed (character by character).
#[derive(Debug, Clone)]
pub struct Reverse {
    model: String,
}

impl Reverse {
    /// A provider for `settings.model`.
    pub fn new(settings: &DeploymentSettings) -> Self {
        Self {
            model: settings.model.clone(),
        }
    }

    fn answer(req: &ChatRequest) -> Result<String, Error> {
        let text = req
            .last_user_text()
            .ok_or_else(|| Error::bad_request("reverse: no user message").with_provider(NAME))?;
        Ok(text.chars().rev().collect())
    }
}

/// One token per four characters (this "upstream" reports usage like real ones do).
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[async_trait]
impl Provider for Reverse {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let text = Self::answer(&req)?;
        let prompt = req.messages.iter().map(|m| tokens(&m.text_content())).sum();
        Ok(ChatResponse {
            id: format!("reverse-{}", cx.request_id),
            object: "chat.completion".into(),
            created: 0,
            model: self.model.clone(),
            usage: Some(Usage::new(prompt, tokens(&text))),
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage::assistant(text),
                finish_reason: Some(FinishReason::Stop),
                logprobs: None,
            }],
            system_fingerprint: None,
            service_tier: None,
            extra: Default::default(),
        })
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let whole = self.chat(req, cx).await?;
        let id = whole.id.clone();
        let text = whole.text().unwrap_or_default().to_owned();
        let chunk = |delta: Delta, finish: Option<FinishReason>| {
            let mut c = ChatChunk::new(id.clone(), self.model.clone(), 0);
            c.choices.push(ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
            });
            c
        };
        // One chunk per word (spaces kept), then the finish, then the usage chunk.
        let mut chunks: Vec<Result<ChatChunk, Error>> = text
            .split_inclusive(' ')
            .enumerate()
            .map(|(i, word)| {
                Ok(chunk(
                    Delta {
                        role: (i == 0).then_some(Role::Assistant),
                        content: Some(word.to_owned()),
                        ..Delta::default()
                    },
                    None,
                ))
            })
            .collect();
        chunks.push(Ok(chunk(Delta::default(), Some(FinishReason::Stop))));
        let mut usage = ChatChunk::new(id.clone(), self.model.clone(), 0);
        usage.usage = whole.usage;
        chunks.push(Ok(usage));
        Ok(Box::pin(futures_util::stream::iter(chunks)))
    }
}

fn build(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Reverse::new(settings)))
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: NAME,
        description: "example third-party provider: answers with the prompt reversed",
        default_api_base: "",
        capabilities: &[llmux_core::Capability::Chat],
        build,
        // Not served as `reverse/*` from the environment: only when configured.
        from_env: |_| None,
    }
}

/// Reference this once from a binary (or test) so the linker keeps the registration.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reversed_whole_and_streamed() {
        let p = Reverse::new(&DeploymentSettings::new(NAME, "v1"));
        let cx = CallContext::default();
        let req = ChatRequest::new("v1").user("ab cd");
        let whole = p.chat(req.clone(), &cx).await.expect("answers");
        assert_eq!(whole.text(), Some("dc ba"));
        let stream = p.chat_stream(req, &cx).await.expect("streams");
        let collected = llmux_core::StreamAccumulator::collect(stream)
            .await
            .expect("collects");
        assert_eq!(collected.text(), Some("dc ba"));
        assert_eq!(collected.usage.map(|u| u.completion_tokens), Some(2));
    }

    #[tokio::test]
    async fn a_request_without_a_user_message_is_a_bad_request() {
        let p = Reverse::new(&DeploymentSettings::new(NAME, "v1"));
        let e = p
            .chat(
                ChatRequest::new("v1").system("only a system prompt"),
                &CallContext::default(),
            )
            .await
            .expect_err("no user message");
        assert_eq!(e.kind(), llmux_core::ErrorKind::BadRequest);
    }
}
