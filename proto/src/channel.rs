//! Stream ↔ [`Message`]: reads and writes frames on any async byte stream.
//!
//! The reader checks each length prefix against [`MAX_FRAME`] before allocating, so a
//! hostile length cannot make it reserve memory. No deadlines here: callers wrap calls
//! in their own timeouts.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{self, CodecError, HEADER_LEN, MAX_FRAME};
use crate::msg::Message;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The other side closed the stream between frames.
    #[error("the other side closed the connection")]
    Closed,
    /// The stream ended inside a frame.
    #[error("the connection ended in the middle of a message")]
    Truncated,
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The transport failed.
    #[error("connection error")]
    Io(#[from] std::io::Error),
}

/// A framed message stream over a reader and a writer.
#[derive(Debug)]
pub struct Channel<R, W> {
    reader: R,
    writer: W,
    /// The largest frame body [`Channel::recv`] accepts now.
    limit: usize,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Channel<R, W> {
    /// Frames messages over `reader` and `writer`.
    pub fn new(reader: R, writer: W) -> Self {
        Channel { reader, writer, limit: MAX_FRAME }
    }

    /// Sets the largest frame body this channel accepts from now on (at most
    /// [`MAX_FRAME`]): the handshake lowers it before authentication, so that an
    /// unauthenticated side cannot make the other reserve a megabyte.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_FRAME);
    }

    /// Sends one message and flushes it.
    pub async fn send(&mut self, msg: &Message) -> Result<(), ChannelError> {
        let bytes = codec::encode(msg)?;
        self.writer.write_all(&bytes).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Receives the next message.
    pub async fn recv(&mut self) -> Result<Message, ChannelError> {
        let body = self.recv_body().await?;
        Ok(codec::decode(&body)?)
    }

    /// Receives the next frame body (type byte and message) without decoding it.
    pub async fn recv_body(&mut self) -> Result<Vec<u8>, ChannelError> {
        let mut header = [0u8; HEADER_LEN];
        let first = self.reader.read(&mut header).await?;
        if first == 0 {
            return Err(ChannelError::Closed);
        }
        self.read_exact(&mut header[first..]).await?;
        let len = codec::check_length(header)?;
        if len > self.limit {
            return Err(CodecError::Oversized { len, max: self.limit }.into());
        }
        let mut body = vec![0u8; len];
        self.read_exact(&mut body).await?;
        Ok(body)
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ChannelError> {
        match self.reader.read_exact(buf).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ChannelError::Truncated),
            Err(e) => Err(ChannelError::Io(e)),
        }
    }

    /// Finishes the writing half (graceful end of stream).
    pub async fn shutdown(&mut self) -> Result<(), ChannelError> {
        self.writer.shutdown().await?;
        Ok(())
    }

    /// The underlying reader and writer.
    pub fn into_inner(self) -> (R, W) {
        (self.reader, self.writer)
    }
}

/// One end of an in-memory pipe framed as a channel, for the conversation tests.
#[cfg(test)]
pub(crate) type TestHalf =
    Channel<tokio::io::ReadHalf<tokio::io::DuplexStream>, tokio::io::WriteHalf<tokio::io::DuplexStream>>;

/// Two channels joined by an in-memory pipe.
#[cfg(test)]
pub(crate) fn pipe() -> (TestHalf, TestHalf) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    (Channel::new(ar, aw), Channel::new(br, bw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Ping;

    #[tokio::test]
    async fn messages_cross_a_pipe_and_close_is_reported() {
        let (a, b) = tokio::io::duplex(1024);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let mut left = Channel::new(ar, aw);
        let mut right = Channel::new(br, bw);
        left.send(&Message::Ping(Ping { nonce: 5 })).await.expect("send");
        assert_eq!(right.recv().await.expect("recv"), Message::Ping(Ping { nonce: 5 }));
        left.shutdown().await.expect("shutdown");
        assert!(matches!(right.recv().await, Err(ChannelError::Closed)));
    }

    #[tokio::test]
    async fn a_lowered_limit_refuses_larger_frames_before_reading_them() {
        let (mut a, b) = tokio::io::duplex(1024);
        let (br, bw) = tokio::io::split(b);
        let mut right = Channel::new(br, bw);
        right.set_limit(16);
        a.write_all(&[0, 0, 0, 17]).await.expect("write");
        assert!(matches!(right.recv().await, Err(ChannelError::Codec(CodecError::Oversized { len: 17, max: 16 }))));
    }

    #[tokio::test]
    async fn oversized_prefix_is_refused_and_truncation_reported() {
        let (mut a, b) = tokio::io::duplex(1024);
        let (br, bw) = tokio::io::split(b);
        let mut right = Channel::new(br, bw);
        a.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
        assert!(matches!(right.recv().await, Err(ChannelError::Codec(CodecError::Oversized { .. }))));

        let (mut a, b) = tokio::io::duplex(1024);
        let (br, bw) = tokio::io::split(b);
        let mut right = Channel::new(br, bw);
        a.write_all(&[0, 0, 0, 9, 7]).await.expect("write");
        drop(a);
        assert!(matches!(right.recv().await, Err(ChannelError::Truncated)));
    }
}
