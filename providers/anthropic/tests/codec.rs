//! Fixture tests of the pure codec: canonical requests in, exact Anthropic bodies out;
//! recorded Anthropic responses, streams and error bodies in, canonical values out.

use std::time::Duration;

use llmux_core::sse::SseDecoder;
use llmux_core::{ChatChunk, ChatRequest, ErrorKind, FinishReason, Message};
use llmux_provider_anthropic::codec::{
    self, DecodeOptions, EncodeOptions, FILES_API_BETA, StreamDecoder,
};
use serde_json::{Value, json};

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

/// Encodes for the first-party API and returns the body as JSON.
fn body(req: ChatRequest) -> Value {
    let enc = codec::encode_request(req, &EncodeOptions::messages_api("claude-test")).unwrap();
    Value::Object(enc.body)
}

fn encode_err(v: Value) -> llmux_core::Error {
    codec::encode_request(request(v), &EncodeOptions::messages_api("claude-test")).unwrap_err()
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

#[test]
fn full_request_becomes_the_exact_anthropic_body() {
    let req: ChatRequest = serde_json::from_str(&fixture("request_full.json")).unwrap();
    let opts = EncodeOptions::messages_api("claude-sonnet-4-5-20250929");
    let enc = codec::encode_request(req.clone(), &opts).unwrap();
    assert_eq!(
        Value::Object(enc.body.clone()),
        json_fixture("request_full.anthropic.json")
    );
    assert!(enc.json_mode);
    assert_eq!(enc.betas, [FILES_API_BETA]);
    // The streamed body is the same plus `"stream": true`.
    let streamed = codec::encode_request(req, &opts.streaming(true)).unwrap();
    let mut expected = enc.body;
    expected.insert("stream".into(), true.into());
    assert_eq!(streamed.body, expected);
}

#[test]
fn thinking_request_replays_thinking_blocks_and_uses_the_deployment_limit() {
    let req: ChatRequest = serde_json::from_str(&fixture("request_thinking.json")).unwrap();
    let opts = EncodeOptions::messages_api("claude-opus-4-1-20250805")
        .with_default_max_tokens(Some(32_000))
        .streaming(true);
    let enc = codec::encode_request(req, &opts).unwrap();
    assert_eq!(
        Value::Object(enc.body),
        json_fixture("request_thinking.anthropic.json")
    );
    assert!(enc.json_mode);
    assert!(enc.betas.is_empty());
}

#[test]
fn vertex_style_bodies_carry_the_version_not_the_model() {
    let req: ChatRequest = serde_json::from_str(&fixture("request_full.json")).unwrap();
    let enc = codec::encode_request(
        req.clone(),
        &EncodeOptions::model_in_url("vertex_ai", "vertex-2023-10-16"),
    )
    .unwrap();
    let mut expected = json_fixture("request_full.anthropic.json");
    let obj = expected.as_object_mut().unwrap();
    obj.remove("model");
    obj.insert("anthropic_version".into(), "vertex-2023-10-16".into());
    assert_eq!(Value::Object(enc.body), expected);
    // Errors name the provider the options name.
    let mut bad = req;
    bad.n = Some(3);
    let e = codec::encode_request(bad, &EncodeOptions::model_in_url("vertex_ai", "v")).unwrap_err();
    assert_eq!(e.provider(), Some("vertex_ai"));
}

#[test]
fn tool_choice_modes_map() {
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {}}}}]);
    let cases = [
        (json!(null), json!(null), json!(null)),
        (json!("auto"), json!(null), json!({"type": "auto"})),
        (json!("none"), json!(null), json!({"type": "none"})),
        (json!("required"), json!(null), json!({"type": "any"})),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            json!(null),
            json!({"type": "tool", "name": "get_weather"}),
        ),
        (
            json!(null),
            json!(false),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
        (
            json!("required"),
            json!(false),
            json!({"type": "any", "disable_parallel_tool_use": true}),
        ),
        (json!("none"), json!(false), json!({"type": "none"})),
        (json!("auto"), json!(true), json!({"type": "auto"})),
    ];
    for (choice, parallel, expected) in cases {
        let mut req = with(hello(), json!({"tools": tools}));
        if !choice.is_null() {
            req["tool_choice"] = choice.clone();
        }
        if !parallel.is_null() {
            req["parallel_tool_calls"] = parallel.clone();
        }
        let b = body(request(req));
        assert_eq!(
            b.get("tool_choice").cloned().unwrap_or(Value::Null),
            expected,
            "{choice} {parallel}"
        );
        assert_eq!(
            b["tools"],
            json!([{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}])
        );
    }
    // Without tools, auto/none are dropped and forcing a tool is an error.
    let b = body(request(with(hello(), json!({"tool_choice": "auto"}))));
    assert!(b.get("tool_choice").is_none() && b.get("tools").is_none());
    let e = encode_err(with(hello(), json!({"tool_choice": "required"})));
    assert_eq!(
        (e.kind(), e.param()),
        (ErrorKind::BadRequest, Some("tool_choice"))
    );
}

