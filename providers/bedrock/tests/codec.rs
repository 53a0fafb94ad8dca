//! Fixture tests of the pure codec: canonical requests in, exact Converse bodies out;
//! recorded Converse responses, event streams and error answers in, canonical values out.

use std::time::Duration;

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use llmux_core::{
    ChatChunk, ChatRequest, EmbeddingRequest, EmbeddingVector, ErrorKind, FinishReason, Role,
};
use llmux_provider_bedrock::codec::{self, DecodeOptions, EncodeOptions};
use llmux_provider_bedrock::embed::{self, EmbedFamily};
use llmux_provider_bedrock::stream::{ConverseStreamDecoder, FrameDecoder, MAX_FRAME_BYTES};
use serde_json::{Value, json};

const CREATED: u64 = 1_760_000_000;
const ID: &str = "chatcmpl-6a1f5c2e-7f3b-4c1e-9d0a-2b8e5f4c3a21";
const MODEL: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";

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

fn encode(req: ChatRequest, model: &str) -> Result<codec::Encoded, llmux_core::Error> {
    codec::encode_request(req, &EncodeOptions { model })
}

fn body(v: Value) -> Value {
    Value::Object(encode(request(v), MODEL).unwrap().body)
}

fn hello() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn opts(json_mode: bool) -> DecodeOptions {
    DecodeOptions {
        id: ID.into(),
        model: MODEL.into(),
        created: CREATED,
        json_mode,
    }
}

#[test]
fn full_request_becomes_the_exact_converse_body() {
    let enc = encode(request(json_fixture("request_full.json")), MODEL).unwrap();
    assert_eq!(
        Value::Object(enc.body),
        json_fixture("request_full.bedrock.json")
    );
    assert!(!enc.json_mode);
}

#[test]
fn thinking_request_replays_reasoning_and_serves_json_mode_with_a_tool() {
    let enc = encode(request(json_fixture("request_thinking.json")), MODEL).unwrap();
    assert_eq!(
        Value::Object(enc.body),
        json_fixture("request_thinking.bedrock.json")
    );
    assert!(enc.json_mode);
}

#[test]
fn tool_choice_modes_map() {
    let tools = json!([{"type": "function", "function": {"name": "get_weather"}}]);
    let spec = json!([{"toolSpec": {"name": "get_weather",
        "inputSchema": {"json": {"type": "object", "properties": {}}}}}]);
    for (choice, expected) in [
        (json!(null), json!(null)),
        (json!("auto"), json!({"auto": {}})),
        (json!("required"), json!({"any": {}})),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            json!({"tool": {"name": "get_weather"}}),
        ),
    ] {
        let mut req = with(hello(), json!({"tools": tools}));
        if !choice.is_null() {
            req["tool_choice"] = choice.clone();
        }
        let b = body(req);
        assert_eq!(b["toolConfig"]["tools"], spec, "{choice}");
        assert_eq!(
            b["toolConfig"]
                .get("toolChoice")
                .cloned()
                .unwrap_or(Value::Null),
            expected,
            "{choice}"
        );
    }
    // `none` without earlier tool calls leaves the tools out.
    let b = body(with(
        hello(),
        json!({"tools": tools, "tool_choice": "none"}),
    ));
    assert!(b.get("toolConfig").is_none(), "{b}");
    // With earlier tool calls Bedrock needs the list: kept, without a choice.
    let history = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"}]);
    let b = body(json!({"model": "m", "messages": history, "tools": tools, "tool_choice": "none"}));
    assert_eq!(b["toolConfig"], json!({"tools": spec}));
    // Forcing a tool without tools is a clear 400.
    let e = encode(
        request(with(hello(), json!({"tool_choice": "required"}))),
        MODEL,
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.param()),
        (ErrorKind::BadRequest, Some("tool_choice"))
    );
}

