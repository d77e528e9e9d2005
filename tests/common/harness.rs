//! End-to-end harness: the simulator in-process, a real S3 server process (moto) on
//! loopback, and the daemon binary run as a subprocess against both. Assertions read
//! the bucket (with the real AWS SDK) and the ledger (with SQLite), never logs.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use genesys_archiver::sink::layout::{KeyLayout, RecordingKeys};
use genesys_sim::catalog::CatalogEntry;
use genesys_sim::media::{expected_sha256, hex};
use genesys_sim::{SimConfig, Simulator};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An S3 client for a test server (static test credentials, path-style).
pub fn s3_client(url: &str) -> Client {
    let credentials = Credentials::new("test", "test", None, None, "tests");
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(credentials)
        // moto reports a multipart object's composite SHA-256 without its `-N`, which
        // the SDK would take for the body's own and fail the read on; the tests compare
        // bodies with their own digests.
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

/// Every section but the org's: fast retries, discovery on short settling, the ledger
/// (`ledger`: the body of its section) and S3 at `endpoint` under `prefix`, then `extra`.
pub fn pipeline_config(ledger: &str, bucket: &str, prefix: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "[workers]\ncount = 4\nmax_attempts = 4\nretry_base = \"200ms\"\nretry_cap = \"1s\"\n\
         [retry]\nbase = \"50ms\"\ncap = \"500ms\"\n\
         [discovery]\nlookback = \"2h\"\noverlap = \"10m\"\nsettle_delay = \"0s\"\nsettle_after_end = \"0s\"\npoll_interval = \"1s\"\nrecheck_max = \"2s\"\n\
         [ledger]\n{ledger}\n[sink]\nkind = \"s3\"\n\
         [s3]\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\nforce_path_style = true\npart_size = \"5MiB\"\n{extra}\n"
    )
}

/// The daemon binary with `args` and `--config config`, S3 test credentials, killed
/// when dropped.
pub fn daemon_command(args: &[&str], config: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_genesys-archiver"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "info")
        .kill_on_drop(true);
    cmd
}