#[test]
fn json_mode_forces_the_json_tool_unless_thinking_or_a_named_client_tool() {
    let fmt = json!({"type": "json_schema", "json_schema": {"name": "x",
        "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}});
    let b = body(request(with(hello(), json!({"response_format": fmt}))));
    assert_eq!(
        b["tool_choice"],
        json!({"type": "tool", "name": "json_tool_call"})
    );
    assert_eq!(
        b["tools"],
        json!([{"name": "json_tool_call", "input_schema": {"type": "object",
        "properties": {"a": {"type": "integer"}}}}])
    );
    let named = json!({"type": "function", "function": {"name": "f"}});
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let b = body(request(with(
        hello(),
        json!({"response_format": fmt, "tools": tools, "tool_choice": named}),
    )));
    assert_eq!(b["tool_choice"], json!({"type": "tool", "name": "f"}));
    let b = body(request(with(
        hello(),
        json!({"response_format": fmt, "tools": tools, "tool_choice": "none"}),
    )));
    assert_eq!(
        b["tool_choice"],
        json!({"type": "tool", "name": "json_tool_call"})
    );
    let b = body(request(with(
        hello(),
        json!({"response_format": fmt, "reasoning_effort": "low"}),
    )));
    assert_eq!(b["tool_choice"], json!({"type": "auto"}));
    // A text response format is no format at all.
    let b = body(request(with(
        hello(),
        json!({"response_format": {"type": "text"}}),
    )));
    assert!(b.get("tools").is_none());
}

#[test]
fn max_tokens_is_always_sent() {
    let opts = |d| EncodeOptions::messages_api("m").with_default_max_tokens(d);
    let cases = [
        (json!({}), None, 4096),
        (json!({}), Some(64_000), 64_000),
        (json!({"max_tokens": 300}), Some(64_000), 300),
        (
            json!({"max_tokens": 300, "max_completion_tokens": 500}),
            None,
            500,
        ),
    ];
    for (extra, default, expected) in cases {
        let enc =
            codec::encode_request(request(with(hello(), extra.clone())), &opts(default)).unwrap();
        assert_eq!(enc.body["max_tokens"], expected, "{extra} {default:?}");
    }
}

#[test]
fn thinking_budget_stays_below_max_tokens() {
    // (request additions, expected max_tokens, expected thinking) — or an error param.
    let ok = [
        (
            json!({"reasoning_effort": "high"}),
            json!(8192),
            json!({"type": "enabled", "budget_tokens": 4096}),
        ),
        (
            json!({"reasoning_effort": "minimal", "max_tokens": 5000}),
            json!(5000),
            json!({"type": "enabled", "budget_tokens": 1024}),
        ),
        (
            json!({"reasoning_effort": "medium", "max_completion_tokens": 1500}),
            json!(1500),
            json!({"type": "enabled", "budget_tokens": 1499}),
        ),
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 10000}}),
            json!(14096),
            json!({"type": "enabled", "budget_tokens": 10000}),
        ),
        (
            json!({"thinking": {"type": "adaptive"}, "reasoning_effort": "high"}),
            json!(4096),
            json!({"type": "adaptive"}),
        ),
        (
            json!({"reasoning_effort": "none"}),
            json!(4096),
            Value::Null,
        ),
    ];
    for (extra, max, thinking) in ok {
        let b = body(request(with(hello(), extra.clone())));
        assert_eq!(b["max_tokens"], max, "{extra}");
        assert_eq!(
            b.get("thinking").cloned().unwrap_or(Value::Null),
            thinking,
            "{extra}"
        );
    }
    for (extra, param) in [
        (
            json!({"reasoning_effort": "low", "max_tokens": 1024}),
            "max_tokens",
        ),
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 4000}, "max_tokens": 4000}),
            "max_tokens",
        ),
        (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
        (json!({"thinking": true}), "thinking"),
    ] {
        let e = encode_err(with(hello(), extra.clone()));
        assert_eq!(
            (e.kind(), e.param()),
            (ErrorKind::BadRequest, Some(param)),
            "{extra}"
        );
    }
}

