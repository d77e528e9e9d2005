//! `[telemetry]`: logs and the operations listener, validated.

use super::raw::RawTelemetry;
use super::settings::ConfigError;
use super::settings::TelemetrySettings;
use crate::telemetry::LogFormat;

pub(super) fn validate_telemetry(raw: RawTelemetry) -> Result<TelemetrySettings, ConfigError> {
    let log_format = match raw.log_format.as_deref() {
        None => LogFormat::detect(),
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => {
            return Err(ConfigError::new(
                "telemetry.log_format",
                format!("`{other}` is not one of json, text"),
            ));
        }
    };
    let log_level = raw.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(ConfigError::new(
            "telemetry.log_level",
            format!("`{log_level}` is not a log filter like \"info\""),
        ));
    }
    let metrics_listen = match raw.metrics_listen.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(addr) => Some(addr.parse().map_err(|_| {
            ConfigError::new(
                "telemetry.metrics_listen",
                format!("`{addr}` is not an address like 0.0.0.0:9464"),
            )
        })?),
    };
    Ok(TelemetrySettings {
        log_format,
        log_level,
        metrics_listen,
    })
}
