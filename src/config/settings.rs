//! Checked settings: what the rest of the daemon reads.
//!
//! [`Settings::validate`] is the only way to build them, so a value that reaches a
//! component has already been checked. A bad value is reported as one line that names
//! the key (`genesys.client_id: must be set`), before any work starts.

use super::raw::RawConfig;
pub use crate::genesys::settings::{ConversationPath, GenesysSettings, RecordingPath, encode_segment};
pub use crate::ledger::store::LedgerBackend;
pub use crate::pipeline::settings::{DiscoverySettings, FetchMode, WorkerSettings};
pub use crate::ratelimit::settings::{LimitSettings, SharedBudgetSettings};
pub use crate::retry::settings::RetrySettings;
use crate::sink::layout::KeyLayout;
pub use crate::sink::settings::{MIN_PART_SIZE, S3Settings, Sse};
use crate::telemetry::LogFormat;
use reqwest::Url;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::discovery::validate_discovery;
use super::genesys::validate_genesys;
use super::ledger::{lookback, validate_ledger};
pub use super::limits::DOCUMENTED_TOKEN_BUDGET;
use super::limits::{validate_limits, validate_retry};
use super::sink::validate_sink;
use super::telemetry::validate_telemetry;
use super::workers::validate_workers;

/// A configuration value that cannot be used, with the key that holds it and, when
/// the value came from the environment, the variable that set it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("config key `{key}`{}: {message}", where_from(.variable, .file))]
pub struct ConfigError {
    pub key: String,
    pub message: String,
    /// `GENESYS_ARCHIVER__SECTION__KEY`, when the bad value came from it.
    pub variable: Option<String>,
    /// The file the bad value is in, when known.
    pub file: Option<String>,
    /// A required key without a value: the message says where it can be set.
    pub unset: bool,
}

fn where_from(variable: &Option<String>, file: &Option<String>) -> String {
    match (variable, file) {
        (Some(variable), _) => format!(" (set by the environment variable {variable})"),
        (None, Some(file)) => format!(" in {file}"),
        (None, None) => String::new(),
    }
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            variable: None,
            file: None,
            unset: false,
        }
    }

    /// A required key that has no value; `message` starts with "must be set".
    pub fn unset(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            unset: true,
            ..Self::new(key, message)
        }
    }
}

/// Everything the daemon needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The orgs served: the one org of a single-org file, else every `[[orgs]]` entry
    /// and `orgs_dir` file.
    pub orgs: Vec<OrgSettings>,
    /// Where the org set comes from, to read it again without a restart.
    pub org_source: OrgSource,
    pub retry: RetrySettings,
    pub workers: WorkerSettings,
    pub ledger: LedgerSettings,
    pub telemetry: TelemetrySettings,
}

/// What one org is served with: its own platform, budget, discovery and destination.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    /// [`super::orgs::SINGLE_ORG`] for a single-org file.
    pub name: String,
    pub genesys: GenesysSettings,
    pub limits: LimitSettings,
    pub discovery: DiscoverySettings,
    /// `{org}` is filled in; `{orgId}` is filled in at start, from the platform.
    pub sink: SinkSettings,
    /// The key template or S3 prefix named `{org}` or `{orgId}`: orgs that share a
    /// bucket keep their keys apart.
    pub keys_by_org: bool,
    /// The retention hand-off to Genesys, when configured.
    pub retention: Option<crate::pipeline::handoff::HandoffSettings>,
}

/// Where the org set comes from.
#[derive(Debug, Clone)]
pub struct OrgSource {
    /// The shared sections every org entry is laid over.
    pub defaults: super::orgs::OrgSections,
    /// The `[[orgs]]` entries of the main file (they change only with a restart).
    pub entries: Vec<super::raw::RawOrg>,
    pub dir: Option<PathBuf>,
    /// How often `dir` is read again; SIGHUP reads it at once.
    pub reload_interval: Duration,
}

impl OrgSource {
    /// The file has `[[orgs]]` or `orgs_dir` (else: one org, from the top level).
    pub fn is_multi(&self) -> bool {
        !self.entries.is_empty() || self.dir.is_some()
    }

