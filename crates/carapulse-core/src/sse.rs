//! Reading Server-Sent Events: the frame parser every client in the project uses (the
//! orchestrator following tool logs, `assistantctl exec logs` and `events`, tests, benchmarks).
//! Feed it chunks as they arrive; it returns complete frames. Comment lines (heartbeats) yield a
//! frame with event `:` so callers can see liveness.

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseFrame {
    pub id: Option<String>,
    /// `message` when the frame names none.
    pub event: String,
    /// `data:` lines joined with newlines.
    pub data: String,
}

/// Incremental parser.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: String,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; returns the frames completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseFrame> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        // Normalise CRLF so "\r\n\r\n" ends a frame too.
        if self.buf.contains('\r') {
            self.buf = self.buf.replace("\r\n", "\n");
        }
        let mut frames = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf[..end].to_owned();
            self.buf.drain(..end + 2);
            let mut frame = SseFrame {
                event: "message".into(),
                ..Default::default()
            };
            let mut data: Vec<&str> = Vec::new();
            let mut comment = false;
            for line in block.lines() {
                if line.starts_with(':') {
                    comment = true;
                } else if let Some(v) = line.strip_prefix("id:") {
                    frame.id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("event:") {
                    frame.event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if data.is_empty() && frame.id.is_none() && comment {
                frame.event = ":".into();
            }
            frame.data = data.join("\n");
            frames.push(frame);
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_across_chunks() {
        let mut p = SseParser::new();
        assert!(p.push(b"id: 7\nevent: plan.upd").is_empty());
        let frames = p.push(b"ated\ndata: {\"a\":1}\n\n: heartbeat\n\ndata: x\r\ndata: y\r\n\r\n");
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[0],
            SseFrame {
                id: Some("7".into()),
                event: "plan.updated".into(),
                data: "{\"a\":1}".into()
            }
        );
        assert_eq!(frames[1].event, ":");
        assert_eq!(
            (frames[2].event.as_str(), frames[2].data.as_str()),
            ("message", "x\ny")
        );
    }
}
