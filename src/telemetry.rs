//! Logging: one event, one line; JSON for machines, text for a terminal.
//!
//! Logs go to stderr: stdout carries what a command produces (`status --json`,
//! `loadtest --json`, the demo's summary), which a log line must never corrupt; the
//! journal and Kubernetes collect both streams. JSON is the default when stderr is not
//! a terminal, so operators get structured fields (`scope`, `endpoint`, `cooldown_ms`,
//! ...) without configuring anything. `RUST_LOG` filters as usual; the default is `info`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;

/// Whether the installed subscriber writes JSON: then every stderr line must be JSON,
/// so commands report through log events instead of printing text there.
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether logs are JSON (set by [`init`]).
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// JSON unless stderr is a terminal.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// Installs the global subscriber. `level` is used when `RUST_LOG` is not set.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            // Every enclosing span too: a recording's line also names its org (the
            // org span is the recording span's parent).
            .with_span_list(true)
            .try_init(),
        // Colour only for a terminal: a file or a pipe gets no escape codes.
        LogFormat::Text => builder.compact().with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}
