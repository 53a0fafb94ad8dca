//! Fixture tests of the pure codec: canonical requests in, exact `/api/chat` bodies out;
//! recorded Ollama answers, NDJSON streams (cut at every byte) and error bodies in,
//! canonical values out.

use std::time::Duration;

use base64::Engine as _;
use llmux_core::{
    ChatChunk, ChatRequest, EmbeddingRequest, EmbeddingVector, ErrorKind, FinishReason, JsonObject,
    Role,
};
use llmux_provider_ollama::codec::{self, DecodeOptions, EncodeOptions, StreamDecoder};
use serde_json::{Value, json};

const P: &str = "ollama";

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
    Value::Object(codec::encode_chat(request(v), &EncodeOptions::new(P, "llama3.2")).unwrap())
}

fn user(content: Value) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": content}]})
}

fn decode_opts() -> DecodeOptions {
    DecodeOptions {
        provider: P,
        id: "chatcmpl-test-1".into(),
        created: 1_750_000_000,
    }
}

#[test]
fn full_request_becomes_the_exact_ollama_body() {
    let req: ChatRequest = serde_json::from_str(&fixture("chat_request_full.json")).unwrap();
    let opts = EncodeOptions::new(P, "llama3.2-vision");
    let plain = codec::encode_chat(req.clone(), &opts).unwrap();
    assert_eq!(
        Value::Object(plain.clone()),
        json_fixture("chat_request_full.ollama.json")
    );
    let streamed = codec::encode_chat(req, &opts.streaming(true)).unwrap();
    let mut expected = plain;
    expected.insert("stream".into(), true.into());
    assert_eq!(streamed, expected);
}

#[test]
fn formats_think_and_deployment_defaults() {
    let hello = user(json!("hi"));
    let b = body(hello.clone());
    assert_eq!(
        b,
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": false})
    );
    let with = |extra: Value| {
        let mut r = hello.clone();
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        body(r)
    };
    assert_eq!(
        with(json!({"response_format": {"type": "json_object"}}))["format"],
        "json"
    );
    assert!(
        with(json!({"response_format": {"type": "text"}}))
            .get("format")
            .is_none()
    );
    assert_eq!(with(json!({"reasoning_effort": "none"}))["think"], false);
    assert_eq!(with(json!({"think": "low"}))["think"], "low");
    // tool_choice none sends no tools.
    let b = with(
        json!({"tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "none"}),
    );
    assert!(b.get("tools").is_none());
    let defaults: JsonObject = serde_json::from_value(json!({"keep_alive": "1h", "think": true,
        "options": {"num_ctx": 4096, "temperature": 0.9}}))
    .unwrap();
    let opts = EncodeOptions {
        defaults: Some(&defaults),
        ..EncodeOptions::new(P, "llama3.2")
    };
    let mut r = hello.clone();
    r["temperature"] = 0.1.into();
    let b = codec::encode_chat(request(r), &opts).unwrap();
    assert_eq!(b["keep_alive"], "1h");
    assert_eq!(b["think"], true);
    assert_eq!(b["options"], json!({"num_ctx": 4096, "temperature": 0.1}));
}

#[test]
fn unsupported_input_is_a_clear_400_naming_the_param() {
    let img = |url: &str| user(json!([{"type": "image_url", "image_url": {"url": url}}]));
    for (req, param, needle) in [
        (
            img("https://example.com/cat.png"),
            "messages",
            "not fetched",
        ),
        (img("data:image/png,rawbytes"), "messages", "base64"),
        (
            img("data:image/png;base64,@@@@"),
            "messages",
            "not valid base64",
        ),
        (
            user(
                json!([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]),
            ),
            "messages",
            "only text and image",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages",
            "JSON object",
        ),
        (
            json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]}),
            "messages",
            "legacy",
        ),
        (
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
            "n",
            "n > 1",
        ),
        (
            json!({"model": "m", "options": 3, "messages": [{"role": "user", "content": "x"}]}),
            "options",
            "object",
        ),
    ] {
        let e = codec::encode_chat(request(req), &EncodeOptions::new(P, "m")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(e.param(), Some(param));
        assert!(
            e.message().starts_with("ollama: ") && e.message().contains(needle),
            "{e}"
        );
    }
}

