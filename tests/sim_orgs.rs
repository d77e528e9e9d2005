//! The simulator serving several orgs on one listener, as an AppFoundry vendor meets
//! them: each org under its own base URL with its own credentials, org id, budget,
//! limits and faults, and nothing shared (`../shared/genesys-api.md`, "Several
//! organizations"). The client reads each org's identity from `/organizations/me`.

mod common;

use common::{client, settings_from_text};
use genesys_archiver::genesys::ApiError;
use genesys_sim::{SimConfig, Simulator};

fn org(name: &str, seed: u64, token_limit: u32) -> SimConfig {
    SimConfig {
        token_limit,
        ..common::flat_org(5)
    }
    .named(name, seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_org_has_its_own_credentials_identity_budget_and_faults() {
    let sim = Simulator::start_orgs(
        vec![org("acme", 1, 300), org("globex", 2, 120), org("initech", 3, 60)],
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(sim.orgs().len(), 3);
    let mut ids = Vec::new();
    for (name, limit) in [("acme", 300), ("globex", 120), ("initech", 60)] {
        let org = sim.org(name).unwrap();
        assert!(org.url().ends_with(&format!("/orgs/{name}")), "{}", org.url());
        let c = client(&settings_from_text(&org.client_config()));
        let me = c.organization().await.unwrap();
        assert_eq!(me.id, org.org_id());
        assert_eq!(me.name.as_deref(), Some(name));
        assert_eq!(c.org_token_limit().await.unwrap(), Some(limit), "its own budget");
        ids.push(me.id);
        assert_eq!(org.catalog().len(), 5, "its own recordings");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct org ids");

    // acme's credentials mean nothing to globex.
    let acme = sim.org("acme").unwrap().client_config();
    let globex_url = sim.org("globex").unwrap().url().to_owned();
    let acme_url = sim.org("acme").unwrap().url().to_owned();
    let crossed = client(&settings_from_text(&acme.replace(&acme_url, &globex_url)));
    assert!(matches!(crossed.organization().await, Err(ApiError::Auth(_))));

    // A 429 storm in globex: globex is refused, acme answers as before.
    sim.org("globex").unwrap().set_storm(true);
    let globex = client(&settings_from_text(&format!(
        "{}\n[retry]\nmax_attempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\n",
        sim.org("globex").unwrap().client_config()
    )));
    assert!(globex.organization().await.is_err());
    let acme_client = client(&settings_from_text(&acme));
    assert!(acme_client.organization().await.is_ok());
    assert_eq!(sim.org("acme").unwrap().stats().count("organization", "429"), 0);
    let globex_stats = sim.org("globex").unwrap().stats();
    assert!(
        globex_stats.count("token", "429") + globex_stats.count("organization", "429") > 0,
        "{globex_stats:?}"
    );
}
