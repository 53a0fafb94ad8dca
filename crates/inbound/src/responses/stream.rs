//! Canonical chunks → the Responses API's server-sent events.
//!
//! The order, as OpenAI sends it: `response.created`, `response.in_progress`; then per
//! output item `response.output_item.added`, its content events, and
//! `response.output_item.done`; then `response.completed` (or `response.incomplete`) with
//! the whole response and its usage. Every event carries a `sequence_number` counting
//! from 0. Content events per item type:
//! - reasoning: `response.reasoning_summary_part.added`,
//!   `response.reasoning_summary_text.delta`…, `response.reasoning_summary_text.done`,
//!   `response.reasoning_summary_part.done`;
//! - message: `response.content_part.added`, `response.output_text.delta`… (or
//!   `response.refusal.delta`…), `response.output_text.done` (`response.refusal.done`),
//!   `response.content_part.done`;
//! - function call: `response.function_call_arguments.delta`…,
//!   `response.function_call_arguments.done`.
//!
//! One item is open at a time: a delta of another kind closes the open item first.

use llmux_core::{ChatChunk, FinishReason, Message, MessageContent, ToolCall, Usage};
use serde_json::{Value, json};

use super::ResponseContext;
use super::response::{
    Part, Status, function_call_item, in_progress_object, message_item, reasoning_item,
    response_object, thinking_blocks,
};

/// One server-sent event: its `event:` name and its `data:` JSON (which repeats the name
/// as `type` and carries the `sequence_number`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// The event type, e.g. `response.output_text.delta`.
    pub event: &'static str,
    /// The event's JSON.
    pub data: Value,
}

