//! A download handed to the AWS SDK as a streaming request body.
//!
//! A recording whose length is announced can go to S3 as one PutObject whose body is
//! the download itself: no part buffers, one request instead of a multipart upload's
//! create, parts and complete. The SDK signs such a body as `UNSIGNED-PAYLOAD` (TLS
//! carries the integrity; our own SHA-256 and length check run in the stream).
//!
//! When the download fails mid-way (dropped, truncated, too long), the body's error
//! makes the SDK abandon the request before the announced `Content-Length` is sent, so
//! S3 stores nothing. The SDK reports that as a dispatch failure; the original error is
//! kept here so the worker still sees *why* (an expired URL gets a fresh one).

use crate::download::{ByteStream, DownloadError};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The first error the download produced, if any.
pub type SourceError = Arc<Mutex<Option<DownloadError>>>;

/// Frames handed to the HTTP connection are at least this large when the download has
/// that much ready: a download arrives in chunks of a few KiB, and one write per chunk
/// costs the store a read per chunk.
const FRAME: usize = 256 * 1024;

pub struct StreamedBody {
    /// A `Mutex` only to make the body `Sync`, as the SDK requires; polling takes
    /// `&mut self`, so it is never locked.
    inner: Mutex<ByteStream>,
    length: u64,
    sent: u64,
    error: SourceError,
    /// Chunks gathered towards one frame.
    pending: BytesMut,
    ended: bool,
}

impl StreamedBody {
    /// `length` is the announced size; the stream itself enforces it.
    pub fn new(inner: ByteStream, length: u64) -> (Self, SourceError) {
        let error = SourceError::default();
        let body = Self {
            inner: Mutex::new(inner),
            length,
            sent: 0,
            error: error.clone(),
            pending: BytesMut::new(),
            ended: false,
        };
        (body, error)
    }
}

impl Body for StreamedBody {
    type Data = Bytes;
    type Error = DownloadError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, DownloadError>>> {
        let this = &mut *self;
        let stream = this.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        while !this.ended && this.pending.len() < FRAME {
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) if this.pending.is_empty() && chunk.len() >= FRAME => {
                    this.sent += chunk.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Poll::Ready(Some(Ok(chunk))) => this.pending.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(e))) => {
                    // Never send what was gathered: the body fails as a whole.
                    this.ended = true;
                    this.pending.clear();
                    this.error.lock().unwrap().get_or_insert(e.clone());
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending if this.pending.is_empty() => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        if this.pending.is_empty() {
            return Poll::Ready(None);
        }
        let frame = this.pending.split().freeze();
        this.sent += frame.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length.saturating_sub(self.sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn small_chunks_are_sent_as_larger_frames_and_every_byte_once() {
        let chunks: Vec<Result<Bytes, DownloadError>> = (0..100u8).map(|i| Ok(Bytes::from(vec![i; 10_000]))).collect();
        let (body, error) = StreamedBody::new(Box::pin(futures_util::stream::iter(chunks)), 1_000_000);
        let mut frames = Vec::new();
        let mut body = body;
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert!(frames.len() < 10, "{} frames", frames.len());
        let all: Vec<u8> = frames.concat();
        assert_eq!(all.len(), 1_000_000);
        assert!(
            all.chunks(10_000)
                .enumerate()
                .all(|(i, c)| c.iter().all(|b| *b == i as u8))
        );
        assert!(error.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_failing_download_fails_the_body_and_keeps_its_error() {
        let chunks: Vec<Result<Bytes, DownloadError>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(DownloadError::LengthMismatch {
                received: 3,
                expected: 9,
            }),
        ];
        let (mut body, error) = StreamedBody::new(Box::pin(futures_util::stream::iter(chunks)), 9);
        assert_eq!(body.size_hint().exact(), Some(9));
        // The three bytes before the failure are never handed on.
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());
        assert_eq!(
            *error.lock().unwrap(),
            Some(DownloadError::LengthMismatch {
                received: 3,
                expected: 9
            })
        );
    }
}
