//! A Genesys Cloud simulator, for the demo, the load test and the tests.
//!
//! It behaves like the platform where the archiver cares: OAuth client credentials and
//! expiring tokens; the analytics query (paged, interval on conversation start, at
//! most 7 days long and 35 days back, at most `max_results` conversations paged,
//! segment filters `recording` = audio and `screenRecording` = screen, conversation
//! filters on `conversationId` and `conversationEnd`, no `conversationEnd` while a
//! conversation goes on); the asynchronous analytics jobs API; conversations that
//! start, go on and end while it runs, their recordings listed only after the end and
//! first as UPLOADING; recordingmetadata; the conversation's recordings in one call (200,
//! or 202 while some transcode, URLs on the ready ones); the recording call (202 while
//! transcoding, ARCHIVED and DELETED states, signed `mediaUris`); the org's limits;
//! media on signed URLs that expire with 403; a per-token budget
//! and per-endpoint limits over a sliding window, with `inin-ratelimit-*` headers and
//! 429s with or without Retry-After; injected latency, 5xx and dropped connections; and
//! new conversations while it runs; `GET /api/v2/organizations/me` (the org's id and
//! name). `GET /sim/stats` counts every answer. One simulator can serve several orgs
//! on one listener, each under `/orgs/{name}` with everything of its own (credentials,
//! org id, catalog, budget, limits, faults, statistics), as real orgs share nothing.

mod analytics;
pub mod catalog;
pub mod config;
mod downloads;
pub mod endpoint;
pub mod hostile;
mod jobs;
pub mod media;
mod recordings;
pub mod retention;
pub mod routes;
pub mod stats;
pub mod window;
pub mod wire;

use catalog::{Catalog, CatalogEntry};
pub use config::SimConfig;
pub use endpoint::Endpoint;
use routes::Limits;
use stats::{Counters, SimStats};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Everything the handlers share.
pub struct SimState {
    pub config: SimConfig,
    /// What `GET /api/v2/organizations/me` answers as `id`.
    pub org_id: String,
    /// `http://ADDR`, the base of API calls and of media URLs.
    pub base_url: String,
    pub catalog: Mutex<Catalog>,
    pub limits: Mutex<Limits>,
    pub stats: Counters,
    pub rng: Mutex<fastrand::Rng>,
    /// Key of media URL signatures; per process, so old URLs die with the simulator.
    pub signing_secret: String,
    /// Faults switched on and off while it runs (outage tests).
    pub faults: Faults,
    /// Analytics jobs submitted, by id.
    pub jobs: Mutex<HashMap<String, jobs::SimJob>>,
}

/// Faults a test turns on for a while, then off.
#[derive(Debug, Default)]
pub struct Faults {
    /// Every API call answers 503 (the platform is down).
    pub outage: AtomicBool,
    /// Every API call answers a bare 429: no Retry-After, no rate-limit headers.
    pub storm: AtomicBool,
    /// Every media download answers 503 (the media host is down; the API is not).
    pub media_outage: AtomicBool,
    /// Every API call, the token endpoint included, goes unanswered while on (a
    /// platform that does not answer at all, as at a network partition).
    pub silent: AtomicBool,
    /// Retention updates answer 503 and change nothing while on.
    pub retention_outage: AtomicBool,
}

/// A running simulator; dropping it stops it. It serves one org at its root
/// ([`Simulator::start`]) or several, each under its own base URL
/// ([`Simulator::start_orgs`]). It dereferences to its first org, so single-org code
/// reads `sim.catalog()`, `sim.stats()` as before.
pub struct Simulator {
    orgs: Vec<SimOrg>,
    tasks: Vec<JoinHandle<()>>,
}

/// One simulated org: its own credentials, org id, catalog, budget, limits, faults and
/// statistics, behind its own base URL (as each real org has its region's hosts).
pub struct SimOrg {
    state: Arc<SimState>,
    addr: SocketAddr,
}

impl std::ops::Deref for Simulator {
    type Target = SimOrg;

    fn deref(&self) -> &SimOrg {
        &self.orgs[0]
    }
}

