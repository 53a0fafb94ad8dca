//! Canonical chunks → Anthropic's SSE event sequence.

use llmux_core::{ChatChunk, Error, FinishReason, Usage};
use serde_json::{Value, json};

use super::response::{error_body, message_id, stop_reason, tool_use_id, usage};

/// One server-sent event of a Messages stream: its `event:` name and JSON `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagesEvent {
    /// `message_start`, `content_block_delta`, …
    pub name: &'static str,
    /// The event's JSON (its `type` repeats the name).
    pub data: Value,
}

impl MessagesEvent {
    fn new(name: &'static str, data: Value) -> Self {
        Self { name, data }
    }

    /// The event as SSE text: `event: <name>\ndata: <json>\n\n`.
    pub fn to_sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.name, self.data)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool,
}

/// Turns a canonical chunk stream into Anthropic's events. Feed every chunk to
/// [`MessagesStream::push`] in order, then call [`MessagesStream::finish`] when the stream
/// ends, or [`MessagesStream::fail`] when it breaks.
///
/// Blocks are numbered in the order they open; a new kind of content (text, thinking, a
/// new tool call) closes the open block first, so text, thinking and several tool calls
/// may interleave. Argument fragments for a tool call whose block is already closed are
/// still sent with that block's index. A thinking block ends when its signed copy arrives
/// (`thinking_blocks`, from Anthropic upstreams: a `signature_delta` is sent) or when
/// other content starts. `stop_reason` is `tool_use` whenever a tool was called; usage
/// (from the final usage chunk) goes in `message_delta`, as Anthropic reports it.
#[derive(Debug)]
pub struct MessagesStream {
    model: String,
    started: bool,
    pinged: bool,
    finished: bool,
    blocks: u32,
    open: Option<(Open, u32)>,
    /// Canonical tool-call index → block index.
    tools: Vec<(u32, u32)>,
    finish: Option<FinishReason>,
    stop_sequence: Option<String>,
    usage: Option<Usage>,
}

