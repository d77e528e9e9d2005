//! Checked settings: what the rest of the daemon reads.
//!
//! [`Settings::validate`] is the only way to build them, so a value that reaches a
//! component has already been checked. A bad value is reported as one line that names
//! the key (`genesys.client_id: must be set`), before any work starts.

use super::raw::{
    RawConfig, RawDiscovery, RawGenesys, RawLedger, RawLimits, RawRetry, RawS3, RawSecret, RawSink, RawTelemetry,
    RawWorkers,
};
use crate::endpoint::Endpoint;
use crate::genesys::media_policy::MediaPolicy;
use crate::genesys::model::{FormatId, SegmentFilter};
pub use crate::genesys::settings::{ConversationPath, GenesysSettings, RecordingPath, encode_segment};
use crate::ledger::postgres::PgSettings;
pub use crate::ledger::store::LedgerBackend;
pub use crate::pipeline::settings::{DiscoverySettings, FetchMode, WorkerSettings};
pub use crate::ratelimit::settings::{LimitSettings, SharedBudgetSettings};
pub use crate::retry::settings::RetrySettings;
use crate::sink::layout::KeyLayout;
pub use crate::sink::settings::{MIN_PART_SIZE, S3Settings, Sse};
use crate::telemetry::LogFormat;
use reqwest::Url;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

fn duration_or(key: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    value.map_or(Ok(default), |v| parse_duration(key, v))
}

fn parse_base_url(key: &str, value: &str) -> Result<Url, ConfigError> {
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

fn validate_genesys(raw: RawGenesys) -> Result<GenesysSettings, ConfigError> {
    let region = raw.region.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(region) = region
        && !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(ConfigError::new(
            "genesys.region",
            format!("`{region}` is not a domain like mypurecloud.com"),
        ));
    }
    let base = |key: &str, explicit: Option<String>, prefix: &str| -> Result<Url, ConfigError> {
        match (explicit, region) {
            (Some(url), _) => parse_base_url(key, &url),
            (None, Some(region)) => parse_base_url(key, &format!("https://{prefix}.{region}")),
            (None, None) => Err(ConfigError::unset(
                "genesys.region",
                "must be set (or set both api_url and login_url)",
            )),
        }
    };
    let api_url = base("genesys.api_url", raw.api_url, "api")?;
    let login_url = base("genesys.login_url", raw.login_url, "login")?;
    let allow_http = raw.allow_http.unwrap_or(false);
    // The secret and every token travel to these: HTTPS with verified certificates
    // (there is no setting to turn verification off), plain HTTP only to loopback in tests.
    for (key, url) in [("genesys.api_url", &api_url), ("genesys.login_url", &login_url)] {
        let host = url.host_str().unwrap_or_default();
        if url.scheme() == "http" && !(allow_http && crate::genesys::media_policy::is_loopback(host)) {
            return Err(ConfigError::new(
                key,
                "must be https (plain http only to a loopback host, with allow_http = true, for tests)",
            ));
        }
    }

    let client_id = raw.client_id.unwrap_or_default().trim().to_owned();
    if client_id.is_empty() {
        return Err(ConfigError::unset("genesys.client_id", "must be set"));
    }
    let client_secret = match (raw.client_secret, raw.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "genesys.client_secret",
                "set either client_secret or client_secret_file, not both",
            ));
        }
        (Some(secret), None) if !secret.0.is_empty() => secret.0,
        (None, Some(path)) => read_secret_file(&path)?,
        _ => {
            return Err(ConfigError::unset(
                "genesys.client_secret",
                "must be set (or client_secret_file)",
            ));
        }
    };

    let recording_path = RecordingPath::parse(raw.recording_path.as_deref().unwrap_or(RecordingPath::DEFAULT))
        .map_err(|m| ConfigError::new("genesys.recording_path", m))?;
    let recordings_path = ConversationPath::parse(raw.recordings_path.as_deref().unwrap_or(ConversationPath::DEFAULT))
        .map_err(|m| ConfigError::new("genesys.recordings_path", m))?;
    let format_id = raw
        .format_id
        .as_deref()
        .unwrap_or("WEBM")
        .parse::<FormatId>()
        .map_err(|m| ConfigError::new("genesys.format_id", m))?;

    let hosts = raw.media_hosts.unwrap_or_else(|| match region {
        Some(region) => vec![format!("*.{region}"), "*.amazonaws.com".to_owned()],
        None => Vec::new(),
    });
    let media = MediaPolicy::new(&hosts, allow_http).map_err(|m| ConfigError::new("genesys.media_hosts", m))?;
    let media_proxy = match raw.media_proxy.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(value) => {
            let url = Url::parse(value)
                .map_err(|e| ConfigError::new("genesys.media_proxy", format!("`{value}` is not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ConfigError::new(
                    "genesys.media_proxy",
                    "must be an http(s) URL with a host",
                ));
            }
            Some(url)
        }
    };

    let request_timeout = duration_or(
        "genesys.request_timeout",
        raw.request_timeout.as_deref(),
        Duration::from_secs(30),
    )?;
    if request_timeout.is_zero() {
        return Err(ConfigError::new("genesys.request_timeout", "must be more than zero"));
    }
    let list_max_wait = duration_or(
        "genesys.list_max_wait",
        raw.list_max_wait.as_deref(),
        Duration::from_secs(5),
    )?;
    if list_max_wait + Duration::from_secs(5) > request_timeout {
        return Err(ConfigError::new(
            "genesys.list_max_wait",
            "must be at least 5s shorter than genesys.request_timeout",
        ));
    }
    let max_response_bytes = raw.max_response_bytes.unwrap_or(16 * 1024 * 1024);
    if max_response_bytes < 1024 {
        return Err(ConfigError::new("genesys.max_response_bytes", "must be at least 1024"));
    }
    Ok(GenesysSettings {
        media_proxy,
        api_url,
        login_url,
        client_id,
        client_secret: SecretString::from(client_secret),
        recording_path,
        recordings_path,
        list_max_wait,
        format_id,
        media,
        request_timeout,
        max_response_bytes,
    })
}