#[test]
fn unsupported_input_is_a_clear_400_naming_the_param() {
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "listen"},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]}),
            "messages[0].content[1]",
            "audio",
        ),
        (
            json!({"messages": [{"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                    "function": {"name": "f", "arguments": "{\"city\": Par"}}]}]}),
            "messages[1].tool_calls[0].function.arguments",
            "not valid JSON",
        ),
        (
            json!({"messages": [{"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                    "function": {"name": "f", "arguments": "[1,2]"}}]}]}),
            "messages[1].tool_calls[0].function.arguments",
            "JSON object",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file",
                "file": {"file_data": "data:text/csv;base64,YSxiCg=="}}]}]}),
            "messages[0].content[0]",
            "text/csv",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url",
                "image_url": {"url": "ftp://example.com/cat.png"}}]}]}),
            "messages[0].content[0]",
            "http(s)",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "18C"}]}),
            "messages[0].tool_call_id",
            "tool_call_id",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url",
                "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0]",
            "only contain text",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}),
            "messages[0].content[0]",
            "'video'",
        ),
        (
            json!({"messages": [{"role": "function", "name": "f", "content": "1"}]}),
            "messages[0].role",
            "function",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "n": 2}),
            "n",
            "one choice",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "logprobs": true}),
            "logprobs",
            "log probabilities",
        ),
    ];
    for (req, param, says) in cases {
        let e = encode_err(with(json!({"model": "m"}), req.clone()));
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{req}");
        assert_eq!(e.param(), Some(param), "{req}");
        assert!(e.message().contains(says), "{}", e.message());
        assert_eq!(e.provider(), Some("anthropic"));
    }
}

