//! Fixture tests of the pure codec: canonical requests in, exact Cohere bodies out;
//! recorded Cohere responses, streams and error bodies in, canonical values out.

use std::time::Duration;

use llmux_core::sse::SseDecoder;
use llmux_core::{
    ChatChunk, ChatRequest, EmbeddingRequest, EmbeddingVector, ErrorKind, FinishReason,
    RerankRequest,
};
use llmux_provider_cohere::codec::{self, StreamDecoder};
use serde_json::{Value, json};

const P: &str = "cohere";
const MODEL: &str = "command-a-03-2025";
const CREATED: u64 = 1_760_000_000;

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

fn encode(v: Value) -> Result<Value, llmux_core::Error> {
    codec::encode_chat(P, request(v), MODEL, false).map(Value::Object)
}

#[test]
fn full_request_becomes_the_exact_cohere_body() {
    let req: ChatRequest = serde_json::from_str(&fixture("chat_request_full.json")).unwrap();
    let body = codec::encode_chat(P, req.clone(), MODEL, false).unwrap();
    assert_eq!(
        Value::Object(body.clone()),
        json_fixture("chat_request_full.cohere.json")
    );
    // The streamed body is the same plus `"stream": true`.
    let streamed = codec::encode_chat(P, req, MODEL, true).unwrap();
    let mut expected = body;
    expected.insert("stream".into(), true.into());
    assert_eq!(streamed, expected);
}

#[test]
fn tool_choice_modes_map() {
    let tools = json!([
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}}
    ]);
    let base = |choice: Value| {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": tools, "tool_choice": choice})
    };
    let b = encode(base(json!("auto"))).unwrap();
    assert!(b.get("tool_choice").is_none());
    assert_eq!(b["tools"].as_array().unwrap().len(), 2);
    assert_eq!(encode(base(json!("none"))).unwrap()["tool_choice"], "NONE");
    assert_eq!(
        encode(base(json!("required"))).unwrap()["tool_choice"],
        "REQUIRED"
    );
    // A named function: only that tool, and it must be called.
    let named = encode(base(json!({"type": "function", "function": {"name": "b"}}))).unwrap();
    assert_eq!(named["tool_choice"], "REQUIRED");
    assert_eq!(named["tools"], json!([tools[1]]));
    let e = encode(base(
        json!({"type": "function", "function": {"name": "zzz"}}),
    ))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(e.param(), Some("tool_choice"));
}

#[test]
fn reasoning_and_response_formats_map() {
    let hello = |extra: Value| {
        let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        encode(v).unwrap()
    };
    assert_eq!(
        hello(json!({"reasoning_effort": "none"}))["thinking"],
        json!({"type": "disabled"})
    );
    // An explicit Cohere `thinking` wins over the effort.
    assert_eq!(
        hello(
            json!({"reasoning_effort": "high", "thinking": {"type": "enabled", "token_budget": 512}})
        )["thinking"],
        json!({"type": "enabled", "token_budget": 512})
    );
    assert_eq!(
        hello(json!({"response_format": {"type": "json_object"}}))["response_format"],
        json!({"type": "json_object"})
    );
    assert_eq!(
        hello(json!({"response_format": {"type": "text"}}))["response_format"],
        json!({"type": "text"})
    );
    let plain = hello(json!({"stop": "STOP", "max_tokens": 5, "logprobs": true, "k": 3}));
    assert_eq!(plain["stop_sequences"], json!(["STOP"]));
    assert_eq!(
        (plain["max_tokens"].as_u64(), plain["k"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(plain["logprobs"], true);
    assert!(plain.get("stream").is_none());
}

#[test]
fn unsupported_inputs_are_clear_bad_requests() {
    for (v, param) in [
        (
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
            "n",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}]}),
            "messages",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "web_search"}]}),
            "tools",
        ),
    ] {
        let e = encode(v.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{v}");
        assert_eq!(e.param(), Some(param), "{v}");
        assert_eq!(e.provider(), Some("cohere"));
    }
}

