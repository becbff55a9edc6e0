//! A server-sent events parser (the WHATWG event-stream format), fed bytes as they arrive.

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:`; `message` when absent.
    pub event: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
    /// `id:` of this event, if it had one.
    pub id: Option<String>,
}

/// Incremental parser: bytes in, whole events out.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    /// The last `id:` seen, for `Last-Event-ID` on reconnect.
    pub last_event_id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A CR LF pair is one line end; wait for the LF if only the CR has arrived.
            let mut skip = 1;
            if self.buffer[end] == b'\r' {
                match self.buffer.get(end + 1) {
                    Some(b'\n') => skip = 2,
                    None => break,
                    Some(_) => {}
                }
            }
            let line: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            let id = self.id.take();
            return data.map(|data| SseEvent { event: event.unwrap_or_else(|| "message".into()), data, id });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) =
            line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => {
                self.id = Some(value.to_owned());
                self.last_event_id = Some(value.to_owned());
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{SseEvent, SseParser};

    fn event(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent { event: event.into(), data: data.into(), id: id.map(Into::into) }
    }

    #[test]
    fn table() {
        let cases: [(&str, Vec<SseEvent>); 6] = [
            (
                "event: changes\nid: c1.5\ndata: {\"a\":1}\n\n",
                vec![event("changes", "{\"a\":1}", Some("c1.5"))],
            ),
            ("event: heartbeat\r\ndata: {}\r\n\r\n", vec![event("heartbeat", "{}", None)]),
            ("data: one\ndata: two\n\n", vec![event("message", "one\ntwo", None)]),
            (": a comment\n\nevent: x\n\n", vec![]),
            (
                "data:no space\n\ndata: second\n\n",
                vec![event("message", "no space", None), event("message", "second", None)],
            ),
            ("event: resync_required\ndata: {}\n", vec![]),
        ];
        for (input, want) in cases {
            assert_eq!(SseParser::new().feed(input.as_bytes()), want, "{input:?}");
        }
        let mut parser = SseParser::new();
        parser.feed(b"id: c1.9\ndata: x\n\n");
        assert_eq!(parser.last_event_id.as_deref(), Some("c1.9"));
    }

    proptest! {
        /// However the bytes are split into chunks, the same events come out.
        #[test]
        fn chunking_does_not_matter(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let stream = "event: changes\r\nid: c1.1\r\ndata: {\"x\": [1, 2]}\r\n\r\n: keep-alive\n\nevent: heartbeat\ndata: {}\n\n";
            let whole = SseParser::new().feed(stream.as_bytes());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % stream.len()).collect();
            cuts.sort_unstable();
            let mut parser = SseParser::new();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                got.extend(parser.feed(&stream.as_bytes()[from..cut]));
                from = cut;
            }
            prop_assert_eq!(got, whole);
        }
    }
}