#[test]
fn json_mode_forces_the_json_tool_unless_the_client_forces_its_own() {
    let fmt = json!({"type": "json_object"});
    let b = body(with(hello(), json!({"response_format": fmt})));
    assert_eq!(
        b["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "json_tool_call"}})
    );
    assert_eq!(
        b["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object", "properties": {}, "additionalProperties": true})
    );
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let b = body(with(
        hello(),
        json!({"response_format": fmt, "tools": tools}),
    ));
    assert_eq!(b["toolConfig"]["toolChoice"], json!({"any": {}}));
    let named = json!({"type": "function", "function": {"name": "f"}});
    let b = body(with(
        hello(),
        json!({"response_format": fmt, "tools": tools, "tool_choice": named}),
    ));
    assert_eq!(
        b["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "f"}})
    );
    let b = body(with(hello(), json!({"response_format": {"type": "text"}})));
    assert!(b.get("toolConfig").is_none());
}

#[test]
fn thinking_budget_and_model_specific_fields() {
    // An explicit thinking object, with the client's limit above the budget.
    let b = body(with(
        hello(),
        json!({"thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 3000}),
    ));
    assert_eq!(
        b["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 2000})
    );
    assert_eq!(b["inferenceConfig"]["maxTokens"], 3000);
    // A limit under the budget is refused, naming the parameter.
    let e = encode(
        request(with(
            hello(),
            json!({"reasoning_effort": "medium", "max_tokens": 1000}),
        )),
        MODEL,
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.param()),
        (ErrorKind::BadRequest, Some("max_tokens"))
    );
    // reasoning_effort is an Anthropic mapping only.
    let e = encode(
        request(with(hello(), json!({"reasoning_effort": "low"}))),
        "amazon.nova-pro-v1:0",
    )
    .unwrap_err();
    assert_eq!(e.param(), Some("reasoning_effort"));
    let b = body(with(hello(), json!({"reasoning_effort": "none"})));
    assert!(b.get("additionalModelRequestFields").is_none());
    // top_k: Anthropic's name, or Nova's inferenceConfig.
    let nova = encode(
        request(with(hello(), json!({"top_k": 5}))),
        "us.amazon.nova-lite-v1:0",
    )
    .unwrap();
    assert_eq!(
        nova.body["additionalModelRequestFields"],
        json!({"inferenceConfig": {"topK": 5}})
    );
    // Nothing set: no inferenceConfig at all (Bedrock applies the model's defaults).
    assert!(body(hello()).get("inferenceConfig").is_none());
}

#[test]
fn unsupported_input_is_a_clear_400_naming_the_param() {
    let cases = [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"thinking": "on"}), "thinking"),
        (
            json!({"additionalModelRequestFields": [1]}),
            "additionalModelRequestFields",
        ),
        (
            json!({"tools": [{"type": "web_search_20250305", "name": "web"}]}),
            "tools[0].type",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url",
                "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url",
                "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio",
                "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file",
                "file": {"file_id": "file-abc"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant",
                "tool_calls": [{"id": "a", "type": "function",
                "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": "x",
                "thinking_blocks": [{"type": "text", "text": "x"}]}]}),
            "messages[0].thinking_blocks",
        ),
    ];
    for (extra, param) in cases {
        let e = encode(request(with(hello(), extra.clone())), MODEL).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{extra}");
        assert_eq!(e.param(), Some(param), "{extra}");
        assert_eq!(e.provider(), Some("bedrock"));
    }
}

#[test]
fn turns_merge_and_native_blocks_pass_through() {
    let b = body(json!({"model": "m", "messages": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"},
            {"cachePoint": {"type": "default"}}]},
        {"role": "assistant", "content": "three"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "four", "cache_control": {"type": "ephemeral"}}
    ]}));
    assert_eq!(
        b["messages"],
        json!([
            {"role": "user", "content": [{"text": "one"}, {"text": "two"},
                {"cachePoint": {"type": "default"}}]},
            {"role": "assistant", "content": [{"text": "three"}]},
            {"role": "user", "content": [{"text": "four"}, {"cachePoint": {"type": "default"}}]}
        ])
    );
}

