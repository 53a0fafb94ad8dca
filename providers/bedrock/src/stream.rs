//! ConverseStream decoding: the binary `application/vnd.amazon.eventstream` framing, then
//! Converse stream events into canonical chunks.
//!
//! Two layers, both pure:
//! - [`FrameDecoder`] cuts the byte stream into messages (a 4-byte big-endian total length
//!   starts each one) and parses each with `aws-smithy-eventstream`, which checks the
//!   prelude CRC and the message CRC. Bytes may arrive split anywhere; a frame is decoded
//!   once all of it is there. Frames over [`MAX_FRAME_BYTES`] and any CRC or header
//!   damage are `upstream_error`s, never a panic.
//! - [`StreamDecoder`] turns each event (`messageStart`, `contentBlockStart`,
//!   `contentBlockDelta`, `contentBlockStop`, `messageStop`, `metadata`) into chunks, and
//!   exception frames (`:message-type: exception`) into mapped errors.
//!
//! [`ConverseStreamDecoder`] chains the two for the provider and the tests.

use bytes::{Buf, Bytes, BytesMut};
use llmux_core::{
    ChatChunk, ChunkChoice, Delta, Error, ErrorKind, FinishReason, FunctionCallDelta, JsonObject,
    Origin, Role, ToolCallDelta,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::codec::{self, DecodeOptions, JSON_TOOL_NAME, WireUsage};

/// The largest frame accepted (AWS's own limit for an event-stream message is 16 MiB).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The smallest possible frame: prelude (12 bytes) and message CRC (4).
const MIN_FRAME_BYTES: usize = 16;

/// Content blocks above this index are treated as a broken stream, not grown into.
const MAX_BLOCKS: usize = 4096;

const PROVIDER: &str = "bedrock";

fn broken(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::UpstreamError,
        format!("{PROVIDER}: the upstream event stream is corrupt: {what}"),
    )
    .with_origin(Origin::Upstream)
    .with_provider(PROVIDER)
}

/// One decoded event-stream message, by its `:message-type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `:message-type: event`: `:event-type` and the JSON payload.
    Event {
        /// `messageStart`, `contentBlockDelta`, …
        event_type: String,
        /// The payload bytes (JSON).
        payload: Bytes,
    },
    /// `:message-type: exception`: `:exception-type` and the payload (`{"message": …}`).
    Exception {
        /// `throttlingException`, `modelStreamErrorException`, …
        exception_type: String,
        /// The payload bytes (JSON).
        payload: Bytes,
    },
    /// `:message-type: error`: `:error-code` and `:error-message` headers.
    Error {
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
}

/// Cuts bytes into event-stream messages. Feed reads in order; call
/// [`FrameDecoder::has_partial_frame`] at the end of the body.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `bytes`; append every frame completed by them to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Frame>) -> Result<(), Error> {
        self.buf.extend_from_slice(bytes);
        loop {
            if self.buf.len() < 4 {
                return Ok(());
            }
            let total =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&total) {
                return Err(broken(format!("a frame claims {total} bytes")));
            }
            if self.buf.len() < total {
                return Ok(());
            }
            let frame = self.buf.split_to(total).freeze();
            let message =
                aws_smithy_eventstream::frame::read_message_from(frame).map_err(broken)?;
            out.push(classify(&message)?);
        }
    }

    /// Whether bytes of an unfinished frame are buffered.
    pub fn has_partial_frame(&self) -> bool {
        self.buf.has_remaining()
    }
}

fn classify(message: &aws_smithy_types::event_stream::Message) -> Result<Frame, Error> {
    let header = |name: &str| -> Option<String> {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_owned())
    };
    let payload = message.payload().clone();
    match header(":message-type").as_deref() {
        Some("event") => Ok(Frame::Event {
            event_type: header(":event-type")
                .ok_or_else(|| broken("an event frame has no :event-type"))?,
            payload,
        }),
        Some("exception") => Ok(Frame::Exception {
            exception_type: header(":exception-type").unwrap_or_default(),
            payload,
        }),
        Some("error") => Ok(Frame::Error {
            code: header(":error-code").unwrap_or_default(),
            message: header(":error-message").unwrap_or_default(),
        }),
        other => Err(broken(format!(
            "unknown :message-type {}",
            other.unwrap_or("(none)")
        ))),
    }
}

