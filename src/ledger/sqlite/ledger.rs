//! The [`Ledger`] interface on SQLite: each method a shared statement
//! ([`crate::ledger::statements`]) run on the connection in the blocking pool, but for
//! the claims and the recovery at start, which are this backend's own (one process
//! owns the file: no leases).

use super::*;

impl Ledger for SqliteLedger {
    /// Runs a state change of a claimed recording and checks that it changed the row:
    /// a claim taken over changes nothing and says so.
    fn claimed_change(&self, claim: Claim, change: ClaimedChange) -> BoxFuture<'_, LedgerResult<()>> {
        let (id, org) = (claim.recording_id.clone(), self.org.to_string());
        let changed = self.run(move |conn| {
            let values = change.bound(now_ms(), &claim.recording_id, claim.token, &org);
            conn.prepare_cached(SQL.sql(change.statement))?
                .execute(params_from_iter(values))
        });
        Box::pin(async move {
            match changed.await? {
                0 => Err(LedgerError::ClaimLost(id)),
                _ => Ok(()),
            }
        })
    }

    fn insert(&self, recordings: Vec<NewRecording>) -> BoxFuture<'_, LedgerResult<u64>> {
        let recordings: Vec<NewRecording> = recordings.into_iter().map(NewRecording::sanitized).collect();
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let mut added = 0;
            {
                let mut stmt = tx.prepare_cached(SQL.sql(statements::INSERT_RECORDING))?;
                let now = Utc::now();
                for r in &recordings {
                    added += stmt.execute(params_from_iter(changes::new_recording(r, &org, now)))? as u64;
                }
            }
            tx.commit()?;
            Ok(added)
        })
    }

    fn conversations(
        &self,
        conversation_ids: Vec<String>,
    ) -> BoxFuture<'_, LedgerResult<std::collections::HashMap<String, ConversationRow>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(SQL.sql(statements::CONVERSATIONS))?;
            let mut parked = conn.prepare_cached(SQL.sql(statements::PARKED_AMONG))?;
            let mut known = std::collections::HashMap::new();
            for id in conversation_ids {
                if let Some(row) = stmt.query_row([&id, &org], |r| rows::conversation(r)).optional()? {
                    known.insert(id, row);
                } else if parked.exists([&id, &org])? {
                    known.insert(id.clone(), rows::parked_conversation(id));
                }
            }
            Ok(known)
        })
    }

    fn save_conversations(&self, rows: Vec<ConversationRow>) -> BoxFuture<'_, LedgerResult<()>> {
        let rows: Vec<ConversationRow> = rows.into_iter().map(ConversationRow::sanitized).collect();
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(SQL.sql(statements::SAVE_CONVERSATION))?;
                let now = now_ms();
                for r in &rows {
                    stmt.execute(params_from_iter(changes::conversation(r, &org, now)))?;
                }
            }
            tx.commit()
        })
    }

    fn active_by_next_check(&self, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<ConversationRow>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(SQL.sql(statements::ACTIVE_BY_NEXT_CHECK))?;
            stmt.query_map(params![org, limit], |r| rows::conversation(r))?
                .collect()
        })
    }

    fn claim_conversation(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<ConversationRow>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(CLAIM_CONVERSATION, params![ms(now), now_ms(), org], |r| {
                rows::conversation(r)
            })
            .optional()
        })
    }

    fn next_conversation_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let at: Option<i64> = conn.query_row(SQL.sql(statements::NEXT_CONVERSATION_DUE), [org], |r| r.get(0))?;
            Ok(from_ms(at))
        })
    }

    fn claim_recording(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(CLAIM_RECORDING, params![recording_id, now_ms(), token(), org], |r| {
                rows::claimed(r)
            })
            .optional()
        })
    }

    fn claim_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(CLAIM_DUE, params![ms(now), now_ms(), token(), org], |r| {
                rows::claimed(r)
            })
            .optional()
        })
    }

    fn next_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let at: Option<i64> = conn.query_row(NEXT_DUE, [org], |r| r.get(0))?;
            Ok(from_ms(at))
        })
    }

    fn unfinished(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(UNFINISHED, [org], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
        })
    }

    fn fix_key(&self, claim: Claim, key: String) -> BoxFuture<'_, LedgerResult<String>> {
        let (id, org) = (claim.recording_id.clone(), self.org.to_string());
        let stored = self.run(move |conn| {
            conn.query_row(
                SQL.sql(statements::FIX_KEY),
                params![key, now_ms(), claim.recording_id, claim.token, org],
                |r| r.get::<_, String>(0),
            )
            .optional()
        });
        Box::pin(async move { stored.await?.ok_or(LedgerError::ClaimLost(id)) })
    }

    fn forget_upload(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.execute(SQL.sql(statements::FORGET_UPLOAD), params![now_ms(), recording_id, org])?;
            Ok(())
        })
    }

    fn recover(&self) -> BoxFuture<'_, LedgerResult<Vec<OpenUpload>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE recordings SET state = 'discovered', next_attempt_at = ?1, claim_token = NULL, updated_at = ?1
                 WHERE org = ?2 AND state = 'uploading'",
                params![now_ms(), org],
            )?;
            tx.execute(
                "UPDATE conversations SET state = 'ended', next_check_at = ?1, updated_at = ?1
                 WHERE org = ?2 AND state = 'checking'",
                params![now_ms(), org],
            )?;
            // Listed recordings wait for their URL (held in memory by the process that
            // listed them): after a restart there is none, so they are due now.
            tx.execute(
                "UPDATE recordings SET next_attempt_at = ?1, updated_at = ?1
                 WHERE org = ?2 AND state = 'discovered' AND next_attempt_at > ?1",
                params![now_ms(), org],
            )?;
            let open = {
                let mut stmt = tx.prepare(
                    "SELECT recording_id, COALESCE(upload_key, object_key), upload_id FROM recordings
                     WHERE org = ?1 AND upload_id IS NOT NULL AND COALESCE(upload_key, object_key) IS NOT NULL",
                )?;
                stmt.query_map([&org], |r| {
                    Ok(OpenUpload {
                        recording_id: r.get(0)?,
                        key: r.get(1)?,
                        upload_id: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(open)
        })
    }

    fn watermark(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        let key = watermark_key(&self.org);
        self.run(move |conn| Ok(parse_watermark(read_meta(conn, &key)?)))
    }

    fn set_watermark(&self, at: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<()>> {
        let key = watermark_key(&self.org);
        self.run(move |conn| write_meta(conn, &key, &format_watermark(at)))
    }

    fn status(&self) -> BoxFuture<'_, LedgerResult<StatusReport>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut report = StatusReport::zeroed();
            // Kept by triggers: a dozen rows, whatever the ledger's size.
            let mut stmt = conn.prepare_cached(COUNTS)?;
            let rows = stmt.query_map([&org], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (kind, state, n) = row?;
                report.count(&kind, state, n);
            }
            let one = |sql: &str| {
                conn.query_row(SQL.sql(sql), [&org], |r| rows::id_and_time(r))
                    .optional()
                    .map(Option::flatten)
            };
            report.oldest_unarchived = one(statements::OLDEST_UNARCHIVED)?;
            report.soonest_deadline = one(statements::SOONEST_DEADLINE)?;
            report.oldest_unsettled = one(statements::OLDEST_UNSETTLED)?;
            let mut stmt = conn.prepare_cached(SQL.sql(statements::FAILING_CONVERSATIONS))?;
            report.failing_conversations = stmt
                .query_map([&org], |r| rows::id_and_reason(r))?
                .collect::<Result<_, _>>()?;
            report.watermark = parse_watermark(read_meta(conn, &watermark_key(&org))?);
            report.org_state = parse_org_state(read_meta(conn, &org_state_key(&org))?);
            let mut stmt = conn.prepare_cached(SQL.sql(statements::PARKED_CONVERSATIONS))?;
            report.parked_conversations = stmt
                .query_map([&org], |r| rows::id_and_reason(r))?
                .collect::<Result<_, _>>()?;
            Ok(report)
        })
    }

    fn record_org_state(&self, condition: OrgCondition) -> BoxFuture<'_, LedgerResult<()>> {
        let key = org_state_key(&self.org);
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let state = OrgState::then(parse_org_state(read_meta(&tx, &key)?).as_ref(), condition);
            write_meta(&tx, &key, &serde_json::to_string(&state).expect("org states serialize"))?;
            tx.commit()
        })
    }

    fn retry_parked(&self, which: ParkedSelection) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let (condition, value) = statements::parked_condition(which);
            let sql = SQL.sql(&statements::RETRY_PARKED.replace("{condition}", condition));
            Ok(conn.execute(sql, params![now_ms(), org, value])? as u64)
        })
    }

    fn list(&self, filter: ListFilter, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<RecordingRow>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let sql = SQL.sql(&statements::LIST.replace("{condition}", statements::list_condition(filter)));
            let mut stmt = conn.prepare_cached(sql)?;
            stmt.query_map(params![org, limit], |r| rows::recording_row(r))?
                .collect()
        })
    }

    fn handoff_due(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> BoxFuture<'_, LedgerResult<Vec<HandoffDue>>> {
        let org = self.org.to_string();
        let (at, id) = after.map_or((-1, String::new()), |(at, id)| (ms(at), id));
        self.run(move |conn| {
            // One process owns a SQLite ledger (its lock): nothing else can hold a hand-off.
            let mut stmt = conn.prepare_cached(SQL.sql(&statements::HANDOFF_DUE.replace("{free}", "1 = 1")))?;
            stmt.query_map(params![org, limit, at, id], |r| rows::handoff_due(r))?
                .collect()
        })
    }

    fn claim_handoff(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<bool>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM recordings
                 WHERE org = ?1 AND recording_id = ?2 AND state = 'archived' AND handoff_at IS NULL",
                params![org, recording_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n == 1)
        })
    }

    fn handed_off(&self, recording_id: String, handoff: Handoff) -> BoxFuture<'_, LedgerResult<()>> {
        let org = self.org.to_string();
        let note = untrusted::reason(&handoff.note);
        self.run(move |conn| {
            conn.execute(
                SQL.sql(statements::HANDED_OFF),
                params![
                    org,
                    recording_id,
                    ms(handoff.at),
                    handoff.old.map(ms),
                    handoff.new.map(ms),
                    note
                ],
            )?;
            Ok(())
        })
    }

    fn prune(&self, cutoff: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Pruned>> {
        Box::pin(async move {
            let mut total = Pruned::default();
            loop {
                let slice = self.prune_slice(ms(cutoff)).await?;
                total.recordings += slice.recordings;
                total.conversations += slice.conversations;
                if slice.recordings < PRUNE_BATCH as u64 && slice.conversations < PRUNE_BATCH as u64 {
                    return Ok(total);
                }
            }
        })
    }

    fn retry_failed(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| Ok(conn.execute(SQL.sql(statements::RETRY_FAILED), params![now_ms(), org])? as u64))
    }

    fn park_conversation(&self, conversation_id: String, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        let (conversation_id, reason) = (untrusted::ledger_key(&conversation_id), untrusted::reason(&reason));
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let now = now_ms();
            tx.execute(
                SQL.sql(statements::PARK_CONVERSATION),
                params![conversation_id, reason, now, org],
            )?;
            tx.execute(
                SQL.sql(statements::CONVERSATION_PARKED),
                params![conversation_id, now, org],
            )?;
            tx.commit()
        })
    }

    fn records(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Vec<LedgerRecord>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(SQL.sql(statements::RECORDS))?;
            stmt.query_map(params![org, ms(from), ms(to)], |r| rows::ledger_record(r))?
                .collect()
        })
    }

    fn unsettled_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            conn.query_row(
                SQL.sql(statements::UNSETTLED_BETWEEN),
                params![org, ms(from), ms(to)],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
        })
    }

    fn first_start(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let at: Option<i64> = conn.query_row(SQL.sql(statements::FIRST_START), [org], |r| r.get(0))?;
            Ok(from_ms(at))
        })
    }

    fn note(&self, name: &'static str) -> BoxFuture<'_, LedgerResult<Option<String>>> {
        let key = note_key(name, &self.org);
        self.run(move |conn| read_meta(conn, &key))
    }

    fn set_note(&self, name: &'static str, value: String) -> BoxFuture<'_, LedgerResult<()>> {
        let key = note_key(name, &self.org);
        self.run(move |conn| write_meta(conn, &key, &value))
    }

    fn retry_conversations(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        let org = self.org.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(SQL.sql(statements::RETRY_CONVERSATIONS), params![now_ms(), org])?;
            let n = tx.execute(SQL.sql(statements::UNPARK_CONVERSATIONS), [&org])? as u64;
            tx.commit()?;
            Ok(n)
        })
    }
}