fn read_secret_file(path: &str) -> Result<String, ConfigError> {
    read_secret_file_for("genesys.client_secret_file", path)
}

/// A secret kept alone in a file (a systemd credential, a mounted Secret), `key` naming
/// the key that points at it.
fn read_secret_file_for(key: &str, path: &str) -> Result<String, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::new(key, format!("cannot read `{path}`: {e}")))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        return Err(ConfigError::new(key, format!("`{path}` is empty")));
    }
    Ok(secret)
}

fn validate_limits(raw: RawLimits) -> Result<LimitSettings, ConfigError> {
    use super::raw::RawRate;
    let key = "limits.requests_per_minute";
    let (token_budget, auto_budget) = match raw.requests_per_minute {
        None => (DOCUMENTED_TOKEN_BUDGET, true),
        Some(RawRate::Word(w)) if w.trim().eq_ignore_ascii_case("auto") => (DOCUMENTED_TOKEN_BUDGET, true),
        Some(RawRate::Word(w)) => match w.trim().parse::<i64>() {
            Ok(n) => (positive_rate(key, n)?, false),
            Err(_) => return Err(ConfigError::new(key, format!("`{w}` is neither a number nor \"auto\""))),
        },
        Some(RawRate::Number(n)) => (positive_rate(key, n)?, false),
    };
    let window = duration_or("limits.window", raw.window.as_deref(), Duration::from_secs(60))?;
    if window < Duration::from_millis(100) {
        return Err(ConfigError::new("limits.window", "must be at least 100ms"));
    }
    let target_utilization = raw.target_utilization.unwrap_or(0.98);
    if !(0.5..=1.0).contains(&target_utilization) {
        return Err(ConfigError::new(
            "limits.target_utilization",
            "must be between 0.5 and 1.0",
        ));
    }
    let mut endpoint_budgets = Endpoint::ALL.map(|e| (e, None));
    for (name, budget) in raw.endpoints {
        let key = format!("limits.endpoints.{name}");
        let Some(slot) = endpoint_budgets.iter_mut().find(|(e, _)| e.as_str() == name) else {
            return Err(ConfigError::new(
                key,
                format!(
                    "unknown endpoint (known: {})",
                    Endpoint::ALL.map(Endpoint::as_str).join(", ")
                ),
            ));
        };
        if budget == 0 {
            return Err(ConfigError::new(key, "must be at least 1"));
        }
        slot.1 = Some(budget);
    }
    let replicas = raw.replicas.unwrap_or(3);
    if replicas == 0 {
        return Err(ConfigError::new("limits.replicas", "must be at least 1"));
    }
    let shared = match raw.shared {
        Some(RawSecret(url)) => {
            let url = url.trim().to_owned();
            // TLS to Redis is not built in (a second TLS stack in the build for a
            // connection that stays inside the cluster); a TLS sidecar can front it.
            if !url.starts_with("redis://") {
                return Err(ConfigError::new(
                    "limits.shared",
                    "must be a URL like redis://host:6379/",
                ));
            }
            redis::Client::open(url.as_str())
                .map_err(|e| ConfigError::new("limits.shared", format!("not a Redis URL: {e}")))?;
            Some(SharedBudgetSettings {
                url: url.into(),
                replicas,
            })
        }
        None if raw.replicas.is_some() => {
            return Err(ConfigError::new(
                "limits.replicas",
                "applies to a shared budget (limits.shared) only",
            ));
        }
        None => None,
    };
    Ok(LimitSettings {
        token_budget,
        auto_budget,
        window,
        target_utilization,
        endpoint_budgets,
        shared,
    })
}