#[test]
fn responses_decode_to_the_expected_canonical_json() {
    for name in ["response_text", "response_tool_calls", "response_thinking"] {
        let resp = codec::decode_chat(fixture(&format!("{name}.json")).as_bytes(), &decode_opts())
            .unwrap();
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json_fixture(&format!("{name}.expected.json")),
            "{name}"
        );
    }
    let e = codec::decode_chat(b"{\"model\":", &decode_opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

/// Decode an NDJSON body cut in two at `cut`.
fn replay(wire: &[u8], cut: usize) -> Result<Vec<ChatChunk>, llmux_core::Error> {
    let mut d = StreamDecoder::new(decode_opts());
    let mut out = Vec::new();
    d.feed(&wire[..cut], &mut out)?;
    d.feed(&wire[cut..], &mut out)?;
    d.finish(&mut out)?;
    Ok(out)
}

fn all_splits(name: &str) -> Vec<ChatChunk> {
    let wire = fixture(name).into_bytes();
    let whole = replay(&wire, 0).unwrap();
    for cut in 1..=wire.len() {
        assert_eq!(replay(&wire, cut).unwrap(), whole, "{name} split at {cut}");
    }
    // Fed one byte at a time, too.
    let mut d = StreamDecoder::new(decode_opts());
    let mut out = Vec::new();
    for b in &wire {
        d.feed(std::slice::from_ref(b), &mut out).unwrap();
    }
    d.finish(&mut out).unwrap();
    assert_eq!(out, whole, "{name} byte by byte");
    whole
}

fn usage_tail(chunks: &[ChatChunk]) -> (u64, u64, u64) {
    let (last, rest) = chunks.split_last().unwrap();
    assert!(last.is_usage_only());
    assert!(rest.iter().all(|c| c.usage.is_none()));
    let u = last.usage.as_ref().unwrap();
    (u.prompt_tokens, u.completion_tokens, u.total_tokens)
}

#[test]
fn text_stream_reassembles_at_every_byte_boundary() {
    let chunks = all_splits("stream_text.ndjson");
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    let collect = |f: fn(&llmux_core::Delta) -> Option<&String>| -> String {
        chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| f(&c.delta).map(String::as_str))
            .collect()
    };
    assert_eq!(
        collect(|d| d.reasoning_content.as_ref()),
        "Let me think. Done — ✓."
    );
    assert_eq!(collect(|d| d.content.as_ref()), "The sky is blue ☀️.");
    assert!(
        chunks
            .iter()
            .all(|c| c.id == "chatcmpl-test-1" && c.model == "qwen3")
    );
    let finish = &chunks[chunks.len() - 2].choices[0].finish_reason;
    assert_eq!(finish, &Some(FinishReason::Stop));
    assert_eq!(usage_tail(&chunks), (26, 282, 308));
}

