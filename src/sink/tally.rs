//! Counts and hashes a download as it streams, and refuses to end it short.
//!
//! The check happens *inside* the stream: when the source ends before its announced
//! length (or runs past it), the stream's last item is an error. The sink therefore
//! sees a failed body and aborts, instead of completing a truncated object that would
//! then need to be found and deleted.

use crate::download::{ByteStream, DownloadError};
use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// What went through the stream.
#[derive(Debug, Default)]
pub struct Tally {
    pub bytes: u64,
    hasher: Sha256,
}

impl Tally {
    /// Hex SHA-256 of everything that went through.
    pub fn sha256(&self) -> String {
        crate::hex::hex(&self.hasher.clone().finalize())
    }
}

struct Tallied {
    inner: ByteStream,
    tally: Arc<Mutex<Tally>>,
    expected: Option<u64>,
    finished: bool,
}

/// Wraps `inner`; `expected` is the announced length, if known.
pub fn tallied(inner: ByteStream, expected: Option<u64>) -> (ByteStream, Arc<Mutex<Tally>>) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stream = Tallied {
        inner,
        tally: tally.clone(),
        expected,
        finished: false,
    };
    (Box::pin(stream), tally)
}

impl Stream for Tallied {
    type Item = Result<Bytes, DownloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                crate::progress::tick();
                let received = {
                    let mut tally = self.tally.lock().unwrap();
                    tally.bytes += chunk.len() as u64;
                    tally.hasher.update(&chunk);
                    tally.bytes
                };
                if let Some(expected) = self.expected.filter(|e| received > *e) {
                    self.finished = true;
                    return Poll::Ready(Some(Err(DownloadError::LengthMismatch { received, expected })));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                self.finished = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.finished = true;
                let received = self.tally.lock().unwrap().bytes;
                match self.expected {
                    Some(expected) if received != expected => {
                        Poll::Ready(Some(Err(DownloadError::LengthMismatch { received, expected })))
                    }
                    _ => Poll::Ready(None),
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn source(parts: &[&'static [u8]]) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>(),
        ))
    }

    #[tokio::test]
    async fn counts_and_hashes() {
        let (mut s, tally) = tallied(source(&[b"ab", b"c"]), Some(3));
        while let Some(item) = s.next().await {
            item.unwrap();
        }
        let t = tally.lock().unwrap();
        assert_eq!(t.bytes, 3);
        assert_eq!(
            t.sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn a_short_body_ends_in_an_error() {
        let (s, _) = tallied(source(&[b"ab"]), Some(5));
        let items: Vec<_> = s.collect().await;
        assert_eq!(
            items.last().unwrap().clone().unwrap_err(),
            DownloadError::LengthMismatch {
                received: 2,
                expected: 5
            }
        );
    }

    #[tokio::test]
    async fn a_long_body_ends_in_an_error() {
        let (s, _) = tallied(source(&[b"abc", b"def"]), Some(4));
        let items: Vec<_> = s.collect().await;
        assert!(matches!(
            items.last().unwrap(),
            Err(DownloadError::LengthMismatch {
                received: 6,
                expected: 4
            })
        ));
    }
}
