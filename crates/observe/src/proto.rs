//! A minimal protocol-buffers encoder (and the reader the exporters need for the answers
//! they get): just the wire format, no schema. The OTLP exporter writes its
//! `ExportTraceServiceRequest` with it field by field (field numbers from
//! opentelemetry-proto), for OTLP/HTTP protobuf and OTLP/gRPC.
//!
//! Must not: know any OTLP message (that is [`crate::otlp`]'s), allocate beyond the message
//! being written, or panic on malformed input when reading.

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Writes one message. Scalar helpers skip proto3 default values (zero, empty), as
/// encoders do; [`Writer::message`] always writes (an empty nested message is still
/// present), and `*_always` variants write defaults too (members of a `oneof`).
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The encoded message.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// `uint64`/`uint32`/enum field (varint); skipped when zero.
    pub(crate) fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    /// `int64` field, written even when zero (a `oneof` member).
    pub(crate) fn int64_always(&mut self, field: u32, v: i64) {
        self.key(field, VARINT);
        self.varint(v as u64);
    }

    /// `bool` field, written even when false (a `oneof` member).
    pub(crate) fn bool_always(&mut self, field: u32, v: bool) {
        self.key(field, VARINT);
        self.varint(u64::from(v));
    }

    /// `fixed64` field; skipped when zero.
    pub(crate) fn fixed64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, FIXED64);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// `double` field, written even when zero (a `oneof` member).
    pub(crate) fn double_always(&mut self, field: u32, v: f64) {
        self.key(field, FIXED64);
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    /// `bytes` field; skipped when empty.
    pub(crate) fn bytes(&mut self, field: u32, v: &[u8]) {
        if !v.is_empty() {
            self.bytes_always(field, v);
        }
    }

    /// `bytes` field, written even when empty.
    pub(crate) fn bytes_always(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// `string` field; skipped when empty.
    pub(crate) fn string(&mut self, field: u32, v: &str) {
        self.bytes(field, v.as_bytes());
    }

    /// `string` field, written even when empty (a `oneof` member).
    pub(crate) fn string_always(&mut self, field: u32, v: &str) {
        self.bytes_always(field, v.as_bytes());
    }

    /// A nested message, written by `f`.
    pub(crate) fn message(&mut self, field: u32, f: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::new();
        f(&mut inner);
        self.bytes_always(field, &inner.buf);
    }
}

/// One field as read: its number and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field<'a> {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Bytes(u32, &'a [u8]),
    Fixed32(u32, u32),
}

/// The fields of a message, in order; `None` when the bytes are not a well-formed message.
pub(crate) fn read_fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if buf.len() < n {
            return None;
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Some(head)
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = u32::try_from(key >> 3).ok().filter(|f| *f != 0)?;
        out.push(match (key & 7) as u8 {
            VARINT => Field::Varint(field, varint(&mut buf)?),
            FIXED64 => Field::Fixed64(
                field,
                u64::from_le_bytes(take(&mut buf, 8)?.try_into().ok()?),
            ),
            LEN => {
                let n = usize::try_from(varint(&mut buf)?).ok()?;
                Field::Bytes(field, take(&mut buf, n)?)
            }
            FIXED32 => Field::Fixed32(
                field,
                u32::from_le_bytes(take(&mut buf, 4)?.try_into().ok()?),
            ),
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_wire_format() {
        // The protobuf documentation's examples: field 1 = 150 is `08 96 01`.
        let mut w = Writer::new();
        w.uint(1, 150);
        assert_eq!(w.finish(), [0x08, 0x96, 0x01]);
        // Field 2 = "testing" is `12 07 74 65 73 74 69 6e 67`.
        let mut w = Writer::new();
        w.string(2, "testing");
        assert_eq!(w.finish(), b"\x12\x07testing");
        // A negative int64 is ten bytes of varint.
        let mut w = Writer::new();
        w.int64_always(3, -1);
        assert_eq!(
            w.finish(),
            [
                0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
        // Field numbers above 15 take two key bytes.
        let mut w = Writer::new();
        w.uint(16, 1);
        assert_eq!(w.finish(), [0x80, 0x01, 0x01]);
    }

    #[test]
    fn defaults_are_skipped_except_where_presence_matters() {
        let mut w = Writer::new();
        w.uint(1, 0);
        w.string(2, "");
        w.fixed64(3, 0);
        w.bytes(4, &[]);
        assert!(w.finish().is_empty());
        let mut w = Writer::new();
        w.bool_always(2, false);
        w.string_always(1, "");
        w.message(5, |_| {});
        assert_eq!(w.finish(), [0x10, 0x00, 0x0a, 0x00, 0x2a, 0x00]);
    }

    #[test]
    fn what_is_written_reads_back() {
        let mut w = Writer::new();
        w.fixed64(7, 1_700_000_000_123_456_789);
        w.double_always(4, 0.25);
        w.message(1, |m| {
            m.string(1, "k");
            m.message(2, |v| v.int64_always(3, 42));
        });
        let bytes = w.finish();
        let fields = read_fields(&bytes).expect("well formed");
        assert_eq!(fields[0], Field::Fixed64(7, 1_700_000_000_123_456_789));
        assert_eq!(fields[1], Field::Fixed64(4, 0.25f64.to_bits()));
        let Field::Bytes(1, kv) = fields[2] else {
            panic!("{:?}", fields[2])
        };
        let kv = read_fields(kv).unwrap();
        assert_eq!(kv[0], Field::Bytes(1, b"k"));
        let Field::Bytes(2, any) = kv[1] else {
            panic!()
        };
        assert_eq!(read_fields(any).unwrap(), [Field::Varint(3, 42)]);
    }

    #[test]
    fn malformed_input_is_refused_not_a_panic() {
        for bad in [
            &[0x08][..],         // a key without its varint
            &[0x12, 0x05, b'a'], // a length past the end
            &[0x0b],             // wire type 3 (groups) is not supported
            &[0x00, 0x01],       // field number 0
            &[0xff; 11],         // a varint longer than 64 bits
            &[0x09, 0x01, 0x02], // a truncated fixed64
        ] {
            assert_eq!(read_fields(bad), None, "{bad:?}");
        }
        assert_eq!(read_fields(&[]), Some(vec![]));
    }
}
