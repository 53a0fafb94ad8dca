//! Golden-file tests of both directions: `tests/fixtures/responses_request_*.json` (a
//! Responses request → the canonical request and what goes around it),
//! `responses_response_*.json` (a canonical answer → the Response object and the stored
//! answer message) and `responses_stream_*.json` (canonical chunks → the exact event
//! sequence). `LLMUX_BLESS=1 cargo test -p llmux-inbound` rewrites the `expected` parts
//! from the code; review the diff before keeping it.

use std::path::PathBuf;

use llmux_core::{ChatChunk, ChatResponse, Error, ErrorKind, JsonObject, Message};
use serde_json::{Value, json};

use super::{ResponseContext, ResponseStream, answer_message, decode_request, encode_response};

fn fixtures(prefix: &str) -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no {prefix}* fixtures");
    out
}

/// Compare `actual` with the fixture's `expected`, or write it there when blessing.
fn check(path: &PathBuf, mut fixture: Value, actual: Value) {
    if std::env::var_os("LLMUX_BLESS").is_some() {
        fixture["expected"] = actual;
        let text = serde_json::to_string_pretty(&fixture).expect("json") + "\n";
        std::fs::write(path, text).expect("write fixture");
        return;
    }
    assert_eq!(
        actual,
        fixture["expected"],
        "{}: actual:\n{}",
        path.display(),
        serde_json::to_string_pretty(&actual).unwrap_or_default()
    );
}

fn context(v: &Value) -> ResponseContext {
    ResponseContext {
        id: v["id"].as_str().expect("context.id").to_owned(),
        created_at: v["created_at"].as_u64().expect("context.created_at"),
        model: v["model"].as_str().expect("context.model").to_owned(),
        echo: v["echo"].as_object().cloned().unwrap_or_default(),
    }
}

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).expect("canonical messages")
}

#[test]
fn requests_decode_to_the_canonical_request() {
    for (path, f) in fixtures("responses_request_") {
        let d = decode_request(f["request"].clone())
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let history = messages(f.get("history").unwrap_or(&json!([])));
        let chat = d.to_chat(&history);
        let answer: Message =
            serde_json::from_value(json!({"role": "assistant", "content": "ok"})).expect("message");
        let actual = json!({
            "chat": chat,
            "previous_response_id": d.previous_response_id,
            "store": d.store,
            "echo": d.echo,
            "conversation_after": d.conversation(&history, answer),
        });
        check(&path, f, actual);
    }
}