#[test]
fn tool_call_response_decodes() {
    let r = codec::decode_chat(
        P,
        fixture("chat_response_tool_call.json").as_bytes(),
        MODEL,
        CREATED,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json_fixture("chat_response_tool_call.expected.json")
    );
}

#[test]
fn text_response_keeps_thinking_and_citations() {
    let r = codec::decode_chat(
        P,
        fixture("chat_response_text_citations.json").as_bytes(),
        MODEL,
        CREATED,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json_fixture("chat_response_text_citations.expected.json")
    );
}

#[test]
fn unusable_responses_are_upstream_errors() {
    for body in [
        "{\"id\":\"x\",\"message\":{\"content\":[{\"type\":\"te",
        "[]",
        r#"{"id":"x","message":{"tool_calls":[{"id":"t","function":{"arguments":"{}"}}]}}"#,
    ] {
        let e = codec::decode_chat(P, body.as_bytes(), MODEL, CREATED).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UpstreamError, "{body}");
    }
}

/// Decodes an SSE transcript split into two reads at byte `split`.
fn decode_stream(sse: &str, split: usize) -> Result<Vec<ChatChunk>, llmux_core::Error> {
    let mut sse_dec = SseDecoder::new();
    let mut events = Vec::new();
    let bytes = sse.as_bytes();
    sse_dec.feed(&bytes[..split], &mut events).unwrap();
    sse_dec.feed(&bytes[split..], &mut events).unwrap();
    let mut dec = StreamDecoder::new(P, MODEL, CREATED);
    let mut out = Vec::new();
    for ev in events {
        dec.feed(ev.event.as_deref(), &ev.data, &mut out)?;
    }
    dec.finish()?;
    Ok(out)
}

/// Decodes at every split point and checks all agree; returns the chunks.
fn decode_everywhere(name: &str) -> Vec<ChatChunk> {
    let sse = fixture(name);
    let whole = decode_stream(&sse, 0).unwrap();
    for split in 1..sse.len() {
        if !sse.is_char_boundary(split) {
            continue;
        }
        assert_eq!(
            decode_stream(&sse, split).unwrap(),
            whole,
            "split at {split}"
        );
    }
    whole
}

#[test]
fn tool_call_stream_decodes_at_every_split_point() {
    let chunks = decode_everywhere("stream_tool_call.sse");
    assert!(
        chunks
            .iter()
            .all(|c| c.id == "29f14a5a-11de-4cae-9800-25e4747408ea" && c.model == MODEL)
    );
    let first = &chunks[0].choices[0].delta;
    assert_eq!(first.role, Some(llmux_core::Role::Assistant));
    let mut plan = String::new();
    let mut calls: Vec<(Option<String>, Option<String>, String)> = Vec::new();
    let mut finish = None;
    for c in &chunks {
        for ch in &c.choices {
            if let Some(p) = ch.delta.extra.get("tool_plan").and_then(Value::as_str) {
                plan.push_str(p);
            }
            for t in ch.delta.tool_calls.iter().flatten() {
                let i = t.index as usize;
                if calls.len() <= i {
                    calls.resize(i + 1, (None, None, String::new()));
                }
                if t.id.is_some() {
                    calls[i].0.clone_from(&t.id);
                }
                let f = t.function.as_ref().unwrap();
                if f.name.is_some() {
                    calls[i].1.clone_from(&f.name);
                }
                calls[i]
                    .2
                    .push_str(f.arguments.as_deref().unwrap_or_default());
            }
            if ch.finish_reason.is_some() {
                finish.clone_from(&ch.finish_reason);
            }
        }
    }
    assert_eq!(plan, "I will check the weather.");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0.as_deref(), Some("get_weather_nsz5zm3w56q3"));
    assert_eq!(calls[0].1.as_deref(), Some("get_weather"));
    let args: Value = serde_json::from_str(&calls[0].2).unwrap();
    assert_eq!(args, json!({"location": "Toronto"}));
    assert_eq!(
        (calls[1].1.as_deref(), calls[1].2.as_str()),
        (Some("get_time"), "{}")
    );
    assert_eq!(finish, Some(FinishReason::ToolCalls));
    let last = chunks.last().unwrap();
    assert!(last.is_usage_only());
    let u = last.usage.as_ref().unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (37, 21));
    assert_eq!(chunks.iter().filter(|c| c.usage.is_some()).count(), 1);
}

