//! The wire protocol: one request or reply per line, fields separated by
//! spaces, values hex-encoded.

use std::fmt;

use agentprof::profiled;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Ping,
    Get(String),
    Set(String, Vec<u8>),
    Del(String),
    Pong,
    Value(Option<Vec<u8>>),
    Done,
    Error(String),
}

#[derive(Debug)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    #[profiled]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Turns frames into bytes and back.
pub trait Codec: Send + Sync {
    fn encode(&self, frame: &Frame, out: &mut Vec<u8>);
    fn decode(&self, line: &str) -> Result<Frame, ProtocolError>;
}

/// The line codec both ends use.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineCodec;

#[profiled]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[profiled]
fn unhex(text: &str) -> Result<Vec<u8>, ProtocolError> {
    if text.len() % 2 != 0 {
        return Err(ProtocolError(format!("odd hex length {}", text.len())));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .map_err(|e| ProtocolError(format!("bad hex {:?}: {e}", &text[i..i + 2])))
        })
        .collect()
}

impl Codec for LineCodec {
    #[profiled]
    fn encode(&self, frame: &Frame, out: &mut Vec<u8>) {
        let line = match frame {
            Frame::Ping => "PING".to_owned(),
            Frame::Get(key) => format!("GET {key}"),
            Frame::Set(key, value) => format!("SET {key} {}", hex(value)),
            Frame::Del(key) => format!("DEL {key}"),
            Frame::Pong => "PONG".to_owned(),
            Frame::Value(Some(value)) => format!("VALUE {}", hex(value)),
            Frame::Value(None) => "NIL".to_owned(),
            Frame::Done => "DONE".to_owned(),
            Frame::Error(message) => format!("ERR {message}"),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }

    #[profiled]
    fn decode(&self, line: &str) -> Result<Frame, ProtocolError> {
        let mut parts = line.trim_end().splitn(3, ' ');
        let verb = parts.next().unwrap_or_default();
        let mut field = |name: &str| {
            parts
                .next()
                .map(str::to_owned)
                .ok_or_else(|| ProtocolError(format!("{verb} without {name}")))
        };
        Ok(match verb {
            "PING" => Frame::Ping,
            "GET" => Frame::Get(field("key")?),
            "SET" => {
                let key = field("key")?;
                Frame::Set(key, unhex(&field("value")?)?)
            }
            "DEL" => Frame::Del(field("key")?),
            "PONG" => Frame::Pong,
            "VALUE" => Frame::Value(Some(unhex(&field("value")?)?)),
            "NIL" => Frame::Value(None),
            "DONE" => Frame::Done,
            "ERR" => Frame::Error(field("message")?),
            other => return Err(ProtocolError(format!("unknown verb {other:?}"))),
        })
    }
}
