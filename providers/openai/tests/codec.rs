//! Fixture tests of the pure codec: canonical request in, exact upstream body out;
//! recorded responses, streams and error bodies in, canonical values out.

use std::time::Duration;

use llmux_core::sse::SseDecoder;
use llmux_core::{ChatRequest, ChatResponse, ErrorKind, FinishReason};
use llmux_provider_openai::codec;
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

#[test]
fn full_request_survives_the_canonical_types() {
    let req: ChatRequest = serde_json::from_str(&fixture("chat_request_full.json")).unwrap();
    // Every documented field is modelled, unknown ones are kept.
    assert_eq!(req.messages.len(), 8);
    assert_eq!(req.reasoning_effort.as_deref(), Some("low"));
    assert!(req.extra.contains_key("prediction"));
    assert!(req.extra.contains_key("service_tier"));
    let stream = codec::encode_chat_stream(req.clone(), "gpt-4o-2024-08-06").unwrap();
    let stream: Value = serde_json::from_slice(&stream).unwrap();
    assert_eq!(stream, json("chat_request_full.upstream_stream.json"));
    let plain = codec::encode_chat(req, "gpt-4o-2024-08-06").unwrap();
    let plain: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(plain, json("chat_request_full.upstream_plain.json"));
}

#[test]
fn response_round_trips_exactly() {
    let raw = fixture("chat_response_tool_calls.json");
    let resp = codec::decode_chat("openai", raw.as_bytes()).unwrap();
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    let calls = resp.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[1].function.arguments, r#"{"city":"Rome"}"#);
    let usage = resp.usage.as_ref().unwrap();
    assert_eq!(usage.cached_tokens(), 1024);
    assert_eq!(usage.reasoning_tokens(), 0);
    let back = serde_json::to_value(&resp).unwrap();
    assert_eq!(back, json("chat_response_tool_calls.json"));
}

/// Replays the recorded stream through the SSE decoder cut at every byte offset and
/// checks the tool-call arguments reassemble and usage arrives.
#[test]
fn streamed_tool_calls_reassemble_at_any_split() {
    let wire = fixture("stream_tool_call.sse");
    let bytes = wire.as_bytes();
    for cut in 0..=bytes.len() {
        let mut d = SseDecoder::new();
        let mut events = Vec::new();
        d.feed(&bytes[..cut], &mut events).unwrap();
        d.feed(&bytes[cut..], &mut events).unwrap();
        let mut args = [String::new(), String::new()];
        let mut ids = [None, None];
        let mut finish = None;
        let mut usage = None;
        let mut done = false;
        for ev in events {
            match codec::decode_chunk("openai", &ev.data).unwrap() {
                None => done = true,
                Some(chunk) => {
                    if let Some(u) = chunk.usage {
                        usage = Some(u);
                    }
                    for c in chunk.choices {
                        if c.finish_reason.is_some() {
                            finish = c.finish_reason;
                        }
                        for tc in c.delta.tool_calls.unwrap_or_default() {
                            let i = tc.index as usize;
                            if tc.id.is_some() {
                                ids[i] = tc.id;
                            }
                            if let Some(a) = tc.function.and_then(|f| f.arguments) {
                                args[i].push_str(&a);
                            }
                        }
                    }
                }
            }
        }
        assert!(done, "cut {cut}");
        assert_eq!(
            args,
            [r#"{"city":"Paris"}"#, r#"{"city":"Rome"}"#],
            "cut {cut}"
        );
        assert_eq!(ids, [Some("call_abc".into()), Some("call_def".into())]);
        assert_eq!(finish, Some(FinishReason::ToolCalls));
        assert_eq!(usage.map(|u| u.total_tokens), Some(118));
    }
}

#[test]
fn error_bodies_map_to_the_taxonomy() {
    let cases = json("errors.json");
    for case in cases.as_array().unwrap() {
        let status = case["status"].as_u64().unwrap() as u16;
        let body = match case.get("raw") {
            Some(raw) => raw.as_str().unwrap().as_bytes().to_vec(),
            None => serde_json::to_vec(&case["body"]).unwrap(),
        };
        let retry = case["retry_after"].as_u64().map(Duration::from_secs);
        let e = codec::decode_error("openai", status, &body, retry, &[]);
        let kind: ErrorKind = serde_json::from_value(case["kind"].clone()).unwrap();
        assert_eq!(e.kind(), kind, "{case}");
        assert_eq!(e.code(), case["code"].as_str(), "{case}");
        assert_eq!(e.param(), case["param"].as_str(), "{case}");
        assert_eq!(e.upstream_status(), Some(status));
        assert_eq!(e.provider(), Some("openai"));
        assert_eq!(
            e.retry_after(),
            case["retry_after_secs"].as_u64().map(Duration::from_secs)
        );
        if let Some(secret) = case["must_not_contain"].as_str() {
            assert!(!e.message().contains(secret), "{}", e.message());
        }
    }
}

#[test]
fn error_inside_a_stream_is_an_error() {
    let e = codec::decode_chunk(
        "openai",
        r#"{"error":{"message":"overloaded","type":"server_error","code":null}}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    let e = codec::decode_chunk("openai", "{not json").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

#[test]
fn plain_response_decodes_reasoning_and_unknown_fields() {
    let resp: ChatResponse = codec::decode_chat(
        "openai",
        br#"{"id":"x","object":"chat.completion","created":1,"model":"o3",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi","annotations":[]},
            "finish_reason":"weird_new_reason"}],
            "usage":{"prompt_tokens":5,"completion_tokens":20,"total_tokens":25,
              "completion_tokens_details":{"reasoning_tokens":12}},"new_field":1}"#,
    )
    .unwrap();
    assert_eq!(resp.usage.as_ref().unwrap().reasoning_tokens(), 12);
    assert_eq!(
        resp.choices[0].finish_reason,
        Some(FinishReason::Other("weird_new_reason".into()))
    );
    assert_eq!(resp.extra["new_field"], 1);
    assert!(resp.choices[0].message.extra.contains_key("annotations"));
}