#[derive(Debug)]
enum Block {
    Text,
    Tool { index: u32 },
    JsonTool,
    Reasoning { text: String, signature: String },
    Redacted { data: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBlockStart {
    content_block_index: usize,
    #[serde(default)]
    start: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBlockDelta {
    content_block_index: usize,
    #[serde(default)]
    delta: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBlockStop {
    content_block_index: usize,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessageStop {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMetadata {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Default, Deserialize)]
struct WireExceptionPayload {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

/// Turns Converse stream events into canonical chunks, keeping what is needed to number
/// tool calls the OpenAI way, rebuild thinking blocks and report usage once, last.
///
/// Output, per event: `messageStart` → a chunk with `role: assistant`; text deltas →
/// `content`; a `toolUse` start → a tool-call delta with `index` (position among the
/// message's tool calls), `id`, `type` and name, then `toolUse.input` deltas → argument
/// fragments; `reasoningContent.text` → `reasoning_content`; at the end of a reasoning
/// block, a chunk whose `delta.thinking_blocks` holds the whole block with its signature
/// (to send back on the next turn); `messageStop` → the `finish_reason` chunk;
/// `metadata` → the usage-only chunk. Exception and error frames are an `Err`.
#[derive(Debug)]
pub struct StreamDecoder {
    opts: DecodeOptions,
    blocks: Vec<Option<Block>>,
    tool_calls: u32,
    stopped: bool,
    done: bool,
}

impl StreamDecoder {
    /// A decoder for one stream; `opts` names the chunks' id, model and `created`.
    pub fn new(opts: DecodeOptions) -> Self {
        Self {
            opts,
            blocks: Vec::new(),
            tool_calls: 0,
            stopped: false,
            done: false,
        }
    }

    /// Whether the `metadata` event (the last one Bedrock sends) was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Call when the upstream body ended: an error unless `messageStop` arrived.
    pub fn finish(&self) -> Result<(), Error> {
        if self.stopped {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::UpstreamError,
                format!("{PROVIDER}: the upstream stream ended before messageStop"),
            )
            .with_origin(Origin::Upstream)
            .with_provider(PROVIDER))
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        let mut c = ChatChunk::new(
            self.opts.id.as_str(),
            self.opts.model.as_str(),
            self.opts.created,
        );
        c.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
            logprobs: None,
        });
        c
    }

    fn content(&self, text: &str) -> ChatChunk {
        self.chunk(
            Delta {
                content: Some(text.to_owned()),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_delta(&self, d: ToolCallDelta) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![d]),
                ..Delta::default()
            },
            None,
        )
    }

    fn parse<'a, T: Deserialize<'a>>(event: &str, payload: &'a [u8]) -> Result<T, Error> {
        serde_json::from_slice(payload).map_err(|e| codec::invalid_body(event, e))
    }

    /// The block at `index`, created with `make` when the stream did not start it (text
    /// and reasoning blocks have no start event).
    fn block(&mut self, index: usize, make: impl FnOnce() -> Block) -> Result<&mut Block, Error> {
        if index >= MAX_BLOCKS {
            return Err(codec::invalid_body(
                "contentBlockIndex",
                "block index out of range",
            ));
        }
        if self.blocks.len() <= index {
            self.blocks.resize_with(index + 1, || None);
        }
        Ok(self.blocks[index].get_or_insert_with(make))
    }

    /// Decode one frame, appending the chunks it yields to `out`.
    pub fn feed(&mut self, frame: Frame, out: &mut Vec<ChatChunk>) -> Result<(), Error> {
        let (event_type, payload) = match frame {
            Frame::Event {
                event_type,
                payload,
            } => (event_type, payload),
            Frame::Exception {
                exception_type,
                payload,
            } => {
                let p: WireExceptionPayload = serde_json::from_slice(&payload).unwrap_or_default();
                return Err(codec::error_from_name(
                    &exception_type,
                    p.message.as_deref().unwrap_or(""),
                    None,
                    None,
                    &[],
                ));
            }
            Frame::Error { code, message } => {
                return Err(codec::error_from_name(&code, &message, None, None, &[]));
            }
        };
        if self.done {
            return Ok(());
        }
        match event_type.as_str() {
            "messageStart" => out.push(self.chunk(
                Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            )),
            "contentBlockStart" => {
                let s: WireBlockStart = Self::parse("contentBlockStart event", &payload)?;
                let Some(tu) = s.start.get("toolUse") else {
                    return Ok(());
                };
                let name = tu
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let id = tu
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let block = if self.opts.json_mode && name == JSON_TOOL_NAME {
                    Block::JsonTool
                } else {
                    let index = self.tool_calls;
                    self.tool_calls += 1;
                    out.push(self.tool_delta(ToolCallDelta {
                        index,
                        id: Some(id),
                        kind: Some("function".to_owned()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(String::new()),
                        }),
                    }));
                    Block::Tool { index }
                };
                *self.block(s.content_block_index, || Block::Text)? = block;
            }
            "contentBlockDelta" => {
                let d: WireBlockDelta = Self::parse("contentBlockDelta event", &payload)?;
                let index = d.content_block_index;
                if let Some(t) = d.delta.get("text").and_then(Value::as_str) {
                    self.block(index, || Block::Text)?;
                    if !t.is_empty() {
                        out.push(self.content(t));
                    }
                } else if let Some(tu) = d.delta.get("toolUse") {
                    let part = tu.get("input").and_then(Value::as_str).unwrap_or("");
                    if part.is_empty() {
                        return Ok(());
                    }
                    match self.block(index, || Block::Text)? {
                        Block::JsonTool => out.push(self.content(part)),
                        &mut Block::Tool { index } => out.push(self.tool_delta(ToolCallDelta {
                            index,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(part.to_owned()),
                            }),
                            ..ToolCallDelta::default()
                        })),
                        _ => {}
                    }
                } else if let Some(rc) = d.delta.get("reasoningContent") {
                    let str_of = |k: &str| rc.get(k).and_then(Value::as_str);
                    if let Some(t) = str_of("text") {
                        if let Block::Reasoning { text, .. } =
                            self.block(index, || Block::Reasoning {
                                text: String::new(),
                                signature: String::new(),
                            })?
                        {
                            text.push_str(t);
                        }
                        if !t.is_empty() {
                            out.push(self.chunk(
                                Delta {
                                    reasoning_content: Some(t.to_owned()),
                                    ..Delta::default()
                                },
                                None,
                            ));
                        }
                    } else if let Some(s) = str_of("signature") {
                        if let Block::Reasoning { signature, .. } =
                            self.block(index, || Block::Reasoning {
                                text: String::new(),
                                signature: String::new(),
                            })?
                        {
                            signature.push_str(s);
                        }
                    } else if let Some(r) = str_of("redactedContent")
                        && let Block::Redacted { data } = self.block(index, || Block::Redacted {
                            data: String::new(),
                        })?
                    {
                        data.push_str(r);
                    }
                }
                // Citations and future delta kinds have no OpenAI counterpart.
            }
            "contentBlockStop" => {
                let s: WireBlockStop = Self::parse("contentBlockStop event", &payload)?;
                let block = match self.blocks.get_mut(s.content_block_index) {
                    Some(Some(Block::Reasoning { text, signature })) => {
                        let mut b = JsonObject::new();
                        b.insert("type".into(), "thinking".into());
                        b.insert("thinking".into(), std::mem::take(text).into());
                        if !signature.is_empty() {
                            b.insert("signature".into(), std::mem::take(signature).into());
                        }
                        Some(Value::Object(b))
                    }
                    Some(Some(Block::Redacted { data })) => Some(json!({
                        "type": "redacted_thinking",
                        "data": std::mem::take(data),
                    })),
                    _ => None,
                };
                if let Some(b) = block {
                    let mut extra = JsonObject::new();
                    extra.insert("thinking_blocks".into(), Value::Array(vec![b]));
                    out.push(self.chunk(
                        Delta {
                            extra,
                            ..Delta::default()
                        },
                        None,
                    ));
                }
            }
            "messageStop" => {
                let s: WireMessageStop = Self::parse("messageStop event", &payload)?;
                self.stopped = true;
                let mut finish = s
                    .stop_reason
                    .as_deref()
                    .map(codec::finish_reason)
                    .unwrap_or(FinishReason::Stop);
                if self.opts.json_mode && self.tool_calls == 0 && finish == FinishReason::ToolCalls
                {
                    finish = FinishReason::Stop;
                }
                out.push(self.chunk(Delta::default(), Some(finish)));
            }
            "metadata" => {
                let m: WireMetadata = Self::parse("metadata event", &payload)?;
                if let Some(u) = m.usage {
                    let mut c = ChatChunk::new(
                        self.opts.id.as_str(),
                        self.opts.model.as_str(),
                        self.opts.created,
                    );
                    c.usage = Some(u.to_usage());
                    out.push(c);
                }
                self.done = true;
            }
            // Event types added later carry nothing for a chat completion.
            _ => {}
        }
        Ok(())
    }
}

