//! systemd notifications (`Type=notify`): READY, STOPPING and watchdog pings.
//!
//! Written against the protocol (a datagram to `$NOTIFY_SOCKET`) rather than a crate.
//! When `NOTIFY_SOCKET` is unset (a container, a terminal) every call does nothing, so
//! the same binary runs everywhere.

use crate::health::Health;
use std::sync::Arc;
use std::time::Duration;

/// Sends one notification; silently nothing outside systemd.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let path = path.to_string_lossy().into_owned();
        let address = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        let sent = UnixDatagram::unbound().and_then(|socket| socket.send_to_addr(state.as_bytes(), &address?));
        if let Err(error) = sent {
            tracing::warn!(message = "Could not notify systemd.", %error);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (path, state);
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog at half its interval, but only while the daemon is live: a
/// stalled poll loop stops the pings and systemd restarts the service.
pub async fn watchdog(health: Arc<Health>) {
    let Some(interval) = watchdog_interval() else { return };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        match health.live() {
            Ok(()) => notify("WATCHDOG=1"),
            Err(reason) => tracing::error!(message = "Not live; withholding the watchdog ping.", reason = %reason),
        }
    }
}