#[test]
fn answers_encode_to_the_response_object() {
    for (path, f) in fixtures("responses_response_") {
        let resp: ChatResponse = serde_json::from_value(f["canonical"].clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cx = context(&f["context"]);
        let actual = json!({
            "response": encode_response(&resp, &cx),
            "answer": answer_message(&resp),
        });
        check(&path, f, actual);
    }
}

#[test]
fn chunk_streams_encode_to_the_exact_event_sequence() {
    for (path, f) in fixtures("responses_stream_") {
        let chunks: Vec<ChatChunk> = serde_json::from_value(f["chunks"].clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut s = ResponseStream::new(context(&f["context"]));
        let mut events = s.start();
        for c in &chunks {
            events.extend(s.push(c));
        }
        events.extend(match f.get("error") {
            Some(e) => s.fail(&Error::new(
                serde_json::from_value::<ErrorKind>(e["kind"].clone()).expect("kind"),
                e["message"].as_str().unwrap_or("").to_owned(),
            )),
            None => s.finish(),
        });
        for (seq, e) in events.iter().enumerate() {
            assert_eq!(e.data["type"], e.event, "{}", path.display());
            assert_eq!(e.data["sequence_number"], seq, "{}", path.display());
        }
        let last = events.last().expect("events");
        assert_eq!(
            last.data["response"],
            s.response(),
            "{}: the last event carries the final response",
            path.display()
        );
        let actual = json!({
            "events": events.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
            "answer": s.answer(),
        });
        check(&path, f, actual);
    }
}

/// The streamed and the complete form of one answer agree: the stream's final Response
/// equals [`encode_response`] of the same answer, and so does the stored message.
#[test]
fn a_stream_ends_in_the_same_response_as_the_complete_answer() {
    for (path, f) in fixtures("responses_stream_") {
        let Some(same) = f.get("same_as") else {
            continue;
        };
        let other = path.with_file_name(same.as_str().expect("same_as names a fixture"));
        let text = std::fs::read_to_string(&other).expect("same_as fixture");
        let whole: Value = serde_json::from_str(&text).expect("json");
        let resp: ChatResponse = serde_json::from_value(whole["canonical"].clone()).expect("ok");
        let chunks: Vec<ChatChunk> = serde_json::from_value(f["chunks"].clone()).expect("ok");
        let cx = context(&f["context"]);
        let mut s = ResponseStream::new(cx.clone());
        s.start();
        for c in &chunks {
            s.push(c);
        }
        s.finish();
        assert_eq!(
            s.response(),
            encode_response(&resp, &cx),
            "{}",
            path.display()
        );
        assert_eq!(s.answer(), answer_message(&resp), "{}", path.display());
    }
}

#[test]
fn unsupported_features_are_refused_with_their_parameter() {
    let base = json!({"model": "m", "input": "hi"});
    for (field, value, param) in [
        ("tools", json!([{"type": "web_search"}]), "tools[0].type"),
        (
            "tools",
            json!([{"type": "function", "name": "f"}, {"type": "file_search", "vector_store_ids": []}]),
            "tools[1].type",
        ),
        ("tools", json!([{"type": "function"}]), "tools[0].name"),
        ("tools", json!({}), "tools"),
        (
            "input",
            json!([{"type": "web_search_call", "id": "ws_1"}]),
            "input[0].type",
        ),
        (
            "input",
            json!([{"type": "item_reference", "id": "msg_1"}]),
            "input[0]",
        ),
        (
            "input",
            json!([{"role": "robot", "content": "x"}]),
            "input[0].role",
        ),
        (
            "input",
            json!([{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]),
            "input[0].content[0].image_url",
        ),
        (
            "input",
            json!([{"role": "user", "content": [{"type": "input_file", "file_url": "https://x"}]}]),
            "input[0].content[0].file_url",
        ),
        (
            "input",
            json!([{"role": "user", "content": [{"type": "input_video"}]}]),
            "input[0].content[0].type",
        ),
        (
            "input",
            json!([{"type": "function_call", "name": "f", "arguments": "{}"}]),
            "input[0].call_id",
        ),
        (
            "input",
            json!([{"type": "function_call_output", "call_id": "c"}]),
            "input[0].output",
        ),
        ("input", json!(7), "input"),
        ("tool_choice", json!({"type": "web_search"}), "tool_choice"),
        ("tool_choice", json!("sometimes"), "tool_choice"),
        (
            "text",
            json!({"format": {"type": "yaml"}}),
            "text.format.type",
        ),
        (
            "text",
            json!({"format": {"type": "json_schema"}}),
            "text.format.name",
        ),
        ("reasoning", json!({"effort": 3}), "reasoning.effort"),
        ("max_output_tokens", json!(-1), "max_output_tokens"),
        ("temperature", json!("hot"), "temperature"),
        ("store", json!("yes"), "store"),
        ("metadata", json!([]), "metadata"),
        ("background", json!(true), "background"),
        ("conversation", json!("conv_1"), "conversation"),
        ("prompt", json!({"id": "pmpt_1"}), "prompt"),
        ("model", json!(""), "model"),
    ] {
        let mut body = base.clone();
        body[field] = value.clone();
        let e = decode_request(body).expect_err(&format!("{field}: {value}"));
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{field}: {e:?}");
        assert_eq!(e.param(), Some(param), "{field}: {value}: {e:?}");
        assert!(!e.message().is_empty());
    }
    let e = decode_request(json!([])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    let e = decode_request(json!({"tools": [{"type": "web_search_preview"}], "model": "m"}))
        .unwrap_err();
    assert!(
        e.message().contains("web_search_preview") && e.message().contains("passed through"),
        "{e:?}"
    );
    assert_eq!(e.code(), Some("unsupported_parameter"));
}

#[test]
fn a_bare_string_input_is_one_user_message_with_openai_defaults_echoed() {
    let d = decode_request(json!({"model": "m", "input": "hello"})).unwrap();
    assert_eq!(d.chat.messages, vec![Message::user("hello")]);
    assert!(d.store);
    assert_eq!(d.previous_response_id, None);
    let mut expected = JsonObject::new();
    for (k, v) in [
        ("instructions", json!(null)),
        ("tools", json!([])),
        ("tool_choice", json!("auto")),
        ("text", json!({"format": {"type": "text"}})),
        ("reasoning", json!({"effort": null, "summary": null})),
        ("max_output_tokens", json!(null)),
        ("temperature", json!(1.0)),
        ("top_p", json!(1.0)),
        ("parallel_tool_calls", json!(true)),
        ("user", json!(null)),
        ("metadata", json!({})),
        ("store", json!(true)),
        ("previous_response_id", json!(null)),
        ("truncation", json!("disabled")),
        ("background", json!(false)),
    ] {
        expected.insert(k.into(), v);
    }
    assert_eq!(d.echo, expected);
}
