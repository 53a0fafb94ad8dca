//! Request rewrites for providers that are OpenAI-compatible except for a detail.
//!
//! [`apply`] is pure: canonical request in, canonical request out, before the OpenAI codec
//! encodes it. Quirks only remove or rename what a provider rejects; they never add
//! content and never touch `model`, `messages` order, `stream` or `stream_options` (the
//! codec owns those, and always asks for stream usage so every call is metered).

use llmux_core::{ChatRequest, ContentPart, MessageContent};

/// One rewrite a provider needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quirk {
    /// Remove this top-level request parameter (its wire name), modelled or not.
    Drop(&'static str),
    /// Send `max_completion_tokens` as `max_tokens` (the provider knows only the older name).
    MaxCompletionTokensAsMaxTokens,
    /// Send content that is a list of text parts only as one string, the texts joined
    /// without separator as LiteLLM does (the provider accepts only string content; lists
    /// with images or other parts are left as they are).
    TextPartsAsString,
    /// Remove `name` from every message.
    DropMessageNames,
}

impl Quirk {
    /// One phrase for `llmux providers` and the docs.
    pub fn describe(self) -> String {
        match self {
            Self::Drop(param) => format!("drops `{param}`"),
            Self::MaxCompletionTokensAsMaxTokens => {
                "sends `max_completion_tokens` as `max_tokens`".to_owned()
            }
            Self::TextPartsAsString => "sends text-only content lists as a string".to_owned(),
            Self::DropMessageNames => "removes message `name`s".to_owned(),
        }
    }
}

/// Parameters a quirk may not drop: the codec and the gateway depend on them.
pub const UNDROPPABLE: &[&str] = &["model", "messages", "stream", "stream_options"];

/// Parameters [`Quirk::Drop`] knows as typed fields of [`ChatRequest`]; any other name is
/// removed from the request's pass-through fields.
pub const MODELLED: &[&str] = &[
    "temperature",
    "top_p",
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "user",
    "metadata",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
];

/// `req` rewritten by `quirks`, in order.
pub fn apply(quirks: &[Quirk], mut req: ChatRequest) -> ChatRequest {
    for quirk in quirks {
        match *quirk {
            Quirk::Drop(param) => drop_param(&mut req, param),
            Quirk::MaxCompletionTokensAsMaxTokens => {
                if let Some(limit) = req.max_completion_tokens.take() {
                    req.max_tokens = Some(limit);
                }
            }
            Quirk::TextPartsAsString => {
                for m in &mut req.messages {
                    if let Some(content @ MessageContent::Parts(parts)) = &m.content
                        && !parts.is_empty()
                        && parts.iter().all(|p| matches!(p, ContentPart::Text { .. }))
                    {
                        m.content = Some(MessageContent::Text(content.joined_text()));
                    }
                }
            }
            Quirk::DropMessageNames => {
                for m in &mut req.messages {
                    m.name = None;
                }
            }
        }
    }
    req
}

