//! Server-sent events: a decoder for upstream streams and an encoder for ours.
//!
//! The decoder follows the WHATWG event-stream rules (LF, CRLF and lone CR line ends,
//! `:` comments, multi-line `data:` joined by `\n`, `event`/`id`/`retry` fields, a leading
//! BOM ignored) and gives the same events however the bytes are split across reads. It is
//! linear: every byte is looked at once, and it is bounded: an event larger than
//! `max_event_bytes` is an error, so a misbehaving upstream cannot grow our memory.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

/// The default bound on one event (data and field lines together): 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The line OpenAI-style streams end with.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (`None` means the default `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field of this event, if any.
    pub id: Option<String>,
    /// The `retry:` field of this event, if any (milliseconds).
    pub retry: Option<u64>,
}

/// Why decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event grew past the configured bound.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The bound.
        limit: usize,
    },
    /// A line was not UTF-8.
    #[error("server-sent event line is not valid UTF-8")]
    InvalidUtf8,
}

/// Incremental event-stream decoder. Feed it bytes as they arrive.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    pending: SseEvent,
    has_data: bool,
    event_bytes: usize,
    max_event_bytes: usize,
    after_cr: bool,
    at_start: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that rejects events larger than `max_event_bytes`.
    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            pending: SseEvent::default(),
            has_data: false,
            event_bytes: 0,
            max_event_bytes,
            after_cr: false,
            at_start: true,
        }
    }

    /// Decode `chunk`, appending every completed event to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.at_start {
            // A UTF-8 BOM may open the stream; it may itself be split across reads.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let seen = self.line.len();
            let take = chunk.len().min(BOM.len() - seen);
            if BOM[seen..seen + take] == chunk[..take] {
                if seen + take == BOM.len() {
                    self.line.clear();
                    self.at_start = false;
                } else {
                    self.line.extend_from_slice(&chunk[..take]);
                }
                chunk = &chunk[take..];
                if self.at_start {
                    return Ok(());
                }
            } else {
                self.at_start = false;
            }
        }
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            if self.line.is_empty() {
                self.check_size(pos)?;
                self.process_line(&chunk[..pos], out)?;
            } else {
                self.check_size(self.line.len() + pos)?;
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..pos]);
                self.process_line(&line, out)?;
                line.clear();
                self.line = line;
            }
            let mut next = pos + 1;
            if chunk[pos] == b'\r' {
                if next == chunk.len() {
                    self.after_cr = true;
                } else if chunk[next] == b'\n' {
                    next += 1;
                }
            }
            chunk = &chunk[next..];
        }
        if !chunk.is_empty() {
            self.check_size(self.line.len() + chunk.len())?;
            self.line.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Whether an event was begun but not finished (the stream was cut mid-event).
    pub fn has_partial_event(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.pending.event.is_some()
    }

    fn check_size(&self, line_len: usize) -> Result<(), SseError> {
        if self.event_bytes + line_len > self.max_event_bytes {
            Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            })
        } else {
            Ok(())
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.pending));
            } else {
                self.pending = SseEvent::default();
            }
            self.has_data = false;
            self.event_bytes = 0;
            return Ok(());
        }
        self.event_bytes += line.len() + 1;
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = std::str::from_utf8(value).map_err(|_| SseError::InvalidUtf8)?;
        match field {
            b"data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            b"event" => self.pending.event = Some(value.to_owned()),
            b"id" if !value.contains('\0') => self.pending.id = Some(value.to_owned()),
            b"retry" => {
                if let Ok(ms) = value.parse() {
                    self.pending.retry = Some(ms);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Encode one `data:` event holding `value` as compact JSON.
pub fn json_event<T: Serialize>(value: &T) -> Result<Bytes, serde_json::Error> {
    let mut buf = BytesMut::with_capacity(256).writer();
    std::io::Write::write_all(&mut buf, b"data: ").map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut buf, value)?;
    std::io::Write::write_all(&mut buf, b"\n\n").map_err(serde_json::Error::io)?;
    Ok(buf.into_inner().freeze())
}

/// Encode an event with an optional `event:` name; newlines in `data` become several
/// `data:` lines, so any text round-trips through [`SseDecoder`].
pub fn event(name: Option<&str>, data: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(data.len() + 32);
    if let Some(name) = name {
        buf.put_slice(b"event: ");
        buf.put_slice(name.as_bytes());
        buf.put_u8(b'\n');
    }
    for line in data.split('\n') {
        buf.put_slice(b"data: ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(parts: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, &mut out)?;
        }
        Ok(out)
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn line_endings_comments_and_multiline_data() {
        let input = b"\xEF\xBB\xBF: hello\r\ndata: a\r\ndata:b\r\rdata: c\n\nevent: ping\ndata: {}\n\nid: 7\nretry: 300\ndata\n\n";
        let ev = decode_all(&[input]).unwrap();
        assert_eq!(data(&ev), ["a\nb", "c", "{}", ""]);
        assert_eq!(ev[2].event.as_deref(), Some("ping"));
        assert_eq!(ev[3].id.as_deref(), Some("7"));
        assert_eq!(ev[3].retry, Some(300));
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let ev = decode_all(&[b"event: x\n\n: c\n\ndata: y\n\n"]).unwrap();
        assert_eq!(data(&ev), ["y"]);
        assert_eq!(
            ev[0].event, None,
            "event name must not leak into the next event"
        );
    }

    #[test]
    fn crlf_split_between_reads_is_one_line_end() {
        let ev = decode_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]).unwrap();
        assert_eq!(data(&ev), ["a\nb"]);
    }

    #[test]
    fn oversized_event_is_an_error_not_growth() {
        let mut d = SseDecoder::with_max_event_bytes(64);
        let mut out = Vec::new();
        let big = vec![b'x'; 100];
        assert!(d.feed(b"data: ", &mut out).is_ok());
        assert_eq!(
            d.feed(&big, &mut out),
            Err(SseError::EventTooLarge { limit: 64 })
        );
        let mut d = SseDecoder::with_max_event_bytes(64);
        let many_lines = b"data: 0123456789\n".repeat(10);
        assert!(d.feed(&many_lines, &mut out).is_err());
    }

    #[test]
    fn partial_event_is_reported() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.feed(b"data: {\"a\":", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(d.has_partial_event());
        d.feed(b"1}\n\n", &mut out).unwrap();
        assert!(!d.has_partial_event());
        assert_eq!(data(&out), ["{\"a\":1}"]);
    }

    #[test]
    fn encoder_round_trips() {
        let b = json_event(&serde_json::json!({"a": "x\ny"})).unwrap();
        assert_eq!(&b[..], b"data: {\"a\":\"x\\ny\"}\n\n");
        let ev = decode_all(&[&event(Some("delta"), "one\ntwo")]).unwrap();
        assert_eq!(ev[0].data, "one\ntwo");
        assert_eq!(ev[0].event.as_deref(), Some("delta"));
    }

    fn line_end() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
    }

    // Builds a stream from random events with random line endings and comments, then
    // checks that every way of cutting it into reads yields the same events.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn same_events_whatever_the_split(
            events in prop::collection::vec(
                (prop::option::of("[a-z]{1,8}"),
                 prop::collection::vec("[ -~é€😀]{0,20}", 1..4),
                 any::<bool>(),
                 line_end()),
                0..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut wire = String::new();
            let mut expected = Vec::new();
            for (name, lines, comment, eol) in &events {
                if *comment {
                    wire.push_str(": keep-alive");
                    wire.push_str(eol);
                }
                if let Some(n) = name {
                    wire.push_str("event: ");
                    wire.push_str(n);
                    wire.push_str(eol);
                }
                for l in lines {
                    wire.push_str("data: ");
                    wire.push_str(l);
                    wire.push_str(eol);
                }
                wire.push_str(eol);
                expected.push((name.clone(), lines.join("\n")));
            }
            let bytes = wire.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut parts = Vec::new();
            let mut last = 0;
            for p in points {
                parts.push(&bytes[last..p]);
                last = p;
            }
            parts.push(&bytes[last..]);
            let got = decode_all(&parts).unwrap();
            let got: Vec<_> = got.into_iter().map(|e| (e.event, e.data)).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
