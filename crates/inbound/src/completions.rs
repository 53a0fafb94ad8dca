//! OpenAI's legacy Completions API (`POST /v1/completions`) to and from canonical form, so
//! chat-only providers serve it.
//!
//! - [`decode_request`]: `prompt` (a string, or a list of one string) becomes one user
//!   message; `max_tokens`, `temperature`, `top_p`, `stop`, `stream`, `stream_options`,
//!   `presence_penalty`, `frequency_penalty`, `logit_bias`, `seed`, `user` and `metadata`
//!   keep their meaning. What a chat call cannot do is refused with a 400 naming the
//!   parameter: several prompts or token-id prompts, `n` or `best_of` above 1, `suffix`,
//!   `echo: true`, `logprobs`. Unlike OpenAI, no default `max_tokens` of 16 is imposed:
//!   the deployment's own default applies.
//! - [`encode_response`]: a canonical chat response → a `text_completion` object
//!   (`choices[].text`, `finish_reason`, `logprobs: null`, usage).
//! - [`encode_chunk`]: a canonical chunk → a `text_completion` stream chunk (the server
//!   ends the stream with `[DONE]`, as for chat).
//!
//! Must not: do I/O or know any upstream provider.

use llmux_core::{ChatChunk, ChatRequest, ChatResponse, Error, Message, Stop, StreamOptions};
use serde_json::{Value, json};

/// The object type of a completion and of its stream chunks.
pub const TEXT_COMPLETION: &str = "text_completion";

fn bad(param: &str, message: impl Into<String>) -> Error {
    Error::bad_request(message.into()).with_param(param)
}

fn unsupported(param: &str, message: impl Into<String>) -> Error {
    bad(param, message).with_code("unsupported_parameter")
}

/// Read a legacy Completions request body into a one-message chat request.
pub fn decode_request(body: Value) -> Result<ChatRequest, Error> {
    let Value::Object(mut body) = body else {
        return Err(Error::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let model = match body.remove("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(bad("model", "Missing required parameter: 'model'."));
        }
        Some(_) => return Err(bad("model", "'model' must be a string.")),
    };
    let prompt = match body.remove("prompt") {
        Some(Value::String(s)) => s,
        Some(Value::Array(list)) => match list.as_slice() {
            [Value::String(s)] => s.clone(),
            [] => return Err(bad("prompt", "'prompt' must not be empty.")),
            [Value::String(_), ..] => {
                return Err(unsupported(
                    "prompt",
                    "Several prompts in one request are not supported: send one prompt per \
                     request.",
                ));
            }
            _ => {
                return Err(unsupported(
                    "prompt",
                    "Token-id prompts are not supported: send the prompt as text.",
                ));
            }
        },
        None | Some(Value::Null) => {
            return Err(bad("prompt", "Missing required parameter: 'prompt'."));
        }
        Some(_) => {
            return Err(bad(
                "prompt",
                "'prompt' must be a string or a list of strings.",
            ));
        }
    };
    for key in ["n", "best_of"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64() == Some(1) => {}
            Some(v) if v.as_u64().is_some() => {
                return Err(unsupported(
                    key,
                    format!("'{key}' above 1 is not supported: send one request per completion."),
                ));
            }
            Some(_) => return Err(bad(key, format!("'{key}' must be an integer."))),
        }
    }
    match body.get("suffix") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(_) => {
            return Err(unsupported(
                "suffix",
                "'suffix' (insertion) is not supported by chat models.",
            ));
        }
    }
    match body.get("echo") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(_) => {
            return Err(unsupported(
                "echo",
                "'echo' is not supported: the prompt is not repeated in the completion.",
            ));
        }
    }
    match body.get("logprobs") {
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(unsupported(
                "logprobs",
                "'logprobs' is not supported on /v1/completions.",
            ));
        }
    }
    let mut req = ChatRequest::new(model).message(Message::user(prompt));
    let take = |body: &mut serde_json::Map<String, Value>, key: &str| {
        body.remove(key).filter(|v| !v.is_null())
    };
    if let Some(v) = take(&mut body, "max_tokens") {
        req.max_tokens = Some(typed("max_tokens", v)?);
    }
    if let Some(v) = take(&mut body, "temperature") {
        req.temperature = Some(typed("temperature", v)?);
    }
    if let Some(v) = take(&mut body, "top_p") {
        req.top_p = Some(typed("top_p", v)?);
    }
    if let Some(v) = take(&mut body, "stop") {
        req.stop = Some(typed::<Stop>("stop", v)?);
    }
    if let Some(v) = take(&mut body, "stream") {
        req.stream = Some(typed("stream", v)?);
    }
    if let Some(v) = take(&mut body, "stream_options") {
        req.stream_options = Some(typed::<StreamOptions>("stream_options", v)?);
    }
    if let Some(v) = take(&mut body, "presence_penalty") {
        req.presence_penalty = Some(typed("presence_penalty", v)?);
    }
    if let Some(v) = take(&mut body, "frequency_penalty") {
        req.frequency_penalty = Some(typed("frequency_penalty", v)?);
    }
    if let Some(v) = take(&mut body, "logit_bias") {
        req.logit_bias = Some(typed("logit_bias", v)?);
    }
    if let Some(v) = take(&mut body, "seed") {
        req.seed = Some(typed("seed", v)?);
    }
    if let Some(v) = take(&mut body, "user") {
        req.user = Some(typed("user", v)?);
    }
    if let Some(v) = take(&mut body, "metadata") {
        req.metadata = Some(typed("metadata", v)?);
    }
    if let Some(v) = take(&mut body, "tags") {
        req.extra.insert("tags".into(), v);
    }
    Ok(req)
}

