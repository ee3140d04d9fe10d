//! Server-sent events: an incremental decoder and the encoder of cng's own events.
//!
//! The decoder is sans-I/O: [`SseDecoder::push`] takes whatever bytes arrived (any
//! split, even inside a UTF-8 sequence or a `\r\n`) and returns the events they
//! complete; it keeps only the unfinished line and the event being built, so memory is
//! bounded by the largest single event ([`MAX_EVENT_BYTES`]), never by the stream.
//!
//! Parsing follows the WHATWG "event stream interpretation": lines end in CRLF, LF or
//! CR; a line starting with `:` is a comment; `field: value` with one optional space
//! after the colon; `data` lines of one event are joined with `\n`; a blank line
//! dispatches the event; an event with no data is dropped.

use crate::error::Error;

/// Largest event the decoder accepts (Workers AI events are a few hundred bytes).
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// Incremental SSE decoder.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// The previous push ended in `\r`: a `\n` at the start of the next is part of it.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    pending_bytes: usize,
}

/// What was left when the input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndState {
    /// Nothing pending: the stream ended on an event boundary.
    Clean,
    /// A line or an event was cut off.
    Truncated,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events they complete, in order.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), Error> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(b'\n') = bytes.first() {
                bytes = &bytes[1..];
            }
        }
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    let end_cr = bytes[i] == b'\r';
                    self.line.extend_from_slice(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    if end_cr {
                        match bytes.first() {
                            Some(b'\n') => bytes = &bytes[1..],
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out);
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.line.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
            if self.line.len() + self.pending_bytes > MAX_EVENT_BYTES {
                return Err(Error::upstream(format!(
                    "upstream sent a server-sent event over {} bytes",
                    MAX_EVENT_BYTES
                )));
            }
        }
        Ok(())
    }

    /// Ends the input: any complete-but-undispatched event is dispatched (many servers
    /// omit the final blank line), and whether anything was cut off is reported.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> EndState {
        let mut state = EndState::Clean;
        if !self.line.is_empty() {
            // A last line without terminator: it may be whole or cut; parse it, and let
            // the caller judge (JSON that does not parse was cut).
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out);
            state = EndState::Truncated;
        }
        if self.has_data {
            self.dispatch(out);
        }
        state
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
                self.pending_bytes = self.data.len();
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {} // id, retry and unknown fields carry nothing cng needs.
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.has_data = false;
        self.pending_bytes = 0;
    }
}

/// Appends `data: <json>\n\n` to `out`.
pub fn write_data(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// The terminating event of an OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> (Vec<SseEvent>, EndState) {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out).unwrap();
        }
        let end = d.finish(&mut out);
        (out, end)
    }

    #[test]
    fn spec_example_fields_comments_and_multiline_data() {
        let input = b": comment\nevent: add\ndata: 1\ndata:2\nid: 7\n\ndata\n\n";
        let (events, end) = decode_all(&[input]);
        assert_eq!(end, EndState::Clean);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("add".into()),
                    data: "1\n2".into()
                },
                SseEvent {
                    event: None,
                    data: "".into()
                },
            ]
        );
    }

    #[test]
    fn every_split_and_line_ending_gives_the_same_events() {
        let lf = "data: {\"a\":\"é\"}\n\ndata: [DONE]\n\n";
        let expected = decode_all(&[lf.as_bytes()]).0;
        for text in [
            lf.to_string(),
            lf.replace('\n', "\r\n"),
            lf.replace('\n', "\r"),
        ] {
            let b = text.as_bytes();
            for i in 0..=b.len() {
                let (events, _) = decode_all(&[&b[..i], &b[i..]]);
                assert_eq!(events, expected, "split at {i} of {text:?}");
            }
        }
    }

    #[test]
    fn cut_off_input_is_reported() {
        let (events, end) = decode_all(&[b"data: {\"a\":1}\n\ndata: {\"b\""]);
        assert_eq!(end, EndState::Truncated);
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn oversized_event_is_an_error_not_unbounded_memory() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut failed = false;
        d.push(b"data: ", &mut out).unwrap();
        for _ in 0..8 {
            if d.push(&chunk, &mut out).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
}
