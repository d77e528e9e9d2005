//! genesys-archiver: copies every screen recording of a Genesys Cloud organization into
//! S3, within the platform's shared rate budget.
//!
//! Component map:
//! - [`config`]: TOML + environment, validated into [`config::Settings`] before anything starts.
//! - [`telemetry`]: structured logs (JSON or text); [`metrics`]: Prometheus families;
//!   [`health`], [`http`]: `/metrics`, `/healthz`, `/readyz`; [`systemd`]: READY/STOPPING/watchdog;
//!   [`progress`]: the beacons that real work ticks, which liveness reads.
//! - [`ratelimit`]: the shared request budget: per-token and per-endpoint scopes,
//!   one cooldown per scope, pace learned from `inin-ratelimit-*` headers and 429s.
//! - [`retry`]: whether to retry (classifier), when (Retry-After, full-jitter backoff).
//! - [`genesys`]: the client (auth, one method per endpoint, media downloads), its
//!   payload models and the media host policy.
//! - [`ledger`]: the durable state of every recording (SQLite), and the work queue.
//! - [`manifest`]: the daily manifests that prove an org's archive complete, chained.
//! - [`sink`]: S3 (streaming multipart) and file sinks, the key layout, the byte tally.
//! - [`pipeline`]: poller (discovery), dispatcher (worker slots), worker (one recording).
//! - [`reconcile`]: Genesys, the ledger and the bucket compared for a range.
//! - [`app`]: wiring and crash recovery; [`commands`] and [`demo`]: what the CLI runs.
//!
//! The simulator of the platform is a crate of its own (`genesys-sim`), which knows
//! nothing of this one; only [`demo`], [`loadtest`] and the `sim` command use it.

pub mod allocator;
pub mod app;
pub mod commands;
pub mod config;
pub mod demo;
pub mod download;
pub mod endpoint;
pub mod genesys;
pub mod health;
pub mod hex;
pub mod http;
pub mod ledger;
pub mod loadtest;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod ratelimit;
pub mod reconcile;
pub mod retry;
pub mod sink;
pub mod systemd;
pub mod telemetry;
pub mod untrusted;
