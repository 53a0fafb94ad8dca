//! Fixture tests of the Anthropic Messages format, both directions: Anthropic requests to
//! canonical (and back through the Anthropic provider's codec, byte-for-byte the same
//! JSON), canonical responses and chunk streams to Anthropic's message and event sequence.

use llmux_core::sse::SseDecoder;
use llmux_core::{ChatChunk, ChatResponse, Error, ErrorKind};
use llmux_inbound::messages::{self, MessagesStream};
use llmux_provider_anthropic::codec::{self, DecodeOptions, EncodeOptions, StreamDecoder};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn jsonl_fixture(name: &str) -> Vec<Value> {
    fixture(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
        .collect()
}

/// Decode an Anthropic body and encode it again as the Anthropic provider would.
fn round_trip(body: &Value) -> Value {
    let model = body["model"].as_str().unwrap().to_owned();
    let req = messages::decode_request(body.clone()).unwrap();
    let opts = EncodeOptions::messages_api(&model).streaming(req.is_stream());
    let enc = codec::encode_request(req, &opts).unwrap();
    assert!(!enc.json_mode);
    Value::Object(enc.body)
}

#[test]
fn anthropic_request_round_trips_exactly() {
    let original = json_fixture("messages_agent_request.json");
    assert_eq!(round_trip(&original), original);
}

#[test]
fn agent_request_decodes_to_the_expected_canonical_form() {
    let req = messages::decode_request(json_fixture("messages_agent_request.json")).unwrap();
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json_fixture("messages_agent_request.canonical.json")
    );
}

