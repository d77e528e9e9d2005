//! Liveness and readiness, as `/healthz`, `/readyz` and the systemd watchdog see them.
//!
//! Live: the poller and the dispatcher made progress recently; a wedged runtime stops
//! both, and a restart is the cure. A platform outage does not make the daemon
//! unlive: an attempted discovery pass counts as progress, because restarting would not
//! bring Genesys back.
//! Ready: a token was obtained, the ledger is open, the sink answered its last check.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct Health {
    pub token: AtomicBool,
    pub ledger: AtomicBool,
    pub sink: AtomicBool,
    poller_at: AtomicI64,
    dispatcher_at: AtomicI64,
    /// Longest time without progress that still counts as live.
    stall: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Health {
    pub fn new(poll_interval: Duration) -> Self {
        let now = now_ms();
        Self {
            token: AtomicBool::new(false),
            ledger: AtomicBool::new(false),
            sink: AtomicBool::new(false),
            poller_at: AtomicI64::new(now),
            dispatcher_at: AtomicI64::new(now),
            // A pass may legitimately take a while on a large window; three intervals, at least 2 minutes.
            stall: (poll_interval * 3).max(Duration::from_secs(120)),
        }
    }

    pub fn poller_progress(&self) {
        self.poller_at.store(now_ms(), Ordering::Relaxed);
    }

    pub fn dispatcher_progress(&self) {
        self.dispatcher_at.store(now_ms(), Ordering::Relaxed);
    }

    pub fn live(&self) -> Result<(), String> {
        let now = now_ms();
        let stall = self.stall.as_millis() as i64;
        for (what, at) in [("poller", &self.poller_at), ("workers", &self.dispatcher_at)] {
            let idle = now - at.load(Ordering::Relaxed);
            if idle > stall {
                return Err(format!("{what} made no progress for {} s", idle / 1000));
            }
        }
        Ok(())
    }

    pub fn ready(&self) -> Result<(), String> {
        let missing: Vec<&str> = [
            ("no token obtained yet", &self.token),
            ("ledger not open", &self.ledger),
            ("sink not answering", &self.sink),
        ]
        .iter()
        .filter(|(_, flag)| !flag.load(Ordering::Relaxed))
        .map(|(what, _)| *what)
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_all_three() {
        let h = Health::new(Duration::from_secs(60));
        assert!(h.ready().unwrap_err().contains("sink"));
        h.token.store(true, Ordering::Relaxed);
        h.ledger.store(true, Ordering::Relaxed);
        assert_eq!(h.ready(), Err("sink not answering".into()));
        h.sink.store(true, Ordering::Relaxed);
        assert!(h.ready().is_ok());
        assert!(h.live().is_ok());
        h.poller_at.store(now_ms() - 10 * 60 * 1000, Ordering::Relaxed);
        assert!(h.live().unwrap_err().contains("poller"));
    }
}
