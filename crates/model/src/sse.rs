//! Server-sent events framing, in one pass over the bytes.
//!
//! tiller parses SSE itself rather than with `eventsource-stream`: that crate
//! copies the rest of its buffer for every line it takes (`String::split_off`),
//! which is quadratic in the size of a network read, and a fast server on
//! loopback delivers 64 KiB reads of small events (measured: 66 ms of framing
//! for a 20,000-delta response).
//!
//! Here every byte is looked at once: a line is searched from where the last
//! search stopped (so a long unfinished line is not rescanned as each chunk of
//! it arrives), and consumed bytes are dropped only once they are at least half
//! the buffer (so the unfinished rest is not moved for every chunk). An event
//! may not grow past [`MAX_EVENT_BYTES`]: a server that sends more gets a clear
//! error instead of all of tiller's memory.

/// The largest event accepted, data and unfinished line together. Far above
/// any real event (a `response.completed` repeats the whole response, tool
/// call arguments included), far below what would hurt.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched event: its `event:` name and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, empty if none.
    pub event: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// The stream sent an event larger than [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server sent an event of more than {} MiB (at least {size} bytes); tiller reads events up to that size",
    MAX_EVENT_BYTES / (1024 * 1024)
)]
pub struct EventTooLarge {
    /// How many bytes of it had arrived.
    pub size: usize,
}

/// Turns chunks of bytes into events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Where unread bytes start in `buf` (the start of the unfinished line).
    pos: usize,
    /// How many bytes after `pos` are known to hold no line terminator.
    scanned: usize,
    event: String,
    data: String,
    has_data: bool,
    /// The last line ended in `\r`: a `\n` starting the next chunk belongs to it.
    after_cr: bool,
}

impl SseDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        SseDecoder::default()
    }

    /// Bytes held: the unfinished line and the event being gathered. Never
    /// more than [`MAX_EVENT_BYTES`] plus the last chunk pushed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.data.len()
    }

    /// Add bytes from the network.
    pub fn push(&mut self, chunk: &[u8]) {
        // Drop consumed bytes only when they are at least half the buffer:
        // each byte is moved at most once on average.
        if self.pos > 0 && self.pos >= self.buf.len() - self.pos {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, EventTooLarge> {
        loop {
            if self.after_cr && self.scanned == 0 && self.buf.get(self.pos) == Some(&b'\n') {
                self.pos += 1;
                self.after_cr = false;
            }
            let from = self.pos + self.scanned;
            let Some(offset) = self.buf[from..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            else {
                self.scanned = self.buf.len() - self.pos;
                if self.scanned > 0 {
                    // Something arrived, so the `\r` was not half of `\r\n`.
                    self.after_cr = false;
                }
                let size = self.scanned + self.data.len();
                if size > MAX_EVENT_BYTES {
                    return Err(EventTooLarge { size });
                }
                return Ok(None);
            };
            let end = from + offset;
            let terminator = self.buf[end];
            let line_start = self.pos;
            self.pos = end + 1;
            self.scanned = 0;
            // A `\r` at the very end may be the first half of `\r\n`.
            self.after_cr = terminator == b'\r';
            if terminator == b'\r' && self.buf.get(self.pos) == Some(&b'\n') {
                self.pos += 1;
                self.after_cr = false;
            }
            if let Some(event) = self.line(line_start, end)? {
                return Ok(Some(event));
            }
        }
    }

    /// Take the line `buf[start..end]`; an event if it was the blank line
    /// that ends one.
    fn line(&mut self, start: usize, end: usize) -> Result<Option<SseEvent>, EventTooLarge> {
        let line = &self.buf[start..end];
        if line.is_empty() {
            if self.has_data || !self.event.is_empty() {
                self.has_data = false;
                return Ok(Some(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                }));
            }
            return Ok(None);
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(0) => return Ok(None), // a comment
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > MAX_EVENT_BYTES {
                    return Err(EventTooLarge {
                        size: self.data.len(),
                    });
                }
            }
            "event" => self.event = value.to_string(),
            // `id` and `retry` are not used by the model APIs tiller speaks.
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(decoder: &mut SseDecoder) -> Vec<SseEvent> {
        std::iter::from_fn(|| decoder.next_event().unwrap()).collect()
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text = "event: a\ndata: {\"x\":1}\n\n: comment\n\ndata: line one\ndata: line two\n\nevent: b\r\ndata:no space\r\n\r\n";
        let expected = vec![
            ev("a", "{\"x\":1}"),
            ev("", "line one\nline two"),
            ev("b", "no space"),
        ];
        for split in 0..text.len() {
            let mut decoder = SseDecoder::new();
            let mut got = Vec::new();
            decoder.push(&text.as_bytes()[..split]);
            got.extend(all(&mut decoder));
            decoder.push(&text.as_bytes()[split..]);
            got.extend(all(&mut decoder));
            assert_eq!(got, expected, "split at {split}");
        }
    }

    #[test]
    fn events_fed_one_byte_at_a_time_come_out_whole() {
        let text = "data: a\r\n\r\ndata: b\r\rdata: c\n\n";
        let mut decoder = SseDecoder::new();
        let mut got = Vec::new();
        for byte in text.as_bytes() {
            decoder.push(std::slice::from_ref(byte));
            got.extend(all(&mut decoder));
        }
        assert_eq!(got, vec![ev("", "a"), ev("", "b"), ev("", "c")]);
    }

    #[test]
    fn a_lone_cr_ends_a_line_and_a_following_lf_is_not_a_blank_line() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: a\r");
        assert_eq!(all(&mut decoder), vec![]);
        decoder.push(b"\ndata: b\r\r");
        assert_eq!(all(&mut decoder), vec![ev("", "a\nb")]);
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: partial");
        assert_eq!(decoder.next_event(), Ok(None));
        decoder.push(b"\n");
        assert_eq!(decoder.next_event(), Ok(None));
        decoder.push(b"\n");
        assert_eq!(decoder.next_event(), Ok(Some(ev("", "partial"))));
    }

    #[test]
    fn an_event_past_the_limit_is_an_error_whether_one_line_or_many() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: ");
        let chunk = vec![b'x'; 1024 * 1024];
        let mut result = Ok(None);
        for _ in 0..=MAX_EVENT_BYTES / chunk.len() {
            decoder.push(&chunk);
            result = decoder.next_event();
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(EventTooLarge { size }) if size > MAX_EVENT_BYTES));

        let mut decoder = SseDecoder::new();
        let line = format!("data: {}\n", "y".repeat(1024 * 1024));
        let mut result = Ok(None);
        for _ in 0..=MAX_EVENT_BYTES / line.len() + 1 {
            decoder.push(line.as_bytes());
            result = decoder.next_event();
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err(), "{result:?}");
    }

    #[test]
    fn a_long_event_in_small_chunks_takes_linear_work() {
        // 8 MiB in 1 KiB chunks: a decoder that rescanned the unfinished line
        // would look at 32 GiB of bytes; this one looks at each byte once.
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: ");
        let chunk = vec![b'z'; 1024];
        for _ in 0..8 * 1024 {
            decoder.push(&chunk);
            assert_eq!(decoder.next_event(), Ok(None));
        }
        decoder.push(b"\n\n");
        let event = decoder.next_event().unwrap().unwrap();
        assert_eq!(event.data.len(), 8 * 1024 * 1024);
    }
}