#[test]
fn simple_forms_round_trip_to_their_block_equivalents() {
    // Every simple field and form, exactly.
    for body in [
        json!({"model": "m", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
        json!({"model": "m", "max_tokens": 64,
            "system": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]}],
            "top_k": 5, "top_p": 0.5, "temperature": 0.25,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"}}),
        json!({"model": "m", "max_tokens": 64,
            "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "file", "file_id": "file_011CNha8"}},
                {"type": "image", "source": {"type": "file", "file_id": "file_022DNhb9"}},
                {"type": "document", "source": {"type": "url",
                    "url": "https://example.com/a.pdf"}},
                {"type": "text", "text": "Summarise.", "citations": [{"type": "char_location",
                    "cited_text": "x", "document_index": 0, "start_char_index": 0,
                    "end_char_index": 1}]}]}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "none"}}),
        json!({"model": "m", "max_tokens": 64,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "news?"}]},
                {"role": "assistant", "content": [
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                     "input": {"query": "news"}},
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
                     "content": [{"type": "web_search_result", "url": "https://example.com",
                        "title": "News", "encrypted_content": "EqgfCioIARgBIiQ3"}]},
                    {"type": "text", "text": "Here.", "citations": [
                        {"type": "web_search_result_location", "url": "https://example.com",
                         "title": "News", "encrypted_index": "Eo8BCioIAhgB", "cited_text": "y"}]}]},
                {"role": "user", "content": [{"type": "text", "text": "thanks"}]}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]}),
        json!({"model": "m", "max_tokens": 64,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "go"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {},
                     "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"}}),
    ] {
        assert_eq!(round_trip(&body), body);
    }
    // A string content is the same as one text block to Anthropic; it returns as that.
    let body = json!({"model": "m", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye."}]});
    assert_eq!(
        round_trip(&body)["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [{"type": "text", "text": "Bye."}]}])
    );
    assert_eq!(
        round_trip(&json!({"model": "m", "max_tokens": 8, "system": "S",
            "messages": [{"role": "user", "content": "hi"}]}))["system"],
        "S"
    );
}

fn response(v: Value) -> ChatResponse {
    serde_json::from_value(v).unwrap()
}

#[test]
fn responses_encode_to_the_expected_anthropic_messages() {
    for case in jsonl_fixture("messages_response_cases.jsonl") {
        let name = &case["case"];
        let got = messages::encode_response(&response(case["canonical"].clone()), "claude-x");
        assert_eq!(got, case["anthropic"], "case {name}");
    }
}

#[test]
fn an_anthropic_answer_comes_back_unchanged_through_canonical_form() {
    // Anthropic's own response, decoded by the provider codec and re-encoded here.
    let wire = json!({"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message",
        "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Two lookups.", "signature": "EqQBCgIYAhIM"},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
             "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 40,
            "cache_creation_input_tokens": 20, "cache_read_input_tokens": 2048}});
    let canonical = codec::decode_response(
        "anthropic",
        wire.to_string().as_bytes(),
        &DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(messages::encode_response(&canonical, "claude-x"), wire);

    let wire = json!({"id": "msg_02", "type": "message", "role": "assistant",
        "model": "claude-x", "content": [{"type": "text", "text": "one two"}],
        "stop_reason": "stop_sequence", "stop_sequence": "three",
        "usage": {"input_tokens": 5, "output_tokens": 2,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}});
    let canonical = codec::decode_response(
        "anthropic",
        wire.to_string().as_bytes(),
        &DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(messages::encode_response(&canonical, "claude-x"), wire);
}

fn events_of(stream: &mut MessagesStream, chunks: &[ChatChunk]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend(stream.push(c));
    }
    out.extend(stream.finish());
    out.into_iter()
        .map(|e| {
            assert_eq!(e.data["type"], e.name, "type repeats the event name");
            json!({"event": e.name, "data": e.data})
        })
        .collect()
}

/// The canonical chunks the Anthropic provider makes of a recorded Anthropic stream.
fn anthropic_chunks(sse: &str) -> Vec<ChatChunk> {
    let mut events = Vec::new();
    SseDecoder::new().feed(sse.as_bytes(), &mut events).unwrap();
    let mut decoder = StreamDecoder::new("anthropic", &DecodeOptions::default());
    let mut chunks = Vec::new();
    for e in &events {
        decoder
            .feed(e.event.as_deref(), &e.data, &mut chunks)
            .unwrap();
    }
    decoder.finish().unwrap();
    chunks
}

#[test]
fn an_anthropic_stream_is_re_emitted_with_the_same_blocks() {
    let chunks = anthropic_chunks(&fixture("messages_stream_anthropic.sse"));
    let got = events_of(&mut MessagesStream::new("claude-x"), &chunks);
    assert_eq!(
        got,
        jsonl_fixture("messages_stream_anthropic.expected.jsonl")
    );
}

#[test]
fn interleaved_reasoning_text_and_tool_calls_get_their_own_blocks() {
    let chunks: Vec<ChatChunk> = jsonl_fixture("messages_stream_openai.chunks.jsonl")
        .into_iter()
        .map(|c| serde_json::from_value(c).unwrap())
        .collect();
    let got = events_of(&mut MessagesStream::new("claude-x"), &chunks);
    assert_eq!(got, jsonl_fixture("messages_stream_openai.expected.jsonl"));
    // Block indexes are dense and each block starts before its deltas and stops once.
    let mut open: Option<u64> = None;
    let mut next = 0;
    for e in &got {
        let index = e["data"]["index"].as_u64();
        match e["event"].as_str().unwrap() {
            "content_block_start" => {
                assert_eq!(open, None);
                assert_eq!(index, Some(next));
                open = index;
                next += 1;
            }
            "content_block_delta" => assert_eq!(index, open),
            "content_block_stop" => {
                assert_eq!(index, open);
                open = None;
            }
            _ => assert_eq!(index, None),
        }
    }
}

#[test]
fn a_failure_mid_stream_is_an_error_event_and_the_end() {
    let chunks: Vec<ChatChunk> = jsonl_fixture("messages_stream_openai.chunks.jsonl")
        .into_iter()
        .take(3)
        .map(|c| serde_json::from_value(c).unwrap())
        .collect();
    let mut s = MessagesStream::new("claude-x");
    let mut names: Vec<&str> = chunks
        .iter()
        .flat_map(|c| s.push(c))
        .map(|e| e.name)
        .collect();
    let failed = s.fail(&Error::new(
        ErrorKind::UpstreamUnavailable,
        "overloaded upstream",
    ));
    assert_eq!(
        failed[0].data,
        json!({"type": "error", "error": {"type": "overloaded_error",
            "message": "overloaded upstream"}})
    );
    let sse = failed[0].to_sse();
    let data = sse
        .strip_prefix("event: error\ndata: ")
        .and_then(|d| d.strip_suffix("\n\n"))
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(data).unwrap(), failed[0].data);
    names.extend(failed.iter().map(|e| e.name));
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"error"));
    assert!(s.finish().is_empty(), "nothing after the error");
}

#[test]
fn an_empty_stream_still_has_the_full_envelope() {
    let got = events_of(&mut MessagesStream::new("claude-x"), &[]);
    let names: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["message_start", "ping", "message_delta", "message_stop"]
    );
    assert_eq!(got[2]["data"]["delta"]["stop_reason"], "end_turn");
}