impl MessagesStream {
    /// A stream answering for `requested_model` (the name the client asked for).
    pub fn new(requested_model: impl Into<String>) -> Self {
        Self {
            model: requested_model.into(),
            started: false,
            pinged: false,
            finished: false,
            blocks: 0,
            open: None,
            tools: Vec::new(),
            finish: None,
            stop_sequence: None,
            usage: None,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<MessagesEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(MessagesEvent::new(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(id), "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ));
    }

    fn ping(&mut self, out: &mut Vec<MessagesEvent>) {
        if !self.pinged {
            self.pinged = true;
            out.push(MessagesEvent::new("ping", json!({"type": "ping"})));
        }
    }

    fn close(&mut self, out: &mut Vec<MessagesEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push(MessagesEvent::new(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<MessagesEvent>) -> u32 {
        self.close(out);
        let index = self.blocks;
        self.blocks += 1;
        out.push(MessagesEvent::new(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        self.ping(out);
        self.open = Some((kind, index));
        index
    }

    /// The open block of `kind`, opening one (`block` is its start) when another is open.
    fn ensure(&mut self, kind: Open, block: Value, out: &mut Vec<MessagesEvent>) -> u32 {
        match self.open {
            Some((k, index)) if k == kind => index,
            _ => self.open_block(kind, block, out),
        }
    }

    fn delta(index: u32, delta: Value, out: &mut Vec<MessagesEvent>) {
        out.push(MessagesEvent::new(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
    }

    /// The events one canonical chunk yields (often none, e.g. for the usage chunk).
    pub fn push(&mut self, chunk: &ChatChunk) -> Vec<MessagesEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&chunk.id, &mut out);
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        if let Some(s) = chunk.extra.get("stop_sequence").and_then(Value::as_str) {
            self.stop_sequence = Some(s.to_owned());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        let d = &choice.delta;
        if let Some(r) = d.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
            let start = json!({"type": "thinking", "thinking": "", "signature": ""});
            let index = self.ensure(Open::Thinking, start, &mut out);
            Self::delta(
                index,
                json!({"type": "thinking_delta", "thinking": r}),
                &mut out,
            );
        }
        if let Some(Value::Array(blocks)) = d.extra.get("thinking_blocks") {
            for b in blocks {
                self.signed_block(b, &mut out);
            }
        }
        if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
            let index = self.ensure(Open::Text, json!({"type": "text", "text": ""}), &mut out);
            Self::delta(index, json!({"type": "text_delta", "text": t}), &mut out);
        }
        if let Some(r) = d.refusal.as_deref().filter(|r| !r.is_empty()) {
            let index = self.ensure(Open::Text, json!({"type": "text", "text": ""}), &mut out);
            Self::delta(index, json!({"type": "text_delta", "text": r}), &mut out);
        }
        for tc in d.tool_calls.iter().flatten() {
            let f = tc.function.as_ref();
            let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
            let index = match self.tools.iter().find(|(c, _)| *c == tc.index) {
                Some(&(_, block)) => block,
                None => {
                    let id = tool_use_id(tc.id.as_deref().unwrap_or(""), self.tools.len());
                    let name = f.and_then(|f| f.name.as_deref()).unwrap_or("");
                    let start = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                    let block = self.open_block(Open::Tool, start, &mut out);
                    self.tools.push((tc.index, block));
                    block
                }
            };
            if !args.is_empty() {
                Self::delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": args}),
                    &mut out,
                );
            }
        }
        if let Some(f) = &choice.finish_reason {
            self.finish = Some(f.clone());
        }
        out
    }

    /// A whole thinking block with its signature (Anthropic upstreams send it when the
    /// block ends): signs and closes the open thinking block, or sends it whole.
    fn signed_block(&mut self, b: &Value, out: &mut Vec<MessagesEvent>) {
        let str_of = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("");
        match str_of("type") {
            "thinking" => {
                let index = match self.open {
                    Some((Open::Thinking, index)) => index,
                    _ => {
                        let start = json!({"type": "thinking", "thinking": "", "signature": ""});
                        let index = self.open_block(Open::Thinking, start, out);
                        if !str_of("thinking").is_empty() {
                            Self::delta(
                                index,
                                json!({"type": "thinking_delta", "thinking": str_of("thinking")}),
                                out,
                            );
                        }
                        index
                    }
                };
                if !str_of("signature").is_empty() {
                    Self::delta(
                        index,
                        json!({"type": "signature_delta", "signature": str_of("signature")}),
                        out,
                    );
                }
                self.close(out);
            }
            "redacted_thinking" => {
                // Sent whole in its start event, as Anthropic does.
                self.open_block(Open::Thinking, b.clone(), out);
                self.close(out);
            }
            _ => {}
        }
    }

    /// The closing events after the last chunk: the open block's stop, `message_delta`
    /// (stop reason, stop sequence, usage) and `message_stop`.
    pub fn finish(&mut self) -> Vec<MessagesEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start("", &mut out);
        self.close(&mut out);
        self.ping(&mut out);
        self.finished = true;
        let reason = stop_reason(
            self.finish.as_ref(),
            !self.tools.is_empty(),
            self.stop_sequence.as_deref(),
        );
        let stop_sequence = if reason == "stop_sequence" {
            self.stop_sequence.clone()
        } else {
            None
        };
        out.push(MessagesEvent::new(
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": stop_sequence},
                "usage": usage(self.usage.as_ref())}),
        ));
        out.push(MessagesEvent::new(
            "message_stop",
            json!({"type": "message_stop"}),
        ));
        out
    }

    /// The `error` event for a stream that broke after it started.
    pub fn fail(&mut self, e: &Error) -> Vec<MessagesEvent> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![MessagesEvent::new("error", error_body(e).1)]
    }
}