/// The per-token limit Genesys documents (`client.credentials.token.rate.per.minute`).
pub const DOCUMENTED_TOKEN_BUDGET: u32 = 300;

fn positive_rate(key: &str, n: i64) -> Result<u32, ConfigError> {
    u32::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError::new(key, format!("{n} must be a whole number of at least 1 (or \"auto\")")))
}

fn validate_retry(raw: RawRetry) -> Result<RetrySettings, ConfigError> {
    let d = RetrySettings::default();
    let settings = RetrySettings {
        base: duration_or("retry.base", raw.base.as_deref(), d.base)?,
        cap: duration_or("retry.cap", raw.cap.as_deref(), d.cap)?,
        max_elapsed: duration_or("retry.max_elapsed", raw.max_elapsed.as_deref(), d.max_elapsed)?,
        max_attempts: raw.max_attempts.unwrap_or(d.max_attempts),
    };
    if settings.base.is_zero() {
        return Err(ConfigError::new("retry.base", "must be more than zero"));
    }
    if settings.cap < settings.base {
        return Err(ConfigError::new("retry.cap", "must not be less than retry.base"));
    }
    if settings.max_attempts == 0 {
        return Err(ConfigError::new("retry.max_attempts", "must be at least 1"));
    }
    Ok(settings)
}

fn validate_workers(raw: RawWorkers) -> Result<WorkerSettings, ConfigError> {
    let count = raw.count.unwrap_or(8);
    if !(1..=256).contains(&count) {
        return Err(ConfigError::new("workers.count", "must be between 1 and 256"));
    }
    let per_org_max = raw.per_org_max.unwrap_or(count);
    if !(1..=count).contains(&per_org_max) {
        return Err(ConfigError::new(
            "workers.per_org_max",
            "must be between 1 and workers.count",
        ));
    }
    let max_attempts = raw.max_attempts.unwrap_or(8);
    if max_attempts == 0 {
        return Err(ConfigError::new("workers.max_attempts", "must be at least 1"));
    }
    let base = duration_or("workers.retry_base", raw.retry_base.as_deref(), Duration::from_secs(30))?;
    let cap = duration_or("workers.retry_cap", raw.retry_cap.as_deref(), Duration::from_secs(3600))?;
    if base.is_zero() {
        return Err(ConfigError::new("workers.retry_base", "must be more than zero"));
    }
    if cap < base {
        return Err(ConfigError::new(
            "workers.retry_cap",
            "must not be less than workers.retry_base",
        ));
    }
    let backoff = RetrySettings {
        base,
        cap,
        max_elapsed: Duration::MAX,
        max_attempts,
    };
    let shutdown_grace = duration_or(
        "workers.shutdown_grace",
        raw.shutdown_grace.as_deref(),
        Duration::from_secs(20),
    )?;
    if shutdown_grace > Duration::from_secs(3600) {
        return Err(ConfigError::new("workers.shutdown_grace", "must be at most 1h"));
    }
    // The platform estimates transcoding in minutes; six hours is two orders of
    // magnitude beyond that (a recording stuck in Genesys, not a slow one), and short
    // enough that it shows up as failed within the operator's shift.
    let max_transcode_wait = duration_or(
        "workers.max_transcode_wait",
        raw.max_transcode_wait.as_deref(),
        Duration::from_secs(6 * 3600),
    )?;
    if max_transcode_wait.is_zero() {
        return Err(ConfigError::new("workers.max_transcode_wait", "must be more than zero"));
    }
    // 16 KiB/s moves a 100 MiB recording in under two hours; below it a host is
    // trickling, not serving.
    let min_download_rate = match raw.min_download_rate.as_deref() {
        None => 16 * 1024,
        Some(v) => parse_size("workers.min_download_rate", v)?,
    };
    Ok(WorkerSettings {
        count,
        per_org_max,
        max_attempts,
        backoff,
        shutdown_grace,
        max_transcode_wait,
        min_download_rate,
    })
}