#[test]
fn text_stream_with_thinking_and_citations_decodes_at_every_split_point() {
    let chunks = decode_everywhere("stream_text_citations.sse");
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect();
    assert_eq!(text, "Bring an umbrella — 🌂.");
    let thinking: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.reasoning_content.as_deref())
        .collect();
    assert_eq!(thinking, "Notes say umbrella.");
    let citations: Vec<&Value> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.extra.get("citations"))
        .collect();
    assert_eq!(citations.len(), 1);
    assert_eq!(citations[0][0]["text"], "an umbrella");
    let finish: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finish, [FinishReason::Stop]);
    assert_eq!(
        chunks.last().unwrap().usage.as_ref().unwrap().total_tokens,
        17
    );
}

#[test]
fn stream_errors_and_cut_streams_are_upstream_errors() {
    let mut dec = StreamDecoder::new(P, MODEL, CREATED);
    let mut out = Vec::new();
    dec.feed(
        None,
        r#"{"id":"x","type":"message-start","delta":{"message":{"role":"assistant"}}}"#,
        &mut out,
    )
    .unwrap();
    // Cut before message-end.
    let e = dec.finish().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    // An error reported in message-end.
    let e = dec
        .feed(
            Some("message-end"),
            r#"{"type":"message-end","delta":{"finish_reason":"ERROR","error":"the model failed"}}"#,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    assert!(e.message().contains("the model failed"));
    // Garbage data.
    let mut dec = StreamDecoder::new(P, MODEL, CREATED);
    let e = dec.feed(None, "{not json", &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    // Unknown events and [DONE] yield nothing.
    let before = out.len();
    dec.feed(None, r#"{"type":"debug","delta":{}}"#, &mut out)
        .unwrap();
    dec.feed(None, "[DONE]", &mut out).unwrap();
    assert_eq!(out.len(), before);
}

fn embed_request(v: Value) -> EmbeddingRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn embed_request_and_response_map() {
    let req =
        embed_request(json!({"model": "e", "input": ["hello", "goodbye"], "dimensions": 256}));
    let body = codec::encode_embed(P, &req, "embed-v4.0").unwrap();
    assert_eq!(
        Value::Object(body),
        json!({"model": "embed-v4.0", "texts": ["hello", "goodbye"],
            "input_type": "search_document", "embedding_types": ["float"],
            "output_dimension": 256})
    );
    let req = embed_request(
        json!({"model": "e", "input": "q", "input_type": "search_query", "truncate": "END"}),
    );
    let body = codec::encode_embed(P, &req, "embed-v4.0").unwrap();
    assert_eq!(body["input_type"], "search_query");
    assert_eq!(body["texts"], json!(["q"]));
    assert_eq!(body["truncate"], "END");
    for bad in [
        json!({"model": "e", "input": "q", "input_type": "nonsense"}),
        json!({"model": "e", "input": [1, 2, 3]}),
    ] {
        let e = codec::encode_embed(P, &embed_request(bad.clone()), "m").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{bad}");
    }

    let body = fixture("embed_response.json");
    let r = codec::decode_embed(P, body.as_bytes(), "embed-v4.0", false).unwrap();
    assert_eq!(r.model, "embed-v4.0");
    assert_eq!((r.usage.prompt_tokens, r.usage.total_tokens), (2, 2));
    assert_eq!(r.data.len(), 2);
    assert_eq!(r.data[1].index, 1);
    assert_eq!(
        r.data[0].embedding,
        EmbeddingVector::Float(vec![0.016296387, -0.008354187, -0.04699707])
    );
    // base64: little-endian f32 of the same floats.
    let r = codec::decode_embed(P, body.as_bytes(), "embed-v4.0", true).unwrap();
    let EmbeddingVector::Base64(b64) = &r.data[0].embedding else {
        panic!("base64 expected");
    };
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, [0.016296387, -0.008354187, -0.04699707]);
    let e = codec::decode_embed(P, br#"{"embeddings":{"int8":[[1]]}}"#, "m", false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

#[test]
fn rerank_request_and_response_map() {
    let mut req: RerankRequest = serde_json::from_value(json!({
        "model": "rr", "query": "What is the capital of the United States?",
        "documents": ["Carson City is the capital of Nevada.", {"text": "Saipan is in the Pacific."},
            "Charlotte Amalie is in the Virgin Islands.",
            "Washington, D.C. is the capital of the United States.",
            {"title": "Capital punishment", "body": "has existed in the US."}],
        "top_n": 3, "max_tokens_per_doc": 512, "max_chunks_per_doc": 10
    }))
    .unwrap();
    assert_eq!(
        Value::Object(codec::encode_rerank(&req, "rerank-v3.5")),
        json!({"model": "rerank-v3.5", "query": "What is the capital of the United States?",
            "documents": ["Carson City is the capital of Nevada.", "Saipan is in the Pacific.",
                "Charlotte Amalie is in the Virgin Islands.",
                "Washington, D.C. is the capital of the United States.",
                r#"{"body":"has existed in the US.","title":"Capital punishment"}"#],
            "top_n": 3, "max_tokens_per_doc": 512})
    );
    let body = fixture("rerank_response.json");
    let r = codec::decode_rerank(P, body.as_bytes(), &req).unwrap();
    let got: Vec<(u32, f64)> = r
        .results
        .iter()
        .map(|x| (x.index, x.relevance_score))
        .collect();
    assert_eq!(got, [(3, 0.999071), (4, 0.7867867), (0, 0.32713068)]);
    assert!(r.results.iter().all(|x| x.document.is_none()));
    assert_eq!(r.id, "b1c4b2a0-7c53-4d0e-9a1f-3f8b8a3d2e11");
    assert_eq!((r.search_units(), r.reported_tokens()), (Some(1), None));
    assert_eq!(r.meta.extra["api_version"]["version"], "2");
    // return_documents fills each result's text from the request.
    req.return_documents = Some(true);
    let r = codec::decode_rerank(P, body.as_bytes(), &req).unwrap();
    assert_eq!(
        r.results[0].document.as_ref().unwrap().text,
        "Washington, D.C. is the capital of the United States."
    );
    // An index the request does not have is an upstream error.
    req.documents.truncate(2);
    let e = codec::decode_rerank(P, body.as_bytes(), &req).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

#[test]
fn error_bodies_map_onto_kinds() {
    let cases = json_fixture("errors.json");
    for case in cases.as_array().unwrap() {
        let status = case["status"].as_u64().unwrap() as u16;
        let body = match case.get("raw") {
            Some(raw) => raw.as_str().unwrap().as_bytes().to_vec(),
            None => serde_json::to_vec(&case["body"]).unwrap(),
        };
        let retry = case["retry_after"].as_u64().map(Duration::from_secs);
        let e = codec::decode_error(P, status, &body, retry, &["co-key-AbCdEfGhIjKlMnOpQrSt"]);
        assert_eq!(e.kind().as_str(), case["kind"], "{case}");
        if let Some(code) = case["code"].as_str() {
            assert_eq!(e.code(), Some(code), "{case}");
        }
        if let Some(s) = case["retry_after_secs"].as_u64() {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(s)));
        }
        if let Some(secret) = case["must_not_contain"].as_str() {
            assert!(!e.message().contains(secret), "{}", e.message());
        }
        assert_eq!(e.upstream_status(), Some(status));
        assert_eq!(e.provider(), Some("cohere"));
        assert!(e.message().starts_with("cohere: "), "{}", e.message());
    }
}