fn drop_param(req: &mut ChatRequest, param: &str) {
    match param {
        "temperature" => req.temperature = None,
        "top_p" => req.top_p = None,
        "n" => req.n = None,
        "stop" => req.stop = None,
        "max_tokens" => req.max_tokens = None,
        "max_completion_tokens" => req.max_completion_tokens = None,
        "presence_penalty" => req.presence_penalty = None,
        "frequency_penalty" => req.frequency_penalty = None,
        "logit_bias" => req.logit_bias = None,
        "logprobs" => req.logprobs = None,
        "top_logprobs" => req.top_logprobs = None,
        "seed" => req.seed = None,
        "user" => req.user = None,
        "metadata" => req.metadata = None,
        "tools" => req.tools = None,
        "tool_choice" => req.tool_choice = None,
        "parallel_tool_calls" => req.parallel_tool_calls = None,
        "response_format" => req.response_format = None,
        "reasoning_effort" => req.reasoning_effort = None,
        other => {
            req.extra.remove(other);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn request(v: Value) -> ChatRequest {
        serde_json::from_value(v).expect("a valid request")
    }

    fn wire(req: &ChatRequest) -> Value {
        serde_json::to_value(req).expect("serializable")
    }

    /// One place to state a case: quirks, the request in, the request out.
    fn check(quirks: &[Quirk], input: Value, expected: Value) {
        let out = apply(quirks, request(input));
        assert_eq!(wire(&out), expected);
    }

    #[test]
    fn no_quirks_change_nothing() {
        let input = json!({"model": "m", "messages": [{"role": "user", "content": "hi", "name": "ann"}],
            "logprobs": true, "max_completion_tokens": 9, "service_tier": "flex"});
        check(&[], input.clone(), input);
    }

    #[test]
    fn drop_removes_modelled_and_pass_through_parameters() {
        check(
            &[
                Quirk::Drop("logprobs"),
                Quirk::Drop("parallel_tool_calls"),
                Quirk::Drop("service_tier"),
                Quirk::Drop("absent"),
            ],
            json!({"model": "m", "messages": [], "logprobs": true, "top_logprobs": 2,
                "parallel_tool_calls": false, "service_tier": "flex", "seed": 3}),
            json!({"model": "m", "messages": [], "top_logprobs": 2, "seed": 3}),
        );
    }

    #[test]
    fn every_modelled_parameter_can_be_dropped() {
        let full = json!({"model": "m", "messages": [], "temperature": 0.5, "top_p": 0.9,
            "n": 1, "stop": "x", "max_tokens": 5, "max_completion_tokens": 6,
            "presence_penalty": 0.1, "frequency_penalty": 0.2, "logit_bias": {"1": 2},
            "logprobs": true, "top_logprobs": 1, "seed": 7, "user": "u", "metadata": {"a": "b"},
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto",
            "parallel_tool_calls": true, "response_format": {"type": "json_object"},
            "reasoning_effort": "low"});
        for param in MODELLED {
            assert!(full.get(*param).is_some(), "fixture lacks {param}");
            let out = wire(&apply(&[Quirk::Drop(param)], request(full.clone())));
            assert!(out.get(*param).is_none(), "{param} was not dropped");
            let mut expected = full.clone();
            expected.as_object_mut().unwrap().remove(*param);
            assert_eq!(out, expected, "dropping {param} touched something else");
        }
    }

    #[test]
    fn max_completion_tokens_becomes_max_tokens() {
        let q = &[Quirk::MaxCompletionTokensAsMaxTokens];
        check(
            q,
            json!({"model": "m", "messages": [], "max_completion_tokens": 64}),
            json!({"model": "m", "messages": [], "max_tokens": 64}),
        );
        // The newer name is the client's latest word when both are present.
        check(
            q,
            json!({"model": "m", "messages": [], "max_tokens": 10, "max_completion_tokens": 64}),
            json!({"model": "m", "messages": [], "max_tokens": 64}),
        );
        check(
            q,
            json!({"model": "m", "messages": [], "max_tokens": 10}),
            json!({"model": "m", "messages": [], "max_tokens": 10}),
        );
    }

    #[test]
    fn text_only_part_lists_become_strings_and_other_lists_stay() {
        check(
            &[Quirk::TextPartsAsString],
            json!({"model": "m", "messages": [
                {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "user", "content": [{"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "user", "content": "plain"}
            ]}),
            json!({"model": "m", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "ab"},
                {"role": "user", "content": [{"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "user", "content": "plain"}
            ]}),
        );
    }

    #[test]
    fn message_names_are_removed() {
        check(
            &[Quirk::DropMessageNames],
            json!({"model": "m", "messages": [{"role": "user", "content": "hi", "name": "ann"},
                {"role": "assistant", "content": "yo", "name": "bot"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"}]}),
        );
    }
}