fn validate_telemetry(raw: RawTelemetry) -> Result<TelemetrySettings, ConfigError> {
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

fn validate_discovery(raw: RawDiscovery) -> Result<DiscoverySettings, ConfigError> {
    let settings = DiscoverySettings {
        poll_interval: duration_or(
            "discovery.poll_interval",
            raw.poll_interval.as_deref(),
            Duration::from_secs(60),
        )?,
        lookback: lookback(raw.lookback.as_deref())?,
        overlap: duration_or("discovery.overlap", raw.overlap.as_deref(), Duration::from_secs(600))?,
        settle_delay: duration_or(
            "discovery.settle_delay",
            raw.settle_delay.as_deref(),
            Duration::from_secs(120),
        )?,
        page_size: raw.page_size.unwrap_or(100),
        concurrency: raw.concurrency.unwrap_or(4),
        segment_filters: validate_filters(raw.segment_filters)?,
        fetch_mode: match raw.fetch_mode.as_deref().map(str::trim) {
            None | Some("conversation") => FetchMode::Conversation,
            Some("recording") => FetchMode::Recording,
            Some(other) => {
                return Err(ConfigError::new(
                    "discovery.fetch_mode",
                    format!("`{other}` is not one of conversation, recording"),
                ));
            }
        },
        settle_after_end: duration_or(
            "discovery.settle_after_end",
            raw.settle_after_end.as_deref(),
            Duration::from_secs(300),
        )?,
        recheck_max: duration_or(
            "discovery.recheck_max",
            raw.recheck_max.as_deref(),
            Duration::from_secs(600),
        )?,
        max_results: raw.max_results.unwrap_or(10_000),
        sweep_lookback: duration_or(
            "discovery.sweep_lookback",
            raw.sweep_lookback.as_deref(),
            Duration::from_secs(48 * 3600),
        )?,
        sweep_interval: duration_or(
            "discovery.sweep_interval",
            raw.sweep_interval.as_deref(),
            Duration::from_secs(3600),
        )?,
        // A day: screen recordings are normally AVAILABLE minutes after the session, and
        // a platform backlog after an incident clears within hours; a recording still
        // UPLOADING after a day is stuck (a case for Genesys support), and it should
        // show as failed the same day, far inside its retention.
        upload_deadline: duration_or(
            "discovery.upload_deadline",
            raw.upload_deadline.as_deref(),
            Duration::from_secs(24 * 3600),
        )?,
    };
    if settings.upload_deadline.is_zero() {
        return Err(ConfigError::new("discovery.upload_deadline", "must be more than zero"));
    }
    if settings.sweep_lookback > Duration::from_secs(34 * 24 * 3600) {
        // Beyond the synchronous query's 35-day reach the jobs API would be needed on
        // every sweep; `backfill` covers older history.
        return Err(ConfigError::new("discovery.sweep_lookback", "must be at most 34 days"));
    }
    if !settings.sweep_lookback.is_zero() && settings.sweep_lookback <= settings.overlap {
        return Err(ConfigError::new(
            "discovery.sweep_lookback",
            "must be longer than discovery.overlap (or \"0s\" to turn the sweep off)",
        ));
    }
    if settings.sweep_interval < Duration::from_secs(1) {
        return Err(ConfigError::new("discovery.sweep_interval", "must be at least 1s"));
    }
    if settings.settle_after_end > Duration::from_secs(7 * 24 * 3600) {
        return Err(ConfigError::new("discovery.settle_after_end", "must be at most 7 days"));
    }
    if settings.recheck_max < settings.poll_interval {
        return Err(ConfigError::new(
            "discovery.recheck_max",
            "must not be less than discovery.poll_interval",
        ));
    }
    if settings.max_results < u64::from(settings.page_size) {
        return Err(ConfigError::new(
            "discovery.max_results",
            "must be at least discovery.page_size",
        ));
    }
    if settings.poll_interval < Duration::from_secs(1) {
        return Err(ConfigError::new("discovery.poll_interval", "must be at least 1s"));
    }
    if settings.lookback.is_zero() || settings.lookback > Duration::from_secs(365 * 24 * 3600) {
        return Err(ConfigError::new(
            "discovery.lookback",
            "must be more than zero and at most a year",
        ));
    }
    if !(1..=100).contains(&settings.page_size) {
        return Err(ConfigError::new("discovery.page_size", "must be between 1 and 100"));
    }
    if !(1..=16).contains(&settings.concurrency) {
        return Err(ConfigError::new("discovery.concurrency", "must be between 1 and 16"));
    }
    Ok(settings)
}

/// Checks segment filters in the API's shape, naming the exact key of a bad part.
fn validate_filters(raw: Option<super::raw::RawFilters>) -> Result<Vec<SegmentFilter>, ConfigError> {
    use super::raw::RawFilters;
    let key = "discovery.segment_filters";
    let filters = match raw {
        None => return Ok(SegmentFilter::screen_recorded()),
        Some(RawFilters::Tables(filters)) => filters,
        Some(RawFilters::Json(text)) => {
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                ConfigError::new(
                    key,
                    format!(
                        "not segment filters in the API's JSON shape at {}: {}",
                        e.path(),
                        e.inner()
                    ),
                )
            })?
        }
    };
    for (i, filter) in filters.iter().enumerate() {
        let at = format!("{key}[{i}]");
        if !["and", "or"].contains(&filter.kind.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::new(
                format!("{at}.type"),
                format!("`{}` is not one of and, or", filter.kind),
            ));
        }
        if filter.predicates.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.predicates"),
                "must hold at least one predicate",
            ));
        }
        for (j, p) in filter.predicates.iter().enumerate() {
            let at = format!("{at}.predicates[{j}]");
            if p.kind.as_deref().is_some_and(|k| k != "dimension") {
                return Err(ConfigError::new(
                    format!("{at}.type"),
                    "only `dimension` predicates are supported",
                ));
            }
            if p.dimension.is_empty() || !p.dimension.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ConfigError::new(
                    format!("{at}.dimension"),
                    "must be a dimension name such as screenRecording",
                ));
            }
            match (p.operator.as_deref().unwrap_or("matches"), &p.value) {
                ("matches", Some(_)) | ("exists" | "notExists", None) => {}
                ("matches", None) => {
                    return Err(ConfigError::new(
                        format!("{at}.value"),
                        "must be set for operator matches",
                    ));
                }
                ("exists" | "notExists", Some(_)) => {
                    return Err(ConfigError::new(
                        format!("{at}.value"),
                        "must be left out for operators exists and notExists",
                    ));
                }
                (other, _) => {
                    return Err(ConfigError::new(
                        format!("{at}.operator"),
                        format!("`{other}` is not one of matches, exists, notExists"),
                    ));
                }
            }
        }
    }
    if !filters
        .iter()
        .any(|f| f.predicates.iter().any(|p| p.dimension == "screenRecording"))
    {
        tracing::warn!(
            message = "discovery.segment_filters has no screenRecording predicate: conversations without a screen recording will each cost a call.",
        );
    }
    Ok(filters)
}