fn org_state(config: SimConfig, base_url: String) -> Arc<SimState> {
    let mut rng = fastrand::Rng::with_seed(config.seed ^ 0x5eed);
    let org_id = uuid_from(&mut rng);
    Arc::new(SimState {
        base_url,
        org_id,
        catalog: Mutex::new(Catalog::generate(&config, chrono::Utc::now())),
        limits: Mutex::new(Limits {
            tokens: HashMap::new(),
            per_token: HashMap::new(),
            per_endpoint: HashMap::new(),
        }),
        stats: Counters::default(),
        signing_secret: format!("{:016x}{:016x}", rng.u64(..), fastrand::u64(..)),
        faults: Faults::default(),
        jobs: Mutex::new(HashMap::new()),
        rng: Mutex::new(rng),
        config,
    })
}

/// A v4-shaped UUID from the org's seeded generator (stable per seed).
fn uuid_from(rng: &mut fastrand::Rng) -> String {
    let (a, b) = (rng.u64(..), rng.u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

impl Simulator {
    /// Binds `listen` (port 0 for any free port) and serves one org at the root.
    pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = org_state(config, format!("http://{addr}"));
        Ok(Self::serve(listener, addr, vec![(None, state)]))
    }

    /// Binds `listen` and serves each org under `http://ADDR/orgs/{org_name}` (its API,
    /// login and media base URL). Names must be distinct.
    pub async fn start_orgs(configs: Vec<SimConfig>, listen: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let mut orgs = Vec::new();
        for config in configs {
            let prefix = format!("/orgs/{}", config.org_name);
            let state = org_state(config, format!("http://{addr}{prefix}"));
            orgs.push((Some(prefix), state));
        }
        Ok(Self::serve(listener, addr, orgs))
    }

    fn serve(listener: tokio::net::TcpListener, addr: SocketAddr, orgs: Vec<(Option<String>, Arc<SimState>)>) -> Self {
        let mut app = axum::Router::new();
        let mut tasks = Vec::new();
        let mut handles = Vec::new();
        for (prefix, state) in orgs {
            app = match prefix {
                Some(prefix) => app.nest(&prefix, routes::router(state.clone())),
                None => app.merge(routes::router(state.clone())),
            };
            if state.config.new_conversations_per_minute > 0.0 {
                tasks.push(tokio::spawn(grow(state.clone())));
            }
            handles.push(SimOrg { state, addr });
        }
        tasks.insert(
            0,
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, app).await {
                    tracing::error!(message = "Simulator stopped.", %error);
                }
            }),
        );
        Self { orgs: handles, tasks }
    }

    /// Every org served, in the order given.
    pub fn orgs(&self) -> &[SimOrg] {
        &self.orgs
    }

    /// Every org's answers added up.
    pub fn total_stats(&self) -> SimStats {
        (self.total_stats_handle())()
    }

    /// [`Simulator::total_stats`] as a closure, for tasks that outlive a borrow.
    pub fn total_stats_handle(&self) -> impl Fn() -> SimStats + Send + 'static {
        let states: Vec<_> = self.orgs.iter().map(|o| o.state.clone()).collect();
        move || {
            let mut total = SimStats::default();
            for state in &states {
                total.add(&state.stats.snapshot());
            }
            total
        }
    }

    /// The org named `name`.
    pub fn org(&self, name: &str) -> Option<&SimOrg> {
        self.orgs.iter().find(|o| o.state.config.org_name == name)
    }

    /// Serves until the process is stopped (the `sim` command).
    pub async fn run_forever(mut self) {
        if let Some(server) = self.tasks.first_mut() {
            let _ = server.await;
        }
    }
}

impl SimOrg {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This org's base URL: its API, login and media host at once.
    pub fn url(&self) -> &str {
        &self.state.base_url
    }

    /// The org id `GET /api/v2/organizations/me` answers.
    pub fn org_id(&self) -> &str {
        &self.state.org_id
    }

    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// Answers so far, the same as `GET /sim/stats`.
    pub fn stats(&self) -> SimStats {
        self.state.stats.snapshot()
    }