    /// Reads and checks the org set again (at start, on SIGHUP, every
    /// `reload_interval`): the main file's entries and every file of `dir`.
    pub fn read(&self) -> Result<Vec<OrgSettings>, ConfigError> {
        use super::orgs::{OrgEntry, org_files, read_org_file, validate_all};
        let d = &self.defaults;
        if !self.is_multi() {
            return Ok(vec![validate_org_parts(super::orgs::SINGLE_ORG, d.clone())?]);
        }
        let mut entries: Vec<OrgEntry> = self
            .entries
            .iter()
            .cloned()
            .map(|raw| OrgEntry { raw, file: None })
            .collect();
        if let Some(dir) = &self.dir {
            for file in org_files(dir)? {
                entries.push(read_org_file(&file)?);
            }
        }
        validate_all(d, entries)
    }
}

/// The error of the shared section that `key` belongs to, checked alone.
pub(crate) fn shared_section_error(key: &str, d: &super::orgs::OrgSections) -> Option<ConfigError> {
    let section = key.split('.').next().unwrap_or_default();
    match section {
        "genesys" => validate_genesys(d.genesys.clone()).err(),
        "limits" => validate_limits(d.limits.clone()).err(),
        "discovery" => validate_discovery(d.discovery.clone()).err(),
        "s3" | "sink" => validate_sink(d.sink.clone(), d.s3.clone()).err(),
        "retention" => validate_sink(d.sink.clone(), d.s3.clone())
            .and_then(|sink| super::retention::validate(&d.retention, &sink))
            .err(),
        _ => None,
    }
}

/// Checks one org's sections (already laid over the shared ones) and fills `{org}` in.
pub fn validate_org_parts(name: &str, sections: super::orgs::OrgSections) -> Result<OrgSettings, ConfigError> {
    let genesys = validate_genesys(sections.genesys)?;
    let limits = validate_limits(sections.limits)?;
    let discovery = validate_discovery(sections.discovery)?;
    let mut sink = validate_sink(sections.sink, sections.s3)?;
    let retention = super::retention::validate(&sections.retention, &sink)?;
    let prefix_names_org =
        matches!(&sink.kind, SinkKind::S3(s3) if s3.prefix.contains("{org}") || s3.prefix.contains("{orgId}"));
    let keys_by_org = sink.layout.names_org() || prefix_names_org;
    if sink.layout.names_org() && !prefix_names_org && !sink.manifest_key.names_org() {
        // The recordings' keys differ by org, the prefix does not: the daily manifests
        // go under the org too, or orgs sharing a bucket would share them.
        let placeholder = if sink.layout.needs_org_id() { "{orgId}" } else { "{org}" };
        sink.manifest_key = sink.manifest_key.under(placeholder);
    }
    sink.layout = sink.layout.with_org(name);
    sink.manifest_key = sink.manifest_key.with_org(name);
    if let SinkKind::S3(s3) = &mut sink.kind {
        s3.prefix = s3.prefix.replace("{org}", name);
    }
    Ok(OrgSettings {
        name: name.to_owned(),
        genesys,
        limits,
        discovery,
        sink,
        keys_by_org,
        retention,
    })
}

#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_level: String,
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// A SQLite file (`path`) or a shared PostgreSQL database (`url`).
    pub backend: LedgerBackend,
    /// Archived and parked recordings (and settled conversations) that started longer
    /// ago are pruned: a ledger must not grow without end (~550 bytes a recording).
    pub retain: Duration,
}

impl OrgSettings {
    /// Whether a key, the prefix or the manifests' template names `{orgId}`, which only
    /// Genesys can tell (`GET /api/v2/organizations/me`).
    pub fn needs_org_id(&self) -> bool {
        self.sink.layout.needs_org_id()
            || self.sink.manifest_key.needs_org_id()
            || matches!(&self.sink.kind, SinkKind::S3(s3) if s3.prefix.contains("{orgId}"))
    }
}

/// Where recordings go, and under which keys.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub kind: SinkKind,
    pub layout: KeyLayout,
    /// Where the daily manifests go.
    pub manifest_key: crate::manifest::key::ManifestKey,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    S3(Box<S3Settings>),
    File { directory: PathBuf },
}

/// Parses `"8MiB"`, `"5 MB"`, `"1048576"` into bytes.
pub fn parse_size(key: &str, value: &str) -> Result<u64, ConfigError> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return Err(ConfigError::new(key, format!("`{value}` is not a size like \"8MiB\""))),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| ConfigError::new(key, format!("`{value}` is not a size like \"8MiB\"")))
}