/// Default `ledger.retain`: over a year, so a re-read of last year's window (an audit, a
/// backfill) still finds its rows; adoption of existing objects covers older ones.
const DEFAULT_RETAIN: Duration = Duration::from_secs(400 * 24 * 3600);

/// `discovery.lookback` (default one day): read by discovery, and bounding
/// `ledger.retain` from below for the ledger commands too.
fn lookback(raw: Option<&str>) -> Result<Duration, ConfigError> {
    duration_or("discovery.lookback", raw, Duration::from_secs(24 * 3600))
}

/// `lookback` is the validated `discovery.lookback`: rows younger than what discovery
/// reads again must stay, or each pass would rediscover (and re-check) them.
fn validate_ledger(raw: RawLedger, lookback: Duration) -> Result<LedgerSettings, ConfigError> {
    let retain = duration_or("ledger.retain", raw.retain.as_deref(), DEFAULT_RETAIN)?;
    if retain < lookback || retain < Duration::from_secs(24 * 3600) {
        return Err(ConfigError::new(
            "ledger.retain",
            "must be at least 1 day and at least discovery.lookback",
        ));
    }
    let url = match (raw.url, raw.url_file) {
        (Some(_), Some(_)) => return Err(ConfigError::new("ledger.url", "set either url or url_file, not both")),
        (Some(RawSecret(url)), None) => Some(url),
        (None, Some(path)) => Some(read_secret_file_for("ledger.url_file", &path)?),
        (None, None) => None,
    };
    let backend = match (url, raw.path) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "ledger.url",
                "set either ledger.path (SQLite, one replica) or ledger.url (PostgreSQL), not both",
            ));
        }
        (Some(url), None) => {
            LedgerBackend::Postgres(validate_postgres(&url, raw.pool_size, raw.lease, raw.outage_patience)?)
        }
        (None, path) => {
            for (key, set) in [
                ("ledger.pool_size", raw.pool_size.is_some()),
                ("ledger.lease", raw.lease.is_some()),
                ("ledger.outage_patience", raw.outage_patience.is_some()),
            ] {
                if set {
                    return Err(ConfigError::new(
                        key,
                        "applies to a PostgreSQL ledger (ledger.url) only",
                    ));
                }
            }
            LedgerBackend::Sqlite {
                path: sqlite_path(path)?,
            }
        }
    };
    Ok(LedgerSettings { backend, retain })
}

