//! Several orgs on one simulator listener, moto with one vendor bucket, and the daemon
//! configured with one `[[orgs]]` entry per org, each archived under its own prefix
//! (`{org}/`): the setting of a vendor serving many orgs, for black-box runs.

use super::harness::{Site, assert_bucket_holds, daemon_command, pipeline_config};
use genesys_sim::catalog::CatalogEntry;
use genesys_sim::{SimConfig, SimOrg, Simulator};
use std::process::Stdio;

/// The org's simulator configuration as one `[[orgs]]` entry; `secret` replaces its
/// client secret (to play revoked credentials).
pub fn org_entry(org: &SimOrg, secret: Option<&str>) -> String {
    let mut text = org
        .client_config()
        .replace("[genesys]", "[orgs.genesys]")
        .replace("[limits.endpoints]", "[orgs.limits.endpoints]")
        .replace("[limits]", "[orgs.limits]");
    if let Some(secret) = secret {
        text = text.replace(&format!("{}-secret", org.config().org_name), secret);
    }
    format!("[[orgs]]\nname = \"{}\"\n{text}\n", org.config().org_name)
}

/// Screen recordings `org` can hand out: what its prefix must hold.
pub fn available_in(org: &SimOrg) -> Vec<CatalogEntry> {
    org.catalog()
        .into_iter()
        .filter(|e| e.media == "screen" && e.file_state == "AVAILABLE")
        .collect()
}

pub struct Fleet {
    pub sim: Simulator,
    pub site: Site,
}

impl Fleet {
    /// The simulator serving `orgs`, moto with the vendor's bucket, and a configuration
    /// naming every org; `ledger` is the body of the `[ledger]` section and `extra` TOML
    /// is appended.
    pub async fn start(orgs: Vec<SimConfig>, ledger: &str, extra: &str) -> Self {
        let sim = Simulator::start_orgs(orgs, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("simulator starts");
        let site = Site::start("vendor-archive", "fleet").await;
        let entries: String = sim.orgs().iter().map(|o| org_entry(o, None)).collect();
        let text = format!(
            "{}{entries}",
            pipeline_config(ledger, &site.bucket, "{org}/", &site.moto.url, extra)
        );
        std::fs::write(&site.config, text).unwrap();
        Self { sim, site }
    }

    /// The daemon as a child process with S3 test credentials, its output into
    /// `log_name` in the fleet's directory.
    pub fn spawn(&self, args: &[&str], env: &[(&str, String)], log_name: &str) -> tokio::process::Child {
        let log = std::fs::File::create(self.dir.join(log_name)).unwrap();
        daemon_command(args, &self.config)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("daemon starts")
    }

    /// As [`Fleet::spawn`], with the daemon's wall clock `ahead` of the machine's
    /// (libfaketime preloaded, `GENESYS_TEST_FAKETIME_LIB`; the monotonic clock, which
    /// timers use, is left alone, as NTP would leave it).
    pub fn spawn_ahead(&self, ahead: &str, env: &[(&str, String)], log_name: &str) -> tokio::process::Child {
        let lib = std::env::var("GENESYS_TEST_FAKETIME_LIB").unwrap_or_else(|_| {
            panic!("GENESYS_TEST_FAKETIME_LIB is not set: run `bash scripts/test.sh`, which installs faketime")
        });
        let log = std::fs::File::create(self.dir.join(log_name)).unwrap();
        daemon_command(&["run"], &self.config)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LD_PRELOAD", lib)
            .env("FAKETIME", ahead)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_NO_CACHE", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("daemon starts")
    }

    /// Every screen recording the orgs can hand out, with its org's prefix.
    pub fn expected(&self) -> Vec<(String, CatalogEntry)> {
        self.sim
            .orgs()
            .iter()
            .flat_map(|org| {
                let prefix = format!("{}/", org.config().org_name);
                available_in(org).into_iter().map(move |e| (prefix.clone(), e))
            })
            .collect()
    }

    /// Every expected recording is in the bucket once under its org's prefix, with the
    /// simulator's bytes, and nothing else is; no multipart upload is open.
    pub async fn assert_bucket_holds_exactly(&self, expected: &[(String, CatalogEntry)]) {
        assert_bucket_holds(&self.s3, &self.bucket, expected).await;
    }

    /// (API calls, 429s) the platform saw, all orgs together.
    pub fn calls_and_refusals(&self) -> (u64, u64) {
        let stats = self.sim.total_stats();
        (stats.api_calls(), stats.refusals())
    }
}

impl std::ops::Deref for Fleet {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}
