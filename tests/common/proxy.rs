//! A TCP forwarder on loopback that can be taken down and brought back: an S3 (or any)
//! server "stopped" from the daemon's point of view, while the real server keeps its
//! data (moto holds its objects in memory and would lose them if stopped).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    pub url: String,
    up: Arc<AtomicBool>,
    /// Stalled: connections are accepted and held open, and nothing is forwarded
    /// either way (a half-open connection as a broken middlebox leaves it).
    stalled: Arc<AtomicBool>,
    /// Connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    /// Request bodies still to corrupt: one byte flipped in each of the next PUT bodies
    /// of at least 1 KiB, on their way to the server ([`Proxy::corrupt_puts`]).
    corrupt: Arc<std::sync::atomic::AtomicUsize>,
    /// Bodies corrupted so far.
    pub corrupted: Arc<std::sync::atomic::AtomicUsize>,
    /// Cancelled to cut every open connection; replaced when the proxy comes back.
    cut: Arc<std::sync::Mutex<CancellationToken>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards a free loopback port to `target` (`host:port`).
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let corrupt = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let corrupted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = {
            let (up, cut, stalled, accepted) = (up.clone(), cut.clone(), stalled.clone(), accepted.clone());
            let (corrupt, corrupted) = (corrupt.clone(), corrupted.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if !up.load(Ordering::SeqCst) {
                        // Down: the connection is closed at once, as by a stopped server.
                        drop(inbound);
                        continue;
                    }
                    if stalled.load(Ordering::SeqCst) {
                        // Held open, never answered, for as long as the proxy lives.
                        tokio::spawn(async move {
                            let _held = inbound;
                            std::future::pending::<()>().await;
                        });
                        continue;
                    }
                    let token = cut.lock().unwrap().clone();
                    let (target, stalled) = (target.clone(), stalled.clone());
                    let (corrupt, corrupted) = (corrupt.clone(), corrupted.clone());
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let mut inbound = inbound;
                        if corrupt.load(Ordering::SeqCst) > 0 {
                            let (from_client, mut to_client) = inbound.split();
                            let (mut from_server, to_server) = outbound.split();
                            tokio::select! {
                                _ = token.cancelled() => {}
                                _ = forward_corrupting(from_client, to_server, &corrupt, &corrupted) => {}
                                _ = tokio::io::copy(&mut from_server, &mut to_client) => {}
                            }
                            return;
                        }
                        tokio::select! {
                            _ = token.cancelled() => {
                                if stalled.load(Ordering::SeqCst) {
                                    // Stalled mid-exchange: both ends stay open, silent.
                                    let _held = (inbound, outbound);
                                    std::future::pending::<()>().await;
                                }
                            }
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        }
                    });
                }
            })
        };
        Self {
            url,
            up,
            stalled,
            accepted,
            corrupt,
            corrupted,
            cut,
            task,
        }
    }

    /// Flips one byte in each of the next `n` PUT bodies of at least 1 KiB on
    /// connections opened from now on (a body corrupted between the client's checksum
    /// and the server).
    pub fn corrupt_puts(&self, n: usize) {
        self.corrupt.store(n, Ordering::SeqCst);
    }

    /// Freezes every connection, open or new: accepted, held, never answered. They stay
    /// so for good; after [`Proxy::unstall`] only new connections are forwarded again.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    pub fn unstall(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Copies a client's requests to the server, flipping byte 512 of a PUT body (of at
/// least 1 KiB, by its Content-Length) while `corrupt` is above zero.
async fn forward_corrupting(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    corrupt: &std::sync::atomic::AtomicUsize,
    corrupted: &std::sync::atomic::AtomicUsize,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // A request's head, whole.
        let end = loop {
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let length: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let flip = text.starts_with("put ")
            && length >= 1024
            && corrupt
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let mut body: Vec<u8> = head.split_off(end);
        if to.write_all(&head).await.is_err() {
            return;
        }
        // The body, then whatever came after it (the next request's start).
        let mut sent = 0usize;
        loop {
            let take = body.len().min(length - sent);
            let mut chunk: Vec<u8> = body.drain(..take).collect();
            if flip && sent <= 512 && 512 < sent + chunk.len() {
                chunk[512 - sent] ^= 0xFF;
                corrupted.fetch_add(1, Ordering::SeqCst);
            }
            sent += chunk.len();
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            if sent == length {
                head = body;
                break;
            }
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