#[test]
fn tool_call_stream_gives_whole_calls_with_ids_and_indexes() {
    let chunks = all_splits("stream_tool_call.ndjson");
    let calls: Vec<Value> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.as_ref())
        .flatten()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(
        calls,
        [
            json!({"index": 0, "id": "call_0_hatcmpltest1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}),
            json!({"index": 1, "id": "call_1_hatcmpltest1", "type": "function",
                "function": {"name": "get_time", "arguments": "{}"}}),
        ]
    );
    let finish = &chunks[chunks.len() - 2].choices[0].finish_reason;
    assert_eq!(finish, &Some(FinishReason::ToolCalls));
    assert_eq!(usage_tail(&chunks), (120, 30, 150));
}

#[test]
fn broken_streams_are_errors() {
    // Cut before the done line.
    let wire = fixture("stream_text.ndjson");
    let cut = wire.rfind("{\"model\"").unwrap();
    let e = replay(&wire.as_bytes()[..cut], 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    assert!(e.message().contains("ended before"), "{e}");
    // An error line mid-stream.
    let mut d = StreamDecoder::new(decode_opts());
    let mut out = Vec::new();
    let e = d
        .feed(b"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"a\"},\"done\":false}\n{\"error\":\"an error was encountered while running the model: unexpected EOF\"}\n", &mut out)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    assert!(e.message().contains("unexpected EOF"));
    assert_eq!(out.len(), 1, "what came before the error is kept");
    // Garbage.
    let e = replay(b"not json\n", 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    // A line with no newline yet is bounded.
    let mut d = StreamDecoder::new(decode_opts());
    let big = vec![b'x'; codec::MAX_LINE_BYTES + 1];
    assert!(d.feed(&big, &mut Vec::new()).is_err());
}

#[test]
fn embeddings_map_both_ways() {
    let req: EmbeddingRequest = serde_json::from_value(json!({"model": "e", "input": ["a b", "c"],
        "dimensions": 3, "user": "u", "truncate": false, "keep_alive": "5m"}))
    .unwrap();
    assert_eq!(
        Value::Object(codec::encode_embeddings(P, req, "nomic-embed-text").unwrap()),
        json!({"model": "nomic-embed-text", "input": ["a b", "c"], "dimensions": 3,
            "truncate": false, "keep_alive": "5m"})
    );
    for bad in [
        json!({"model": "e", "input": [1, 2]}),
        json!({"model": "e", "input": "x", "encoding_format": "int8"}),
    ] {
        let req: EmbeddingRequest = serde_json::from_value(bad).unwrap();
        let e = codec::encode_embeddings(P, req, "m").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
    }
    let wire = br#"{"model":"nomic-embed-text","embeddings":[[0.5,-1.0],[0.25,2.0]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}"#;
    let r = codec::decode_embeddings(P, wire, false).unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"object": "list", "model": "nomic-embed-text", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
            {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]}],
            "usage": {"prompt_tokens": 8, "total_tokens": 8}})
    );
    let r = codec::decode_embeddings(P, wire, true).unwrap();
    let EmbeddingVector::Base64(b) = &r.data[1].embedding else {
        panic!("base64 expected")
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
    assert_eq!(
        bytes,
        [0.25f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat()
    );
}

#[test]
fn tags_become_a_model_list() {
    let wire = br#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","modified_at":"2025-05-04T17:37:44Z","size":2019393189,"digest":"a80c","details":{"family":"llama","parameter_size":"3.2B"}},{"model":"qwen3:8b"},{"size":1}]}"#;
    let list = codec::decode_models(P, wire).unwrap();
    let ids: Vec<&str> = list.data.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["llama3.2:latest", "qwen3:8b"]);
    assert_eq!(list.data[0].owned_by, "ollama");
    assert_eq!(list.data[0].extra["details"]["family"], "llama");
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
        let e = codec::decode_error(P, status, &body, retry, &["ol-secret-key-123"]);
        assert_eq!(e.kind().as_str(), case["kind"], "{case}");
        assert_eq!(e.upstream_status(), Some(status), "{case}");
        assert_eq!(e.provider(), Some("ollama"));
        assert!(e.message().starts_with("ollama: "), "{e}");
        if let Some(code) = case["code"].as_str() {
            assert_eq!(e.code(), Some(code), "{case}");
        }
        if let Some(needle) = case["message_contains"].as_str() {
            assert!(e.message().contains(needle), "{e} / {needle}");
        }
        if let Some(secret) = case["must_not_contain"].as_str() {
            assert!(!e.message().contains(secret), "{e}");
            assert!(!e.message().contains("abcdefghijklmnop"), "{e}");
        }
        if let Some(s) = case["retry_after_secs"].as_u64() {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(s)));
        }
    }
}