/// The PostgreSQL ledger's settings (`ledger.url` and what goes with it).
fn validate_postgres(
    url: &str,
    pool_size: Option<usize>,
    lease: Option<String>,
    outage_patience: Option<String>,
) -> Result<PgSettings, ConfigError> {
    PgSettings::check_url(url.trim()).map_err(|m| ConfigError::new("ledger.url", m))?;
    let pool_size = pool_size.unwrap_or(8);
    if !(1..=256).contains(&pool_size) {
        return Err(ConfigError::new("ledger.pool_size", "must be from 1 to 256"));
    }
    let lease = duration_or("ledger.lease", lease.as_deref(), Duration::from_secs(60))?;
    if lease < Duration::from_secs(1) {
        return Err(ConfigError::new("ledger.lease", "must be at least 1s"));
    }
    Ok(PgSettings {
        url: url.trim().to_owned().into(),
        pool_size,
        lease,
        outage_patience: duration_or(
            "ledger.outage_patience",
            outage_patience.as_deref(),
            Duration::from_secs(600),
        )?,
    })
}

/// The SQLite ledger's file: `ledger.path`, else in systemd's `StateDirectory=` (it
/// exports STATE_DIRECTORY), else in the working directory.
fn sqlite_path(path: Option<String>) -> Result<PathBuf, ConfigError> {
    Ok(match path {
        Some(p) if p.trim().is_empty() => return Err(ConfigError::new("ledger.path", "must not be empty")),
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("STATE_DIRECTORY")
            .map(|d| PathBuf::from(d).join("ledger.sqlite"))
            .unwrap_or_else(|| PathBuf::from("genesys-archiver-ledger.sqlite")),
    })
}