#[derive(Debug, Clone)]
enum Item {
    Reasoning {
        id: String,
        text: String,
        blocks: Vec<Value>,
    },
    Message {
        id: String,
        parts: Vec<Part>,
    },
    FunctionCall {
        id: String,
        tool_index: u32,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl Item {
    fn json(&self, status: &str) -> Value {
        match self {
            Self::Reasoning { id, text, blocks } => reasoning_item(id, text, blocks),
            Self::Message { id, parts } => message_item(id, parts, status),
            Self::FunctionCall {
                id,
                call_id,
                name,
                arguments,
                ..
            } => function_call_item(id, call_id, name, arguments, status),
        }
    }
}

/// The Responses event stream of one response, fed canonical chunks.
///
/// Call [`ResponseStream::start`] once, [`ResponseStream::push`] per chunk, then
/// [`ResponseStream::finish`] when the chunks ended (or [`ResponseStream::fail`] when they
/// broke off). [`ResponseStream::response`] and [`ResponseStream::answer`] give the final
/// Response object and the answer as a canonical message.
#[derive(Debug, Clone)]
pub struct ResponseStream {
    cx: ResponseContext,
    seq: u64,
    items: Vec<Item>,
    /// The output index of the open item, if one is open.
    open: Option<usize>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    status: Option<Status>,
    error: Option<(String, String)>,
}

impl ResponseStream {
    /// A stream for the response `cx` describes.
    pub fn new(cx: ResponseContext) -> Self {
        Self {
            cx,
            seq: 0,
            items: Vec::new(),
            open: None,
            usage: None,
            finish: None,
            status: None,
            error: None,
        }
    }

    fn emit(&mut self, out: &mut Vec<StreamEvent>, event: &'static str, mut data: Value) {
        data["type"] = json!(event);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push(StreamEvent { event, data });
    }

    /// The opening events: `response.created` and `response.in_progress`.
    pub fn start(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        let r = in_progress_object(&self.cx);
        self.emit(
            &mut out,
            "response.created",
            json!({ "response": r.clone() }),
        );
        self.emit(&mut out, "response.in_progress", json!({ "response": r }));
        out
    }

    /// The events for one canonical chunk (only the first choice is read).
    pub fn push(&mut self, chunk: &ChatChunk) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        let d = &choice.delta;
        if let Some(r) = d.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
            self.reasoning_delta(&mut out, r);
        }
        let blocks = thinking_blocks(&d.extra);
        if !blocks.is_empty() {
            let i = self.open_reasoning(&mut out);
            if let Item::Reasoning { blocks: b, .. } = &mut self.items[i] {
                b.extend(blocks);
            }
        }
        if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
            self.message_delta(&mut out, Part::Text(t.to_owned()));
        }
        if let Some(r) = d.refusal.as_deref().filter(|r| !r.is_empty()) {
            self.message_delta(&mut out, Part::Refusal(r.to_owned()));
        }
        for tc in d.tool_calls.iter().flatten() {
            let f = tc.function.as_ref();
            let found = self.items.iter().position(
                |it| matches!(it, Item::FunctionCall { tool_index, .. } if *tool_index == tc.index),
            );
            let i = match found {
                Some(i) => i,
                None => {
                    self.close(&mut out);
                    let i = self.items.len();
                    let call_id = tc.id.clone().unwrap_or_else(|| self.cx.item_id("call", i));
                    self.items.push(Item::FunctionCall {
                        id: self.cx.item_id("fc", i),
                        tool_index: tc.index,
                        call_id,
                        name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
                        arguments: String::new(),
                    });
                    self.open = Some(i);
                    let item = self.items[i].json("in_progress");
                    self.emit(
                        &mut out,
                        "response.output_item.added",
                        json!({"output_index": i, "item": item}),
                    );
                    i
                }
            };
            let piece = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
            if piece.is_empty() {
                continue;
            }
            let Item::FunctionCall { id, arguments, .. } = &mut self.items[i] else {
                continue;
            };
            arguments.push_str(piece);
            // A fragment for a call already closed (the upstream interleaved two calls) is
            // kept in the final item but has no event left to ride in.
            if self.open == Some(i) {
                let id = id.clone();
                self.emit(
                    &mut out,
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": i, "delta": piece}),
                );
            }
        }
        if let Some(f) = &choice.finish_reason {
            self.finish = Some(f.clone());
        }
        out
    }

    /// The output index of the open reasoning item (opening one, closing any other).
    fn open_reasoning(&mut self, out: &mut Vec<StreamEvent>) -> usize {
        if let Some(i) = self.open
            && matches!(self.items[i], Item::Reasoning { .. })
        {
            return i;
        }
        self.close(out);
        let i = self.items.len();
        self.items.push(Item::Reasoning {
            id: self.cx.item_id("rs", i),
            text: String::new(),
            blocks: Vec::new(),
        });
        self.open = Some(i);
        let item = self.items[i].json("in_progress");
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": i, "item": item}),
        );
        i
    }

    fn reasoning_delta(&mut self, out: &mut Vec<StreamEvent>, delta: &str) {
        let i = self.open_reasoning(out);
        let Item::Reasoning { id, text, .. } = &mut self.items[i] else {
            return;
        };
        let id = id.clone();
        let first = text.is_empty();
        text.push_str(delta);
        if first {
            self.emit(
                out,
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": i, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}),
            );
        }
        self.emit(
            out,
            "response.reasoning_summary_text.delta",
            json!({"item_id": id, "output_index": i, "summary_index": 0, "delta": delta}),
        );
    }

    fn message_delta(&mut self, out: &mut Vec<StreamEvent>, piece: Part) {
        let i = match self.open {
            Some(i) if matches!(self.items[i], Item::Message { .. }) => i,
            _ => {
                self.close(out);
                let i = self.items.len();
                self.items.push(Item::Message {
                    id: self.cx.item_id("msg", i),
                    parts: Vec::new(),
                });
                self.open = Some(i);
                let item = self.items[i].json("in_progress");
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": i, "item": item}),
                );
                i
            }
        };
        let Item::Message { id, parts } = &mut self.items[i] else {
            return;
        };
        let id = id.clone();
        let same_kind = matches!(
            (parts.last(), &piece),
            (Some(Part::Text(_)), Part::Text(_)) | (Some(Part::Refusal(_)), Part::Refusal(_))
        );
        if !same_kind {
            if let Some(last) = parts.last().cloned() {
                let index = parts.len() - 1;
                self.part_done(out, &id, i, index, &last);
            }
            let Item::Message { parts, .. } = &mut self.items[i] else {
                return;
            };
            let empty = match piece {
                Part::Text(_) => Part::Text(String::new()),
                Part::Refusal(_) => Part::Refusal(String::new()),
            };
            let part = empty.to_json();
            parts.push(empty);
            let index = parts.len() - 1;
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": i, "content_index": index, "part": part}),
            );
        }
        let Item::Message { parts, .. } = &mut self.items[i] else {
            return;
        };
        let index = parts.len() - 1;
        let (event, data) = match (parts.last_mut(), piece) {
            (Some(Part::Text(t)), Part::Text(d)) => {
                t.push_str(&d);
                (
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": i, "content_index": index,
                        "delta": d, "logprobs": []}),
                )
            }
            (Some(Part::Refusal(r)), Part::Refusal(d)) => {
                r.push_str(&d);
                (
                    "response.refusal.delta",
                    json!({"item_id": id, "output_index": i, "content_index": index, "delta": d}),
                )
            }
            _ => return,
        };
        self.emit(out, event, data);
    }

    fn part_done(
        &mut self,
        out: &mut Vec<StreamEvent>,
        id: &str,
        i: usize,
        index: usize,
        part: &Part,
    ) {
        match part {
            Part::Text(t) => self.emit(
                out,
                "response.output_text.done",
                json!({"item_id": id, "output_index": i, "content_index": index,
                    "text": t, "logprobs": []}),
            ),
            Part::Refusal(r) => self.emit(
                out,
                "response.refusal.done",
                json!({"item_id": id, "output_index": i, "content_index": index, "refusal": r}),
            ),
        }
        self.emit(
            out,
            "response.content_part.done",
            json!({"item_id": id, "output_index": i, "content_index": index,
                "part": part.to_json()}),
        );
    }

    /// Close the open item, if any: its closing content events and `output_item.done`.
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        let Some(i) = self.open.take() else {
            return;
        };
        let item = self.items[i].clone();
        match &item {
            Item::Reasoning { id, text, .. } => {
                if !text.is_empty() {
                    self.emit(
                        out,
                        "response.reasoning_summary_text.done",
                        json!({"item_id": id, "output_index": i, "summary_index": 0, "text": text}),
                    );
                    self.emit(
                        out,
                        "response.reasoning_summary_part.done",
                        json!({"item_id": id, "output_index": i, "summary_index": 0,
                            "part": {"type": "summary_text", "text": text}}),
                    );
                }
            }
            Item::Message { id, parts } => {
                if let Some(last) = parts.last() {
                    self.part_done(out, id, i, parts.len() - 1, last);
                }
            }
            Item::FunctionCall {
                id,
                name,
                arguments,
                ..
            } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": i, "name": name, "arguments": arguments}),
                );
            }
        }
        let status = self.item_status();
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": i, "item": item.json(status)}),
        );
    }

    fn item_status(&self) -> &'static str {
        match Status::of(self.finish.as_ref()) {
            Status::Incomplete(_) => "incomplete",
            _ => "completed",
        }
    }

    /// The closing events once the chunks ended: the open item's, then
    /// `response.completed` (or `response.incomplete` when the output token limit or a
    /// content filter stopped the answer).
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.close(&mut out);
        let status = Status::of(self.finish.as_ref());
        self.status = Some(status);
        let event = match status {
            Status::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        let r = self.response();
        self.emit(&mut out, event, json!({ "response": r }));
        out
    }

    /// The closing event when the chunks broke off with an error: `response.failed`, the
    /// output so far, and the error (`code` from the error's kind, in OpenAI's Response
    /// error codes: `rate_limit_exceeded` or `server_error`).
    pub fn fail(&mut self, error: &llmux_core::Error) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.open = None;
        self.status = Some(Status::Failed);
        let code = match error.kind() {
            llmux_core::ErrorKind::RateLimited => "rate_limit_exceeded",
            _ => "server_error",
        };
        self.error = Some((code.to_owned(), error.message().to_owned()));
        let r = self.response();
        self.emit(&mut out, "response.failed", json!({ "response": r }));
        out
    }

    /// The Response object as it stands (complete after [`ResponseStream::finish`]).
    pub fn response(&self) -> Value {
        let status = self.status.unwrap_or(Status::Completed);
        let item_status = match status {
            Status::Failed => "incomplete",
            _ => self.item_status(),
        };
        let output = self.items.iter().map(|it| it.json(item_status)).collect();
        let mut r = response_object(
            &self.cx,
            status,
            output,
            self.usage.as_ref(),
            self.error.as_ref().map(|(c, m)| (c.as_str(), m.as_str())),
        );
        if self.status.is_none() {
            r["status"] = json!("in_progress");
        }
        r
    }

    /// The usage of the call, once its usage chunk has passed.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The streamed answer as one canonical assistant message (for the stored
    /// conversation).
    pub fn answer(&self) -> Message {
        let mut msg = Message {
            content: None,
            ..Message::assistant("")
        };
        let mut text = String::new();
        let mut refusal = String::new();
        let mut reasoning = String::new();
        let mut all_blocks = Vec::new();
        let mut calls = Vec::new();
        for it in &self.items {
            match it {
                Item::Reasoning {
                    text: t, blocks, ..
                } => {
                    reasoning.push_str(t);
                    all_blocks.extend(blocks.iter().cloned());
                }
                Item::Message { parts, .. } => {
                    for p in parts {
                        match p {
                            Part::Text(t) => text.push_str(t),
                            Part::Refusal(r) => refusal.push_str(r),
                        }
                    }
                }
                Item::FunctionCall {
                    call_id,
                    name,
                    arguments,
                    ..
                } => calls.push(ToolCall {
                    id: call_id.clone(),
                    kind: "function".to_owned(),
                    function: llmux_core::FunctionCall {
                        name: name.clone(),
                        arguments: arguments.clone(),
                    },
                }),
            }
        }
        if !text.is_empty() {
            msg.content = Some(MessageContent::Text(text));
        }
        if !refusal.is_empty() {
            msg.refusal = Some(refusal);
        }
        if !reasoning.is_empty() {
            msg.reasoning_content = Some(reasoning);
        }
        if !all_blocks.is_empty() {
            msg.extra
                .insert("thinking_blocks".into(), Value::Array(all_blocks));
        }
        if !calls.is_empty() {
            msg.tool_calls = Some(calls);
        }
        msg
    }
}
