//! The SQLite ledger's schema: its migration steps, in order.

use rusqlite_migration::M;

/// The schema, one step per version; `PRAGMA user_version` counts the steps applied
/// (`rusqlite_migration`). Ledgers written before migrations existed carry
/// `user_version = 2`, i.e. steps 1 and 2: never edit a released step, add one.
pub(super) const MIGRATIONS: &[M<'static>] = &[
    M::up(
        "CREATE TABLE IF NOT EXISTS recordings (
            recording_id    TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL,
            state           TEXT NOT NULL,
            reason          TEXT,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            start_time      INTEGER,
            end_time        INTEGER,
            metadata        TEXT NOT NULL,
            object_key      TEXT,
            size            INTEGER,
            sha256          TEXT,
            upload_id       TEXT,
            discovered_at   INTEGER NOT NULL,
            archived_at     INTEGER,
            updated_at      INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS recordings_due ON recordings(state, next_attempt_at);
        -- Discovery asks, per conversation, whether the ledger knows it already.
        CREATE INDEX IF NOT EXISTS recordings_conversation ON recordings(conversation_id);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- Conversations whose recording list could not be used; their recordings are unknown.
        CREATE TABLE IF NOT EXISTS parked_conversations (
            conversation_id TEXT PRIMARY KEY,
            reason          TEXT NOT NULL,
            parked_at       INTEGER NOT NULL
        );",
    ),
    M::up(
        "-- The workers' queue, in claim order. Partial, so a claim walks to the first waiting
        -- recording instead of sorting every waiting one (measured: 76 ms per claim at a
        -- backlog of 100,000 without it; `scripts/bench/scale.sh`).
        CREATE INDEX IF NOT EXISTS recordings_queue ON recordings(next_attempt_at, start_time)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        -- Every discovered conversation's lifecycle (active, ended, checking, settled, parked).
        CREATE TABLE IF NOT EXISTS conversations (
            conversation_id TEXT PRIMARY KEY,
            start_time      INTEGER NOT NULL,
            end_time        INTEGER,
            state           TEXT NOT NULL,
            checks          INTEGER NOT NULL DEFAULT 0,
            next_check_at   INTEGER,
            updated_at      INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS conversations_due ON conversations(state, next_check_at);",
    ),
    M::up(
        "-- Every state change of a claimed recording names its claim.
        ALTER TABLE recordings ADD COLUMN claim_token INTEGER;
        -- Rows per state, kept by triggers in the same transaction as the change, so a
        -- /metrics scrape reads a dozen rows instead of grouping the whole ledger
        -- (measured: 15.4 ms per report at 100,000 recordings; `cargo bench --bench scrape`).
        CREATE TABLE counts (
            kind  TEXT NOT NULL,
            state TEXT NOT NULL,
            n     INTEGER NOT NULL,
            PRIMARY KEY (kind, state)
        ) WITHOUT ROWID;
        INSERT INTO counts SELECT 'recording', state, COUNT(*) FROM recordings GROUP BY state;
        INSERT INTO counts SELECT 'conversation', state, COUNT(*) FROM conversations GROUP BY state;
        CREATE TRIGGER recordings_counted_in AFTER INSERT ON recordings BEGIN
            INSERT INTO counts (kind, state, n) VALUES ('recording', NEW.state, 1)
                ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER recordings_counted_out AFTER DELETE ON recordings BEGIN
            UPDATE counts SET n = n - 1 WHERE kind = 'recording' AND state = OLD.state;
        END;
        CREATE TRIGGER recordings_counted_moved AFTER UPDATE OF state ON recordings
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE kind = 'recording' AND state = OLD.state;
            INSERT INTO counts (kind, state, n) VALUES ('recording', NEW.state, 1)
                ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_in AFTER INSERT ON conversations BEGIN
            INSERT INTO counts (kind, state, n) VALUES ('conversation', NEW.state, 1)
                ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_out AFTER DELETE ON conversations BEGIN
            UPDATE counts SET n = n - 1 WHERE kind = 'conversation' AND state = OLD.state;
        END;
        CREATE TRIGGER conversations_counted_moved AFTER UPDATE OF state ON conversations
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE kind = 'conversation' AND state = OLD.state;
            INSERT INTO counts (kind, state, n) VALUES ('conversation', NEW.state, 1)
                ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
        END;
        -- The oldest unarchived recording (status, /metrics) without a scan.
        CREATE INDEX recordings_unfinished ON recordings(COALESCE(end_time, start_time, discovered_at))
            WHERE state NOT IN ('archived', 'parked');
        -- Pruning walks only finished rows, oldest first.
        CREATE INDEX recordings_finished ON recordings(COALESCE(start_time, discovered_at))
            WHERE state IN ('archived', 'parked');
        CREATE INDEX conversations_start ON conversations(start_time);
        -- status lists the parked conversations oldest first.
        CREATE INDEX parked_conversations_at ON parked_conversations(parked_at);",
    ),
    M::up(
        "-- One ledger for several orgs: every row carries its org. Rows written before
        -- belong to the org of a single-org configuration.
        ALTER TABLE recordings ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE conversations ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE parked_conversations ADD COLUMN org TEXT NOT NULL DEFAULT 'default';
        -- Counts per org (status gives a line per org, /metrics a label).
        DROP TRIGGER recordings_counted_in;
        DROP TRIGGER recordings_counted_out;
        DROP TRIGGER recordings_counted_moved;
        DROP TRIGGER conversations_counted_in;
        DROP TRIGGER conversations_counted_out;
        DROP TRIGGER conversations_counted_moved;
        CREATE TABLE org_counts (
            org   TEXT NOT NULL,
            kind  TEXT NOT NULL,
            state TEXT NOT NULL,
            n     INTEGER NOT NULL,
            PRIMARY KEY (org, kind, state)
        ) WITHOUT ROWID;
        INSERT INTO org_counts SELECT 'default', kind, state, n FROM counts;
        DROP TABLE counts;
        ALTER TABLE org_counts RENAME TO counts;
        CREATE TRIGGER recordings_counted_in AFTER INSERT ON recordings BEGIN
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'recording', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER recordings_counted_out AFTER DELETE ON recordings BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'recording' AND state = OLD.state;
        END;
        CREATE TRIGGER recordings_counted_moved AFTER UPDATE OF state ON recordings
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'recording' AND state = OLD.state;
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'recording', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_in AFTER INSERT ON conversations BEGIN
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'conversation', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_out AFTER DELETE ON conversations BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'conversation' AND state = OLD.state;
        END;
        CREATE TRIGGER conversations_counted_moved AFTER UPDATE OF state ON conversations
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'conversation' AND state = OLD.state;
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'conversation', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        -- The queues and the oldest unarchived, per org: led by the org, so one org's
        -- claim walks its own queue, not the backlog of every other org.
        DROP INDEX recordings_queue;
        CREATE INDEX recordings_queue ON recordings(org, next_attempt_at, start_time)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        DROP INDEX conversations_due;
        CREATE INDEX conversations_due ON conversations(org, state, next_check_at);
        DROP INDEX recordings_unfinished;
        CREATE INDEX recordings_unfinished ON recordings(org, COALESCE(end_time, start_time, discovered_at))
            WHERE state NOT IN ('archived', 'parked');
        CREATE INDEX parked_conversations_org ON parked_conversations(org, parked_at);",
    ),
    M::up(
        "-- A screen recording can be several files (parts): each part's key, size and
        -- SHA-256, as JSON, for a recording of several; NULL for one file (object_key,
        -- size and sha256 say it all).
        ALTER TABLE recordings ADD COLUMN parts TEXT;
        -- Where the open multipart upload is: one of the part keys (NULL: object_key).
        ALTER TABLE recordings ADD COLUMN upload_key TEXT;
        -- Deadlines from the listing: after archive_date a restore is needed, after
        -- delete_date the recording is gone. deadline is the nearer of the two (a year
        -- after the start when neither is known): the queue is claimed nearest deadline first.
        ALTER TABLE recordings ADD COLUMN archive_date INTEGER;
        ALTER TABLE recordings ADD COLUMN delete_date INTEGER;
        ALTER TABLE recordings ADD COLUMN deadline INTEGER NOT NULL DEFAULT 0;
        -- Rows from before: a year after their start (Genesys keeps recordings a year at
        -- most), so the backlog keeps its place by age.
        UPDATE recordings SET deadline = COALESCE(start_time, discovered_at) + 31536000000;
        CREATE INDEX recordings_by_deadline ON recordings(org, deadline, next_attempt_at)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        -- The soonest deadline of what is not archived yet (status, /metrics) without a scan.
        CREATE INDEX recordings_open_deadline ON recordings(org, deadline)
            WHERE state NOT IN ('archived', 'parked');
        -- Why a conversation's last listing failed (NULL once one succeeds).
        ALTER TABLE conversations ADD COLUMN reason TEXT;
        CREATE INDEX conversations_failing ON conversations(org) WHERE reason IS NOT NULL;
        -- The oldest ended-but-unsettled conversation (status, /metrics) without a scan.
        CREATE INDEX conversations_unsettled ON conversations(org, end_time)
            WHERE state IN ('ended', 'checking');",
    ),
    M::up(
        "-- Rows keyed by (org, id): an org whose API answers with another org's ids (the
        -- same Genesys org configured twice, a hostile api_url) gets rows of its own and
        -- can never claim, park or re-key the other's. SQLite changes a primary key by
        -- rebuilding the table; its indexes and triggers are made again as they were.
        CREATE TABLE recordings_by_org (
            recording_id    TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            state           TEXT NOT NULL,
            reason          TEXT,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            start_time      INTEGER,
            end_time        INTEGER,
            metadata        TEXT NOT NULL,
            object_key      TEXT,
            size            INTEGER,
            sha256          TEXT,
            upload_id       TEXT,
            discovered_at   INTEGER NOT NULL,
            archived_at     INTEGER,
            updated_at      INTEGER NOT NULL,
            claim_token     INTEGER,
            org             TEXT NOT NULL DEFAULT 'default',
            parts           TEXT,
            upload_key      TEXT,
            archive_date    INTEGER,
            delete_date     INTEGER,
            deadline        INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (org, recording_id)
        );
        INSERT INTO recordings_by_org (recording_id, conversation_id, state, reason, attempts, next_attempt_at,
            start_time, end_time, metadata, object_key, size, sha256, upload_id, discovered_at, archived_at,
            updated_at, claim_token, org, parts, upload_key, archive_date, delete_date, deadline)
        SELECT recording_id, conversation_id, state, reason, attempts, next_attempt_at,
            start_time, end_time, metadata, object_key, size, sha256, upload_id, discovered_at, archived_at,
            updated_at, claim_token, org, parts, upload_key, archive_date, delete_date, deadline
        FROM recordings;
        DROP TABLE recordings;
        ALTER TABLE recordings_by_org RENAME TO recordings;
        CREATE INDEX recordings_due ON recordings(state, next_attempt_at);
        CREATE INDEX recordings_conversation ON recordings(org, conversation_id);
        CREATE INDEX recordings_queue ON recordings(org, next_attempt_at, start_time)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        CREATE INDEX recordings_unfinished ON recordings(org, COALESCE(end_time, start_time, discovered_at))
            WHERE state NOT IN ('archived', 'parked');
        CREATE INDEX recordings_finished ON recordings(COALESCE(start_time, discovered_at))
            WHERE state IN ('archived', 'parked');
        CREATE INDEX recordings_by_deadline ON recordings(org, deadline, next_attempt_at)
            WHERE state IN ('discovered', 'transcoding', 'retrying');
        CREATE INDEX recordings_open_deadline ON recordings(org, deadline)
            WHERE state NOT IN ('archived', 'parked');
        CREATE TRIGGER recordings_counted_in AFTER INSERT ON recordings BEGIN
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'recording', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER recordings_counted_out AFTER DELETE ON recordings BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'recording' AND state = OLD.state;
        END;
        CREATE TRIGGER recordings_counted_moved AFTER UPDATE OF state ON recordings
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'recording' AND state = OLD.state;
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'recording', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;

        CREATE TABLE conversations_by_org (
            conversation_id TEXT NOT NULL,
            start_time      INTEGER NOT NULL,
            end_time        INTEGER,
            state           TEXT NOT NULL,
            checks          INTEGER NOT NULL DEFAULT 0,
            next_check_at   INTEGER,
            updated_at      INTEGER NOT NULL,
            org             TEXT NOT NULL DEFAULT 'default',
            reason          TEXT,
            PRIMARY KEY (org, conversation_id)
        );
        INSERT INTO conversations_by_org (conversation_id, start_time, end_time, state, checks, next_check_at,
            updated_at, org, reason)
        SELECT conversation_id, start_time, end_time, state, checks, next_check_at, updated_at, org, reason
        FROM conversations;
        DROP TABLE conversations;
        ALTER TABLE conversations_by_org RENAME TO conversations;
        CREATE INDEX conversations_due ON conversations(org, state, next_check_at);
        CREATE INDEX conversations_start ON conversations(start_time);
        CREATE INDEX conversations_failing ON conversations(org) WHERE reason IS NOT NULL;
        CREATE INDEX conversations_unsettled ON conversations(org, end_time)
            WHERE state IN ('ended', 'checking');
        CREATE TRIGGER conversations_counted_in AFTER INSERT ON conversations BEGIN
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'conversation', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER conversations_counted_out AFTER DELETE ON conversations BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'conversation' AND state = OLD.state;
        END;
        CREATE TRIGGER conversations_counted_moved AFTER UPDATE OF state ON conversations
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE counts SET n = n - 1 WHERE org = OLD.org AND kind = 'conversation' AND state = OLD.state;
            INSERT INTO counts (org, kind, state, n) VALUES (NEW.org, 'conversation', NEW.state, 1)
                ON CONFLICT (org, kind, state) DO UPDATE SET n = n + 1;
        END;

        CREATE TABLE parked_conversations_by_org (
            conversation_id TEXT NOT NULL,
            reason          TEXT NOT NULL,
            parked_at       INTEGER NOT NULL,
            org             TEXT NOT NULL DEFAULT 'default',
            PRIMARY KEY (org, conversation_id)
        );
        INSERT INTO parked_conversations_by_org (conversation_id, reason, parked_at, org)
        SELECT conversation_id, reason, parked_at, org FROM parked_conversations;
        DROP TABLE parked_conversations;
        ALTER TABLE parked_conversations_by_org RENAME TO parked_conversations;
        CREATE INDEX parked_conversations_at ON parked_conversations(parked_at);
        CREATE INDEX parked_conversations_org ON parked_conversations(org, parked_at);",
    ),
    M::up(
        "-- The retention hand-off to Genesys: when it was done, the deleteDate before and the
        -- one set (NULL: left as it was, handoff_note says why). Due: archived, not yet.
        ALTER TABLE recordings ADD COLUMN handoff_at INTEGER;
        ALTER TABLE recordings ADD COLUMN handoff_old INTEGER;
        ALTER TABLE recordings ADD COLUMN handoff_new INTEGER;
        ALTER TABLE recordings ADD COLUMN handoff_note TEXT;
        CREATE INDEX recordings_handoff_due ON recordings(org, archived_at)
            WHERE state = 'archived' AND handoff_at IS NULL;",
    ),
];
