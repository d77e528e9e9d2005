//! A floor under download throughput.
//!
//! The media client's read timeout catches a host that goes silent, but not one that
//! trickles a byte every few seconds: that download would hold a worker (and its
//! multipart upload) for days. This stream counts the bytes of each window and ends the
//! download with [`DownloadError::TooSlow`] when a whole window fell short of the minimum, so
//! the sink aborts and the recording is retried later. The window runs on tokio's clock,
//! so tests drive it with paused time.

use crate::download::{ByteStream, DownloadError};
use bytes::Bytes;
use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Every download is judged over this window: long enough that a pause of a few
/// seconds (a GC, a TCP retransmit) does not count, short enough to free a worker soon.
pub const WINDOW: Duration = Duration::from_secs(60);

struct Paced {
    inner: ByteStream,
    /// Bytes per second averaged over the window.
    minimum: u64,
    window: Duration,
    deadline: Pin<Box<Sleep>>,
    in_window: u64,
    finished: bool,
}

/// Wraps `inner` so that it fails when a window of `window` brings fewer than
/// `minimum` bytes per second; `minimum == 0` returns it unchanged.
pub fn paced(inner: ByteStream, minimum: u64, window: Duration) -> ByteStream {
    if minimum == 0 {
        return inner;
    }
    Box::pin(Paced {
        inner,
        minimum,
        window,
        deadline: Box::pin(tokio::time::sleep(window)),
        in_window: 0,
        finished: false,
    })
}

impl Stream for Paced {
    type Item = Result<Bytes, DownloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        // Data already there wins over the deadline: a fast host is never cut off by a
        // window that closed while its chunk waited to be read.
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.in_window += chunk.len() as u64;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(other) => {
                self.finished = true;
                return Poll::Ready(other);
            }
            Poll::Pending => {}
        }
        while self.deadline.as_mut().poll(cx).is_ready() {
            let needed = self.minimum.saturating_mul(self.window.as_secs().max(1));
            if self.in_window < needed {
                self.finished = true;
                return Poll::Ready(Some(Err(DownloadError::TooSlow {
                    received: self.in_window,
                    window_s: self.window.as_secs(),
                    minimum: self.minimum,
                })));
            }
            self.in_window = 0;
            let next = Instant::now() + self.window;
            self.deadline.as_mut().reset(next);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// `chunks` chunks of `size` bytes, one every `every`, then the end.
    fn host(chunks: usize, size: usize, every: Duration) -> ByteStream {
        futures_util::stream::iter(0..chunks)
            .then(move |_| async move {
                tokio::time::sleep(every).await;
                Ok(Bytes::from(vec![0u8; size]))
            })
            .boxed()
    }

    async fn drain(mut stream: ByteStream) -> (u64, Option<DownloadError>) {
        let mut bytes = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => bytes += chunk.len() as u64,
                Err(e) => return (bytes, Some(e)),
            }
        }
        (bytes, None)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_host_is_cut_off_after_a_window() {
        // 100 bytes every 10 s: 600 bytes a minute, far below 1 KiB/s.
        let started = Instant::now();
        let (bytes, error) = drain(paced(host(10_000, 100, Duration::from_secs(10)), 1024, WINDOW)).await;
        assert!(
            matches!(error, Some(DownloadError::TooSlow { minimum: 1024, .. })),
            "{error:?}"
        );
        assert!(bytes <= 600, "{bytes}");
        assert_eq!(started.elapsed(), WINDOW, "judged at the first window's end");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_host_is_cut_off_too() {
        let silent: ByteStream = futures_util::stream::pending().boxed();
        let (bytes, error) = drain(paced(silent, 1, WINDOW)).await;
        assert_eq!(bytes, 0);
        assert!(matches!(error, Some(DownloadError::TooSlow { received: 0, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_host_finishes() {
        // 64 KiB a second for ten minutes against a 16 KiB/s floor.
        let (bytes, error) = drain(paced(host(600, 64 * 1024, Duration::from_secs(1)), 16 * 1024, WINDOW)).await;
        assert_eq!(error, None);
        assert_eq!(bytes, 600 * 64 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_turns_the_floor_off() {
        let (bytes, error) = drain(paced(host(3, 1, Duration::from_secs(3600)), 0, WINDOW)).await;
        assert_eq!((bytes, error), (3, None));
    }
}