    /// A closure that reads the statistics, for tasks that outlive a borrow of the simulator.
    pub fn stats_handle(&self) -> impl Fn() -> SimStats + Send + 'static {
        let state = self.state.clone();
        move || state.stats.snapshot()
    }

    /// Every recording the org has now.
    pub fn catalog(&self) -> Vec<CatalogEntry> {
        self.state.catalog.lock().unwrap().entries()
    }

    /// Every access token issued so far (tests check none reaches a log line).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.limits.lock().unwrap().tokens.keys().cloned().collect()
    }

    /// Every API call answers 503 while on.
    pub fn set_outage(&self, on: bool) {
        self.state.faults.outage.store(on, Ordering::SeqCst);
    }

    /// Every API call goes unanswered while on (answered once it is off, if the
    /// caller still waits).
    pub fn set_silent(&self, on: bool) {
        self.state.faults.silent.store(on, Ordering::SeqCst);
    }

    /// Retention updates answer 503 and change nothing while on.
    pub fn set_retention_outage(&self, on: bool) {
        self.state.faults.retention_outage.store(on, Ordering::SeqCst);
    }

    /// Every media download answers 503 while on.
    pub fn set_media_outage(&self, on: bool) {
        self.state.faults.media_outage.store(on, Ordering::SeqCst);
    }

    /// Every API call answers a bare 429 (no Retry-After, no headers) while on.
    pub fn set_storm(&self, on: bool) {
        self.state.faults.storm.store(on, Ordering::SeqCst);
    }

    /// The hostile cases in the org (empty unless `SimConfig::hostile`).
    pub fn hostile_cases(&self) -> Vec<catalog::HostileCase> {
        self.state.catalog.lock().unwrap().hostile_cases()
    }

    /// Revokes every issued token: the next call with one answers 401.
    pub fn revoke_tokens(&self) {
        self.state.limits.lock().unwrap().tokens.clear();
    }

    /// The archiver configuration (TOML) that points at this simulator, with the
    /// simulator's limits as the budget. Callers append the other sections they need.
    pub fn client_config(&self) -> String {
        let c = &self.state.config;
        let mut text = format!(
            "[genesys]\napi_url = \"{url}\"\nlogin_url = \"{url}\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n\
             media_hosts = [\"{host}\"]\nallow_http = true\n\n[limits]\nrequests_per_minute = {rpm}\nwindow = \"{window}ms\"\n\n[limits.endpoints]\n",
            url = self.state.base_url,
            id = c.client_id,
            secret = c.client_secret,
            host = self.addr.ip(),
            rpm = c.token_limit,
            window = c.window.as_millis(),
        );
        for (endpoint, limit) in &c.endpoint_limits {
            text.push_str(&format!("{endpoint} = {limit}\n"));
        }
        text
    }

    /// A complete archiver configuration for this simulator, archiving into local
    /// files under `directory` (the ledger beside them): what `sim` prints, ready for
    /// `run --config`.
    pub fn archiver_config(&self, directory: &str) -> String {
        let upload = self.state.config.upload_time.1;
        format!(
            "# genesys-archiver configuration for the simulator at {url}\n{client}\n\
             [discovery]\n\
             # The simulator's analytics has no ingestion lag and its uploads end within {upload:?}.\n\
             settle_delay = \"0s\"\n\
             settle_after_end = \"{upload_ms}ms\"\n\n\
             [ledger]\npath = {ledger:?}\n\n\
             [sink]\nkind = \"file\"\ndirectory = {archive:?}\n",
            url = self.state.base_url,
            client = self.client_config(),
            upload_ms = upload.as_millis(),
            ledger = format!("{directory}/ledger.sqlite"),
            archive = format!("{directory}/archive"),
        )
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Adds conversations at `new_conversations_per_minute`, as agents finish sessions.
async fn grow(state: Arc<SimState>) {
    let per_second = state.config.new_conversations_per_minute / 60.0;
    let mut owed = 0.0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        owed += per_second;
        let due = owed.floor();
        owed -= due;
        if due >= 1.0 {
            let mut catalog = state.catalog.lock().unwrap();
            for _ in 0..due as usize {
                catalog.add_conversation(&state.config, chrono::Utc::now());
            }
        }
    }
}
