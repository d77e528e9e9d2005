//! `reconcile`: proof that an org's archive is complete for a range of conversation
//! starts, or a line for everything that keeps it from being so.
//!
//! Three witnesses are compared: what Genesys says exists (the analytics query with the
//! configured screen-recording filter, then each conversation's listing: [`platform`]),
//! what the ledger says (every recording of the conversations that started in the
//! range), and what the bucket holds (a HEAD per archived file, its bytes read back with
//! `--bytes`, and a listing of the range's key prefixes for objects nobody knows). The
//! daily manifests of the range are checked against the bucket, the ledger and their
//! chain. `--offline` leaves Genesys out.
//!
//! Over 500 lines: the comparison of ledger, bucket and manifests and its reason codes
//! are one report; what the platform lists is apart (`platform.rs`).

pub mod platform;

use crate::ledger::{Ledger, LedgerRecord};
use crate::manifest::key::ManifestKey;
use crate::manifest::writer::{MAX_BYTES, bounds as day_bounds, head};
use crate::manifest::{Manifest, digest};
use crate::sink::Sink;
use crate::sink::layout::KeyLayout;
use chrono::{DateTime, Days, NaiveDate, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Why something is not archived-and-verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Parked with its reason: never archivable as it stands (a final reason).
    Parked,
    /// Failed for good; `retry` puts it back.
    Failed,
    /// Not finished yet (due, transcoding, uploading in Genesys, in a worker's hands).
    Waiting,
    /// Genesys lists it, the ledger does not know it.
    NotListed,
    /// Its conversation is still going on: its recordings cannot be listed yet.
    Active,
    /// Conversations of the range the ledger has not settled yet (their recordings not
    /// all listed, or the listing failing).
    Unsettled,
    /// Genesys would not list the conversation's recordings.
    ListingFailed,
    /// Archived in the ledger, no object at its key.
    Missing,
    /// The object's size differs from the ledger's.
    WrongSize,
    /// The object's SHA-256 differs from the ledger's (`--bytes`).
    WrongBytes,
    /// An object under the range's prefixes that the ledger does not know.
    Unknown,
    /// A final day without its manifest.
    ManifestMissing,
    /// A manifest that cannot be read, or whose lines disagree with the bucket or ledger.
    ManifestWrong,
    /// A manifest whose bytes are not those the next link (or the ledger's head) names.
    ManifestChain,
}

impl Code {
    /// Whether the line still lets the range count as complete: a parked recording has
    /// a final reason. Everything else needs someone to act, or time.
    pub fn is_final(self) -> bool {
        self == Code::Parked
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Parked => "parked",
            Code::Failed => "failed",
            Code::Waiting => "waiting",
            Code::NotListed => "not_listed",
            Code::Active => "active",
            Code::Unsettled => "unsettled",
            Code::ListingFailed => "listing_failed",
            Code::Missing => "missing",
            Code::WrongSize => "wrong_size",
            Code::WrongBytes => "wrong_bytes",
            Code::Unknown => "unknown",
            Code::ManifestMissing => "manifest_missing",
            Code::ManifestWrong => "manifest_wrong",
            Code::ManifestChain => "manifest_chain",
        }
    }
}

/// One recording, object or manifest that is not archived-and-verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: Code,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub detail: String,
}

impl Finding {
    fn of(code: Code, record: &LedgerRecord, key: Option<&str>, detail: impl Into<String>) -> Self {
        Self {
            code,
            recording_id: Some(record.recording_id.clone()),
            conversation_id: Some(record.conversation_id.clone()),
            key: key.map(str::to_owned),
            detail: detail.into(),
        }
    }

    fn object(code: Code, key: &str, detail: impl Into<String>) -> Self {
        Self {
            code,
            recording_id: None,
            conversation_id: None,
            key: Some(key.to_owned()),
            detail: detail.into(),
        }
    }
}

/// What `reconcile` compared, and what it found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Recordings in the ledger for the range.
    pub recordings: u64,
    /// Archived files checked in the bucket (and their bytes, with `--bytes`).
    pub files_verified: u64,
    /// Screen recordings Genesys listed for the range (`None` with `--offline`).
    pub genesys_recordings: Option<u64>,
    /// Manifests checked.
    pub manifests: u64,
    /// What was not compared, and why.
    pub notes: Vec<String>,
    /// Retention hand-offs recorded: sources whose `deleteDate` was set, and those
    /// left as they were (an earlier date kept, gone, or a copy not proven).
    pub handed_off: u64,
    pub handoff_left: u64,
}

