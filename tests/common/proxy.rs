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
        let task = {
            let (up, cut, stalled, accepted) = (up.clone(), cut.clone(), stalled.clone(), accepted.clone());
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
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let mut inbound = inbound;
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
            cut,
            task,
        }
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

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