fn typed<T: serde::de::DeserializeOwned>(key: &str, v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| bad(key, format!("Invalid '{key}': {e}")))
}

/// The completion id for a chat completion id (`chatcmpl-x` → `cmpl-x`).
fn completion_id(chat_id: &str) -> String {
    let rest = chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id);
    format!("cmpl-{rest}")
}

/// A canonical chat response as a `text_completion` object.
pub fn encode_response(resp: &ChatResponse) -> Value {
    let choices: Vec<Value> = resp
        .choices
        .iter()
        .map(|c| {
            json!({
                "text": c.message.content.as_deref().unwrap_or(""),
                "index": c.index,
                "logprobs": null,
                "finish_reason": c.finish_reason.as_ref().map(|f| f.as_str()),
            })
        })
        .collect();
    let mut out = json!({
        "id": completion_id(&resp.id),
        "object": TEXT_COMPLETION,
        "created": resp.created,
        "model": resp.model,
        "choices": choices,
    });
    if let Some(u) = &resp.usage {
        out["usage"] = json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
        });
    }
    if let Some(fp) = &resp.system_fingerprint {
        out["system_fingerprint"] = json!(fp);
    }
    out
}

/// A canonical chunk as a `text_completion` stream chunk, or `None` when it carries
/// nothing a completion client sees (a role-only or tool-call delta; a usage-only chunk
/// unless `with_usage`).
pub fn encode_chunk(chunk: &ChatChunk, with_usage: bool) -> Option<Value> {
    let choices: Vec<Value> = chunk
        .choices
        .iter()
        .filter(|c| {
            c.finish_reason.is_some() || c.delta.content.as_deref().is_some_and(|t| !t.is_empty())
        })
        .map(|c| {
            json!({
                "text": c.delta.content.as_deref().unwrap_or(""),
                "index": c.index,
                "logprobs": null,
                "finish_reason": c.finish_reason.as_ref().map(|f| f.as_str()),
            })
        })
        .collect();
    let usage = chunk.usage.as_ref().filter(|_| with_usage);
    if choices.is_empty() && usage.is_none() {
        return None;
    }
    let mut out = json!({
        "id": completion_id(&chunk.id),
        "object": TEXT_COMPLETION,
        "created": chunk.created,
        "model": chunk.model,
        "choices": choices,
    });
    if let Some(u) = usage {
        out["usage"] = json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/completions_{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn requests_decode_to_one_user_message() {
        let f = fixture("request");
        let req = decode_request(f["request"].clone()).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), f["canonical"]);
        // A list of one prompt is the same request.
        let mut one = f["request"].clone();
        one["prompt"] = json!([f["request"]["prompt"]]);
        assert_eq!(decode_request(one).unwrap(), req);
    }

    #[test]
    fn responses_encode_as_text_completions() {
        let f = fixture("response");
        let resp: ChatResponse = serde_json::from_value(f["canonical"].clone()).unwrap();
        assert_eq!(encode_response(&resp), f["completion"]);
    }

    #[test]
    fn chunks_encode_as_text_completion_chunks() {
        let f = fixture("stream");
        let chunks: Vec<ChatChunk> = serde_json::from_value(f["chunks"].clone()).unwrap();
        let with_usage: Vec<Value> = chunks
            .iter()
            .filter_map(|c| encode_chunk(c, true))
            .collect();
        assert_eq!(Value::Array(with_usage), f["events"]);
        let without: Vec<Value> = chunks
            .iter()
            .filter_map(|c| encode_chunk(c, false))
            .collect();
        let expected: Vec<Value> = f["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e.get("usage").is_none())
            .cloned()
            .collect();
        assert_eq!(without, expected);
    }

    #[test]
    fn what_a_chat_call_cannot_do_is_refused_with_the_parameter() {
        let base = json!({"model": "m", "prompt": "hi"});
        for (field, value) in [
            ("prompt", json!(["a", "b"])),
            ("prompt", json!([[1, 2, 3]])),
            ("prompt", json!([])),
            ("prompt", json!(5)),
            ("n", json!(2)),
            ("best_of", json!(3)),
            ("suffix", json!("tail")),
            ("echo", json!(true)),
            ("logprobs", json!(2)),
            ("max_tokens", json!("ten")),
            ("stop", json!(4)),
        ] {
            let mut body = base.clone();
            body[field] = value.clone();
            let e = decode_request(body).expect_err(&format!("{field}: {value}"));
            assert_eq!(e.kind(), llmux_core::ErrorKind::BadRequest);
            assert_eq!(e.param(), Some(field), "{field}: {e:?}");
        }
        let e = decode_request(json!({"prompt": "hi"})).unwrap_err();
        assert_eq!(e.param(), Some("model"));
        let e = decode_request(json!({"model": "m"})).unwrap_err();
        assert_eq!(e.param(), Some("prompt"));
        assert!(decode_request(json!([1])).is_err());
        // The values that change nothing are accepted.
        let ok = json!({"model": "m", "prompt": "hi", "n": 1, "best_of": 1, "echo": false,
            "suffix": "", "logprobs": null});
        assert!(decode_request(ok).is_ok());
    }
}
