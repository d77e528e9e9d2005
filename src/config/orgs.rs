//! Several organizations in one configuration.
//!
//! A vendor serving many customer orgs writes the shared defaults at the top level and
//! one entry per org (`[[orgs]]` in the file, or one TOML file per org in `orgs_dir`,
//! so onboarding a customer is dropping a file). An entry may override any key of
//! `[genesys]`, `[limits]`, `[discovery]` and `[s3]`; the rest (`[workers]`, `[ledger]`,
//! `[retry]`, `[sink]`, `[telemetry]`) belongs to the one process. A file without orgs
//! is one org, named [`SINGLE_ORG`], exactly as before.
//!
//! Errors name the org: ``config key `orgs[acme].genesys.client_id` in orgs.d/acme.toml:
//! must be set``. A value an org inherits from the shared section and that is bad there
//! for every org is reported under its shared key instead (`limits.window`), since that
//! is where it has to be fixed.
//!
//! Over 500 lines: half of it is the tests of laying each org over the shared sections,
//! kept beside the code they check.

use super::raw::{RawDiscovery, RawGenesys, RawLimits, RawOrg, RawRetention, RawS3, RawSink};
use super::settings::{ConfigError, OrgSettings, SinkKind, shared_section_error, validate_org_parts};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The name of the one org of a file without `[[orgs]]` or `orgs_dir`: it labels its
/// metrics and ledger rows, and stands for `{org}` in keys.
pub const SINGLE_ORG: &str = crate::ledger::encoding::DEFAULT_ORG;

/// Checks an org name: it becomes part of object keys, metric labels and ledger rows.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an org name (1 to 63 of a-z, 0-9 and `-`, not starting or ending with `-`)"
        ))
    }
}

/// The sections that make one org's settings: the shared ones at the top level of the
/// file, or an org's entry laid over them ([`OrgSections::with`]).
#[derive(Debug, Clone, Default)]
pub struct OrgSections {
    pub genesys: RawGenesys,
    pub limits: RawLimits,
    pub discovery: RawDiscovery,
    pub s3: RawS3,
    pub sink: RawSink,
    pub retention: RawRetention,
}

/// One org entry and where it was written.
#[derive(Debug)]
pub struct OrgEntry {
    pub raw: RawOrg,
    /// The file of an `orgs_dir` entry (`None`: an `[[orgs]]` entry of the main file).
    pub file: Option<PathBuf>,
}

impl OrgEntry {
    /// The org's name: its `name` key, else (in `orgs_dir`) its file's stem.
    pub fn name(&self) -> Option<String> {
        self.raw.name.clone().or_else(|| {
            self.file
                .as_deref()
                .and_then(Path::file_stem)
                .map(|s| s.to_string_lossy().into_owned())
        })
    }
}

/// `*.toml` files of `dir`, by name. Other files (editors' backups, a README, the
/// `..data` links of a mounted Kubernetes Secret) are not org files.
pub fn org_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::new("orgs_dir", format!("`{}` cannot be read: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads one org file (the shape of one `[[orgs]]` entry).
pub fn read_org_file(path: &Path) -> Result<OrgEntry, ConfigError> {
    let shown = path.display().to_string();
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let in_file = |mut e: ConfigError| {
        e.file = Some(shown.clone());
        e
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        in_file(ConfigError::new(
            format!("orgs[{stem}]"),
            format!("cannot be read: {e}"),
        ))
    })?;
    let table = super::check_syntax(&text, &shown)?;
    // Named by its `name` when the file has one, for an error in the rest of it.
    let name = table
        .get("name")
        .and_then(toml::Value::as_str)
        .map_or(stem, str::to_owned);
    let raw: RawOrg = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let message = e.inner().message().trim().replacen("unknown field", "unknown key", 1);
        in_file(ConfigError::new(format!("orgs[{name}].{}", e.path()), message))
    })?;
    Ok(OrgEntry {
        raw,
        file: Some(path.to_owned()),
    })
}

/// Validates every entry over the shared defaults: the org set of a multi-org file.
pub fn validate_all(defaults: &OrgSections, entries: Vec<OrgEntry>) -> Result<Vec<OrgSettings>, ConfigError> {
    let mut orgs = Vec::with_capacity(entries.len());
    let mut seen: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    for entry in entries {
        let file = entry.file.clone();
        let org = validate_one(defaults, entry)?;
        if let Some(first) = seen.insert(org.name.clone(), file.clone()) {
            let mut e = ConfigError::new(
                format!("orgs[{}].name", org.name),
                format!(
                    "is used twice (first in {})",
                    first.map_or("the main file".to_owned(), |p| p.display().to_string())
                ),
            );
            e.file = file.map(|p| p.display().to_string());
            return Err(e);
        }
        orgs.push(org);
    }
    check_keys_apart(&orgs)?;
    Ok(orgs)
}

