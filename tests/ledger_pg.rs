//! The PostgreSQL ledger against a real server (a throw-away cluster per test, started
//! by the harness; `scripts/test.sh` installs PostgreSQL): claims shared by replicas,
//! leases taken over, discovery one replica at a time, migrations raced, an outage
//! waited through.
//!
//! Over 500 lines: the PostgreSQL ledger's own behaviour (leases, lost replies, SKIP
//! LOCKED, outages, imports), cases sharing one throw-away server harness.

mod common;

use common::servers::Server;

use chrono::Utc;
use common::servers::Postgres;
use deadpool_postgres::tokio_postgres;
use genesys_archiver::ledger::postgres::{PgLedger, PgSettings};
use genesys_archiver::ledger::{ArchiveFacts, Ledger, LedgerError, NewRecording, State};
use std::collections::BTreeSet;
use std::time::Duration;

fn settings(pg: &Postgres, lease: Duration) -> PgSettings {
    PgSettings {
        url: pg.url.clone().into(),
        pool_size: 4,
        lease,
        outage_patience: Duration::from_secs(60),
    }
}

fn recording(id: &str) -> NewRecording {
    NewRecording {
        end_time: Some(Utc::now()),
        ..NewRecording::due(id, &format!("c-{id}"), Some(Utc::now()))
    }
}