impl Report {
    /// Everything Genesys lists is archived or has a final reason, and nothing in the
    /// bucket is missing, wrong or unknown.
    pub fn complete(&self) -> bool {
        self.findings.iter().all(|f| f.code.is_final())
    }

    /// Findings per code.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for f in &self.findings {
            *counts.entry(f.code.as_str()).or_default() += 1;
        }
        counts
    }
}

/// What one org's reconciliation works with.
pub struct Scope {
    pub ledger: Arc<dyn Ledger>,
    pub sink: Arc<dyn Sink>,
    pub layout: KeyLayout,
    pub manifest_key: ManifestKey,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Read every archived object back and check its SHA-256.
    pub bytes: bool,
    /// What Genesys lists for the range, unless `--offline`.
    pub platform: Option<platform::Survey>,
    /// The ledger keeps rows that started since then (`ledger.retain`): older ones are
    /// checked against their manifests only.
    pub retained_since: DateTime<Utc>,
}

/// HEADs (or reads) in flight at once.
const CONCURRENCY: usize = 16;

impl Scope {
    pub async fn run(&self) -> Result<Report, String> {
        let mut report = Report::default();
        let records = self
            .ledger
            .records(self.from, self.to)
            .await
            .map_err(|e| e.to_string())?;
        report.recordings = records.len() as u64;
        for handoff in records.iter().filter_map(|r| r.handoff.as_ref()) {
            match handoff.new {
                Some(_) => report.handed_off += 1,
                None => report.handoff_left += 1,
            }
        }
        self.judge_records(&records, &mut report).await?;
        self.find_unsettled(&records, &mut report).await?;
        if self.from < self.retained_since {
            report.notes.push(format!(
                "the ledger keeps rows since {} (ledger.retain): older objects were checked against their \
                 manifests, not looked for among unknown ones",
                self.retained_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        } else {
            self.find_unknown(&mut report).await?;
        }
        if let Some(survey) = &self.platform {
            compare_with_platform(survey, &records, &mut report);
        }
        self.check_manifests(&records, &mut report).await?;
        report.findings.sort_by(|a, b| {
            (a.code, &a.conversation_id, &a.recording_id, &a.key).cmp(&(
                b.code,
                &b.conversation_id,
                &b.recording_id,
                &b.key,
            ))
        });
        Ok(report)
    }

    /// Each ledger recording by its state; each archived file against the bucket.
    async fn judge_records(&self, records: &[LedgerRecord], report: &mut Report) -> Result<(), String> {
        let mut files = Vec::new();
        for r in records {
            let reason = r.reason.clone().unwrap_or_default();
            match r.state.as_str() {
                "archived" => files.extend(r.files.iter().map(|f| (r, f))),
                "parked" => report.findings.push(Finding::of(Code::Parked, r, None, reason)),
                "failed" => report.findings.push(Finding::of(Code::Failed, r, None, reason)),
                other => report.findings.push(Finding::of(
                    Code::Waiting,
                    r,
                    None,
                    format!("{other} {reason}").trim().to_owned(),
                )),
            }
        }
        let checks = futures_util::stream::iter(files.into_iter().map(|(r, f)| async move {
            let found = match self.sink.head(&f.key).await {
                Err(e) => return Err(format!("sink {}: {e}", self.sink.describe())),
                Ok(None) => Some(Finding::of(Code::Missing, r, Some(&f.key), "no object at the key")),
                Ok(Some(info)) if info.size != f.size => Some(Finding::of(
                    Code::WrongSize,
                    r,
                    Some(&f.key),
                    format!("{} bytes in the bucket, {} in the ledger", info.size, f.size),
                )),
                Ok(Some(_)) if self.bytes && !f.sha256.is_empty() => {
                    let (_, sha256) = self
                        .sink
                        .read_checksum(&f.key)
                        .await
                        .map_err(|e| format!("sink {}: {e}", self.sink.describe()))?;
                    (sha256 != f.sha256).then(|| {
                        Finding::of(
                            Code::WrongBytes,
                            r,
                            Some(&f.key),
                            format!("SHA-256 {sha256}, the ledger's {}", f.sha256),
                        )
                    })
                }
                Ok(Some(_)) => None,
            };
            Ok(found)
        }))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        for check in checks {
            match check? {
                Some(finding) => report.findings.push(finding),
                None => report.files_verified += 1,
            }
        }
        Ok(())
    }

    /// Conversations of the range the ledger has not settled: their recordings may not
    /// all be known yet (the waiting recordings themselves have lines of their own).
    async fn find_unsettled(&self, records: &[LedgerRecord], report: &mut Report) -> Result<(), String> {
        let pending = self
            .ledger
            .unsettled_between(self.from, self.to)
            .await
            .map_err(|e| e.to_string())?;
        let waiting = records
            .iter()
            .filter(|r| {
                matches!(
                    r.state.as_str(),
                    "discovered" | "transcoding" | "retrying" | "uploading"
                )
            })
            .count() as u64;
        let conversations = pending.saturating_sub(waiting);
        if conversations > 0 {
            report.findings.push(Finding {
                code: Code::Unsettled,
                recording_id: None,
                conversation_id: None,
                key: None,
                detail: format!(
                    "{conversations} conversations of the range are not settled yet (`status` and `list --state waiting` say why)"
                ),
            });
        }
        Ok(())
    }

    /// Objects under the range's key prefixes that the ledger does not know (its
    /// records of a day more on each side count as known: a recording's key is by its
    /// own start, its day by its conversation's).
    async fn find_unknown(&self, report: &mut Report) -> Result<(), String> {
        let prefix = self.sink.prefix();
        let dated = self.layout.day_prefix(prefix, self.from.date_naive())
            != self
                .layout
                .day_prefix(prefix, (self.from + chrono::Duration::days(40)).date_naive());
        // A layout without a date lists the whole prefix: every record is needed to
        // know what is there.
        let (since, until) = if dated {
            (
                self.from - chrono::Duration::days(1),
                self.to + chrono::Duration::days(1),
            )
        } else {
            (self.retained_since, Utc::now() + chrono::Duration::days(1))
        };
        let wider = self.ledger.records(since, until).await.map_err(|e| e.to_string())?;
        let mut known: BTreeSet<String> = BTreeSet::new();
        // Parts a recording not archived yet (waiting, failed) has written so far: its
        // record is reported; its objects are not strays.
        let mut in_hand: Vec<String> = Vec::new();
        for r in &wider {
            known.extend(r.files.iter().map(|f| f.key.clone()));
            if let Some(key) = r.files.first().map(|f| f.key.as_str()).or(r.key.as_deref()) {
                known.insert(KeyLayout::fixed(key, &r.recording_id, prefix).sidecar);
            }
            if r.files.is_empty()
                && let Some(pattern) = &r.key
            {
                let keys = KeyLayout::fixed(pattern.as_str(), &r.recording_id, prefix);
                known.insert(keys.media.clone());
                if let Some((stem, _)) = pattern.split_once("{part}") {
                    in_hand.push(format!("{stem}.part-"));
                }
            }
        }
        let prefixes: BTreeSet<String> = days(self.from, self.to)
            .map(|day| self.layout.day_prefix(prefix, day))
            .collect();
        let manifest_dir = self.manifest_key.dir_prefix(prefix);
        for prefix in prefixes {
            for (key, _) in self
                .sink
                .list(&prefix)
                .await
                .map_err(|e| format!("sink {}: {e}", self.sink.describe()))?
            {
                let is_manifest = !manifest_dir.is_empty() && key.starts_with(&manifest_dir);
                let is_in_hand = in_hand.iter().any(|stem| key.starts_with(stem.as_str()));
                if !known.contains(&key) && !is_manifest && !is_in_hand {
                    report.findings.push(Finding::object(
                        Code::Unknown,
                        &key,
                        "in the bucket, unknown to the ledger",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The manifests of the range's whole days: present once final, readable, every
    /// line in the bucket as listed, every archived file of the day listed, and the
    /// chain intact from the ledger's head back past the range.
    async fn check_manifests(&self, records: &[LedgerRecord], report: &mut Report) -> Result<(), String> {
        let sink_error = |e: crate::sink::SinkError| format!("sink {}: {e}", self.sink.describe());
        let mut in_range = Vec::new();
        // Final days without a manifest, and the latest day that has one: a day is
        // missing its manifest once a later day has one (the walk writes days in order).
        let (mut missing, mut latest) = (Vec::new(), self.head_day().await?);
        for day in whole_days(self.from, self.to) {
            let key = self.manifest_key.render(self.sink.prefix(), day);
            let Some(bytes) = self.sink.get_bytes(&key, MAX_BYTES).await.map_err(sink_error)? else {
                let (start, end) = day_bounds(day);
                let pending = self
                    .ledger
                    .unsettled_between(start, end)
                    .await
                    .map_err(|e| e.to_string())?;
                // The daemon's first manifest is for the day after its oldest
                // conversation's (that day may have begun before its lookback).
                let first = self.ledger.first_start().await.map_err(|e| e.to_string())?;
                if pending == 0 && first.is_some_and(|t| day > t.date_naive()) {
                    missing.push((day, key));
                }
                continue;
            };
            report.manifests += 1;
            in_range.push(key.clone());
            latest = latest.max(Some(day));
            let manifest = match Manifest::parse(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    report
                        .findings
                        .push(Finding::object(Code::ManifestWrong, &key, format!("unreadable: {e}")));
                    continue;
                }
            };
            self.check_lines(&key, day, &manifest, records, report).await?;
        }
        for (day, key) in missing.into_iter().filter(|(day, _)| latest.is_some_and(|l| l > *day)) {
            report.findings.push(Finding::object(
                Code::ManifestMissing,
                &key,
                format!("no manifest for {day}, and a later day has one"),
            ));
        }
        self.check_chain(&in_range, report).await
    }

    /// The day of the chain's head (the manifest written last), if it can be read.
    async fn head_day(&self) -> Result<Option<NaiveDate>, String> {
        let Some(head) = head(self.ledger.as_ref()).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let bytes = self
            .sink
            .get_bytes(&head.key, MAX_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        Ok(bytes.and_then(|b| Manifest::parse(&b).ok()).map(|m| m.trailer.day))
    }

    async fn check_lines(
        &self,
        key: &str,
        day: NaiveDate,
        manifest: &Manifest,
        records: &[LedgerRecord],
        report: &mut Report,
    ) -> Result<(), String> {
        let mut wrong = Vec::new();
        if manifest.trailer.day != day {
            wrong.push(format!("names the day {}", manifest.trailer.day));
        }
        let listed: BTreeMap<&str, &crate::manifest::Line> =
            manifest.lines.iter().map(|l| (l.key.as_str(), l)).collect();
        let (start, end) = day_bounds(day);
        for r in records
            .iter()
            .filter(|r| r.conversation_start >= start && r.conversation_start < end)
        {
            for f in &r.files {
                match listed.get(f.key.as_str()) {
                    None => wrong.push(format!("does not list {}", f.key)),
                    Some(line) if line.size != f.size || line.sha256 != f.sha256 => {
                        wrong.push(format!("lists {} with another size or SHA-256 than the ledger", f.key))
                    }
                    Some(_) => {}
                }
            }
        }
        for line in &manifest.lines {
            match self.sink.head(&line.key).await.map_err(|e| e.to_string())? {
                None => wrong.push(format!("lists {}, which is not in the bucket", line.key)),
                Some(info) if info.size != line.size => wrong.push(format!(
                    "lists {} with {} bytes; the bucket has {}",
                    line.key, line.size, info.size
                )),
                Some(_) if self.bytes => {
                    let (_, sha256) = self.sink.read_checksum(&line.key).await.map_err(|e| e.to_string())?;
                    if sha256 != line.sha256 {
                        wrong.push(format!("lists {} with another SHA-256 than its bytes", line.key));
                    }
                }
                Some(_) => {}
            }
        }
        if !wrong.is_empty() {
            report
                .findings
                .push(Finding::object(Code::ManifestWrong, key, wrong.join("; ")));
        }
        Ok(())
    }

    /// Walks the whole chain from the ledger's head back to its first manifest: each
    /// manifest's bytes must hash to what the next one (or the head) names, and every
    /// manifest of the range must be on it (the chain follows the order manifests were
    /// written in, which `backfill` of older days makes different from the days' order).
    async fn check_chain(&self, in_range: &[String], report: &mut Report) -> Result<(), String> {
        let mut next = head(self.ledger.as_ref()).await.map_err(|e| e.to_string())?;
        let mut on_chain = BTreeSet::new();
        while let Some(link) = next.take() {
            if on_chain.len() >= MAX_CHAIN || !on_chain.insert(link.key.clone()) {
                report
                    .findings
                    .push(Finding::object(Code::ManifestChain, &link.key, "the chain loops"));
                break;
            }
            let Some(bytes) = self
                .sink
                .get_bytes(&link.key, MAX_BYTES)
                .await
                .map_err(|e| e.to_string())?
            else {
                report.findings.push(Finding::object(
                    Code::ManifestChain,
                    &link.key,
                    "named by the chain, not in the bucket",
                ));
                break;
            };
            if digest(&bytes) != link.sha256 {
                report.findings.push(Finding::object(
                    Code::ManifestChain,
                    &link.key,
                    "its bytes are not the ones the chain names (edited or replaced after it was written)",
                ));
            }
            next = Manifest::parse(&bytes).ok().and_then(|m| m.trailer.previous);
        }
        for key in in_range.iter().filter(|k| !on_chain.contains(*k)) {
            report.findings.push(Finding::object(
                Code::ManifestChain,
                key,
                "not on the org's chain of manifests",
            ));
        }
        Ok(())
    }
}

/// Links followed at most (a manifest a day: centuries).
const MAX_CHAIN: usize = 100_000;

/// Findings from what Genesys lists that the ledger's records do not cover.
fn compare_with_platform(survey: &platform::Survey, records: &[LedgerRecord], report: &mut Report) {
    let known: BTreeSet<&str> = records.iter().map(|r| r.recording_id.as_str()).collect();
    report.genesys_recordings = Some(survey.recordings.len() as u64);
    for seen in &survey.recordings {
        if !known.contains(seen.recording_id.as_str()) {
            report.findings.push(Finding {
                code: Code::NotListed,
                recording_id: Some(seen.recording_id.clone()),
                conversation_id: Some(seen.conversation_id.clone()),
                key: None,
                detail: format!(
                    "Genesys lists it (fileState {}); the ledger does not know it",
                    seen.file_state
                ),
            });
        }
    }
    for (conversation_id, detail, code) in &survey.conversations {
        report.findings.push(Finding {
            code: *code,
            recording_id: None,
            conversation_id: Some(conversation_id.clone()),
            key: None,
            detail: detail.clone(),
        });
    }
}

/// Every UTC day `[from, to)` touches.
fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> impl Iterator<Item = NaiveDate> {
    let last = (to - chrono::Duration::milliseconds(1)).date_naive();
    let mut day = Some(from.date_naive());
    std::iter::from_fn(move || {
        let current = day.filter(|d| *d <= last)?;
        day = current.checked_add_days(Days::new(1));
        Some(current)
    })
}

/// The UTC days wholly inside `[from, to)`.
fn whole_days(from: DateTime<Utc>, to: DateTime<Utc>) -> impl Iterator<Item = NaiveDate> {
    days(from, to).filter(move |d| {
        let (start, end) = day_bounds(*d);
        start >= from && end <= to
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_whole_days_of_a_range() {
        let from: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        let to: DateTime<Utc> = "2026-12-04T00:00:00Z".parse().unwrap();
        let all: Vec<String> = days(from, to).map(|d| d.to_string()).collect();
        assert_eq!(all, ["2026-12-01", "2026-12-02", "2026-12-03"]);
        let whole: Vec<String> = whole_days(from, to).map(|d| d.to_string()).collect();
        assert_eq!(whole, ["2026-12-02", "2026-12-03"]);
    }

    #[test]
    fn only_a_parked_recording_leaves_the_range_complete() {
        let mut report = Report::default();
        assert!(report.complete());
        report
            .findings
            .push(Finding::object(Code::Parked, "k", "deleted in Genesys"));
        assert!(report.complete());
        report.findings.push(Finding::object(Code::Unknown, "k2", "stray"));
        assert!(!report.complete());
        assert_eq!(report.counts()["unknown"], 1);
    }
}