fn validate_sink(raw: RawSink, s3: RawS3) -> Result<SinkSettings, ConfigError> {
    let layout = KeyLayout::parse(raw.key_template.as_deref().unwrap_or(KeyLayout::DEFAULT))
        .map_err(|m| ConfigError::new("sink.key_template", m))?;
    let kind = match raw.kind.as_deref().unwrap_or("s3") {
        "s3" => SinkKind::S3(Box::new(validate_s3(s3)?)),
        "file" => {
            let directory = raw.directory.filter(|d| !d.trim().is_empty());
            let directory =
                directory.ok_or_else(|| ConfigError::new("sink.directory", "must be set for kind = \"file\""))?;
            SinkKind::File {
                directory: PathBuf::from(directory),
            }
        }
        other => {
            return Err(ConfigError::new(
                "sink.kind",
                format!("`{other}` is not one of s3, file"),
            ));
        }
    };
    let manifest_key = crate::manifest::key::ManifestKey::parse(
        raw.manifest_key_template
            .as_deref()
            .unwrap_or(crate::manifest::key::ManifestKey::DEFAULT),
    )
    .map_err(|m| ConfigError::new("sink.manifest_key_template", m))?;
    Ok(SinkSettings {
        kind,
        layout,
        manifest_key,
    })
}

fn validate_s3(raw: RawS3) -> Result<S3Settings, ConfigError> {
    let compliance = super::compliance::validate(&raw)?;
    let bucket = raw.bucket.unwrap_or_default().trim().to_owned();
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid_bucket {
        return Err(ConfigError::new(
            "s3.bucket",
            "must be a bucket name (3-63 lowercase letters, digits, `-`, `.`)",
        ));
    }
    let prefix = raw.prefix.unwrap_or_default();
    if prefix.starts_with('/') || prefix.split('/').any(|seg| seg == "..") {
        return Err(ConfigError::new("s3.prefix", "must not start with `/` or contain `..`"));
    }
    if prefix.replace("{orgId}", "").replace("{org}", "").contains(['{', '}']) {
        return Err(ConfigError::new(
            "s3.prefix",
            "the only placeholders a prefix takes are {org} and {orgId}",
        ));
    }
    if let Some(url) = &raw.endpoint_url {
        parse_base_url("s3.endpoint_url", url)?;
    }
    let sse = match raw.sse.as_deref() {
        None | Some("") => None,
        Some("AES256") => Some(Sse::Aes256),
        Some("aws:kms") => Some(Sse::Kms {
            key_id: raw.kms_key_id.clone(),
        }),
        Some(other) => {
            return Err(ConfigError::new(
                "s3.sse",
                format!("`{other}` is not one of AES256, aws:kms"),
            ));
        }
    };
    if raw.kms_key_id.is_some() && !matches!(sse, Some(Sse::Kms { .. })) {
        return Err(ConfigError::new("s3.kms_key_id", "needs sse = \"aws:kms\""));
    }
    let part_size = parse_size("s3.part_size", raw.part_size.as_deref().unwrap_or("8MiB"))?;
    if part_size < MIN_PART_SIZE as u64 || part_size > 5 * 1024 * 1024 * 1024 {
        return Err(ConfigError::new("s3.part_size", "must be between 5MiB and 5GiB"));
    }
    let parts_in_flight = raw.parts_in_flight.unwrap_or(2);
    if !(1..=16).contains(&parts_in_flight) {
        return Err(ConfigError::new("s3.parts_in_flight", "must be between 1 and 16"));
    }
    let single_put_max = parse_size("s3.single_put_max", raw.single_put_max.as_deref().unwrap_or("100MiB"))?;
    if single_put_max > 5 * 1024 * 1024 * 1024 {
        return Err(ConfigError::new(
            "s3.single_put_max",
            "must be at most 5GiB (the largest PutObject S3 takes)",
        ));
    }
    let operation_timeout = duration_or(
        "s3.operation_timeout",
        raw.operation_timeout.as_deref(),
        Duration::from_secs(60),
    )?;
    if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&operation_timeout) {
        return Err(ConfigError::new("s3.operation_timeout", "must be between 1s and 10m"));
    }
    Ok(S3Settings {
        checksum: compliance.checksum,
        lock: compliance.lock,
        legal_hold: compliance.legal_hold,
        expected_bucket_owner: compliance.expected_bucket_owner,
        operation_timeout,
        bucket,
        prefix,
        region: raw.region.filter(|r| !r.trim().is_empty()),
        endpoint_url: raw.endpoint_url,
        force_path_style: raw.force_path_style.unwrap_or(false),
        sse,
        storage_class: raw.storage_class.filter(|c| !c.trim().is_empty()),
        part_size: part_size as usize,
        parts_in_flight,
        single_put_max,
    })
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