fn decode(name: &str, json_mode: bool) -> Value {
    let resp = codec::decode_response(fixture(name).as_bytes(), &opts(json_mode)).unwrap();
    serde_json::to_value(resp).unwrap()
}

#[test]
fn responses_decode_to_the_expected_canonical_json() {
    for case in ["text", "tool_use", "reasoning", "cache_usage"] {
        assert_eq!(
            decode(&format!("response_{case}.json"), false),
            json_fixture(&format!("response_{case}.expected.json")),
            "{case}"
        );
    }
    let guard = decode("response_guardrail.json", false);
    assert_eq!(guard["choices"][0]["finish_reason"], "content_filter");
    // JSON mode: the json tool's input is the content, and the answer "stopped".
    let j = decode("response_json_mode.json", true);
    assert_eq!(j["choices"][0]["message"]["content"], "{\"city\":\"Rome\"}");
    assert_eq!(j["choices"][0]["finish_reason"], "stop");
    assert!(j["choices"][0]["message"].get("tool_calls").is_none());
    let plain = decode("response_json_mode.json", false);
    assert_eq!(plain["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(plain["choices"][0]["message"]["content"], Value::Null);
}

#[test]
fn invalid_response_is_an_upstream_error() {
    for body in [
        &b"{\"output\":"[..],
        b"[]",
        b"{\"stopReason\":\"end_turn\"}",
    ] {
        let e = codec::decode_response(body, &opts(false)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UpstreamError);
    }
}

#[test]
fn errors_map_to_kinds() {
    let cases = json_fixture("errors.json");
    for case in cases.as_array().unwrap() {
        let status = case["status"].as_u64().unwrap() as u16;
        let raw = match (&case["raw"], &case["body"]) {
            (Value::String(s), _) => s.clone().into_bytes(),
            (_, b) => serde_json::to_vec(b).unwrap(),
        };
        let retry = case["retry_after"].as_u64().map(Duration::from_secs);
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let e = codec::decode_error(status, case["errortype"].as_str(), &raw, retry, &[secret]);
        assert_eq!(e.kind().as_str(), case["kind"].as_str().unwrap(), "{case}");
        assert_eq!(e.upstream_status(), Some(status), "{case}");
        assert_eq!(e.provider(), Some("bedrock"));
        if let Some(code) = case["code"].as_str() {
            assert_eq!(e.code(), Some(code), "{case}");
        }
        if let Some(s) = case["retry_after_secs"].as_u64() {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(s)));
        }
        if let Some(m) = case["must_not_contain"].as_str() {
            assert!(!e.message().contains(m), "{}", e.message());
        }
        if let Some(msg) = case["body"]["message"]
            .as_str()
            .filter(|m| !m.contains("wJalr"))
        {
            assert!(e.message().contains(msg), "{} lacks {msg}", e.message());
        }
    }
}

/// An event-stream frame with string headers, written by aws-smithy-eventstream.
fn frame_bytes(headers: &Value, payload: &[u8]) -> Vec<u8> {
    let mut m = Message::new(payload.to_vec());
    for (k, v) in headers.as_object().unwrap() {
        m = m.add_header(Header::new(
            k.clone(),
            HeaderValue::String(v.as_str().unwrap().to_owned().into()),
        ));
    }
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut out).unwrap();
    out
}

fn transcript(name: &str) -> Vec<u8> {
    json_fixture(name)
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| frame_bytes(&f["headers"], f["payload"].to_string().as_bytes()))
        .collect()
}

/// Decode a ConverseStream body delivered in two reads, cut at `cut`.
fn replay(
    wire: &[u8],
    cuts: &[usize],
    json_mode: bool,
) -> Result<Vec<ChatChunk>, llmux_core::Error> {
    let mut dec = ConverseStreamDecoder::new(opts(json_mode));
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
        dec.feed(&wire[start..cut], &mut out)?;
        start = cut;
    }
    dec.finish()?;
    Ok(out)
}