/// One org: its entry over the shared defaults, checked, with `{org}` filled in.
fn validate_one(defaults: &OrgSections, entry: OrgEntry) -> Result<OrgSettings, ConfigError> {
    let file = entry.file.as_deref().map(|p| p.display().to_string());
    let in_file = |mut e: ConfigError| {
        e.file = file.clone().or(e.file);
        e
    };
    let name = entry
        .name()
        .ok_or_else(|| in_file(ConfigError::unset("orgs[].name", "must be set")))?;
    check_name(&name).map_err(|m| in_file(ConfigError::new(format!("orgs[{name}].name"), m)))?;
    validate_org_parts(&name, defaults.clone().with(entry.raw)).map_err(|e| {
        // Bad for every org where it is written: the shared key is the one to fix.
        if shared_error(defaults, &e) {
            e
        } else {
            in_file(ConfigError {
                key: format!("orgs[{name}].{}", e.key),
                ..e
            })
        }
    })
}

/// Whether the shared section alone already fails on this key with this message.
fn shared_error(defaults: &OrgSections, error: &ConfigError) -> bool {
    matches!(shared_section_error(&error.key, defaults), Some(e) if e.key == error.key && e.message == error.message)
}

/// Orgs that write to the same place must have keys that differ by org, so that each
/// customer's recordings stay under their own prefix (and can be handed over or deleted
/// as one).
fn check_keys_apart(orgs: &[OrgSettings]) -> Result<(), ConfigError> {
    let mut by_place: BTreeMap<String, &OrgSettings> = BTreeMap::new();
    for org in orgs {
        let place = match &org.sink.kind {
            SinkKind::S3(s3) => format!("bucket `{}`", s3.bucket),
            SinkKind::File { directory } => format!("directory `{}`", directory.display()),
        };
        if let Some(other) = by_place.insert(place.clone(), org)
            && !(org.keys_by_org && other.keys_by_org)
        {
            return Err(ConfigError::new(
                format!("orgs[{}].s3.prefix", org.name),
                format!(
                    "orgs {} and {} both write to {place}: put {{org}} or {{orgId}} in s3.prefix or sink.key_template so that their keys stay apart",
                    other.name, org.name
                ),
            ));
        }
    }
    Ok(())
}

impl OrgSections {
    /// An org's entry laid over these (shared) sections; `[sink]` is the process's.
    pub fn with(self, org: RawOrg) -> OrgSections {
        OrgSections {
            genesys: overlay_genesys(self.genesys, org.genesys),
            limits: overlay_limits(self.limits, org.limits),
            discovery: overlay_discovery(self.discovery, org.discovery),
            s3: overlay_s3(self.s3, org.s3),
            sink: self.sink,
            retention: RawRetention {
                genesys_delete_after: org
                    .retention
                    .genesys_delete_after
                    .or(self.retention.genesys_delete_after),
                dry_run: org.retention.dry_run.or(self.retention.dry_run),
            },
        }
    }
}

/// `over`'s keys win. Keys that only make sense together come from one side: an org
/// that names its own region (or API/login URL) takes none of the shared ones, and one
/// that names its own secret (or secret file) takes neither shared secret.
fn overlay_genesys(shared: RawGenesys, over: RawGenesys) -> RawGenesys {
    let own_place = over.region.is_some() || over.api_url.is_some() || over.login_url.is_some();
    let own_secret = over.client_secret.is_some() || over.client_secret_file.is_some();
    let (region, api_url, login_url) = if own_place {
        (over.region, over.api_url, over.login_url)
    } else {
        (shared.region, shared.api_url, shared.login_url)
    };
    let (client_secret, client_secret_file) = if own_secret {
        (over.client_secret, over.client_secret_file)
    } else {
        (shared.client_secret, shared.client_secret_file)
    };
    RawGenesys {
        region,
        api_url,
        login_url,
        client_id: over.client_id.or(shared.client_id),
        client_secret,
        client_secret_file,
        recording_path: over.recording_path.or(shared.recording_path),
        recordings_path: over.recordings_path.or(shared.recordings_path),
        list_max_wait: over.list_max_wait.or(shared.list_max_wait),
        format_id: over.format_id.or(shared.format_id),
        media_hosts: over.media_hosts.or(shared.media_hosts),
        media_proxy: over.media_proxy.or(shared.media_proxy),
        allow_http: over.allow_http.or(shared.allow_http),
        request_timeout: over.request_timeout.or(shared.request_timeout),
        max_response_bytes: over.max_response_bytes.or(shared.max_response_bytes),
    }
}