fn facts(id: &str) -> ArchiveFacts {
    ArchiveFacts {
        key: format!("k/{id}"),
        size: 1,
        sha256: "00".into(),
        checksum: String::new(),
        archived_at: Utc::now(),
        parts: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_claim_every_recording_once_and_starting_together_migrate_once() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("claims");
    // Three replicas open the fresh database at once: the advisory lock orders them.
    let s = settings(&pg, Duration::from_secs(60));
    let (a, b, c) = tokio::join!(PgLedger::connect(&s), PgLedger::connect(&s), PgLedger::connect(&s));
    let replicas: Vec<PgLedger> = [a, b, c].into_iter().map(|l| l.unwrap().for_org("acme")).collect();
    let ids: Vec<String> = (0..120).map(|i| format!("r{i:03}")).collect();
    assert_eq!(
        replicas[0]
            .insert(ids.iter().map(|id| recording(id)).collect())
            .await
            .unwrap(),
        120
    );
    assert_eq!(
        replicas[1].insert(vec![recording("r000")]).await.unwrap(),
        0,
        "a known id is not added twice"
    );
    // Every replica claims as fast as it can; each claim is archived by its claimer.
    let claims = replicas.iter().map(|ledger| async move {
        let mut mine = Vec::new();
        while let Some(claimed) = ledger.claim_due(Utc::now()).await.unwrap() {
            ledger
                .archived(claimed.claim(), facts(&claimed.recording_id))
                .await
                .unwrap();
            mine.push(claimed.recording_id);
        }
        mine
    });
    let per_replica = futures_util::future::join_all(claims).await;
    let all: Vec<&String> = per_replica.iter().flatten().collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        120,
        "{:?}",
        per_replica.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(distinct.len(), 120, "no recording claimed twice");
    let status = replicas[2].status().await.unwrap();
    assert_eq!(status.recordings_in(State::Archived), 120);
    assert_eq!(replicas[0].orgs().await.unwrap(), vec!["acme".to_owned()]);
    // status reads the counts the triggers keep (16 shards per state, changed by three
    // replicas at once): they agree with the rows, state by state.
    let (client, connection) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let counted = client
        .query(
            "SELECT state, COUNT(*)::int8 FROM recordings GROUP BY state
             EXCEPT SELECT state, SUM(n)::int8 FROM recording_counts GROUP BY state HAVING SUM(n) <> 0",
            &[],
        )
        .await
        .unwrap();
    assert!(
        counted.is_empty(),
        "counts and rows disagree on {} states",
        counted.len()
    );
    let shards: i64 = client
        .query_one(
            "SELECT COUNT(DISTINCT shard) FROM recording_counts WHERE state = 'archived'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(shards > 1, "changes spread over shards");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_lease_runs_out_is_taken_over_with_its_upload_and_the_late_owner_is_refused() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("lease");
    let lease = Duration::from_millis(600);
    let a = PgLedger::connect(&settings(&pg, lease)).await.unwrap().for_org("acme");
    let b = PgLedger::connect(&settings(&pg, lease)).await.unwrap().for_org("acme");
    a.insert(vec![recording("r1")]).await.unwrap();
    let first = a.claim_due(Utc::now()).await.unwrap().expect("a claims r1");
    a.fix_key(first.claim(), "k/r1".into()).await.unwrap();
    a.upload_opened(first.claim(), "k/a".into(), "upload-of-a".into())
        .await
        .unwrap();

    // While a renews, b finds nothing to take.
    for _ in 0..4 {
        tokio::time::sleep(lease / 3).await;
        a.renew_leases().await.unwrap();
        assert!(
            b.claim_due(Utc::now()).await.unwrap().is_none(),
            "a live claim is not taken"
        );
    }
    // a stops renewing (it died, or lost the database): after the lease, b takes it
    // over, with a's open upload to abort and the key a fixed.
    tokio::time::sleep(lease * 2).await;
    let second = b.claim_due(Utc::now()).await.unwrap().expect("b takes r1 over");
    assert_eq!(second.recording_id, "r1");
    assert_eq!(second.open_upload.as_deref(), Some("upload-of-a"));
    assert_eq!(second.key.as_deref(), Some("k/r1"));
    assert_ne!(second.token, first.token);

    // a's late writes change nothing and say so.
    assert_eq!(
        a.archived(first.claim(), facts("r1")).await,
        Err(LedgerError::ClaimLost("r1".into()))
    );
    assert_eq!(
        a.upload_opened(first.claim(), "k/a".into(), "second-upload-of-a".into())
            .await,
        Err(LedgerError::ClaimLost("r1".into()))
    );
    b.upload_closed(second.claim()).await.unwrap();
    b.archived(second.claim(), facts("r1")).await.unwrap();
    assert_eq!(a.status().await.unwrap().recordings_in(State::Archived), 1);
    // A's renewals no longer reach it either.
    a.renew_leases().await.unwrap();
    assert!(b.claim_due(Utc::now()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_discovers_an_org_at_a_time_and_another_takes_over_when_it_stops() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("discovery");
    let lease = Duration::from_millis(600);
    let a = PgLedger::connect(&settings(&pg, lease)).await.unwrap();
    let b = PgLedger::connect(&settings(&pg, lease)).await.unwrap();
    let (a_acme, b_acme, b_globex) = (a.for_org("acme"), b.for_org("acme"), b.for_org("globex"));
    assert!(a_acme.hold_discovery().await.unwrap());
    assert!(!b_acme.hold_discovery().await.unwrap(), "acme is a's");
    assert!(b_globex.hold_discovery().await.unwrap(), "orgs are held apart");
    assert!(a_acme.hold_discovery().await.unwrap(), "the holder keeps it");
    // a lets go when an org stops there: b takes it at once.
    a_acme.release_discovery().await.unwrap();
    assert!(b_acme.hold_discovery().await.unwrap());
    // b stops renewing: after its lease a takes acme back.
    assert!(!a_acme.hold_discovery().await.unwrap());
    tokio::time::sleep(lease * 2).await;
    assert!(a_acme.hold_discovery().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_pauses_a_claim_until_the_database_is_back() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("outage");
    let ledger = PgLedger::connect(&settings(&pg, Duration::from_secs(60)))
        .await
        .unwrap()
        .for_org("acme");
    ledger.insert(vec![recording("r1")]).await.unwrap();
    pg.stop();
    let claim = tokio::spawn({
        let ledger = ledger.clone();
        async move { ledger.claim_due(Utc::now()).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!claim.is_finished(), "the claim waits through the outage");
    pg.resume();
    let claimed = claim
        .await
        .unwrap()
        .unwrap()
        .expect("claimed once the database is back");
    assert_eq!(claimed.recording_id, "r1");
    ledger.archived(claimed.claim(), facts("r1")).await.unwrap();
    assert_eq!(ledger.status().await.unwrap().recordings_in(State::Archived), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_reply_was_lost_is_picked_up_on_retry_and_a_replayed_write_is_a_success() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let replayed_writes = || {
        genesys_archiver::ledger::postgres::replayed_writes()
            .get("acme")
            .copied()
            .unwrap_or(0)
    };
    let pg = Postgres::start("lost-reply");
    let a = PgLedger::connect(&settings(&pg, Duration::from_secs(60)))
        .await
        .unwrap()
        .for_org("acme");
    a.insert(vec![recording("r1"), recording("r2"), recording("r3")])
        .await
        .unwrap();
    // The claim commits, its reply is lost, the call is tried again: the same row comes
    // back, and no second row is left claimed by nobody.
    a.lose_replies(1);
    let first = a.claim_due(Utc::now()).await.unwrap().expect("claimed");
    assert_eq!(a.status().await.unwrap().recordings_in(State::Uploading), 1);
    a.lose_replies(1);
    let listed = a.claim_recording("r3".into()).await.unwrap().expect("claimed");
    assert_eq!(listed.recording_id, "r3");
    assert_eq!(a.status().await.unwrap().recordings_in(State::Uploading), 2);
    // The archive commits, its reply is lost, it is replayed: a success, counted.
    let replayed = replayed_writes();
    a.lose_replies(1);
    a.archived(first.claim(), facts(&first.recording_id)).await.unwrap();
    assert_eq!(replayed_writes(), replayed + 1);
    a.lose_replies(1);
    a.park(listed.claim(), "gone".into()).await.unwrap();
    assert_eq!(replayed_writes(), replayed + 2);
    let status = a.status().await.unwrap();
    assert_eq!(
        (
            status.recordings_in(State::Archived),
            status.recordings_in(State::Parked),
            status.recordings_in(State::Uploading)
        ),
        (1, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_claims_a_replica_knows_it_holds_are_renewed() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("renew-held");
    let lease = Duration::from_millis(600);
    let a = PgLedger::connect(&settings(&pg, lease)).await.unwrap().for_org("acme");
    let b = PgLedger::connect(&settings(&pg, lease)).await.unwrap().for_org("acme");
    a.insert(vec![recording("r1"), recording("r2")]).await.unwrap();
    let held = a.claim_due(Utc::now()).await.unwrap().expect("a claims one");
    // The other row claimed under a's name, as a claim whose reply was lost for good
    // leaves it: committed, never handed to a worker of a.
    let (client, connection) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let orphan = if held.recording_id == "r1" { "r2" } else { "r1" };
    client
        .execute(
            "UPDATE recordings SET state = 'uploading', claim_token = 42,
                claim_owner = (SELECT claim_owner FROM recordings WHERE recording_id = $1),
                lease_until = (extract(epoch from clock_timestamp()) * 1000)::int8 + 600
             WHERE recording_id = $2",
            &[&held.recording_id, &orphan],
        )
        .await
        .unwrap();
    // a renews as it lives; after the lease b takes the orphan, never a's live claim.
    let mut taken = None;
    for _ in 0..12 {
        tokio::time::sleep(lease / 3).await;
        a.renew_leases().await.unwrap();
        if let Some(claimed) = b.claim_due(Utc::now()).await.unwrap() {
            taken = Some(claimed.recording_id);
            break;
        }
    }
    assert_eq!(
        taken.as_deref(),
        Some(orphan),
        "the orphan is taken over after its lease"
    );
    a.renew_leases().await.unwrap();
    assert!(
        b.claim_due(Utc::now()).await.unwrap().is_none(),
        "a's live claim is not"
    );
    a.archived(held.claim(), facts(&held.recording_id)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gap_longer_than_the_lease_a_replica_renews_before_it_claims_again() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("renew-gap");
    let lease = Duration::from_millis(600);
    let a = PgLedger::connect(&settings(&pg, lease)).await.unwrap().for_org("acme");
    a.insert(vec![recording("r1"), recording("r2")]).await.unwrap();
    let first = a.claim_due(Utc::now()).await.unwrap().expect("claimed");
    // No renewal for two leases (the database was away): a's own live claim looks run
    // out, and would be handed to a second worker of a without the renewal first.
    pg.stop();
    tokio::time::sleep(lease * 2).await;
    pg.resume();
    let second = a.claim_due(Utc::now()).await.unwrap().expect("the other one");
    assert_ne!(second.recording_id, first.recording_id);
    a.archived(first.claim(), facts(&first.recording_id)).await.unwrap();
    a.archived(second.claim(), facts(&second.recording_id)).await.unwrap();
}

/// The commands beside running daemons (`status`, `list`, `retry`) never migrate: a
/// fresh database or an older schema is refused with what to do, and left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_never_migrate_the_ledger() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("unmigrated");
    let s = settings(&pg, Duration::from_secs(60));
    let error = PgLedger::connect_unmigrated(&s).await.err().expect("nothing has run");
    assert!(error.to_string().contains("nothing has run"), "{error}");
    drop(PgLedger::connect(&s).await.unwrap());
    assert!(PgLedger::connect_unmigrated(&s).await.is_ok());
    let (client, connection) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .execute("UPDATE ledger_schema SET version = version - 1", &[])
        .await
        .unwrap();
    let before: i32 = client
        .query_one("SELECT version FROM ledger_schema", &[])
        .await
        .unwrap()
        .get(0);
    let error = PgLedger::connect_unmigrated(&s).await.err().expect("an older schema");
    assert!(error.to_string().contains("start the daemon"), "{error}");
    let after: i32 = client
        .query_one("SELECT version FROM ledger_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, before, "not migrated by a command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_ledger_is_copied_whole_and_the_work_its_owner_had_in_hand_is_taken_over() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    use genesys_archiver::ledger::org_state::OrgCondition;
    use genesys_archiver::ledger::sqlite::SqliteLedger;
    let pg = Postgres::start("import");
    let dir = std::env::temp_dir().join(format!("ga-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("ledger.sqlite");
    // What a single-process daemon leaves: 1,500 archived (more than one batch), one
    // parked with its reason, one failed, one queued, one mid-upload when it died, two
    // orgs' watermarks and states.
    {
        let sqlite = SqliteLedger::open(&file).unwrap();
        let (acme, globex) = (sqlite.for_org("acme"), sqlite.for_org("globex"));
        let ids: Vec<String> = (0..1500).map(|i| format!("a{i:04}")).collect();
        acme.insert(ids.iter().map(|id| recording(id)).collect()).await.unwrap();
        while let Some(claimed) = acme.claim_due(Utc::now()).await.unwrap() {
            acme.archived(claimed.claim(), facts(&claimed.recording_id))
                .await
                .unwrap();
        }
        globex
            .insert(["parked", "failed", "queued", "in-hand"].map(recording).to_vec())
            .await
            .unwrap();
        let claim = |id: &'static str| globex.claim_recording(id.into());
        let parked = claim("parked").await.unwrap().unwrap();
        globex
            .park(parked.claim(), "not a screen recording".into())
            .await
            .unwrap();
        let failed = claim("failed").await.unwrap().unwrap();
        globex.fail(failed.claim(), 4, "HTTP 500".into()).await.unwrap();
        let in_hand = claim("in-hand").await.unwrap().unwrap();
        globex.fix_key(in_hand.claim(), "k/in-hand".into()).await.unwrap();
        globex
            .upload_opened(in_hand.claim(), "k/file".into(), "upload-of-the-file".into())
            .await
            .unwrap();
        acme.set_watermark(Utc::now()).await.unwrap();
        globex
            .set_watermark(Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap();
        globex
            .record_org_state(OrgCondition::Failing {
                reason: "credentials refused".into(),
            })
            .await
            .unwrap();
    }
    let sqlite = SqliteLedger::open(&file).unwrap();
    let target = PgLedger::connect(&settings(&pg, Duration::from_secs(60)))
        .await
        .unwrap();
    let copied = target.import_sqlite(&file).await.unwrap();
    assert_eq!(copied.of("recordings"), (1504, 1504));
    assert_eq!(copied.of("meta"), (3, 3), "two watermarks and one org state");

    // PostgreSQL now says what the file says, org by org.
    for org in ["acme", "globex"] {
        let (was, now) = (
            sqlite.for_org(org).status().await.unwrap(),
            target.for_org(org).status().await.unwrap(),
        );
        assert_eq!(now.counts, was.counts, "{org}");
        assert_eq!(now.watermark, was.watermark, "{org}");
        assert_eq!(now.org_state, was.org_state, "{org}");
        assert_eq!(now.oldest_unarchived, was.oldest_unarchived, "{org}");
    }
    let globex = target.for_org("globex");
    let parked = globex
        .list(genesys_archiver::ledger::ListFilter::Parked, 10)
        .await
        .unwrap();
    assert_eq!(parked[0].reason.as_deref(), Some("not a screen recording"));
    // The upload the file's owner had open is taken over at once, key and upload id
    // with it; then the queued one.
    let taken = globex
        .claim_due(Utc::now())
        .await
        .unwrap()
        .expect("work in hand is due");
    assert_eq!(taken.recording_id, "in-hand");
    assert_eq!(taken.open_upload.as_deref(), Some("upload-of-the-file"));
    assert_eq!(taken.key.as_deref(), Some("k/in-hand"));
    assert_eq!(
        globex.claim_due(Utc::now()).await.unwrap().unwrap().recording_id,
        "queued"
    );
    assert!(globex.claim_due(Utc::now()).await.unwrap().is_none());

    // Run again (after a copy that stopped half-way, say): nothing is copied twice and
    // nothing copied is changed.
    let again = target.import_sqlite(&file).await.unwrap();
    assert!(again.tables.iter().all(|(_, _, new)| *new == 0), "{again:?}");
    assert_eq!(globex.status().await.unwrap().recordings_in(State::Uploading), 2);
    // A file a daemon still runs on is refused.
    let _owner = genesys_archiver::ledger::lock::LedgerLock::acquire(&file).unwrap();
    let refused = target.import_sqlite(&file).await.unwrap_err().to_string();
    assert!(refused.contains("in use") || refused.contains("lock"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Replicas share the hand-off queue: a hand-off one holds is neither due nor claimable
/// for another until its lease runs out (on the database's clock); a claim whose reply
/// was lost is the holder's own on retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_is_held_by_one_replica_at_a_time() {
    if common::servers::missing(&[Server::Postgres]) {
        return;
    }
    let pg = Postgres::start("handoff-held");
    let lease = Duration::from_millis(800);
    let a = PgLedger::connect(&settings(&pg, lease)).await.unwrap().for_org("acme");
    let b = PgLedger::connect(&settings(&pg, lease)).await.unwrap().for_org("acme");
    a.insert(vec![recording("r1")]).await.unwrap();
    let claimed = a.claim_due(Utc::now()).await.unwrap().unwrap();
    a.archived(claimed.claim(), facts("r1")).await.unwrap();
    assert_eq!(b.handoff_due(None, 10).await.unwrap().len(), 1);
    assert!(a.claim_handoff("r1".into()).await.unwrap());
    a.lose_replies(1);
    assert!(
        a.claim_handoff("r1".into()).await.unwrap(),
        "its own, after a lost reply"
    );
    assert!(!b.claim_handoff("r1".into()).await.unwrap(), "held by a");
    assert!(
        b.handoff_due(None, 10).await.unwrap().is_empty(),
        "not due to b while a holds it"
    );
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    assert!(b.claim_handoff("r1".into()).await.unwrap(), "b after a's lease");
}
