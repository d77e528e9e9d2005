//! The PostgreSQL ledger's schema: numbered steps, never edited once released, applied
//! in order, each in its own transaction, under an advisory lock so that replicas
//! starting together do not race (the second waits, then finds nothing to do). The
//! same mechanism as the SQLite ledger's `rusqlite_migration` (append-only steps and a
//! version counter); written out here because the maintained crates for PostgreSQL do
//! not fit: refinery 0.10 needs Rust 1.92 (this crate builds on 1.89), and sqlx's
//! migrator brings sqlx, a second PostgreSQL driver, for what is a loop over a slice.
//!
//! It is the SQLite schema as of its step 4 (rows per org), plus what several owners
//! need: who holds a claim and until when (`claim_owner`, `lease_until`), the same for
//! conversations being listed, and a lease per org for discovery.

use deadpool_postgres::tokio_postgres::Client;

/// `pg_advisory_lock` key of the migrations: "genesys-archiver schema" folded to 64 bits.
const MIGRATION_LOCK: i64 = 0x6761_7263_6873_6368;

pub const STEPS: &[&str] = &[
    r"
    CREATE TABLE recordings (
        recording_id    TEXT PRIMARY KEY,
        org             TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        state           TEXT NOT NULL,
        reason          TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        start_time      BIGINT,
        end_time        BIGINT,
        metadata        TEXT NOT NULL,
        object_key      TEXT,
        size            BIGINT,
        sha256          TEXT,
        upload_id       TEXT,
        discovered_at   BIGINT NOT NULL,
        archived_at     BIGINT,
        updated_at      BIGINT NOT NULL,
        claim_token     BIGINT,
        claim_owner     TEXT,
        lease_until     BIGINT
    );
    -- The workers' queue, in claim order, per org.
    CREATE INDEX recordings_queue ON recordings (org, next_attempt_at, start_time)
        WHERE state IN ('discovered', 'transcoding', 'retrying');
    -- Claims whose owner stopped renewing them: taken over.
    CREATE INDEX recordings_leased ON recordings (org, lease_until) WHERE state = 'uploading';
    -- status and /metrics count per state (an index-only scan, no hot counter row
    -- that every replica's every state change would queue on).
    CREATE INDEX recordings_by_state ON recordings (org, state);
    CREATE INDEX recordings_unfinished ON recordings (org, (COALESCE(end_time, start_time, discovered_at)))
        WHERE state NOT IN ('archived', 'parked');
    CREATE INDEX recordings_finished ON recordings ((COALESCE(start_time, discovered_at)))
        WHERE state IN ('archived', 'parked');
    CREATE INDEX recordings_conversation ON recordings (conversation_id);

    CREATE TABLE conversations (
        conversation_id TEXT PRIMARY KEY,
        org             TEXT NOT NULL,
        start_time      BIGINT NOT NULL,
        end_time        BIGINT,
        state           TEXT NOT NULL,
        checks          INTEGER NOT NULL DEFAULT 0,
        next_check_at   BIGINT,
        updated_at      BIGINT NOT NULL,
        claim_owner     TEXT,
        lease_until     BIGINT
    );
    CREATE INDEX conversations_due ON conversations (org, state, next_check_at);
    CREATE INDEX conversations_start ON conversations (start_time);

    CREATE TABLE parked_conversations (
        conversation_id TEXT PRIMARY KEY,
        org             TEXT NOT NULL,
        reason          TEXT NOT NULL,
        parked_at       BIGINT NOT NULL
    );
    CREATE INDEX parked_conversations_org ON parked_conversations (org, parked_at);

    -- Watermarks and org states, under the SQLite ledger's keys.
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    -- Who discovers an org now: one replica at a time, taken over when its lease ends.
    CREATE TABLE discovery_leases (
        org         TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        lease_until BIGINT NOT NULL
    );
",
    r"
    -- Listings whose lister stopped renewing them, as recordings_leased is for claims:
    -- without it every claim of a conversation read every conversation being listed
    -- (measured: 5.7 ms per discovered recording with 10,000 listed at once).
    CREATE INDEX conversations_leased ON conversations (org, lease_until) WHERE state = 'checking';
",
    r"
    -- A screen recording can be several files (parts): each part's key, size and SHA-256,
    -- as JSON, for a recording of several; NULL for one file. Where the open multipart
    -- upload is: one of the part keys (NULL: object_key). As SQLite's step 5.
    ALTER TABLE recordings ADD COLUMN parts TEXT;
    ALTER TABLE recordings ADD COLUMN upload_key TEXT;
    -- Deadlines from the listing (after archive_date a restore is needed, after delete_date
    -- the recording is gone); deadline is the nearer (a year after the start when neither
    -- is known: Genesys keeps recordings a year at most), and the queue is claimed nearest
    -- deadline first.
    ALTER TABLE recordings ADD COLUMN archive_date BIGINT;
    ALTER TABLE recordings ADD COLUMN delete_date BIGINT;
    ALTER TABLE recordings ADD COLUMN deadline BIGINT NOT NULL DEFAULT 0;
    UPDATE recordings SET deadline = COALESCE(start_time, discovered_at) + 31536000000;
    CREATE INDEX recordings_by_deadline ON recordings (org, deadline, next_attempt_at)
        WHERE state IN ('discovered', 'transcoding', 'retrying');
    CREATE INDEX recordings_open_deadline ON recordings (org, deadline) WHERE state NOT IN ('archived', 'parked');
    -- Why a conversation's last listing failed (NULL once one succeeds).
    ALTER TABLE conversations ADD COLUMN reason TEXT;
    CREATE INDEX conversations_failing ON conversations (org) WHERE reason IS NOT NULL;
    CREATE INDEX conversations_unsettled ON conversations (org, end_time) WHERE state IN ('ended', 'checking');
",
    r"
    -- Rows keyed by (org, id): an org whose API answers with another org's ids (the same
    -- Genesys org configured twice, a hostile api_url) gets rows of its own and can never
    -- claim, park or re-key the other's. As SQLite's step 6.
    ALTER TABLE recordings DROP CONSTRAINT recordings_pkey, ADD PRIMARY KEY (org, recording_id);
    ALTER TABLE conversations DROP CONSTRAINT conversations_pkey, ADD PRIMARY KEY (org, conversation_id);
    ALTER TABLE parked_conversations DROP CONSTRAINT parked_conversations_pkey,
        ADD PRIMARY KEY (org, conversation_id);
    DROP INDEX recordings_conversation;
    CREATE INDEX recordings_conversation ON recordings (org, conversation_id);
",
    r"
    -- Rows per org and state, kept by triggers in the same transaction as the change, so
    -- status and /metrics read a few dozen rows instead of counting the recordings (the
    -- SQLite ledger's counts, step 3). Spread over 16 shards per state, each change
    -- adding to a random one, so replicas changing states at once rarely queue on one
    -- row; a shard may go below zero, the sum is exact. A deadlock between two changes
    -- (40P01) is retried as any serialization conflict is.
    -- No row changes between the snapshot below and the triggers taking over (a
    -- replica of the previous build writing meanwhile would be counted by neither).
    LOCK TABLE recordings, conversations IN SHARE ROW EXCLUSIVE MODE;
    CREATE TABLE recording_counts (
        org   TEXT NOT NULL,
        state TEXT NOT NULL,
        shard SMALLINT NOT NULL,
        n     BIGINT NOT NULL,
        PRIMARY KEY (org, state, shard)
    );
    CREATE TABLE conversation_counts (LIKE recording_counts INCLUDING ALL);
    INSERT INTO recording_counts SELECT org, state, 0, COUNT(*) FROM recordings GROUP BY org, state;
    INSERT INTO conversation_counts SELECT org, state, 0, COUNT(*) FROM conversations GROUP BY org, state;
    CREATE FUNCTION ledger_count() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        shard SMALLINT := floor(random() * 16)::smallint;
        table_name TEXT := TG_ARGV[0];
        changes TEXT[][];
        i INT;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            changes := ARRAY[[NEW.org, NEW.state, '1']];
        ELSIF TG_OP = 'DELETE' THEN
            changes := ARRAY[[OLD.org, OLD.state, '-1']];
        ELSIF OLD.state IS DISTINCT FROM NEW.state OR OLD.org IS DISTINCT FROM NEW.org THEN
            -- Both rows in one order (by state), whichever way the row moves.
            IF OLD.state <= NEW.state THEN
                changes := ARRAY[[OLD.org, OLD.state, '-1'], [NEW.org, NEW.state, '1']];
            ELSE
                changes := ARRAY[[NEW.org, NEW.state, '1'], [OLD.org, OLD.state, '-1']];
            END IF;
        ELSE
            RETURN NULL;
        END IF;
        FOR i IN 1 .. array_length(changes, 1) LOOP
            EXECUTE format(
                'INSERT INTO %I (org, state, shard, n) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (org, state, shard) DO UPDATE SET n = %I.n + excluded.n',
                table_name, table_name)
            USING changes[i][1], changes[i][2], shard, changes[i][3]::bigint;
        END LOOP;
        RETURN NULL;
    END $$;
    CREATE TRIGGER recordings_counted AFTER INSERT OR DELETE OR UPDATE OF state, org ON recordings
        FOR EACH ROW EXECUTE FUNCTION ledger_count('recording_counts');
    CREATE TRIGGER conversations_counted AFTER INSERT OR DELETE OR UPDATE OF state, org ON conversations
        FOR EACH ROW EXECUTE FUNCTION ledger_count('conversation_counts');
",
    r"
    -- The retention hand-off to Genesys: when it was done, the deleteDate before and the
    -- one set (NULL: left as it was, handoff_note says why); the replica doing it and
    -- until when (its lease, on the database's clock). As SQLite's step 7.
    ALTER TABLE recordings ADD COLUMN handoff_at BIGINT, ADD COLUMN handoff_old BIGINT,
        ADD COLUMN handoff_new BIGINT, ADD COLUMN handoff_note TEXT,
        ADD COLUMN handoff_owner TEXT, ADD COLUMN handoff_lease BIGINT;
    CREATE INDEX recordings_handoff_due ON recordings (org, archived_at)
        WHERE state = 'archived' AND handoff_at IS NULL;
",
];

/// Checks, without changing anything, that the schema is this build's version: for the
/// commands that read or edit rows beside running daemons (`status`, `list`, `retry`),
/// which never migrate (a schema change is the daemons' to make, under the migration
/// lock, at their start).
pub async fn check(client: &Client) -> Result<(), String> {
    let known = STEPS.len() as i32;
    let row = client
        .query_opt(
            "SELECT version FROM ledger_schema WHERE to_regclass('ledger_schema') IS NOT NULL",
            &[],
        )
        .await;
    let applied = match row {
        Ok(Some(row)) => row.get::<_, i32>(0),
        Ok(None) => return Err("no ledger in this database yet (nothing has run)".into()),
        Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "42P01") => {
            return Err("no ledger in this database yet (nothing has run)".into());
        }
        Err(e) => return Err(failed(e)),
    };
    match applied.cmp(&known) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(format!(
            "the ledger's schema is version {applied}, this build's {known}: start the daemon (it migrates under the lock) before this command"
        )),
        std::cmp::Ordering::Greater => Err(format!(
            "the ledger's schema is version {applied}, newer than this build's {known}"
        )),
    }
}