fn overlay_limits(shared: RawLimits, over: RawLimits) -> RawLimits {
    let mut endpoints = shared.endpoints;
    endpoints.extend(over.endpoints);
    RawLimits {
        requests_per_minute: over.requests_per_minute.or(shared.requests_per_minute),
        window: over.window.or(shared.window),
        target_utilization: over.target_utilization.or(shared.target_utilization),
        endpoints,
        shared: over.shared.or(shared.shared),
        replicas: over.replicas.or(shared.replicas),
    }
}

fn overlay_discovery(shared: RawDiscovery, over: RawDiscovery) -> RawDiscovery {
    RawDiscovery {
        poll_interval: over.poll_interval.or(shared.poll_interval),
        lookback: over.lookback.or(shared.lookback),
        overlap: over.overlap.or(shared.overlap),
        settle_delay: over.settle_delay.or(shared.settle_delay),
        page_size: over.page_size.or(shared.page_size),
        concurrency: over.concurrency.or(shared.concurrency),
        segment_filters: over.segment_filters.or(shared.segment_filters),
        fetch_mode: over.fetch_mode.or(shared.fetch_mode),
        settle_after_end: over.settle_after_end.or(shared.settle_after_end),
        recheck_max: over.recheck_max.or(shared.recheck_max),
        max_results: over.max_results.or(shared.max_results),
        sweep_lookback: over.sweep_lookback.or(shared.sweep_lookback),
        sweep_interval: over.sweep_interval.or(shared.sweep_interval),
        upload_deadline: over.upload_deadline.or(shared.upload_deadline),
    }
}

