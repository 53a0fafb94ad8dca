//! Fixture tests of the pure codec: canonical requests in, exact Gemini bodies out; recorded
//! Gemini responses, streams and error bodies in, canonical values out.

use std::collections::VecDeque;
use std::time::Duration;

use llmux_core::sse::SseDecoder;
use llmux_core::{
    ChatChunk, ChatRequest, EmbeddingInput, EmbeddingRequest, EmbeddingVector, ErrorKind,
    FinishReason,
};
use llmux_provider_gemini::codec::{
    self, Api, EmbedMethod, EncodeOptions, ResponseMeta, StreamDecoder,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

const META: ResponseMeta<'static> = ResponseMeta {
    provider: "gemini",
    model: "gemini-fallback",
    created: 1_700_000_000,
};

fn opts() -> EncodeOptions {
    EncodeOptions::new("gemini")
}

/// Encode `req` (JSON of a canonical request) with default options.
fn encode(req: Value) -> Result<Value, llmux_core::Error> {
    let req: ChatRequest = serde_json::from_value(req).unwrap();
    codec::encode_chat(&req, &opts())
}

fn hello(extra: Value) -> Value {
    let mut req = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        req[k] = v.clone();
    }
    req
}

#[test]
fn full_request_encodes_exactly() {
    let req: ChatRequest = serde_json::from_str(&fixture("chat_request_full.json")).unwrap();
    let body = codec::encode_chat(&req, &opts()).unwrap();
    let want = json_fixture("chat_request_full.gemini.json");
    assert_eq!(
        body,
        want,
        "got:\n{}",
        serde_json::to_string_pretty(&body).unwrap()
    );
}

#[test]
fn tool_choice_modes() {
    let tools = json!([{"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]);
    for (choice, want) in [
        (json!("auto"), json!({"mode": "AUTO"})),
        (json!("none"), json!({"mode": "NONE"})),
        (json!("required"), json!({"mode": "ANY"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ),
    ] {
        let body = encode(hello(json!({"tools": tools, "tool_choice": choice}))).unwrap();
        assert_eq!(
            body["toolConfig"]["functionCallingConfig"], want,
            "{choice}"
        );
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0]["parameters"]["type"],
            "OBJECT"
        );
    }
    let e = encode(hello(json!({"tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "other"}}})))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(e.param(), Some("tool_choice"));
}

#[test]
fn reasoning_effort_maps_to_documented_budgets() {
    for (effort, budget, include) in [
        ("none", 0, None),
        ("minimal", 1024, Some(true)),
        ("low", 1024, Some(true)),
        ("medium", 8192, Some(true)),
        ("high", 24576, Some(true)),
    ] {
        let body = encode(hello(json!({"reasoning_effort": effort}))).unwrap();
        let t = &body["generationConfig"]["thinkingConfig"];
        assert_eq!(t["thinkingBudget"], budget, "{effort}");
        assert_eq!(t.get("includeThoughts"), include.map(Value::Bool).as_ref());
    }
    // Thoughts can be asked for without a budget, or declined with one.
    let body = encode(hello(json!({"include_thoughts": true}))).unwrap();
    assert_eq!(
        body["generationConfig"]["thinkingConfig"],
        json!({"includeThoughts": true})
    );
    let body = encode(hello(
        json!({"reasoning_effort": "high", "include_thoughts": false}),
    ))
    .unwrap();
    assert_eq!(
        body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 24576})
    );
    let e = encode(hello(json!({"reasoning_effort": "extreme"}))).unwrap_err();
    assert_eq!(e.param(), Some("reasoning_effort"));
}

#[test]
fn response_formats() {
    let body = encode(hello(json!({"response_format": {"type": "json_object"}}))).unwrap();
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    let body = encode(hello(json!({"response_format": {"type": "text"}}))).unwrap();
    assert!(body.get("generationConfig").is_none());
}

#[test]
fn what_gemini_cannot_honour_is_a_400_unless_dropped() {
    for (extra, param) in [
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"top_logprobs": 3}), "logprobs"),
        (json!({"parallel_tool_calls": false}), "parallel_tool_calls"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "x"}}]}]}),
            "messages",
        ),
    ] {
        let req: ChatRequest = serde_json::from_value(hello(extra.clone())).unwrap();
        let e = codec::encode_chat(&req, &opts()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{extra}");
        assert_eq!(e.param(), Some(param), "{extra}");
        let dropping = EncodeOptions {
            drop_params: true,
            ..opts()
        };
        // A message whose only part is dropped leaves nothing to send: still a 400.
        if param != "messages" {
            let body = codec::encode_chat(&req, &dropping).unwrap();
            assert_eq!(body["contents"][0]["parts"][0]["text"], "hi");
            // The request itself may ask for it too.
            let mut asking = req.clone();
            asking.extra.insert("drop_params".into(), json!(true));
            assert!(codec::encode_chat(&asking, &opts()).is_ok(), "{extra}");
        }
    }
}

