//! Media downloads and proxies: the environment's `HTTP(S)_PROXY` is never used for
//! them (a public proxy would bypass the address check, a private one would make every
//! download refused and parked); `genesys.media_proxy` is, when it is set.
//!
//! One test in its own binary: it sets the process environment.

mod common;

use genesys_archiver::genesys::media::MediaClient;
use genesys_archiver::genesys::media_policy::MediaPolicy;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP server on loopback that answers every request with `hello`.
async fn hello_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                    .await;
            });
        }
    });
    port
}

async fn body(client: &MediaClient, url: &str) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt;
    let mut download = client.open(&url.parse().unwrap()).await.map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    while let Some(chunk) = download.stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_ignore_the_environment_proxy_and_use_the_configured_one() {
    let dead = common::harness::free_port();
    for key in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        // SAFETY: the only test of this binary, before any client is built.
        unsafe { std::env::set_var(key, format!("http://127.0.0.1:{dead}")) };
    }
    let port = hello_server().await;
    let policy = MediaPolicy::new(&["127.0.0.1".into()], true).unwrap();
    let url = format!("http://127.0.0.1:{port}/r.webm");

    // No proxy configured: straight to the media host, the environment's dead proxy
    // unused (before, every download failed on it).
    let direct = MediaClient::new(policy.clone(), Duration::from_secs(5), None).unwrap();
    assert_eq!(body(&direct, &url).await.unwrap(), b"hello");

    // A configured proxy carries the download (a loopback forwarder to the server,
    // which counts the connections it takes).
    let proxy = common::proxy::Proxy::start(format!("127.0.0.1:{port}")).await;
    let configured: reqwest::Url = proxy.url.parse().unwrap();
    let proxied = MediaClient::new(policy, Duration::from_secs(5), Some(&configured)).unwrap();
    assert_eq!(body(&proxied, &url).await.unwrap(), b"hello");
    let through = || proxy.accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(through(), 1, "the download went through the configured proxy");
    assert_eq!(body(&direct, &url).await.unwrap(), b"hello");
    assert_eq!(through(), 1, "and only that one");
}
