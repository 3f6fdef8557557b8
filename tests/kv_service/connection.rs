//! A framed connection over any byte stream.

use agentprof::profiled;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::protocol::{Codec, Frame, ProtocolError};

pub struct Connection<S> {
    stream: BufReader<S>,
    codec: Box<dyn Codec>,
    line: String,
    out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    #[profiled]
    pub fn new(stream: S, codec: Box<dyn Codec>) -> Self {
        Self {
            stream: BufReader::new(stream),
            codec,
            line: String::new(),
            out: Vec::new(),
        }
    }

    /// The next frame, or `None` when the peer closed the connection.
    #[profiled]
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn read_frame(
        &mut self,
    ) -> Result<Option<Frame>, Box<dyn std::error::Error + Send + Sync>> {
        self.line.clear();
        if self.stream.read_line(&mut self.line).await? == 0 {
            return Ok(None);
        }
        let frame = self
            .codec
            .decode(&self.line)
            .map_err(|e: ProtocolError| Box::new(e))?;
        Ok(Some(frame))
    }

    #[profiled]
    #[tracing::instrument(level = "debug", skip(self, frame))]
    pub async fn write_frame(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.out.clear();
        self.codec.encode(frame, &mut self.out);
        self.stream.get_mut().write_all(&self.out).await?;
        self.stream.get_mut().flush().await
    }
}
