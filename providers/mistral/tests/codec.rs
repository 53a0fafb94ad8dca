//! Fixture tests of the pure codec: canonical requests in, exact Mistral bodies out;
//! recorded Mistral answers, streams and error bodies in, canonical values out.

use std::time::Duration;

use llmux_core::sse::SseDecoder;
use llmux_core::{ChatChunk, ChatRequest, EmbeddingRequest, ErrorKind, FinishReason};
use llmux_provider_mistral::codec::{
    self, DROPPED_PARAMS, EncodeOptions, StreamEvent, mistral_tool_call_id,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn body(v: Value) -> Value {
    Value::Object(
        codec::encode_chat(request(v), &EncodeOptions::new("mistral-small-latest")).unwrap(),
    )
}

fn encode_err(v: Value) -> llmux_core::Error {
    codec::encode_chat(request(v), &EncodeOptions::new("m")).unwrap_err()
}

#[test]
fn full_request_becomes_the_exact_mistral_body() {
    let req: ChatRequest = serde_json::from_str(&fixture("chat_request_full.json")).unwrap();
    let opts = EncodeOptions::new("mistral-large-latest");
    let plain = codec::encode_chat(req.clone(), &opts).unwrap();
    assert_eq!(
        Value::Object(plain.clone()),
        json_fixture("chat_request_full.mistral.json")
    );
    // Every OpenAI-only parameter of the fixture is gone, and so is the unknown field.
    for p in DROPPED_PARAMS
        .iter()
        .chain(&["some_unknown_field", "seed", "max_completion_tokens"])
    {
        assert!(!plain.contains_key(*p), "{p} was sent");
    }
    // The mapped id is the one the tool message refers to.
    let mapped = mistral_tool_call_id("call_Xy12abCD34ef");
    assert_eq!(plain["messages"][3]["tool_calls"][0]["id"], *mapped);
    assert_eq!(plain["messages"][4]["tool_call_id"], *mapped);
    // The streamed body is the same plus `"stream": true`.
    let streamed = codec::encode_chat(req, &opts.streaming(true)).unwrap();
    let mut expected = plain;
    expected.insert("stream".into(), true.into());
    assert_eq!(streamed, expected);
}

#[test]
fn renamed_parameters_and_deployment_safe_prompt() {
    let hello = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let b = body(hello.clone());
    assert_eq!(
        b,
        json!({"model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "hi"}]})
    );
    let mut r = hello.clone();
    r["max_tokens"] = 7.into();
    r["random_seed"] = 3.into();
    let b = body(r.clone());
    assert_eq!(
        (b["max_tokens"].clone(), b["random_seed"].clone()),
        (json!(7), json!(3))
    );
    // `seed` wins over a raw `random_seed`.
    r["seed"] = 9.into();
    assert_eq!(body(r)["random_seed"], 9);
    let opts = EncodeOptions {
        safe_prompt: Some(true),
        ..EncodeOptions::new("m")
    };
    let b = codec::encode_chat(request(hello.clone()), &opts).unwrap();
    assert_eq!(b["safe_prompt"], true);
    let mut r = hello;
    r["safe_prompt"] = false.into();
    let b = codec::encode_chat(request(r), &opts).unwrap();
    assert_eq!(b["safe_prompt"], false, "the request's own value wins");
}

#[test]
fn tool_choice_modes_map() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    for (choice, expected) in [
        (json!("none"), json!("none")),
        (json!("auto"), json!("auto")),
        (json!("required"), json!("any")),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "function", "function": {"name": "f"}}),
        ),
    ] {
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": tools, "tool_choice": choice}),
        );
        assert_eq!(b["tool_choice"], expected, "{choice}");
        assert_eq!(
            b["tools"],
            json!([{"type": "function", "function": {"name": "f",
                "parameters": {"type": "object", "properties": {}}}}])
        );
    }
}