/// Bytes of a ConverseStream body in, chunks out: a [`FrameDecoder`] feeding a
/// [`StreamDecoder`].
#[derive(Debug)]
pub struct ConverseStreamDecoder {
    frames: FrameDecoder,
    events: StreamDecoder,
    scratch: Vec<Frame>,
}

impl ConverseStreamDecoder {
    /// A decoder for one stream.
    pub fn new(opts: DecodeOptions) -> Self {
        Self {
            frames: FrameDecoder::new(),
            events: StreamDecoder::new(opts),
            scratch: Vec::new(),
        }
    }

    /// Add one read of the body; append the chunks it completes to `out`. After an `Err`
    /// the stream is over.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<ChatChunk>) -> Result<(), Error> {
        let framed = self.frames.feed(bytes, &mut self.scratch);
        for frame in self.scratch.drain(..) {
            self.events.feed(frame, out)?;
        }
        framed
    }

    /// Whether the last event (`metadata`) arrived.
    pub fn is_done(&self) -> bool {
        self.events.is_done()
    }

    /// Call when the body ended: an error when it stopped inside a frame or before
    /// `messageStop`.
    pub fn finish(&self) -> Result<(), Error> {
        if self.frames.has_partial_frame() {
            return Err(Error::new(
                ErrorKind::UpstreamError,
                format!("{PROVIDER}: the upstream stream ended in the middle of a frame"),
            )
            .with_origin(Origin::Upstream)
            .with_provider(PROVIDER));
        }
        self.events.finish()
    }
}