#[test]
fn system_is_a_plain_string_without_cache_control() {
    let req = ChatRequest::new("m")
        .system("One.")
        .message(Message::text(llmux_core::Role::Developer, "Two."))
        .user("Hi");
    let b = body(req);
    assert_eq!(b["system"], "One.\n\nTwo.");
    assert_eq!(
        b["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    );
    // Message-level cache_control on a system message marks its block.
    let b = body(request(json!({"model": "m", "messages": [
        {"role": "system", "content": "Long rules.", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "Hi"}]})));
    assert_eq!(
        b["system"],
        json!([{"type": "text", "text": "Long rules.", "cache_control": {"type": "ephemeral"}}])
    );
}

#[test]
fn turns_merge_and_tool_results_lead_their_turn() {
    let b = body(request(json!({"model": "m", "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "toolu_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "user", "content": [{"type": "text", "text": "Hurry."},
            {"type": "search_result", "source": "https://example.com", "title": "Oslo",
             "content": [{"type": "text", "text": "Cold."}]}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "-3°C"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't do that."}]},
        {"role": "assistant", "content": "Sorry."}
    ]})));
    assert_eq!(
        b["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3°C"},
                {"type": "text", "text": "Hurry."},
                {"type": "search_result", "source": "https://example.com", "title": "Oslo",
                 "content": [{"type": "text", "text": "Cold."}]}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I can't do that."},
                {"type": "text", "text": "Sorry."}]}
        ])
    );
    let e = encode_err(
        json!({"model": "m", "messages": [{"role": "assistant", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
    );
    assert_eq!(e.param(), Some("messages[0].content[0]"));
}

#[test]
fn sampling_user_and_passthrough_fields() {
    let b = body(request(with(
        hello(),
        json!({"stop": "END", "metadata": {"user_id": "u-9", "other": 1},
            "service_tier": "flex", "container": "container_011CQ", "seed": 3,
            "presence_penalty": 0.5, "unknown_field": true, "mcp_servers": [{"type": "url",
            "url": "https://mcp.example.com/sse", "name": "example"}]}),
    )));
    assert_eq!(b["stop_sequences"], json!(["END"]));
    assert_eq!(b["metadata"], json!({"user_id": "u-9"}));
    assert_eq!(b["container"], "container_011CQ");
    assert_eq!(b["mcp_servers"][0]["name"], "example");
    for dropped in [
        "service_tier",
        "seed",
        "presence_penalty",
        "unknown_field",
        "stream",
    ] {
        assert!(b.get(dropped).is_none(), "{dropped} must be dropped");
    }
    let b = body(request(with(
        hello(),
        json!({"service_tier": "standard_only"}),
    )));
    assert_eq!(b["service_tier"], "standard_only");
}

fn decode(name: &str, json_mode: bool) -> Value {
    let opts = DecodeOptions {
        json_mode,
        created: CREATED,
    };
    let resp = codec::decode_response("anthropic", fixture(name).as_bytes(), &opts).unwrap();
    serde_json::to_value(resp).unwrap()
}

#[test]
fn responses_decode_to_the_expected_canonical_json() {
    for case in ["text", "tool_use", "thinking", "cache_usage"] {
        assert_eq!(
            decode(&format!("response_{case}.json"), false),
            json_fixture(&format!("response_{case}.expected.json")),
            "{case}"
        );
    }
    assert_eq!(
        decode("response_json_mode.json", true),
        json_fixture("response_json_mode.expected.json")
    );
    // Without JSON mode the same answer is an ordinary tool call.
    let plain = decode("response_json_mode.json", false);
    assert_eq!(plain["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        plain["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "json_tool_call"
    );
}

#[test]
fn invalid_response_is_an_upstream_error() {
    let e =
        codec::decode_response("anthropic", b"{\"id\":", &DecodeOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

/// Decode an SSE transcript cut into two reads at `cut`.
fn replay(wire: &[u8], cut: usize, json_mode: bool) -> Result<Vec<ChatChunk>, llmux_core::Error> {
    let mut sse = SseDecoder::new();
    let mut events = Vec::new();
    sse.feed(&wire[..cut], &mut events).unwrap();
    sse.feed(&wire[cut..], &mut events).unwrap();
    assert!(!sse.has_partial_event());
    let mut dec = StreamDecoder::new(
        "anthropic",
        &DecodeOptions {
            json_mode,
            created: CREATED,
        },
    );
    let mut out = Vec::new();
    for ev in events {
        dec.feed(ev.event.as_deref(), &ev.data, &mut out)?;
    }
    dec.finish()?;
    Ok(out)
}

#[test]
fn streamed_thinking_and_tool_calls_reassemble_at_any_split() {
    let wire = fixture("stream_thinking_tool_use.sse");
    let bytes = wire.as_bytes();
    let whole = replay(bytes, bytes.len(), false).unwrap();

    // What the chunks say, assembled.
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut args = [String::new(), String::new()];
    let mut ids = [None, None];
    let mut names = [None, None];
    let mut thinking_blocks = Vec::new();
    let mut finish = Vec::new();
    for c in &whole {
        assert_eq!(c.id, "msg_01StreamThinkTool0000001");
        assert_eq!(c.model, "claude-sonnet-4-5-20250929");
        assert_eq!(c.created, CREATED);
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
    assert_eq!(
        whole[0].choices[0].delta.role,
        Some(llmux_core::Role::Assistant)
    );
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
            Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned()),
            Some("toolu_01VpHeM9qBAaCUGkrQ6pB2xZ".to_owned())
        ]
    );
    assert_eq!(
        names,
        [Some("get_weather".into()), Some("get_weather".into())]
    );
    assert_eq!(finish, [FinishReason::ToolCalls]);
    // Usage comes once, last, alone: input + cache read, output from message_delta.
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
    assert_eq!(last.service_tier.as_deref(), Some("standard"));

    // Every way of cutting the bytes yields exactly the same chunks.
    for cut in 0..=bytes.len() {
        assert_eq!(replay(bytes, cut, false).unwrap(), whole, "cut {cut}");
    }
}

#[test]
fn json_mode_stream_turns_the_json_tool_into_content() {
    let wire = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"json_tool_call\",\"input\":{}}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" 1}\"}}\n\n\
        event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let chunks = replay(wire.as_bytes(), 0, true).unwrap();
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
    // Without JSON mode it is a tool call.
    let chunks = replay(wire.as_bytes(), 0, false).unwrap();
    assert!(
        chunks
            .iter()
            .flat_map(|c| &c.choices)
            .any(|c| c.delta.tool_calls.is_some())
    );
}

#[test]
fn error_event_mid_stream_is_an_err_with_the_mapped_kind() {
    let wire = fixture("stream_thinking_tool_use.sse");
    let cut = wire.find("event: content_block_start").unwrap();
    for (kind, expected) in [
        ("overloaded_error", ErrorKind::UpstreamUnavailable),
        ("api_error", ErrorKind::UpstreamError),
        ("rate_limit_error", ErrorKind::RateLimited),
        ("mystery_error", ErrorKind::UpstreamError),
    ] {
        let broken = format!(
            "{}event: error\ndata: {{\"type\": \"error\", \"error\": {{\"type\": \"{kind}\", \"message\": \"Overloaded\"}}}}\n\n",
            &wire[..cut]
        );
        let e = replay(broken.as_bytes(), 0, false).unwrap_err();
        assert_eq!(e.kind(), expected, "{kind}");
        assert_eq!(e.provider(), Some("anthropic"));
        assert!(e.message().contains("Overloaded"));
    }
}

#[test]
fn a_stream_without_message_stop_is_an_error() {
    let wire = fixture("stream_thinking_tool_use.sse");
    let cut = wire.find("event: message_stop").unwrap();
    let e = replay(&wire.as_bytes()[..cut], 0, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    assert!(e.message().contains("message_stop"));
    let mut dec = StreamDecoder::new("anthropic", &DecodeOptions::default());
    let mut out = Vec::new();
    let e = dec
        .feed(Some("message_start"), "{not json", &mut out)
        .unwrap_err();
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
        let e = codec::decode_error("anthropic", status, &body, retry, &[]);
        let kind: ErrorKind = serde_json::from_value(case["kind"].clone()).unwrap();
        assert_eq!(e.kind(), kind, "{case}");
        assert_eq!(e.code(), case["code"].as_str(), "{case}");
        assert_eq!(e.upstream_status(), Some(status), "{case}");
        assert_eq!(e.provider(), Some("anthropic"));
        assert_eq!(
            e.retry_after(),
            case["retry_after_secs"].as_u64().map(Duration::from_secs),
            "{case}"
        );
        if let Some(msg) = case["body"]["error"]["message"].as_str()
            && case.get("must_not_contain").is_none()
        {
            assert!(e.message().ends_with(msg), "{}", e.message());
        }
        if let Some(secret) = case["must_not_contain"].as_str() {
            assert!(!e.message().contains(secret), "{}", e.message());
        }
    }
    // The deployment's own key is redacted whatever it looks like.
    let body = json!({"type": "error", "error": {"type": "authentication_error",
        "message": "key my-deployment-secret is disabled"}});
    let e = codec::decode_error(
        "anthropic",
        401,
        &serde_json::to_vec(&body).unwrap(),
        None,
        &["my-deployment-secret"],
    );
    assert!(!e.message().contains("my-deployment-secret"));
}

#[test]
fn tool_errors_citations_and_system_parts_reach_anthropic() {
    let b = body(request(json!({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "One."}]},
        {"role": "user", "content": "Go."},
        {"role": "assistant", "content": [{"type": "text", "text": "Cited.",
            "citations": [{"type": "char_location", "cited_text": "x"}]}],
         "tool_calls": [{"id": "toolu_1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "failed", "is_error": true}
    ]})));
    // A system message sent as parts stays blocks, even without cache_control.
    assert_eq!(b["system"], json!([{"type": "text", "text": "One."}]));
    assert_eq!(
        b["messages"][1]["content"][0],
        json!({"type": "text", "text": "Cited.",
            "citations": [{"type": "char_location", "cited_text": "x"}]})
    );
    assert_eq!(
        b["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "failed",
            "is_error": true})
    );
}

#[test]
fn the_matched_stop_sequence_is_kept() {
    let wire = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
        "content": [{"type": "text", "text": "one"}], "stop_reason": "stop_sequence",
        "stop_sequence": "two", "usage": {"input_tokens": 1, "output_tokens": 1}});
    let opts = DecodeOptions::default();
    let r = codec::decode_response("anthropic", wire.to_string().as_bytes(), &opts).unwrap();
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.extra["stop_sequence"], "two");

    let mut d = StreamDecoder::new("anthropic", &opts);
    let mut out = Vec::new();
    let delta = json!({"type": "message_delta", "delta": {"stop_reason": "stop_sequence",
        "stop_sequence": "two"}, "usage": {"output_tokens": 1}});
    d.feed(Some("message_delta"), &delta.to_string(), &mut out)
        .unwrap();
    assert_eq!(out[0].choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(out[0].extra["stop_sequence"], "two");
}