#[test]
fn a_final_assistant_message_is_a_prefix() {
    let b = body(json!({"model": "m", "messages": [
        {"role": "user", "content": "Write a haiku"},
        {"role": "assistant", "content": "Autumn"}]}));
    assert_eq!(
        b["messages"][1],
        json!({"role": "assistant", "content": "Autumn", "prefix": true})
    );
    // Not when it is earlier in the conversation, nor when the client said no.
    let b = body(json!({"model": "m", "messages": [
        {"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hello"}]}));
    assert_eq!(
        b["messages"][0],
        json!({"role": "assistant", "content": "Hi"})
    );
    let b = body(json!({"model": "m", "messages": [
        {"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "prefix": false}]}));
    assert!(b["messages"][1].get("prefix").is_none());
}

#[test]
fn unsupported_input_is_a_clear_400_naming_the_param() {
    let user =
        |content: Value| json!({"model": "m", "messages": [{"role": "user", "content": content}]});
    for (req, param, needle) in [
        (
            json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]}),
            "messages",
            "legacy",
        ),
        (
            user(
                json!([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]),
            ),
            "messages",
            "input_audio",
        ),
        (
            user(
                json!([{"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}}]),
            ),
            "messages",
            "file_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "system", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages",
            "only hold text",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search"}]}),
            "tools",
            "web_search",
        ),
    ] {
        let e = encode_err(req);
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(e.param(), Some(param));
        assert!(
            e.message().starts_with("mistral: ") && e.message().contains(needle),
            "{e}"
        );
    }
}

#[test]
fn embeddings_requests_map() {
    let req: EmbeddingRequest = serde_json::from_value(json!({"model": "emb",
        "input": ["a", "b"], "dimensions": 256, "encoding_format": "float", "user": "u",
        "output_dtype": "int8"}))
    .unwrap();
    let b = codec::encode_embeddings(req, "mistral-embed").unwrap();
    assert_eq!(
        Value::Object(b),
        json!({"model": "mistral-embed", "input": ["a", "b"], "encoding_format": "float",
            "output_dimension": 256, "output_dtype": "int8"})
    );
    let tokens: EmbeddingRequest =
        serde_json::from_value(json!({"model": "emb", "input": [1, 2, 3]})).unwrap();
    let e = codec::encode_embeddings(tokens, "mistral-embed").unwrap_err();
    assert_eq!(
        (e.kind(), e.param()),
        (ErrorKind::BadRequest, Some("input"))
    );
}

#[test]
fn responses_decode_to_the_expected_canonical_json() {
    for name in ["response_text", "response_tool_calls", "response_reasoning"] {
        let resp = codec::decode_chat(fixture(&format!("{name}.json")).as_bytes()).unwrap();
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json_fixture(&format!("{name}.expected.json")),
            "{name}"
        );
    }
    let e = codec::decode_chat(b"{\"id\":").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

/// Decode a recorded SSE body cut in two at `cut`.
fn replay(wire: &[u8], cut: usize) -> Result<Vec<ChatChunk>, llmux_core::Error> {
    let mut sse = SseDecoder::new();
    let mut events = Vec::new();
    sse.feed(&wire[..cut], &mut events).unwrap();
    sse.feed(&wire[cut..], &mut events).unwrap();
    let mut out = Vec::new();
    for ev in events {
        match codec::decode_stream_event(&ev.data)? {
            StreamEvent::Chunks(c) => out.extend(c),
            StreamEvent::Done => break,
        }
    }
    Ok(out)
}

#[test]
fn streamed_tool_call_reassembles_at_any_split_and_ends_with_usage() {
    let wire = fixture("stream_tool_call.sse").into_bytes();
    let whole = replay(&wire, 0).unwrap();
    for cut in 1..wire.len() {
        assert_eq!(replay(&wire, cut).unwrap(), whole, "split at {cut}");
    }
    let text: String = whole
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect();
    assert_eq!(text, "Let me check. Calling.");
    let reasoning: String = whole
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.reasoning_content.as_deref())
        .collect();
    assert_eq!(reasoning, "Need weather.");
    let calls: Vec<_> = whole
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.as_ref())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        serde_json::to_value(calls[0]).unwrap(),
        json!({"index": 0, "id": "8i2WLvwo2", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}})
    );
    let (last, rest) = whole.split_last().unwrap();
    assert!(last.is_usage_only());
    let u = last.usage.as_ref().unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (80, 20, 100)
    );
    assert_eq!(
        (last.id.as_str(), last.model.as_str()),
        ("d6a4e1f0", "mistral-large-latest")
    );
    assert!(rest.iter().all(|c| c.usage.is_none()));
    let finish = rest.last().unwrap().choices[0].finish_reason.clone();
    assert_eq!(finish, Some(FinishReason::ToolCalls));
}

#[test]
fn an_error_event_mid_stream_is_an_err() {
    let e = codec::decode_stream_event(
        r#"{"object":"error","message":"Internal error during generation","type":"internal_server_error","param":null,"code":"1000"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    assert!(e.message().contains("Internal error during generation"));
    assert_eq!(
        codec::decode_stream_event("[DONE]").unwrap(),
        StreamEvent::Done
    );
    let e = codec::decode_stream_event("{not json").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

#[test]
fn error_bodies_map_to_the_taxonomy() {
    let cases = json_fixture("errors.json");
    for case in cases.as_array().unwrap() {
        let status = case["status"].as_u64().unwrap() as u16;
        let body = match case.get("raw") {
            Some(raw) => raw.as_str().unwrap().as_bytes().to_vec(),
            None => serde_json::to_vec(&case["body"]).unwrap(),
        };
        let retry = case["retry_after"].as_u64().map(Duration::from_secs);
        let e = codec::decode_error(status, &body, retry, &["mk-secret"]);
        assert_eq!(e.kind().as_str(), case["kind"], "{case}");
        assert_eq!(e.upstream_status(), Some(status), "{case}");
        assert_eq!(e.provider(), Some("mistral"));
        assert!(e.message().starts_with("mistral: "), "{e}");
        if let Some(code) = case["code"].as_str() {
            assert_eq!(e.code(), Some(code), "{case}");
        }
        if let Some(needle) = case["message_contains"].as_str() {
            assert!(e.message().contains(needle), "{e} / {needle}");
        }
        if let Some(secret) = case["must_not_contain"].as_str() {
            assert!(!e.message().contains(secret), "{e}");
        }
        if let Some(s) = case["retry_after_secs"].as_u64() {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(s)));
        }
    }
}