/// As [`overlay_genesys`]: encryption and its key come from one side.
fn overlay_s3(shared: RawS3, over: RawS3) -> RawS3 {
    let own_sse = over.sse.is_some() || over.kms_key_id.is_some();
    let (sse, kms_key_id) = if own_sse {
        (over.sse, over.kms_key_id)
    } else {
        (shared.sse, shared.kms_key_id)
    };
    RawS3 {
        bucket: over.bucket.or(shared.bucket),
        prefix: over.prefix.or(shared.prefix),
        region: over.region.or(shared.region),
        endpoint_url: over.endpoint_url.or(shared.endpoint_url),
        force_path_style: over.force_path_style.or(shared.force_path_style),
        sse,
        kms_key_id,
        storage_class: over.storage_class.or(shared.storage_class),
        part_size: over.part_size.or(shared.part_size),
        parts_in_flight: over.parts_in_flight.or(shared.parts_in_flight),
        single_put_max: over.single_put_max.or(shared.single_put_max),
        operation_timeout: over.operation_timeout.or(shared.operation_timeout),
        checksum_algorithm: over.checksum_algorithm.or(shared.checksum_algorithm),
        object_lock_mode: over.object_lock_mode.or(shared.object_lock_mode),
        object_lock_retain: over.object_lock_retain.or(shared.object_lock_retain),
        legal_hold: over.legal_hold.or(shared.legal_hold),
        expected_bucket_owner: over.expected_bucket_owner.or(shared.expected_bucket_owner),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Sources;
    use super::super::settings::{Settings, SinkKind};
    use super::*;

    const SHARED: &str = r#"
        [genesys]
        client_secret = "shared-secret"
        [s3]
        bucket = "vendor-archive"
        prefix = "{org}/"
        [discovery]
        poll_interval = "30s"
    "#;

    const TWO_ORGS: &str = r#"
        [[orgs]]
        name = "acme"
        [orgs.genesys]
        region = "mypurecloud.ie"
        client_id = "acme-id"

        [[orgs]]
        name = "globex"
        [orgs.genesys]
        region = "usw2.pure.cloud"
        client_id = "globex-id"
        client_secret = "globex-secret"
        [orgs.s3]
        bucket = "globex-own-bucket"
        [orgs.discovery]
        poll_interval = "2m"
    "#;

    /// A fresh directory of this test, removed first if an earlier run left it.
    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ga-orgs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn load(text: &str) -> Result<Settings, ConfigError> {
        Sources {
            text: Some(text),
            env: Some(Default::default()),
            ..Default::default()
        }
        .load()
    }

    fn s3_prefix(settings: &Settings, org: usize) -> (String, String) {
        match &settings.orgs[org].sink.kind {
            SinkKind::S3(s3) => (s3.bucket.clone(), s3.prefix.clone()),
            SinkKind::File { .. } => panic!("not s3"),
        }
    }

    #[test]
    fn a_file_without_orgs_is_one_org_named_default() {
        let s = load(
            "[genesys]\nregion = \"mypurecloud.ie\"\nclient_id = \"x\"\nclient_secret = \"y\"\n\
             [s3]\nbucket = \"b-1\"\nprefix = \"{org}/\"\n",
        )
        .unwrap();
        assert_eq!(s.orgs.len(), 1);
        assert_eq!(s.orgs[0].name, SINGLE_ORG);
        assert!(!s.org_source.is_multi());
        assert_eq!(s3_prefix(&s, 0), ("b-1".into(), "default/".into()));
    }

    #[test]
    fn each_org_lies_over_the_shared_sections() {
        use secrecy::ExposeSecret;
        let s = load(&format!("{SHARED}\n{TWO_ORGS}")).unwrap();
        assert!(s.org_source.is_multi());
        let names: Vec<_> = s.orgs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["acme", "globex"]);
        let (acme, globex) = (&s.orgs[0], &s.orgs[1]);
        assert_eq!(acme.genesys.api_url.as_str(), "https://api.mypurecloud.ie/");
        assert_eq!(globex.genesys.login_url.as_str(), "https://login.usw2.pure.cloud/");
        assert_eq!(acme.genesys.client_secret.expose_secret(), "shared-secret");
        assert_eq!(globex.genesys.client_secret.expose_secret(), "globex-secret");
        assert_eq!(acme.discovery.poll_interval, std::time::Duration::from_secs(30));
        assert_eq!(globex.discovery.poll_interval, std::time::Duration::from_secs(120));
        assert_eq!(s3_prefix(&s, 0), ("vendor-archive".into(), "acme/".into()));
        assert_eq!(s3_prefix(&s, 1), ("globex-own-bucket".into(), "globex/".into()));
        let key = acme
            .sink
            .layout
            .keys("acme/", "c-1", "r-1", chrono::Utc::now(), "webm")
            .unwrap();
        assert!(key.media.starts_with("acme/year="), "{}", key.media);
    }

    #[test]
    fn an_org_that_names_its_own_secret_file_takes_no_shared_secret() {
        let dir = test_dir("secret");
        let secret = dir.join("acme");
        std::fs::write(&secret, "from-file\n").unwrap();
        let text = format!(
            "{SHARED}\n[[orgs]]\nname = \"acme\"\n[orgs.genesys]\nregion = \"r.com\"\nclient_id = \"x\"\n\
             client_secret_file = {:?}\n",
            secret.display().to_string()
        );
        use secrecy::ExposeSecret;
        let s = load(&text).unwrap();
        assert_eq!(s.orgs[0].genesys.client_secret.expose_secret(), "from-file");
    }

    #[test]
    fn errors_name_the_org_and_the_key() {
        let cases = [
            // Unset in the org and in the shared section.
            (
                "[[orgs]]\nname = \"acme\"\n[orgs.genesys]\nregion = \"r.com\"\n",
                "orgs[acme].genesys.client_id",
            ),
            // A typo in an entry: serde's path says orgs[0]; the error says its name.
            (
                "[[orgs]]\nname = \"acme\"\n[orgs.genesys]\nclient_idd = \"x\"\n",
                "orgs[acme].genesys",
            ),
            (
                "[[orgs]]\nname = \"Acme Corp\"\n[orgs.genesys]\nregion = \"r.com\"\nclient_id = \"x\"\n",
                "orgs[Acme Corp].name",
            ),
            (
                "[[orgs]]\nname = \"acme\"\n[orgs.genesys]\nregion = \"r.com\"\nclient_id = \"x\"\n\
                 [orgs.limits]\nrequests_per_minute = 0\n",
                "orgs[acme].limits.requests_per_minute",
            ),
            (
                "[[orgs]]\nname = \"acme\"\n[orgs.genesys]\nregion = \"r.com\"\nclient_id = \"x\"\n\
                 [[orgs]]\nname = \"acme\"\n[orgs.genesys]\nregion = \"r.com\"\nclient_id = \"y\"\n",
                "orgs[acme].name",
            ),
        ];
        for (orgs, key) in cases {
            let e = load(&format!("{SHARED}\n{orgs}")).unwrap_err();
            assert!(e.key.starts_with(key), "{key}: {e}");
            assert!(e.to_string().starts_with(&format!("config key `{key}")), "{e}");
        }
        // Bad in the shared section for every org: reported where it is fixed.
        let e = load(&format!("{SHARED}\n[limits]\nwindow = \"soon\"\n{TWO_ORGS}")).unwrap_err();
        assert_eq!(e.key, "limits.window", "{e}");
    }

    #[test]
    fn orgs_sharing_a_bucket_need_keys_that_name_the_org() {
        let text = TWO_ORGS.replace("bucket = \"globex-own-bucket\"", "prefix = \"x/\"");
        let e = load(&format!(
            "[genesys]\nclient_secret = \"s\"\n[s3]\nbucket = \"shared\"\n{text}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "orgs[globex].s3.prefix", "{e}");
        assert!(
            e.message.contains("acme and globex both write to bucket `shared`"),
            "{e}"
        );
        // With {orgId} in the template instead, they are apart.
        let s = load(&format!(
            "[genesys]\nclient_secret = \"s\"\n[s3]\nbucket = \"shared\"\n\
             [sink]\nkey_template = \"{{orgId}}/{{recordingId}}.{{ext}}\"\n{TWO_ORGS}"
        ));
        assert!(s.is_ok(), "{:?}", s.err());
    }

    #[test]
    fn orgs_dir_holds_one_file_per_org_and_is_read_again() {
        let dir = test_dir("dir");
        let orgs_d = dir.join("orgs.d");
        std::fs::create_dir(&orgs_d).unwrap();
        std::fs::write(
            orgs_d.join("acme.toml"),
            "[genesys]\nregion = \"mypurecloud.ie\"\nclient_id = \"acme-id\"\n",
        )
        .unwrap();
        std::fs::write(orgs_d.join("README"), "not an org").unwrap();
        std::fs::write(orgs_d.join(".hidden.toml"), "garbage = [").unwrap();
        let text = format!(
            "orgs_dir = {:?}\n{SHARED}\n[[orgs]]\nname = \"initech\"\n[orgs.genesys]\nregion = \"r.com\"\nclient_id = \"i\"\n",
            orgs_d.display().to_string()
        );
        let s = load(&text).unwrap();
        let names: Vec<_> = s.orgs.iter().map(|o| o.name.clone()).collect();
        assert_eq!(
            names,
            ["initech", "acme"],
            "the file's stem names an org without `name`"
        );

        // Onboarding is dropping a file; the next read has it.
        std::fs::write(
            orgs_d.join("globex.toml"),
            "name = \"globex\"\n[genesys]\nregion = \"usw2.pure.cloud\"\nclient_id = \"g\"\n",
        )
        .unwrap();
        let again = s.org_source.read().unwrap();
        assert_eq!(again.len(), 3);

        // A bad file names the org, the key and the file.
        let bad = orgs_d.join("broken.toml");
        std::fs::write(&bad, "[genesys]\nregion = \"r.com\"\nclient_idd = \"x\"\n").unwrap();
        let e = s.org_source.read().unwrap_err();
        assert!(e.key.starts_with("orgs[broken].genesys"), "{e}");
        assert_eq!(e.file.as_deref(), Some(bad.display().to_string().as_str()));
        std::fs::write(&bad, "[genesys]\nregion = \"r.com\"\n").unwrap();
        let e = s.org_source.read().unwrap_err();
        assert_eq!(e.key, "orgs[broken].genesys.client_id", "{e}");
        assert!(e.to_string().contains("broken.toml"), "{e}");
        std::fs::write(&bad, "[genesys\n").unwrap();
        let e = s.org_source.read().unwrap_err();
        assert!(e.to_string().contains("is not valid TOML at line 1"), "{e}");
    }

    #[test]
    fn names_are_checked() {
        for good in ["acme", "a", "globex-eu-2", "7eleven"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Acme", "acme_eu", "-acme", "acme-", "a b", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