#[test]
fn streamed_reasoning_and_tool_calls_reassemble_at_any_split() {
    let wire = transcript("stream_reasoning_tool_use.frames.json");
    let whole = replay(&wire, &[], false).unwrap();

    let mut text = String::new();
    let mut reasoning = String::new();
    let mut args = [String::new(), String::new()];
    let mut ids = [None, None];
    let mut names = [None, None];
    let mut thinking_blocks = Vec::new();
    let mut finish = Vec::new();
    for c in &whole {
        assert_eq!(
            (c.id.as_str(), c.model.as_str(), c.created),
            (ID, MODEL, CREATED)
        );
        for ch in &c.choices {
            text.push_str(ch.delta.content.as_deref().unwrap_or(""));
            reasoning.push_str(ch.delta.reasoning_content.as_deref().unwrap_or(""));
            if let Some(Value::Array(b)) = ch.delta.extra.get("thinking_blocks") {
                thinking_blocks.extend(b.iter().cloned());
            }
            finish.extend(ch.finish_reason.clone());
            for tc in ch.delta.tool_calls.iter().flatten() {
                let i = tc.index as usize;
                if tc.id.is_some() {
                    assert_eq!(tc.kind.as_deref(), Some("function"));
                    ids[i] = tc.id.clone();
                }
                let f = tc.function.as_ref().unwrap();
                if f.name.is_some() {
                    names[i] = f.name.clone();
                }
                args[i].push_str(f.arguments.as_deref().unwrap_or(""));
            }
        }
    }
    assert_eq!(whole[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(text, "Let me check both cities.");
    assert_eq!(
        reasoning,
        "The user asks for two cities. I should call get_weather twice."
    );
    assert_eq!(
        thinking_blocks,
        [json!({"type": "thinking",
            "thinking": "The user asks for two cities. I should call get_weather twice.",
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"})]
    );
    assert_eq!(
        args,
        [
            r#"{"city": "Paris", "unit": "celsius"}"#,
            r#"{"city": "Rome"}"#
        ]
    );
    assert_eq!(
        ids,
        [
            Some("tooluse_T1x1fJ34qAmk2tNTrN7Up6".to_owned()),
            Some("tooluse_VpHeM9qBAaCUGkrQ6pB2xZ".to_owned())
        ]
    );
    assert_eq!(
        names,
        [Some("get_weather".into()), Some("get_weather".into())]
    );
    assert_eq!(finish, [FinishReason::ToolCalls]);
    // Usage comes once, last, alone: plain input + cache read.
    let last = whole.last().unwrap();
    assert!(last.is_usage_only());
    assert!(whole[..whole.len() - 1].iter().all(|c| c.usage.is_none()));
    let usage = last.usage.as_ref().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (2520, 189, 2709)
    );
    assert_eq!(usage.cached_tokens(), 2048);

    // Every way of cutting the bytes in two yields exactly the same chunks, and so does
    // one byte per read.
    for cut in 0..=wire.len() {
        assert_eq!(replay(&wire, &[cut], false).unwrap(), whole, "cut {cut}");
    }
    let every_byte: Vec<usize> = (1..wire.len()).collect();
    assert_eq!(replay(&wire, &every_byte, false).unwrap(), whole);
}

#[test]
fn json_mode_stream_turns_the_json_tool_into_content() {
    let ev = |t: &str, p: Value| {
        frame_bytes(
            &json!({":event-type": t, ":content-type": "application/json", ":message-type": "event"}),
            p.to_string().as_bytes(),
        )
    };
    let wire: Vec<u8> = [
        ev("messageStart", json!({"role": "assistant"})),
        ev(
            "contentBlockStart",
            json!({"contentBlockIndex": 0, "start": {"toolUse":
            {"toolUseId": "tooluse_1", "name": "json_tool_call"}}}),
        ),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"a\":"}}}),
        ),
        ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": " 1}"}}}),
        ),
        ev("contentBlockStop", json!({"contentBlockIndex": 0})),
        ev("messageStop", json!({"stopReason": "tool_use"})),
        ev(
            "metadata",
            json!({"usage": {"inputTokens": 10, "outputTokens": 7, "totalTokens": 17}}),
        ),
    ]
    .concat();
    let chunks = replay(&wire, &[], true).unwrap();
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone())
        .collect();
    assert_eq!(text, "{\"a\": 1}");
    assert!(
        chunks
            .iter()
            .flat_map(|c| &c.choices)
            .all(|c| c.delta.tool_calls.is_none())
    );
    let finish: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finish, [FinishReason::Stop]);
    let chunks = replay(&wire, &[], false).unwrap();
    assert!(
        chunks
            .iter()
            .flat_map(|c| &c.choices)
            .any(|c| c.delta.tool_calls.is_some())
    );
}