/// What the commands that only read or edit the ledger (`status`, `list`, `retry`)
/// need: an operator can run them without the Genesys credentials or the bucket.
#[derive(Debug, Clone)]
pub struct LedgerPart {
    pub ledger: LedgerSettings,
    pub telemetry: TelemetrySettings,
}

impl LedgerPart {
    /// Checks `[ledger]` and `[telemetry]` only; other sections may be absent.
    pub fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            ledger: validate_ledger(raw.ledger, lookback(raw.discovery.lookback.as_deref())?)?,
            telemetry: validate_telemetry(raw.telemetry)?,
        })
    }
}

impl Settings {
    /// Checks every value and builds the settings; the first problem found is returned.
    pub fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let org_source = OrgSource {
            defaults: super::orgs::OrgSections {
                genesys: raw.genesys,
                limits: raw.limits,
                discovery: raw.discovery,
                s3: raw.s3,
                sink: raw.sink,
                retention: raw.retention,
            },
            entries: raw.orgs,
            dir: match raw.orgs_dir {
                Some(d) if d.trim().is_empty() => return Err(ConfigError::new("orgs_dir", "must not be empty")),
                d => d.map(PathBuf::from),
            },
            reload_interval: duration_or(
                "orgs_reload_interval",
                raw.orgs_reload_interval.as_deref(),
                Duration::from_secs(60),
            )?,
        };
        if org_source.reload_interval < Duration::from_secs(1) {
            return Err(ConfigError::new("orgs_reload_interval", "must be at least 1s"));
        }
        let orgs = org_source.read()?;
        let retry = validate_retry(raw.retry)?;
        let workers = validate_workers(raw.workers)?;
        // Rows younger than any org's lookback must stay.
        let shared_lookback = lookback(org_source.defaults.discovery.lookback.as_deref())?;
        let longest = orgs
            .iter()
            .map(|o| o.discovery.lookback)
            .max()
            .unwrap_or(shared_lookback);
        Ok(Self {
            ledger: validate_ledger(raw.ledger, longest)?,
            orgs,
            org_source,
            retry,
            workers,
            telemetry: validate_telemetry(raw.telemetry)?,
        })
    }

    /// The first org: the only one of a single-org file.
    pub fn first_org(&self) -> &OrgSettings {
        &self.orgs[0]
    }
}

/// Parses a human duration such as `"60s"`, `"2h"` or `"500ms"`.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim())
        .map_err(|e| ConfigError::new(key, format!("`{value}` is not a duration like \"60s\" or \"2h\" ({e})")))
}

pub(super) fn duration_or(key: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    value.map_or(Ok(default), |v| parse_duration(key, v))
}

pub(super) fn parse_base_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::new(key, format!("`{value}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(key, "must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(key, "must be a base URL without query or fragment"));
    }
    // A path is a prefix (an API gateway, the multi-org simulator's `/orgs/NAME`):
    // kept with a trailing slash, so `oauth/token` and the API paths go below it.
    let mut url = url;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("k", "8MiB").unwrap(), 8 * 1024 * 1024);
        assert_eq!(parse_size("k", "5 MB").unwrap(), 5 * 1024 * 1024);
        assert_eq!(parse_size("k", "1048576").unwrap(), 1048576);
        assert!(parse_size("k", "8 parsecs").is_err());
        assert!(parse_size("k", "MiB").is_err());
    }

    #[test]
    fn recording_path_needs_both_placeholders_once() {
        assert!(RecordingPath::parse(RecordingPath::DEFAULT).is_ok());
        assert!(RecordingPath::parse("/api/v2/screen-recordings/{recordingId}").is_err());
        assert!(RecordingPath::parse("api/{conversationId}/{recordingId}").is_err());
        assert!(RecordingPath::parse("/{conversationId}/{recordingId}?x=1").is_err());
    }

    #[test]
    fn ids_cannot_change_the_path_shape() {
        let path = RecordingPath::parse(RecordingPath::DEFAULT).unwrap();
        assert_eq!(
            path.render("../../x", "a/b?c"),
            "/api/v2/conversations/..%2F..%2Fx/recordings/a%2Fb%3Fc"
        );
        assert_eq!(path.render("..", "."), "/api/v2/conversations/%2E%2E/recordings/%2E");
    }
}