/// Brings the schema to this build's version. A database whose schema is newer than
/// this build is refused: its rows may mean what this build does not know.
pub async fn migrate(client: &mut Client) -> Result<(), String> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed)?;
    let result = apply(client).await;
    // Released whatever happened; the session's end would release it too.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

fn failed(e: deadpool_postgres::tokio_postgres::Error) -> String {
    format!("schema migration failed: {e}")
}

async fn apply(client: &mut Client) -> Result<(), String> {
    client
        // Without the server's "already exists, skipping" notice in every start's log.
        .batch_execute(
            "SET client_min_messages = warning;
             CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER NOT NULL);
             RESET client_min_messages",
        )
        .await
        .map_err(failed)?;
    let row = client
        .query_opt("SELECT version FROM ledger_schema", &[])
        .await
        .map_err(failed)?;
    let applied = match row {
        Some(row) => row.get::<_, i32>(0),
        None => {
            client
                .execute("INSERT INTO ledger_schema (version) VALUES (0)", &[])
                .await
                .map_err(failed)?;
            0
        }
    };
    let known = STEPS.len() as i32;
    if applied > known {
        return Err(format!(
            "schema version {applied} is newer than this build knows ({known} steps); run a newer genesys-archiver"
        ));
    }
    for (index, step) in STEPS.iter().enumerate().skip(applied as usize) {
        let tx = client.transaction().await.map_err(failed)?;
        tx.batch_execute(step).await.map_err(failed)?;
        tx.execute("UPDATE ledger_schema SET version = $1", &[&(index as i32 + 1)])
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    Ok(())
}
