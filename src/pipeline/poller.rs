//! Discovery: which conversations with screen recordings exist, and where each one is
//! in its life. Listing a conversation's recordings is a worker's job
//! ([`super::check`]), done when a worker is free, so download URLs are fresh when used.
//!
//! Each pass reads conversations that *started* in `[watermark - overlap, now - settle)`
//! from the analytics query, narrowed by `segment_filters` (default: a screen recording
//! was started), and gives every new one a lifecycle row ([`super::lifecycle`]). The
//! overlap re-reads the end of the previous window because the analytics store lags
//! behind real time; a known conversation read again only updates its row. Active
//! conversations whose start fell out of the window are re-read in batches of up to
//! 100 ids per call. The watermark only advances once a whole window has been read.
//!
//! The synchronous query's limits: an interval of at most 7 days, at most `max_results`
//! conversations per interval (a fuller window is split in halves), and a start at most
//! 35 days back; `backfill` of older history goes through the asynchronous jobs API.
//!
//! Over 500 lines: the window walk, its splitting, the jobs API for old ranges and the
//! lifecycle re-reads share one state (the org's watermark and windows); when a
//! conversation is looked at again is apart (`lifecycle.rs`).

use super::lifecycle::Lifecycle;
use super::settings::DiscoverySettings;
use super::stats::PipelineStats;
use crate::genesys::model::{AnalyticsQuery, AsyncQuery, ConversationSummary, format_interval};
use crate::genesys::{ApiError, GenesysClient};
use crate::ledger::{ConversationRow, ConversationState, Ledger, LedgerError};
use crate::metrics::OrgMetrics;
use crate::untrusted::{self, is_safe_id};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Longest interval the synchronous query accepts.
pub const MAX_INTERVAL: chrono::Duration = chrono::Duration::days(7);
/// How far back the synchronous query reaches; older history needs the jobs API.
pub const SYNC_REACH: chrono::Duration = chrono::Duration::days(35);
/// A little inside the platform's reach, so a query sent now is still inside it when it arrives.
const SYNC_MARGIN: chrono::Duration = chrono::Duration::hours(1);
/// Active conversations re-read per pass at most (the rest wait for the next pass).
const ACTIVE_PER_PASS: u32 = 10_000;
/// An active conversation that re-reads have not answered for this long after its start
/// is presumed ended and listed (a session does not last two days; the platform
/// reprocesses the last 48 hours, so an answer would have come by then).
pub const UNANSWERED_PRESUMED_ENDED: chrono::Duration = chrono::Duration::hours(48);
/// How much wider than its conversations' starts a re-read's interval is on each side.
/// The platform may match interval bounds more coarsely than a millisecond ("started
/// on a day touched by the interval", `../shared/genesys-api.md` 2026-12): an interval
/// exactly as wide as the starts may not return them at all. Whole minutes around
/// them match under any reading down to the minute; the `conversationId` filter does
/// the narrowing, so a wider interval costs nothing.
const REREAD_PAD: chrono::Duration = chrono::Duration::minutes(1);

/// The interval a re-read of conversations started in `[first, last]` asks for: whole
/// minutes, [`REREAD_PAD`] beyond them on each side.
pub fn reread_interval(first: DateTime<Utc>, last: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let minute = 60_000;
    let floor = |t: DateTime<Utc>| {
        let ms = t.timestamp_millis();
        DateTime::from_timestamp_millis(ms - ms.rem_euclid(minute)).unwrap_or(t)
    };
    (
        floor(first) - REREAD_PAD,
        floor(last) + REREAD_PAD + chrono::Duration::minutes(1),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("discovery: {0}")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("discovery: analytics job {job_id}: {message}")]
    Job { job_id: String, message: String },
    #[error("discovery: {0}")]
    Range(String),
}