#[test]
fn exception_frames_become_mapped_errors() {
    let good = transcript("stream_reasoning_tool_use.frames.json");
    let first_frame = u32::from_be_bytes(good[..4].try_into().unwrap()) as usize;
    for (exception, message, kind) in [
        (
            "throttlingException",
            "Too many tokens, please wait.",
            ErrorKind::RateLimited,
        ),
        (
            "modelStreamErrorException",
            "Model stream error",
            ErrorKind::UpstreamError,
        ),
        (
            "validationException",
            "Input is too long for requested model.",
            ErrorKind::ContextWindowExceeded,
        ),
        (
            "serviceUnavailableException",
            "Service unavailable",
            ErrorKind::UpstreamUnavailable,
        ),
        (
            "internalServerException",
            "Internal error",
            ErrorKind::UpstreamError,
        ),
    ] {
        let mut wire = good[..first_frame].to_vec();
        wire.extend(frame_bytes(
            &json!({":exception-type": exception, ":content-type": "application/json",
                ":message-type": "exception"}),
            json!({ "message": message }).to_string().as_bytes(),
        ));
        let mut dec = ConverseStreamDecoder::new(opts(false));
        let mut out = Vec::new();
        let e = dec.feed(&wire, &mut out).unwrap_err();
        assert_eq!(e.kind(), kind, "{exception}");
        assert!(e.message().contains(message), "{}", e.message());
        // The chunk decoded before the exception is kept.
        assert_eq!(out.len(), 1);
    }
    // The generic error message type, with its headers.
    let wire = frame_bytes(
        &json!({":message-type": "error", ":error-code": "InternalFailure",
            ":error-message": "An internal error occurred"}),
        b"",
    );
    let e = replay(&wire, &[], false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

#[test]
fn corrupt_or_truncated_streams_are_upstream_errors_not_panics() {
    let wire = transcript("stream_reasoning_tool_use.frames.json");
    // A flipped bit anywhere is caught by a CRC (or the length bound), at every position.
    for at in 0..wire.len() {
        let mut bad = wire.clone();
        bad[at] ^= 0x01;
        let e = replay(&bad, &[], false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UpstreamError, "byte {at}");
    }
    // Cut short: in the middle of a frame, or between frames before messageStop.
    let e = replay(&wire[..wire.len() - 3], &[], false).unwrap_err();
    assert!(e.message().contains("middle of a frame"), "{}", e.message());
    let first_frame = u32::from_be_bytes(wire[..4].try_into().unwrap()) as usize;
    let e = replay(&wire[..first_frame], &[], false).unwrap_err();
    assert!(e.message().contains("messageStop"), "{}", e.message());
    // An absurd length is refused at once, without waiting for 4 GiB.
    let mut dec = FrameDecoder::new();
    let mut frames = Vec::new();
    let huge = u32::try_from(MAX_FRAME_BYTES + 1).unwrap().to_be_bytes();
    assert!(dec.feed(&huge, &mut frames).is_err());
    // A JSON payload that is not the event's shape.
    let junk = frame_bytes(
        &json!({":event-type": "contentBlockDelta", ":message-type": "event"}),
        b"{\"delta\":",
    );
    assert_eq!(
        replay(&junk, &[], false).unwrap_err().kind(),
        ErrorKind::UpstreamError
    );
    // An unknown message type.
    let odd = frame_bytes(&json!({":message-type": "surprise"}), b"{}");
    assert_eq!(
        replay(&odd, &[], false).unwrap_err().kind(),
        ErrorKind::UpstreamError
    );
}

fn embedding_request(v: Value) -> EmbeddingRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn titan_and_cohere_embedding_bodies() {
    let titan = EmbedFamily::Titan { v2: true };
    assert_eq!(embed::family("amazon.titan-embed-text-v2:0"), Some(titan));
    assert_eq!(
        embed::family("amazon.titan-embed-text-v1"),
        Some(EmbedFamily::Titan { v2: false })
    );
    assert_eq!(
        embed::family("cohere.embed-multilingual-v3"),
        Some(EmbedFamily::Cohere)
    );
    assert_eq!(
        embed::family("anthropic.claude-3-haiku-20240307-v1:0"),
        None
    );

    let req =
        embedding_request(json!({"model": "e", "input": ["one two", "three"], "dimensions": 256}));
    assert_eq!(
        embed::encode(&req, titan).unwrap(),
        [
            json!({"inputText": "one two", "dimensions": 256}),
            json!({"inputText": "three", "dimensions": 256})
        ]
    );
    assert_eq!(
        embed::encode(&req, EmbedFamily::Titan { v2: false })
            .unwrap_err()
            .param(),
        Some("dimensions")
    );
    let req =
        embedding_request(json!({"model": "e", "input": "hello", "input_type": "search_query"}));
    assert_eq!(
        embed::encode(&req, EmbedFamily::Cohere).unwrap(),
        [json!({"texts": ["hello"], "input_type": "search_query"})]
    );
    // Cohere takes 96 texts per call.
    let many: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let req = embedding_request(json!({"model": "e", "input": many}));
    let bodies = embed::encode(&req, EmbedFamily::Cohere).unwrap();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[0]["texts"].as_array().unwrap().len(), 96);
    assert_eq!(bodies[2]["texts"][7], "t199");
    assert_eq!(bodies[0]["input_type"], "search_document");
    for bad in [
        json!({"model": "e", "input": [1, 2]}),
        json!({"model": "e", "input": []}),
        json!({"model": "e", "input": "x", "encoding_format": "int8"}),
    ] {
        assert!(
            embed::encode(&embedding_request(bad.clone()), titan).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn embedding_answers_decode_with_token_counts() {
    let (v, t) = embed::decode(
        EmbedFamily::Titan { v2: true },
        br#"{"embedding":[0.5,-0.25],"inputTextTokenCount":3,"embeddingsByType":{"float":[0.5,-0.25]}}"#,
        Some(99),
    )
    .unwrap();
    assert_eq!((v, t), (vec![vec![0.5, -0.25]], 3));
    let (v, t) = embed::decode(
        EmbedFamily::Cohere,
        br#"{"embeddings":[[0.1],[0.2]],"id":"x","response_type":"embeddings_floats","texts":["a","b"]}"#,
        Some(4),
    )
    .unwrap();
    assert_eq!((v, t), (vec![vec![0.1], vec![0.2]], 4));
    let (v, _) = embed::decode(
        EmbedFamily::Cohere,
        br#"{"embeddings":{"float":[[1.0]]},"response_type":"embeddings_by_type"}"#,
        None,
    )
    .unwrap();
    assert_eq!(v, vec![vec![1.0]]);
    assert_eq!(
        embed::decode(EmbedFamily::Titan { v2: true }, b"{}", None)
            .unwrap_err()
            .kind(),
        ErrorKind::UpstreamError
    );
    let r = embed::response(
        "amazon.titan-embed-text-v2:0",
        vec![vec![1.0, -2.0]],
        3,
        true,
    );
    let EmbeddingVector::Base64(b64) = &r.data[0].embedding else {
        panic!("base64 expected")
    };
    assert_eq!(b64, "AACAPwAAAMA=");
    assert_eq!((r.usage.prompt_tokens, r.usage.total_tokens), (3, 3));
}
