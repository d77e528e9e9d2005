//! The [`Ledger`] interface on PostgreSQL. Over 500 lines: it is one trait
//! implementation: every method is a short call of a shared statement
//! ([`crate::ledger::statements`]) except the claims, which add leases and
//! `FOR UPDATE SKIP LOCKED` and stay here, beside the backend they belong to.

use super::*;

impl Ledger for PgLedger {
    /// Runs a state change of a claimed recording (`sql`'s last four parameters are
    /// `updated_at`, the recording id, the claim token and the org) and checks that it changed
    /// the row: a claim taken over changes nothing and says so. `settles`: the state a
    /// change that ends the claim leaves (then the token is no longer renewed); a try
    /// replayed after a lost reply that finds the row already there, unclaimed, is a
    /// success, counted in [`replayed_writes`].
    fn claimed_change(&self, claim: Claim, change: ClaimedChange) -> BoxFuture<'_, LedgerResult<()>> {
        let settles = change.settles;
        let (id, token) = (claim.recording_id.clone(), claim.token);
        let tries = std::sync::atomic::AtomicU32::new(0);
        let changed = self.run(move |c, l| {
            let retry = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0;
            let values = change.bound(now_ms(), &claim.recording_id, claim.token, l.org());
            let id = claim.recording_id.clone();
            Box::pin(async move {
                let n = c.execute(SQL.sql(change.statement), &bind(&values)).await?;
                let (Some(intended), true, 0) = (settles, retry, n) else {
                    return Ok(n);
                };
                let row = c
                    .query_opt(
                        "SELECT state FROM recordings WHERE org = $1 AND recording_id = $2 AND claim_token IS NULL",
                        &[&l.org(), &id],
                    )
                    .await?;
                if row.is_some_and(|r| r.get::<_, String>(0) == intended) {
                    *REPLAYED_WRITES
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(l.org().to_owned())
                        .or_default() += 1;
                    tracing::info!(
                        message = "A write replayed after a lost reply found its row as intended.",
                        state = intended
                    );
                    return Ok(1);
                }
                Ok(0)
            })
        });
        Box::pin(async move {
            let result = match changed.await {
                Ok(0) => Err(LedgerError::ClaimLost(id)),
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            };
            // Settled, taken over, or not written (the ledger away past the patience):
            // either way this process is done with the claim; never renewed again.
            if settles.is_some() || result.is_err() {
                self.held().claims.remove(&token);
            }
            result
        })
    }

    fn insert(&self, recordings: Vec<NewRecording>) -> BoxFuture<'_, LedgerResult<u64>> {
        let recordings: Vec<NewRecording> = recordings.into_iter().map(NewRecording::sanitized).collect();
        self.run(move |c, l| {
            let recordings = recordings.clone();
            Box::pin(async move {
                let tx = c.transaction().await?;
                let stmt = tx.prepare_cached(SQL.sql(statements::INSERT_RECORDING)).await?;
                let now = Utc::now();
                let mut added = 0;
                for r in &recordings {
                    added += tx
                        .execute(&stmt, &bind(&changes::new_recording(r, l.org(), now)))
                        .await?;
                }
                tx.commit().await?;
                Ok(added)
            })
        })
    }

    fn conversations(
        &self,
        conversation_ids: Vec<String>,
    ) -> BoxFuture<'_, LedgerResult<std::collections::HashMap<String, ConversationRow>>> {
        self.run(move |c, l| {
            let ids = conversation_ids.clone();
            Box::pin(async move {
                let mut known = std::collections::HashMap::new();
                for row in c.query(SQL.sql(statements::CONVERSATIONS), &[&ids, &l.org()]).await? {
                    let row = rows::conversation(&row)?;
                    known.insert(row.conversation_id.clone(), row);
                }
                for row in c.query(SQL.sql(statements::PARKED_AMONG), &[&ids, &l.org()]).await? {
                    let id: String = row.try_get(0)?;
                    known.entry(id.clone()).or_insert_with(|| rows::parked_conversation(id));
                }
                Ok(known)
            })
        })
    }

    fn save_conversations(&self, rows: Vec<ConversationRow>) -> BoxFuture<'_, LedgerResult<()>> {
        let rows: Vec<ConversationRow> = rows.into_iter().map(ConversationRow::sanitized).collect();
        let listed: Vec<(String, String)> = rows
            .iter()
            .map(|r| (self.org.to_string(), r.conversation_id.clone()))
            .collect();
        let saved = self.run(move |c, l| {
            let rows = rows.clone();
            Box::pin(async move {
                let tx = c.transaction().await?;
                let stmt = tx.prepare_cached(SQL.sql(statements::SAVE_CONVERSATION)).await?;
                let now = now_ms();
                for r in &rows {
                    tx.execute(&stmt, &bind(&changes::conversation(r, l.org(), now)))
                        .await?;
                }
                tx.commit().await
            })
        });
        // Saved, the conversation's listing (if this process held it) is over.
        self.release_listings(saved, listed)
    }

    fn active_by_next_check(&self, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<ConversationRow>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let rows = c
                    .query(
                        SQL.sql(statements::ACTIVE_BY_NEXT_CHECK),
                        &[&l.org(), &i64::from(limit)],
                    )
                    .await?;
                all(&rows, rows::conversation)
            })
        })
    }

    fn claim_conversation(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<ConversationRow>>> {
        let claimed = self.run(move |c, l| {
            Box::pin(async move {
                Self::renew_if_stale(c, &l.store).await?;
                let at = now_ms();
                // A `checking` one whose lister stopped renewing it first, then the due
                // `ended` ones by their time: two picks, each an ordered walk of its own
                // index (one statement with OR would fetch and sort every due row on
                // every claim). Both take the same parameters, typed here. Leases are
                // set and compared on the server's clock.
                let types = [Type::INT8, Type::INT8, Type::TEXT, Type::TEXT, Type::INT8];
                for pick in [
                    concat!(
                        "SELECT conversation_id FROM conversations
                         WHERE org = $3 AND state = 'checking' AND lease_until < ",
                        db_now!(),
                        " ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ),
                    "SELECT conversation_id FROM conversations
                     WHERE org = $3 AND state = 'ended' AND next_check_at <= $1
                     ORDER BY next_check_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                ] {
                    let statement = c
                        .prepare_typed_cached(
                            &format!(
                                "UPDATE conversations SET state = 'checking', updated_at = $2, claim_owner = $4,
                                    lease_until = {} + $5
                                 WHERE org = $3 AND conversation_id = ({pick})
                                 RETURNING {}",
                                db_now!(),
                                conversation_columns!()
                            ),
                            &types,
                        )
                        .await?;
                    let row = c
                        .query_opt(&statement, &[&ms(now), &at, &l.org(), &l.store.owner, &l.lease_ms()])
                        .await?;
                    if let Some(row) = row {
                        return rows::conversation(&row).map(Some);
                    }
                }
                Ok(None)
            })
        });
        Box::pin(async move {
            let claimed = claimed.await?;
            if let Some(row) = &claimed {
                self.held()
                    .listings
                    .insert((self.org.to_string(), row.conversation_id.clone()));
            }
            Ok(claimed)
        })
    }

    fn next_conversation_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let row = c
                    .query_one(SQL.sql(statements::NEXT_CONVERSATION_DUE), &[&l.org()])
                    .await?;
                Ok(from_ms(row.get(0)))
            })
        })
    }

    fn claim_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        // One token for every try: a try whose commit succeeded but whose reply was
        // lost left a row claimed under it, which the next try picks up instead of
        // claiming another.
        let token = token();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let claimed = self.run(move |c, l| {
            let retry = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0;
            Box::pin(async move {
                if retry && let Some(row) = Self::claimed_by(c, l.org(), token).await? {
                    return Ok(Some(row));
                }
                Self::renew_if_stale(c, &l.store).await?;
                let at = now_ms();
                // A claim whose owner stopped renewing it first (it has waited longest),
                // then the queue in its order. Both statements take the same parameters,
                // typed here: the first has no use for $1 (the server could not infer it).
                // Leases are set and compared on the server's clock.
                let types = [Type::INT8, Type::INT8, Type::TEXT, Type::INT8, Type::TEXT, Type::INT8];
                for pick in [
                    concat!(
                        "SELECT recording_id FROM recordings
                         WHERE org = $3 AND state = 'uploading' AND lease_until < ",
                        db_now!(),
                        " ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ),
                    "SELECT recording_id FROM recordings
                     WHERE org = $3 AND state IN ('discovered', 'transcoding', 'retrying') AND next_attempt_at <= $1
                     ORDER BY deadline, next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                ] {
                    let statement = c
                        .prepare_typed_cached(
                            &format!(
                                "UPDATE recordings SET state = 'uploading', updated_at = $2, claim_token = $4,
                                    claim_owner = $5, lease_until = {} + $6
                                 WHERE org = $3 AND recording_id = ({pick})
                                 RETURNING {}",
                                db_now!(),
                                claimed_columns!()
                            ),
                            &types,
                        )
                        .await?;
                    let row = c
                        .query_opt(
                            &statement,
                            &[&ms(now), &at, &l.org(), &token, &l.store.owner, &l.lease_ms()],
                        )
                        .await?;
                    if let Some(row) = row {
                        return rows::claimed(&row).map(Some);
                    }
                }
                Ok(None)
            })
        });
        self.hold(claimed)
    }

    fn claim_recording(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        let token = token();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let claimed = self.run(move |c, l| {
            let id = recording_id.clone();
            let retry = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0;
            Box::pin(async move {
                if retry && let Some(row) = Self::claimed_by(c, l.org(), token).await? {
                    return Ok(Some(row));
                }
                Self::renew_if_stale(c, &l.store).await?;
                let row = c
                    .query_opt(
                        &format!(
                            "UPDATE recordings SET state = 'uploading', updated_at = $2, claim_token = $3,
                                claim_owner = $4, lease_until = {} + $5
                             WHERE org = $6 AND recording_id = $1 AND state IN ('discovered', 'transcoding', 'retrying')
                             RETURNING {}",
                            db_now!(),
                            claimed_columns!()
                        ),
                        &[&id, &now_ms(), &token, &l.store.owner, &l.lease_ms(), &l.org()],
                    )
                    .await?;
                row.as_ref().map(rows::claimed).transpose()
            })
        });
        self.hold(claimed)
    }

    fn next_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                // A lease running out makes a recording due too (taken over then); it
                // runs out on the server's clock, told here on this process's clock.
                let row = c
                    .query_one(
                        concat!(
                            "SELECT LEAST(
                            (SELECT MIN(next_attempt_at) FROM recordings
                             WHERE org = $1 AND state IN ('discovered', 'transcoding', 'retrying')),
                            (SELECT MIN(lease_until) FROM recordings WHERE org = $1 AND state = 'uploading')
                                - ",
                            db_now!(),
                            " + $2)"
                        ),
                        &[&l.org(), &now_ms()],
                    )
                    .await?;
                Ok(from_ms(row.get(0)))
            })
        })
    }

    fn unfinished(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "SELECT COALESCE(SUM(n), 0)::int8 FROM recording_counts
                         WHERE org = $1 AND state NOT IN ('archived', 'parked', 'failed')",
                        &[&l.org()],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0).max(0) as u64)
            })
        })
    }

    fn fix_key(&self, claim: Claim, key: String) -> BoxFuture<'_, LedgerResult<String>> {
        let id = claim.recording_id.clone();
        let stored = self.run(move |c, l| {
            let (claim, key) = (claim.clone(), key.clone());
            Box::pin(async move {
                let row = c
                    .query_opt(
                        SQL.sql(statements::FIX_KEY),
                        &[&key, &now_ms(), &claim.recording_id, &claim.token, &l.org()],
                    )
                    .await?;
                row.map(|r| r.try_get::<_, String>(0)).transpose()
            })
        });
        Box::pin(async move { stored.await?.ok_or(LedgerError::ClaimLost(id)) })
    }

    fn forget_upload(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            let id = recording_id.clone();
            Box::pin(async move {
                c.execute(SQL.sql(statements::FORGET_UPLOAD), &[&now_ms(), &id, &l.org()])
                    .await
                    .map(drop)
            })
        })
    }

    /// Other replicas may be working: nothing of theirs is touched. Claims and listings
    /// of a process that stopped are taken over when their lease runs out, with the
    /// upload they had open; so there is nothing to requeue or abort at start.
    fn recover(&self) -> BoxFuture<'_, LedgerResult<Vec<OpenUpload>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn watermark(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(move |c, l| {
            Box::pin(async move { Ok(parse_watermark(read_meta(&*c, &watermark_key(l.org())).await?)) })
        })
    }

    fn set_watermark(&self, at: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            Box::pin(async move { write_meta(&*c, &watermark_key(l.org()), &format_watermark(at)).await })
        })
    }

    fn status(&self) -> BoxFuture<'_, LedgerResult<StatusReport>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let mut report = StatusReport::zeroed();
                // Sharded counters (no hot row under concurrent replicas), summed.
                for row in c
                    .query(
                        "SELECT 'recording', state, SUM(n)::int8 FROM recording_counts WHERE org = $1 GROUP BY state
                         UNION ALL
                         SELECT 'conversation', state, SUM(n)::int8 FROM conversation_counts WHERE org = $1
                         GROUP BY state",
                        &[&l.org()],
                    )
                    .await?
                {
                    report.count(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                }
                for (sql, into) in [
                    (statements::OLDEST_UNARCHIVED, &mut report.oldest_unarchived),
                    (statements::SOONEST_DEADLINE, &mut report.soonest_deadline),
                    (statements::OLDEST_UNSETTLED, &mut report.oldest_unsettled),
                ] {
                    let row = c.query_opt(SQL.sql(sql), &[&l.org()]).await?;
                    *into = row.as_ref().map(rows::id_and_time).transpose()?.flatten();
                }
                let failing = c.query(SQL.sql(statements::FAILING_CONVERSATIONS), &[&l.org()]).await?;
                report.failing_conversations = all(&failing, rows::id_and_reason)?;
                report.watermark = parse_watermark(read_meta(&*c, &watermark_key(l.org())).await?);
                report.org_state = parse_org_state(read_meta(&*c, &org_state_key(l.org())).await?);
                let parked = c.query(SQL.sql(statements::PARKED_CONVERSATIONS), &[&l.org()]).await?;
                report.parked_conversations = all(&parked, rows::id_and_reason)?;
                Ok(report)
            })
        })
    }

    fn record_org_state(&self, condition: OrgCondition) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            let condition = condition.clone();
            Box::pin(async move {
                let key = org_state_key(l.org());
                let tx = c.transaction().await?;
                // One writer of the key at a time (two replicas starting one org).
                tx.execute("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)", &[&key])
                    .await?;
                let previous = parse_org_state(read_meta(&tx, &key).await?);
                let state = OrgState::then(previous.as_ref(), condition);
                write_meta(&tx, &key, &serde_json::to_string(&state).expect("org states serialize")).await?;
                tx.commit().await
            })
        })
    }

    fn retry_failed(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            Box::pin(async move {
                c.execute(SQL.sql(statements::RETRY_FAILED), &[&now_ms(), &l.org()])
                    .await
            })
        })
    }

    fn retry_parked(&self, which: ParkedSelection) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            let (condition, value) = statements::parked_condition(which.clone());
            Box::pin(async move {
                let sql = SQL.sql(&statements::RETRY_PARKED.replace("{condition}", condition));
                c.execute(sql, &[&now_ms(), &l.org(), &value]).await
            })
        })
    }

    fn list(&self, filter: ListFilter, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<RecordingRow>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let sql = SQL.sql(&statements::LIST.replace("{condition}", statements::list_condition(filter)));
                let rows = c.query(sql, &[&l.org(), &i64::from(limit)]).await?;
                all(&rows, rows::recording_row)
            })
        })
    }

    fn handoff_due(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> BoxFuture<'_, LedgerResult<Vec<HandoffDue>>> {
        let (at, id) = after.map_or((-1, String::new()), |(at, id)| (ms(at), id));
        self.run(move |c, l| {
            let id = id.clone();
            Box::pin(async move {
                let sql = SQL.sql(&statements::HANDOFF_DUE.replace("{free}", handoff_free!("?5")));
                let rows = c
                    .query(sql, &[&l.org(), &i64::from(limit), &at, &id, &l.store.owner])
                    .await?;
                all(&rows, rows::handoff_due)
            })
        })
    }

    fn claim_handoff(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<bool>> {
        self.run(move |c, l| {
            let id = recording_id.clone();
            Box::pin(async move {
                let n = c
                    .execute(
                        concat!(
                            "UPDATE recordings SET handoff_owner = $3,
                                handoff_lease = ",
                            db_now!(),
                            " + $4
                             WHERE org = $1 AND recording_id = $2 AND state = 'archived' AND handoff_at IS NULL AND ",
                            handoff_free!("$3")
                        ),
                        &[&l.org(), &id, &l.store.owner, &l.lease_ms()],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
    }

    fn handed_off(&self, recording_id: String, handoff: Handoff) -> BoxFuture<'_, LedgerResult<()>> {
        let note = untrusted::reason(&handoff.note);
        self.run(move |c, l| {
            let (id, note) = (recording_id.clone(), note.clone());
            Box::pin(async move {
                c.execute(
                    SQL.sql(statements::HANDED_OFF),
                    &[
                        &l.org(),
                        &id,
                        &ms(handoff.at),
                        &handoff.old.map(ms),
                        &handoff.new.map(ms),
                        &note,
                    ],
                )
                .await?;
                Ok(())
            })
        })
    }

    fn prune(&self, cutoff: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Pruned>> {
        Box::pin(async move {
            let mut total = Pruned::default();
            loop {
                let slice = self
                    .run(move |c, _| {
                        Box::pin(async move {
                            let cutoff = ms(cutoff);
                            let tx = c.transaction().await?;
                            let recordings = tx
                                .execute(SQL.sql(statements::PRUNE_RECORDINGS), &[&cutoff, &PRUNE_BATCH])
                                .await?;
                            let conversations = tx
                                .execute(SQL.sql(statements::PRUNE_CONVERSATIONS), &[&cutoff, &PRUNE_BATCH])
                                .await?;
                            tx.execute(SQL.sql(statements::PRUNE_PARKED), &[&cutoff]).await?;
                            tx.commit().await?;
                            Ok(Pruned {
                                recordings,
                                conversations,
                            })
                        })
                    })
                    .await?;
                total.recordings += slice.recordings;
                total.conversations += slice.conversations;
                if slice.recordings < PRUNE_BATCH as u64 && slice.conversations < PRUNE_BATCH as u64 {
                    return Ok(total);
                }
            }
        })
    }

    fn park_conversation(&self, conversation_id: String, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        let (conversation_id, reason) = (untrusted::ledger_key(&conversation_id), untrusted::reason(&reason));
        let listed = vec![(self.org.to_string(), conversation_id.clone())];
        let parked = self.run(move |c, l| {
            let (id, reason) = (conversation_id.clone(), reason.clone());
            Box::pin(async move {
                let tx = c.transaction().await?;
                let now = now_ms();
                tx.execute(SQL.sql(statements::PARK_CONVERSATION), &[&id, &reason, &now, &l.org()])
                    .await?;
                tx.execute(SQL.sql(statements::CONVERSATION_PARKED), &[&id, &now, &l.org()])
                    .await?;
                tx.commit().await
            })
        });
        self.release_listings(parked, listed)
    }

    fn records(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Vec<LedgerRecord>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let rows = c
                    .query(SQL.sql(statements::RECORDS), &[&l.org(), &ms(from), &ms(to)])
                    .await?;
                all(&rows, rows::ledger_record)
            })
        })
    }

    fn unsettled_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let row = c
                    .query_one(SQL.sql(statements::UNSETTLED_BETWEEN), &[&l.org(), &ms(from), &ms(to)])
                    .await?;
                Ok(row.get::<_, i64>(0).max(0) as u64)
            })
        })
    }

    fn first_start(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let row = c.query_one(SQL.sql(statements::FIRST_START), &[&l.org()]).await?;
                Ok(from_ms(row.get(0)))
            })
        })
    }

    fn note(&self, name: &'static str) -> BoxFuture<'_, LedgerResult<Option<String>>> {
        self.run(move |c, l| Box::pin(async move { read_meta(&*c, &note_key(name, l.org())).await }))
    }

    fn set_note(&self, name: &'static str, value: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            let value = value.clone();
            Box::pin(async move { write_meta(&*c, &note_key(name, l.org()), &value).await })
        })
    }

    fn retry_conversations(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let now = now_ms();
                tx.execute(SQL.sql(statements::RETRY_CONVERSATIONS), &[&now, &l.org()])
                    .await?;
                let n = tx
                    .execute(SQL.sql(statements::UNPARK_CONVERSATIONS), &[&l.org()])
                    .await?;
                tx.commit().await?;
                Ok(n)
            })
        })
    }

    fn listed_hold(&self) -> Option<std::time::Duration> {
        Some(self.store.lease)
    }

    fn hold_discovery(&self) -> BoxFuture<'_, LedgerResult<bool>> {
        self.run(move |c, l| {
            Box::pin(async move {
                // Taken when free or run out, kept (renewed) when ours; never taken
                // from a live holder. On the server's clock.
                let held = c
                    .query_opt(
                        concat!(
                            "INSERT INTO discovery_leases (org, owner, lease_until) VALUES ($1, $2, ",
                            db_now!(),
                            " + $3)
                         ON CONFLICT (org) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
                         WHERE discovery_leases.owner = excluded.owner OR discovery_leases.lease_until < ",
                            db_now!(),
                            " RETURNING owner"
                        ),
                        &[&l.org(), &l.store.owner, &l.lease_ms()],
                    )
                    .await?;
                Ok(held.is_some())
            })
        })
    }
}