/// What one pass found.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Conversation rows read (the overlap and batched re-reads included).
    pub conversations: AtomicU64,
    /// Conversations seen for the first time.
    pub new_conversations: AtomicU64,
    /// Conversations the ledger knew already (overlap re-reads).
    pub known: AtomicU64,
    /// Conversations found ended that were active.
    pub ended: AtomicU64,
    /// Conversations parked at discovery (unreadable row, unsafe id).
    pub parked_conversations: AtomicU64,
    /// Rows without even a readable conversation id (logged, nothing to park).
    pub unreadable_rows: AtomicU64,
    /// Analytics calls spent (query pages, batched re-reads, jobs API).
    pub calls: AtomicU64,
}

/// How often a long pass says how far it got.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Runs a pass, logging its counts every [`PROGRESS_EVERY`] while it lasts (a first pass
/// over a large org at 300 calls a minute takes many minutes; a short one logs
/// nothing but its summary).
async fn with_progress<T>(
    ledger: &dyn Ledger,
    report: &PassReport,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                // Recordings are found by the listings that run beside the pass; the
                // ledger's counts (kept incrementally) say how many so far.
                let recordings: u64 = ledger.status().await.map_or(0, |s| s.counts.values().sum());
                tracing::info!(
                    message = "Discovery pass progress.",
                    from = %from.to_rfc3339(),
                    to = %to.to_rfc3339(),
                    elapsed_s = started.elapsed().as_secs(),
                    conversations = PassReport::get(&report.conversations),
                    new_conversations = PassReport::get(&report.new_conversations),
                    ended = PassReport::get(&report.ended),
                    recordings_in_ledger = recordings,
                    analytics_calls = PassReport::get(&report.calls),
                );
            }
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl PassReport {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub struct Poller {
    pub client: Arc<GenesysClient>,
    pub ledger: Arc<dyn Ledger>,
    pub settings: DiscoverySettings,
    pub stats: Arc<PipelineStats>,
    /// Woken when conversations are due for a listing.
    pub work: Arc<Notify>,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Poller {
    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            poll_interval: self.settings.poll_interval,
            settle_after_end: self.settings.settle_after_end,
            recheck_max: self.settings.recheck_max,
        }
    }

    /// The window of the next pass.
    pub fn window(&self, watermark: Option<DateTime<Utc>>, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let from = match watermark {
            Some(w) => w - chrono(self.settings.overlap),
            None => now - chrono(self.settings.lookback),
        };
        (from, now - chrono(self.settings.settle_delay))
    }

    /// Reads the window since the watermark and advances the watermark. With
    /// `all_active` (a `run --once`, which will not be there when they come due), every
    /// active conversation is re-read too; the daemon re-reads them on their own
    /// schedule instead ([`Poller::reread_loop`]).
    pub async fn poll_once(&self, all_active: bool) -> Result<PassReport, PollError> {
        let now = Utc::now();
        let (from, to) = self.window(self.ledger.watermark().await?, now);
        let report = PassReport::default();
        let work = async {
            if to > from {
                self.read(from, to, &report).await?;
                self.ledger.set_watermark(to).await?;
            }
            if all_active {
                let rows = self.ledger.active_by_next_check(ACTIVE_PER_PASS).await?;
                self.reread(rows, &report).await?;
            }
            Ok::<_, PollError>(())
        };
        with_progress(self.ledger.as_ref(), &report, from, to, work).await?;
        self.log(&report, from, to);
        Ok(report)
    }

    /// The daemon's re-reads of active conversations, on their own schedule: whenever
    /// the one due soonest is due, every due one is re-read (the last call filled up
    /// with the ones due next), `concurrency` calls in flight. Spread over time like this,
    /// re-reads do not arrive as one burst per pass, and neither do the listings of the
    /// conversations they find ended. Returns only on a ledger error or `stop`.
    pub async fn reread_loop(&self, stop: &tokio_util::sync::CancellationToken) -> Result<(), PollError> {
        let batch = AnalyticsQuery::MAX_PAGE_SIZE as usize;
        let most = (batch * self.settings.concurrency) as u32;
        loop {
            // Replicas sharing a ledger re-read an org's conversations one at a time.
            if !self.ledger.hold_discovery().await? {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(self.settings.poll_interval) => continue,
                }
            }
            let mut rows = self.ledger.active_by_next_check(most).await?;
            let now = Utc::now();
            let due = rows
                .iter()
                .take_while(|r| r.next_check_at.is_some_and(|t| t <= now))
                .count();
            let wait = if due > 0 {
                rows.truncate(due.div_ceil(batch) * batch);
                match self.reread(rows, &PassReport::default()).await {
                    Ok(()) => Duration::ZERO,
                    Err(PollError::Ledger(e)) => return Err(e.into()),
                    Err(error) => {
                        tracing::error!(message = "Re-reading active conversations failed; trying again.", %error);
                        self.settings.poll_interval
                    }
                }
            } else {
                rows.first()
                    .and_then(|r| r.next_check_at)
                    .map_or(self.settings.poll_interval, |at| {
                        (at - now).to_std().unwrap_or_default()
                    })
                    .min(self.settings.poll_interval)
            };
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The sweep: re-reads `[now - sweep_lookback, watermark - overlap)`, the part of
    /// the last `sweep_lookback` that the passes' overlap no longer covers, for
    /// conversations analytics showed only after the overlap had passed. Known
    /// conversations cost nothing beyond their page; new ones start their life as if
    /// a pass had found them. `None` when there is nothing to sweep (turned off, or no
    /// pass has set the watermark yet).
    pub async fn sweep(&self) -> Result<Option<PassReport>, PollError> {
        if self.settings.sweep_lookback.is_zero() {
            return Ok(None);
        }
        let Some(watermark) = self.ledger.watermark().await? else {
            return Ok(None);
        };
        let from = Utc::now() - chrono(self.settings.sweep_lookback);
        let to = watermark - chrono(self.settings.overlap);
        if to <= from {
            return Ok(None);
        }
        let report = PassReport::default();
        with_progress(self.ledger.as_ref(), &report, from, to, self.read(from, to, &report)).await?;
        let late = PassReport::get(&report.new_conversations);
        self.client.metrics().late_conversations(late);
        tracing::info!(
            message = "Sweep done.",
            from = %from.to_rfc3339(),
            to = %to.to_rfc3339(),
            conversations = PassReport::get(&report.conversations),
            late_conversations = late,
            analytics_calls = PassReport::get(&report.calls),
        );
        Ok(Some(report))
    }

    /// Discovers every conversation that started in `[from, to)` (`backfill`): through
    /// the jobs API where the range is beyond the synchronous query's reach.
    pub async fn pass(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<PassReport, PollError> {
        let report = PassReport::default();
        with_progress(self.ledger.as_ref(), &report, from, to, self.read(from, to, &report)).await?;
        self.log(&report, from, to);
        Ok(report)
    }

    fn log(&self, report: &PassReport, from: DateTime<Utc>, to: DateTime<Utc>) {
        tracing::info!(
            message = "Discovery pass done.",
            from = %from.to_rfc3339(),
            to = %to.to_rfc3339(),
            conversations = PassReport::get(&report.conversations),
            new_conversations = PassReport::get(&report.new_conversations),
            already_known = PassReport::get(&report.known),
            ended = PassReport::get(&report.ended),
            parked_conversations = PassReport::get(&report.parked_conversations),
            unreadable_rows = PassReport::get(&report.unreadable_rows),
            analytics_calls = PassReport::get(&report.calls),
        );
    }

    async fn read(&self, from: DateTime<Utc>, to: DateTime<Utc>, report: &PassReport) -> Result<(), PollError> {
        let reach = Utc::now() - SYNC_REACH + SYNC_MARGIN;
        let mut from = from;
        if from < reach {
            from = self.read_by_job(from, to, report).await?;
            if from < to && from < reach {
                return Err(PollError::Range(format!(
                    "analytics data is complete only up to {}, and the synchronous query reaches back only \
                     to {}: [{}, {}) cannot be read yet",
                    from.to_rfc3339(),
                    reach.to_rfc3339(),
                    from.to_rfc3339(),
                    to.to_rfc3339()
                )));
            }
        }
        // At most 7 days per interval.
        let mut start = from;
        while start < to {
            let end = (start + MAX_INTERVAL).min(to);
            self.read_interval(start, end, report).await?;
            start = end;
        }
        Ok(())
    }

    /// One interval of the synchronous query, split in halves while it holds more than
    /// `max_results` conversations (the platform stops paging there).
    async fn read_interval(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        report: &PassReport,
    ) -> Result<(), PollError> {
        let mut pending = vec![(from, to)];
        while let Some((from, to)) = pending.pop() {
            let mut page = 1;
            loop {
                let query = AnalyticsQuery::started_between(
                    from,
                    to,
                    page,
                    self.settings.page_size,
                    &self.settings.segment_filters,
                );
                let answer = self.client.analytics_page(&query).await?;
                add(&report.calls, 1);
                let total = answer.total_hits.unwrap_or(0);
                if page == 1 && total > self.settings.max_results && to - from > chrono::Duration::seconds(1) {
                    let middle = from + (to - from) / 2;
                    tracing::info!(
                        message = "Window holds more conversations than one query returns; split.",
                        interval = %format_interval(from, to),
                        total_hits = total,
                        max_results = self.settings.max_results,
                    );
                    pending.push((middle, to));
                    pending.push((from, middle));
                    break;
                }
                if answer.conversations.is_empty() {
                    break;
                }
                let full = answer.conversations.len() as u32 >= self.settings.page_size;
                self.take_rows(answer.conversations, Some((from, to)), report).await?;
                let read = u64::from(page) * u64::from(self.settings.page_size);
                if !full || read >= self.settings.max_results {
                    break;
                }
                page += 1;
            }
        }
        Ok(())
    }

    /// `[from, to)` through the asynchronous jobs API, up to where the data lake is
    /// complete (`dataAvailabilityDate`); returns where that reading stopped.
    async fn read_by_job(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        report: &PassReport,
    ) -> Result<DateTime<Utc>, PollError> {
        let available = self.client.data_availability().await?.data_availability_date;
        add(&report.calls, 1);
        let end = to.min(available);
        if end <= from {
            return Ok(from);
        }
        let query = AsyncQuery {
            interval: format_interval(from, end),
            segment_filters: self.settings.segment_filters.clone(),
            order: "asc",
            order_by: "conversationStart",
        };
        let job = self.client.submit_job(&query).await?;
        add(&report.calls, 1);
        tracing::info!(message = "Analytics job submitted.", job_id = %job.job_id, interval = %query.interval);
        let mut wait = Duration::from_secs(1);
        loop {
            let status = self.client.job_status(&job.job_id).await?;
            add(&report.calls, 1);
            match status.state.as_str() {
                "FULFILLED" => break,
                "QUEUED" | "PENDING" => {
                    tracing::info!(message = "Analytics job running.", job_id = %job.job_id, state = %status.state);
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                other => {
                    return Err(PollError::Job {
                        job_id: job.job_id.clone(),
                        message: format!(
                            "state {other}{}",
                            status.error_message.map(|m| format!(": {m}")).unwrap_or_default()
                        ),
                    });
                }
            }
        }
        let (mut cursor, mut pages) = (None::<String>, 0u64);
        loop {
            let results = self.client.job_results(&job.job_id, cursor.as_deref()).await?;
            add(&report.calls, 1);
            pages += 1;
            let rows = results.conversations.len();
            // The jobs API matches conversations with activity in the interval: those
            // that started before it belong to an earlier window.
            self.take_rows(results.conversations, Some((from, end)), report).await?;
            tracing::info!(message = "Analytics job results read.", job_id = %job.job_id, pages, rows);
            match results.cursor.filter(|c| !c.is_empty()) {
                Some(next) if rows > 0 => cursor = Some(next),
                _ => break,
            }
        }
        Ok(end)
    }

    /// Reads rows one by one: a malformed row parks its conversation (when its id is
    /// readable), not the page; then every conversation's lifecycle row is written.
    /// With `asked`, rows that started outside it are dropped: the platform may match an
    /// interval more coarsely than it was asked (they belong to another window).
    async fn take_rows(
        &self,
        rows: Vec<serde_json::Value>,
        asked: Option<(DateTime<Utc>, DateTime<Utc>)>,
        report: &PassReport,
    ) -> Result<(), PollError> {
        let mut seen = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            add(&report.conversations, 1);
            match ConversationSummary::from_row(row) {
                Ok(c) if asked.is_some_and(|(from, to)| c.conversation_start < from || c.conversation_start >= to) => {}
                Ok(c) if is_safe_id(&c.conversation_id) => seen.push(c),
                // Never sent back to the API, never part of a key; the ledger keeps it
                // under a derived key (PostgreSQL refuses a raw NUL byte or a huge id).
                Ok(c) => {
                    let why = format!("unsafe conversation id {}", untrusted::shown(&c.conversation_id));
                    self.park(&c.conversation_id, why, report).await?
                }
                Err(bad) => match bad.conversation_id {
                    Some(id) => self.park(&id, bad.error, report).await?,
                    None => {
                        add(&report.unreadable_rows, 1);
                        tracing::error!(
                            message = "Analytics row without a usable conversation id; skipped.",
                            index,
                            error = %bad.error,
                        );
                    }
                },
            }
        }
        self.record(seen, report).await
    }

    async fn record(&self, seen: Vec<ConversationSummary>, report: &PassReport) -> Result<(), PollError> {
        if seen.is_empty() {
            return Ok(());
        }
        let known = self
            .ledger
            .conversations(seen.iter().map(|c| c.conversation_id.clone()).collect())
            .await?;
        let (lifecycle, now) = (self.lifecycle(), Utc::now());
        let mut rows = Vec::new();
        for c in &seen {
            match known.get(&c.conversation_id) {
                None => {
                    add(&report.new_conversations, 1);
                    rows.push(lifecycle.discovered(c, now));
                }
                Some(row) => {
                    add(&report.known, 1);
                    if let Some(updated) = lifecycle.seen_again(row, c, now) {
                        if updated.state == ConversationState::Ended {
                            add(&report.ended, 1);
                            tracing::debug!(message = "Conversation ended.", conversation_id = %updated.conversation_id, end = ?updated.end);
                        }
                        rows.push(updated);
                    }
                }
            }
        }
        let due_now = rows
            .iter()
            .any(|r| r.state == ConversationState::Ended && r.next_check_at.is_some_and(|t| t <= now));
        self.ledger.save_conversations(rows).await?;
        if due_now {
            self.work.notify_one();
        }
        Ok(())
    }

    /// Re-reads these active conversations: up to 100 ids per analytics call (their
    /// starts within one 7-day interval), `concurrency` calls in flight.
    async fn reread(&self, due: Vec<ConversationRow>, report: &PassReport) -> Result<(), PollError> {
        let (lifecycle, now) = (self.lifecycle(), Utc::now());
        let reach = now - SYNC_REACH + SYNC_MARGIN;
        let (beyond, mut rows): (Vec<_>, Vec<_>) = due.into_iter().partition(|r| r.start < reach);
        let presumed: Vec<ConversationRow> = beyond
            .iter()
            .map(|r| {
                tracing::warn!(
                    message = "Conversation still active beyond the analytics query's reach; listing its recordings now.",
                    conversation_id = %r.conversation_id,
                );
                lifecycle.presumed_ended(r, now)
            })
            .collect();
        self.save_reread(presumed).await?;
        rows.sort_by_key(|r| r.start);
        let mut batches: Vec<Vec<ConversationRow>> = Vec::new();
        for row in rows {
            match batches.last_mut() {
                Some(batch)
                    if batch.len() < AnalyticsQuery::MAX_PAGE_SIZE as usize
                        && row.start - batch[0].start < MAX_INTERVAL - REREAD_PAD * 4 =>
                {
                    batch.push(row)
                }
                _ => batches.push(vec![row]),
            }
        }
        let answers = futures_util::stream::iter(batches.into_iter().map(|batch| async move {
            let ids: Vec<String> = batch.iter().map(|r| r.conversation_id.clone()).collect();
            let (from, to) = reread_interval(batch[0].start, batch[batch.len() - 1].start);
            let query = AnalyticsQuery::conversations(&ids, from, to, 1);
            (batch, self.client.analytics_page(&query).await)
        }))
        .buffer_unordered(self.settings.concurrency);
        tokio::pin!(answers);
        while let Some((batch, answer)) = answers.next().await {
            add(&report.calls, 1);
            let answer = answer?;
            let mut found: HashMap<String, ConversationSummary> = HashMap::new();
            for row in &answer.conversations {
                add(&report.conversations, 1);
                if let Ok(c) = ConversationSummary::from_row(row) {
                    found.insert(c.conversation_id.clone(), c);
                }
            }
            let mut updates = Vec::with_capacity(batch.len());
            for row in &batch {
                let updated = match found.get(&row.conversation_id) {
                    Some(c) => lifecycle.seen_again(row, c, now),
                    None => Some(self.unanswered(row, now)),
                };
                if let Some(updated) = updated {
                    if updated.state == ConversationState::Ended {
                        add(&report.ended, 1);
                        tracing::debug!(message = "Conversation ended.", conversation_id = %updated.conversation_id, end = ?updated.end);
                    }
                    updates.push(updated);
                }
            }
            // Each batch is saved as it answers: an end found in the first batch is
            // listed while the other batches still wait for the budget (the lag
            // benchmark measured whole re-read rounds of ~8 calls holding ends back).
            self.save_reread(updates).await?;
        }
        Ok(())
    }

    /// An active conversation a re-read did not answer for. The analytics store lags,
    /// so at first it is only looked at again later; each time is counted, a run of
    /// them is logged, and once it started [`UNANSWERED_PRESUMED_ENDED`] ago it is
    /// presumed ended and its recordings are listed: no session runs that long, and a
    /// conversation the query never answers for must not wait for ever unseen.
    fn unanswered(&self, row: &ConversationRow, now: DateTime<Utc>) -> ConversationRow {
        self.client.metrics().conversation_unanswered();
        let lifecycle = self.lifecycle();
        if now - row.start >= UNANSWERED_PRESUMED_ENDED {
            tracing::warn!(
                message = "Analytics never answered for this active conversation; presumed ended, its recordings are listed now.",
                conversation_id = %row.conversation_id,
                start = %row.start.to_rfc3339(),
            );
            return lifecycle.presumed_ended(row, now);
        }
        if row.checks >= 3 {
            tracing::warn!(
                message = "Analytics did not answer for an active conversation again; looking later.",
                conversation_id = %row.conversation_id,
                start = %row.start.to_rfc3339(),
                looks = row.checks + 1,
            );
        }
        lifecycle.still_active(row, now)
    }

    /// Stores re-read conversations and wakes the dispatcher when one has ended.
    async fn save_reread(&self, updates: Vec<ConversationRow>) -> Result<(), PollError> {
        if updates.is_empty() {
            return Ok(());
        }
        let ended = updates.iter().any(|r| r.state == ConversationState::Ended);
        self.ledger.save_conversations(updates).await?;
        if ended {
            self.work.notify_one();
        }
        Ok(())
    }

    async fn park(&self, conversation_id: &str, reason: String, report: &PassReport) -> Result<(), LedgerError> {
        add(&report.parked_conversations, 1);
        park_conversation(self.ledger.as_ref(), self.client.metrics(), conversation_id, reason).await
    }
}

/// Parks a conversation whose row or recording list cannot be used, with the reason:
/// visible in `status`, never asked for again until `retry`.
pub async fn park_conversation(
    ledger: &dyn Ledger,
    metrics: &OrgMetrics,
    conversation_id: &str,
    reason: String,
) -> Result<(), LedgerError> {
    let reason = untrusted::reason(&reason);
    tracing::error!(
        message = "Conversation parked: its data cannot be used.",
        conversation_id = %untrusted::shown(conversation_id),
        reason = %reason,
    );
    metrics.conversation_parked();
    ledger.park_conversation(conversation_id.to_owned(), reason).await
}