/// A moto S3 server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        // moto with the checks AWS S3 makes and moto does not (checksums verified,
        // the expected bucket owner): `moto_aws.py`, run by moto's own Python.
        let python = std::path::Path::new(&program).with_file_name("python");
        let checks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/moto_aws.py");
        let mut command = if python.exists() {
            let mut command = Command::new(&python);
            command.arg(checks);
            command
        } else {
            Command::new(&program)
        };
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{program}` ({e}): run `bash scripts/test.sh`, which installs moto")
            });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, url }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (state, reason, object key, sha256) of one ledger row.
pub type LedgerRow = (String, Option<String>, Option<String>, Option<String>);

/// Where a black-box run keeps its things: moto with the bucket, a scratch directory
/// (removed when dropped, kept when the test failed: its logs are there) and the path
/// of the daemon's configuration in it.
pub struct Site {
    pub moto: Moto,
    pub s3: Client,
    pub bucket: String,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Site {
    pub async fn start(bucket: &str, tag: &str) -> Self {
        let moto = Moto::start();
        let s3 = s3_client(&moto.url);
        s3.create_bucket().bucket(bucket).send().await.expect("bucket created");
        let dir = std::env::temp_dir().join(format!("ga-{tag}-{}-{:x}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            moto,
            s3,
            bucket: bucket.to_owned(),
            config: dir.join("archiver.toml"),
            dir,
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub struct Harness {
    pub sim: Simulator,
    pub site: Site,
    /// Between the daemon and moto, when started with [`Harness::start_proxied`].
    pub proxy: Option<super::proxy::Proxy>,
}

/// A simulated org fast enough for end-to-end runs (rate limits are tested elsewhere).
pub fn fast_org(conversations: usize) -> SimConfig {
    fast(SimConfig {
        conversations,
        ..SimConfig::default()
    })
}

/// `org` on limits high enough not to pace, with short transcoding.
fn fast(org: SimConfig) -> SimConfig {
    SimConfig {
        token_limit: 6000,
        endpoint_limits: Default::default(),
        transcode_time: Duration::from_millis(800),
        ..org
    }
}

/// `conversations` conversations with one AVAILABLE screen recording each, sized in
/// `size` (bytes), no transcoding: for tests about the data path.
pub fn screen_only(conversations: usize, size: (u64, u64)) -> SimConfig {
    SimConfig {
        media_size: size,
        ..fast(SimConfig::one_screen_recording_each(conversations))
    }
}

/// One AVAILABLE screen recording of 15 MiB: three 5 MiB parts, large enough for the
/// multipart and streamed-PutObject paths.
pub fn one_big_recording() -> SimConfig {
    screen_only(1, (15 * 1024 * 1024, 15 * 1024 * 1024))
}

impl Harness {
    /// Starts everything; `extra` TOML is appended to the daemon's configuration.
    pub async fn start(sim_config: SimConfig, extra: &str) -> Self {
        Self::start_with(sim_config, extra, false, None).await
    }

    /// As [`Harness::start`], with the ledger in the PostgreSQL database at `url`
    /// (several daemons on one ledger: replicas).
    pub async fn start_on_postgres(sim_config: SimConfig, extra: &str, url: &str) -> Self {
        Self::start_with(sim_config, extra, false, Some(url)).await
    }

    /// As [`Harness::start`], with the daemon reaching S3 through a [`super::proxy::Proxy`]
    /// that the test can take down.
    pub async fn start_proxied(sim_config: SimConfig, extra: &str) -> Self {
        Self::start_with(sim_config, extra, true, None).await
    }

    async fn start_with(sim_config: SimConfig, extra: &str, proxied: bool, postgres: Option<&str>) -> Self {
        let sim = super::start(sim_config).await;
        let site = Site::start("archive-e2e", "e2e").await;
        let (moto, dir, bucket) = (&site.moto, &site.dir, &site.bucket);
        let proxy = match proxied {
            true => Some(super::proxy::Proxy::start(moto.url.trim_start_matches("http://").to_owned()).await),
            false => None,
        };
        let endpoint = proxy.as_ref().map_or(moto.url.clone(), |p| p.url.clone());
        let ledger = match postgres {
            Some(url) => format!("url = {url:?}"),
            None => format!("path = {:?}", dir.join("ledger.sqlite").display().to_string()),
        };
        let text = format!(
            "{}\n{}",
            sim.client_config(),
            pipeline_config(&ledger, bucket, "org/", &endpoint, extra)
        );
        std::fs::write(&site.config, text).unwrap();
        Self { sim, site, proxy }
    }

    /// The daemon as a child process with S3 test credentials.
    pub fn daemon(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = daemon_command(args, &self.config);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// `run --once`, bounded to two minutes; returns the status and the log output.
    pub async fn run_once(&self) -> (ExitStatus, String) {
        self.run_once_with(&[]).await
    }

    /// `run --once` with extra environment overrides (`GENESYS_ARCHIVER__...`).
    pub async fn run_once_with(&self, env: &[(&str, &str)]) -> (ExitStatus, String) {
        let mut cmd = self.daemon(&["run", "--once"]);
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().expect("daemon starts");
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("run --once finishes within 2 minutes")
            .unwrap();
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, logs)
    }

    /// Every object in the bucket: key to size.
    pub async fn objects(&self) -> BTreeMap<String, u64> {
        list_objects(&self.s3, &self.bucket).await
    }

    pub async fn get(&self, key: &str) -> Vec<u8> {
        get_object(&self.s3, &self.bucket, key).await
    }

    pub async fn sha256(&self, key: &str) -> String {
        hex(&Sha256::digest(self.get(key).await))
    }

    pub async fn etag(&self, key: &str) -> String {
        self.s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .e_tag()
            .unwrap_or_default()
            .to_owned()
    }

    /// Multipart uploads still open in the bucket.
    pub async fn open_uploads(&self) -> usize {
        open_uploads(&self.s3, &self.bucket).await
    }

    /// recording id -> (state, reason, key, sha256) from the ledger.
    /// Empty until the daemon has created it; read-only, so polling never creates or
    /// locks it.
    pub fn ledger(&self) -> BTreeMap<String, LedgerRow> {
        let path = self.dir.join("ledger.sqlite");
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let Ok(conn) = rusqlite::Connection::open_with_flags(&path, flags) else {
            return BTreeMap::new();
        };
        let Ok(mut stmt) = conn.prepare("SELECT recording_id, state, reason, object_key, sha256 FROM recordings")
        else {
            return BTreeMap::new();
        };
        stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

pub fn keys(entry: &CatalogEntry) -> RecordingKeys {
    keys_under("org/", entry)
}

/// The keys of `entry` under `prefix` (the org's prefix, already expanded).
pub fn keys_under(prefix: &str, entry: &CatalogEntry) -> RecordingKeys {
    KeyLayout::parse(KeyLayout::DEFAULT)
        .unwrap()
        .keys(
            prefix,
            &entry.conversation_id,
            &entry.recording_id,
            entry.start_time,
            "webm",
        )
        .unwrap()
}

pub fn available(h: &Harness) -> Vec<CatalogEntry> {
    h.sim
        .catalog()
        .into_iter()
        .filter(|e| e.media == "screen" && e.file_state == "AVAILABLE")
        .collect()
}

/// Every available screen recording is in the bucket once, with the simulator's bytes
/// and its sidecar, and nothing else is.
pub async fn assert_bucket_holds_exactly(h: &Harness, expected: &[CatalogEntry]) {
    let under: Vec<(String, CatalogEntry)> = expected.iter().map(|e| ("org/".to_owned(), e.clone())).collect();
    assert_bucket_holds(&h.s3, &h.bucket, &under).await;
}

/// The keys of `entry`'s files under `prefix`, with their media names and sizes: its
/// one key, or one per part.
pub fn part_keys(prefix: &str, entry: &CatalogEntry) -> Vec<(String, String, u64)> {
    let k = keys_under(prefix, entry);
    let n = entry.parts.len();
    entry
        .parts
        .iter()
        .enumerate()
        .map(|(i, (name, size))| (k.part(&i.to_string(), n), name.clone(), *size))
        .collect()
}

/// `bucket` holds each `(prefix, recording)` once (every part of it), with the
/// simulator's bytes and its sidecar listing every part, and nothing else but daily
/// manifests (checked by the tests about them); no multipart upload is left open.
pub async fn assert_bucket_holds(s3: &Client, bucket: &str, expected: &[(String, CatalogEntry)]) {
    let mut objects = list_objects(s3, bucket).await;
    objects.retain(|key, _| !key.contains("/manifests/") && !key.starts_with("manifests/"));
    let wanted: BTreeSet<String> = expected
        .iter()
        .flat_map(|(prefix, e)| {
            let mut all: Vec<String> = part_keys(prefix, e).into_iter().map(|(key, ..)| key).collect();
            all.push(keys_under(prefix, e).sidecar);
            all
        })
        .collect();
    assert_eq!(
        objects.keys().cloned().collect::<BTreeSet<_>>(),
        wanted,
        "the bucket holds exactly the expected keys"
    );
    for (prefix, entry) in expected {
        let k = keys_under(prefix, entry);
        let sidecar: serde_json::Value = serde_json::from_slice(&get_object(s3, bucket, &k.sidecar).await).unwrap();
        let parts = part_keys(prefix, entry);
        for (i, (key, name, size)) in parts.iter().enumerate() {
            let sha = expected_sha256(name, *size);
            assert_eq!(objects[key], *size, "{key}");
            assert_eq!(hex(&Sha256::digest(get_object(s3, bucket, key).await)), sha, "{key}");
            let listed = &sidecar["archive"]["parts"][i];
            assert_eq!(
                (
                    listed["key"].as_str(),
                    listed["sha256"].as_str(),
                    listed["sizeBytes"].as_u64()
                ),
                (Some(key.as_str()), Some(sha.as_str()), Some(*size)),
                "the sidecar lists the part"
            );
        }
        assert_eq!(sidecar["archive"]["parts"].as_array().map(Vec::len), Some(parts.len()));
        if let [(_, name, size)] = parts.as_slice() {
            assert_eq!(sidecar["archive"]["sha256"], expected_sha256(name, *size));
        }
        assert_eq!(sidecar["archive"]["sizeBytes"], entry.size);
        assert_eq!(sidecar["recording"]["id"], entry.recording_id.as_str());
        let text = sidecar.to_string();
        assert!(
            !text.contains("mediaUri") && !text.contains("signature="),
            "no download URL in the sidecar"
        );
    }
    assert_eq!(open_uploads(s3, bucket).await, 0, "no multipart upload left open");
}

/// Every object in `bucket`: key to size.
pub async fn list_objects(s3: &Client, bucket: &str) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            all.insert(o.key().unwrap().to_owned(), o.size().unwrap_or(0) as u64);
        }
    }
    all
}

pub async fn get_object(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Multipart uploads still open in `bucket`.
pub async fn open_uploads(s3: &Client, bucket: &str) -> usize {
    let answer = s3.list_multipart_uploads().bucket(bucket).send().await.unwrap();
    answer.uploads().len()
}

impl std::ops::Deref for Harness {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}