#[test]
fn malformed_conversations_are_400s() {
    for (messages, needle) in [
        (
            json!([{"role": "system", "content": "only a system prompt"}]),
            "at least one",
        ),
        (
            json!([{"role": "tool", "tool_call_id": "call_x", "content": "1"}]),
            "call_x",
        ),
        (
            json!([{"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                "function": {"name": "f", "arguments": "[1,2]"}}]}]),
            "JSON object",
        ),
        (
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/img"}}]}]),
            "media type",
        ),
        (
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]),
            "base64",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "opus"}}]}]),
            "opus",
        ),
    ] {
        let e = encode(json!({"model": "m", "messages": messages})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{messages}");
        assert!(e.message().contains(needle), "{}", e.message());
    }
}

#[test]
fn schemas_that_cannot_be_inlined_are_rejected() {
    let recursive = json!({"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}});
    let e = codec::clean_schema("gemini", &recursive).unwrap_err();
    assert!(e.message().contains("recursive"), "{}", e.message());
    let remote = json!({"$ref": "https://example.com/schema.json"});
    assert!(codec::clean_schema("gemini", &remote).is_err());
    let all_of = json!({"allOf": [{"type": "string"}, {"minLength": 2}]});
    assert!(codec::clean_schema("gemini", &all_of).is_err());
    // One `allOf` member (pydantic's wrapper around a `$ref`) is inlined.
    let wrapped = json!({"properties": {"u": {"allOf": [{"$ref": "#/$defs/U"}], "description": "d"}},
        "type": "object", "$defs": {"U": {"type": "integer", "exclusiveMinimum": 0}}});
    assert_eq!(
        codec::clean_schema("gemini", &wrapped).unwrap(),
        json!({"type": "OBJECT", "properties": {"u": {"type": "INTEGER", "description": "d"}}})
    );
    // Several non-null types become alternatives; enum values become strings.
    let multi = json!({"type": ["string", "integer", "null"], "enum": [1, "a", null]});
    assert_eq!(
        codec::clean_schema("gemini", &multi).unwrap(),
        json!({"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}], "enum": ["1", "a"], "nullable": true})
    );
}

#[test]
fn responses_decode_to_canonical_json() {
    for case in json_fixture("responses.json").as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let body = serde_json::to_vec(&case["upstream"]).unwrap();
        let result = codec::decode_chat(&body, &META);
        if let Some(kind) = case.get("error") {
            let e = result.expect_err(name);
            let want: ErrorKind = serde_json::from_value(kind.clone()).unwrap();
            assert_eq!(e.kind(), want, "{name}");
            assert_eq!(e.provider(), Some("gemini"), "{name}");
            if let Some(code) = case["error_code"].as_str() {
                assert_eq!(e.code(), Some(code), "{name}");
            }
            continue;
        }
        let resp = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(want) = case.get("expected") {
            assert_eq!(
                serde_json::to_value(&resp).unwrap(),
                *want,
                "{name}: got {}",
                serde_json::to_string_pretty(&resp).unwrap()
            );
        }
        if let Some(model) = case["expected_model"].as_str() {
            assert_eq!(resp.model, model, "{name}");
            // No responseId: an id is made up, the same for the same answer.
            assert!(resp.id.starts_with("chatcmpl-"), "{}", resp.id);
            assert_eq!(codec::decode_chat(&body, &META).unwrap().id, resp.id);
        }
        if let Some(f) = case["expected_finish"].as_str() {
            assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::from(f)));
        }
    }
}

#[test]
fn a_replayed_tool_call_carries_its_thought_signature_back() {
    let body = serde_json::to_vec(&json_fixture("responses.json")[1]["upstream"]).unwrap();
    let resp = codec::decode_chat(&body, &META).unwrap();
    let calls = resp.choices[0].message.tool_calls.clone().unwrap();
    let mut messages = vec![json!({"role": "user", "content": "weather?"})];
    messages.push(json!({"role": "assistant", "tool_calls": calls}));
    for c in &calls {
        messages.push(json!({"role": "tool", "tool_call_id": c.id, "content": "sunny"}));
    }
    let body = encode(json!({"model": "m", "messages": messages})).unwrap();
    assert_eq!(
        body["contents"][1]["parts"],
        json!([
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": "CiQBVKhc7+/QAw=="},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
        ])
    );
    assert_eq!(
        body["contents"][2]["parts"][1]["functionResponse"],
        json!({"name": "get_weather", "response": {"content": "sunny"}})
    );
}

fn replay(wire: &[u8], cut: usize) -> Result<Vec<ChatChunk>, llmux_core::Error> {
    let mut sse = SseDecoder::new();
    let mut events = Vec::new();
    sse.feed(&wire[..cut], &mut events).unwrap();
    sse.feed(&wire[cut..], &mut events).unwrap();
    assert!(!sse.has_partial_event());
    let mut decoder = StreamDecoder::new(&META);
    let mut out = VecDeque::new();
    for ev in events {
        decoder.decode(&ev.data, &mut out)?;
    }
    out.extend(decoder.finish());
    Ok(out.into())
}

/// The recorded stream (thought, text, two parallel calls, usage) gives the same chunks
/// however its bytes are split.
#[test]
fn streamed_function_call_and_text_at_every_split() {
    let wire = fixture("stream_function_call.sse");
    let want = json_fixture("stream_function_call.expected.json");
    let first = replay(wire.as_bytes(), 0).unwrap();
    assert_eq!(
        serde_json::to_value(&first).unwrap(),
        want,
        "got {}",
        serde_json::to_string_pretty(&first).unwrap()
    );
    assert!(first.last().unwrap().is_usage_only());
    for cut in 1..=wire.len() {
        assert_eq!(replay(wire.as_bytes(), cut).unwrap(), first, "cut {cut}");
    }
}

#[test]
fn stream_errors_surface() {
    let mut d = StreamDecoder::new(&META);
    let mut out = VecDeque::new();
    let e = d
        .decode(
            r#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    let e = d
        .decode(r#"{"promptFeedback": {"blockReason": "SAFETY"}}"#, &mut out)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContentPolicy);
    let e = d
        .decode(
            r#"[{"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}]"#,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    let e = d.decode("{not json", &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    // A safety stop mid-answer is a content_filter finish, not an error.
    let mut d = StreamDecoder::new(&META);
    d.decode(
        r#"{"candidates": [{"content": {"parts": [{"text": "Sure"}], "role": "model"}, "index": 0}]}"#,
        &mut out,
    )
    .unwrap();
    d.decode(r#"{"candidates": [{"finishReason": "SAFETY", "index": 0}], "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1}}"#, &mut out)
        .unwrap();
    let last = out.pop_back().unwrap();
    assert_eq!(
        last.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    assert_eq!(d.finish().unwrap().usage.unwrap().total_tokens, 3);
}

#[test]
fn error_bodies_map_to_the_taxonomy() {
    for case in json_fixture("errors.json").as_array().unwrap() {
        let status = case["status"].as_u64().unwrap() as u16;
        let body = match case.get("raw") {
            Some(raw) => raw.as_str().unwrap().as_bytes().to_vec(),
            None => serde_json::to_vec(&case["body"]).unwrap(),
        };
        let header = case["retry_after"].as_u64().map(Duration::from_secs);
        let secrets: Vec<&str> = case["secret"].as_str().into_iter().collect();
        let e = codec::decode_error("gemini", status, &body, header, &secrets);
        let kind: ErrorKind = serde_json::from_value(case["kind"].clone()).unwrap();
        assert_eq!(e.kind(), kind, "{case}");
        assert_eq!(e.upstream_status(), Some(status), "{case}");
        assert_eq!(e.provider(), Some("gemini"));
        assert_eq!(
            e.retry_after(),
            case["retry_after_ms"].as_u64().map(Duration::from_millis),
            "{case}"
        );
        for s in &secrets {
            assert!(!e.message().contains(s), "{}", e.message());
        }
    }
}

fn embedding_request(input: EmbeddingInput, extra: Value) -> EmbeddingRequest {
    EmbeddingRequest {
        model: "emb".into(),
        input,
        encoding_format: None,
        dimensions: Some(3),
        user: None,
        extra: extra.as_object().cloned().unwrap_or_default(),
    }
}

#[test]
fn embeddings_bodies() {
    let one = embedding_request(
        EmbeddingInput::Text("hello".into()),
        json!({"task_type": "RETRIEVAL_QUERY"}),
    );
    let (method, body) =
        codec::encode_embeddings(&one, "gemini-embedding-001", Api::Gemini, "gemini").unwrap();
    assert_eq!(method, EmbedMethod::EmbedContent);
    assert_eq!(
        body,
        json!({"content": {"parts": [{"text": "hello"}]}, "taskType": "RETRIEVAL_QUERY",
            "outputDimensionality": 3})
    );
    let many = embedding_request(
        EmbeddingInput::Texts(vec!["a".into(), "b".into()]),
        json!({}),
    );
    let (method, body) =
        codec::encode_embeddings(&many, "gemini-embedding-001", Api::Gemini, "gemini").unwrap();
    assert_eq!(method, EmbedMethod::BatchEmbedContents);
    assert_eq!(
        body,
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 3},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 3}
        ]})
    );
    let (method, body) =
        codec::encode_embeddings(&many, "text-embedding-005", Api::Vertex, "vertex_ai").unwrap();
    assert_eq!(method, EmbedMethod::Predict);
    assert_eq!(
        body,
        json!({"instances": [{"content": "a"}, {"content": "b"}],
            "parameters": {"outputDimensionality": 3}})
    );
    let tokens = embedding_request(EmbeddingInput::Tokens(vec![1, 2]), json!({}));
    let e = codec::encode_embeddings(&tokens, "m", Api::Gemini, "gemini").unwrap_err();
    assert_eq!(e.param(), Some("input"));
}

#[test]
fn embeddings_answers() {
    let r = codec::decode_embeddings(
        EmbedMethod::BatchEmbedContents,
        br#"{"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 0.0]}]}"#,
        &META,
        false,
    )
    .unwrap();
    assert_eq!(r.data.len(), 2);
    assert_eq!(r.data[1].index, 1);
    assert_eq!(r.data[1].embedding, EmbeddingVector::Float(vec![0.25, 0.0]));
    let r = codec::decode_embeddings(
        EmbedMethod::Predict,
        br#"{"predictions": [{"embeddings": {"statistics": {"truncated": false, "token_count": 6}, "values": [1.0]}},
            {"embeddings": {"statistics": {"truncated": false, "token_count": 4}, "values": [2.0]}}]}"#,
        &META,
        true,
    )
    .unwrap();
    assert_eq!(r.usage.prompt_tokens, 10);
    // 1.0f32 little-endian is 00 00 80 3f.
    assert_eq!(
        r.data[0].embedding,
        EmbeddingVector::Base64("AACAPw==".into())
    );
    assert_eq!(r.model, "gemini-fallback");
}
