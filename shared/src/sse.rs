//! A parser for Server-Sent Events as the coordinator sends them (`id`, `event`, `data`
//! fields, blank-line separated), for clients such as `drover tail` and the tests.

/// One event of an SSE stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    /// `message` when the server named no type.
    pub event: String,
    pub data: String,
}

/// Accumulates chunks of an SSE body and yields whole events.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes, not text: a chunk may end inside a multi-byte character.
    buffer: Vec<u8>,
}

impl SseParser {
    /// Adds a chunk of the body; returns the events it completed (keep-alive comments
    /// are skipped).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            if let Some(event) = parse_block(&String::from_utf8_lossy(&block)) {
                events.push(event);
            }
        }
        events
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        event: "message".to_owned(),
        data: String::new(),
    };
    let mut has_data = false;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = Some(value.to_owned()),
            "event" => event.event = value.to_owned(),
            "data" => {
                if has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                has_data = true;
            }
            _ => {} // comments (empty field name) and unknown fields
        }
    }
    has_data.then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"id: 1\nevent: log\nda").is_empty());
        let events =
            parser.push(b"ta: {\"a\":1}\n\n:keep-alive\n\nevent: end\ndata: x\ndata: y\n\n");
        assert_eq!(
            events,
            [
                SseEvent {
                    id: Some("1".into()),
                    event: "log".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: None,
                    event: "end".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }

    #[test]
    fn a_character_split_between_chunks_survives() {
        let mut parser = SseParser::default();
        let text = "data: é\n\n".as_bytes();
        assert!(parser.push(&text[..7]).is_empty());
        let events = parser.push(&text[7..]);
        assert_eq!(events[0].data, "é");
    }
}
