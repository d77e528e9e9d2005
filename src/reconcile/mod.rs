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

pub mod platform;

use crate::ledger::{Ledger, LedgerRecord};
use crate::manifest::key::ManifestKey;
use crate::manifest::writer::{CHAIN, MAX_BYTES};
use crate::manifest::{Link, Manifest, digest};
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
        self.judge_records(&records, &mut report).await?;
        self.find_unknown(&mut report).await?;
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

    /// Objects under the range's key prefixes that the ledger does not know (its
    /// records of a day more on each side count as known: a recording's key is by its
    /// own start, its day by its conversation's).
    async fn find_unknown(&self, report: &mut Report) -> Result<(), String> {
        let wider = self
            .ledger
            .records(
                self.from - chrono::Duration::days(1),
                self.to + chrono::Duration::days(1),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut known: BTreeSet<String> = BTreeSet::new();
        for r in &wider {
            known.extend(r.files.iter().map(|f| f.key.clone()));
            if let Some(key) = r.files.first().map(|f| f.key.as_str()).or(r.key.as_deref()) {
                known.insert(KeyLayout::fixed(key, &r.recording_id).sidecar);
            }
        }
        let prefixes: BTreeSet<String> = days(self.from, self.to)
            .map(|day| self.layout.day_prefix(self.sink.prefix(), day))
            .collect();
        let manifests = self.manifest_key.render(self.sink.prefix(), NaiveDate::MIN);
        let manifest_dir = manifests.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
        for prefix in prefixes {
            for (key, _) in self
                .sink
                .list(&prefix)
                .await
                .map_err(|e| format!("sink {}: {e}", self.sink.describe()))?
            {
                let is_manifest = !manifest_dir.is_empty() && key.starts_with(&manifest_dir);
                if !known.contains(&key) && !is_manifest {
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
        for day in whole_days(self.from, self.to) {
            let key = self.manifest_key.render(self.sink.prefix(), day);
            let Some(bytes) = self.sink.get_bytes(&key, MAX_BYTES).await.map_err(sink_error)? else {
                let (start, end) = day_bounds(day);
                let pending = self
                    .ledger
                    .unsettled_between(start, end)
                    .await
                    .map_err(|e| e.to_string())?;
                let written_after = self.is_behind_head(day).await?;
                if pending == 0 && written_after {
                    report.findings.push(Finding::object(
                        Code::ManifestMissing,
                        &key,
                        format!("no manifest for {day}, and later days have one"),
                    ));
                }
                continue;
            };
            report.manifests += 1;
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
        self.check_chain(report).await
    }

    /// Whether the chain's head is a manifest of a later day than `day` (so `day`'s
    /// manifest is due, not merely not written yet).
    async fn is_behind_head(&self, day: NaiveDate) -> Result<bool, String> {
        let head: Option<Link> = self
            .ledger
            .note(CHAIN)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|v| serde_json::from_str(&v).ok());
        let Some(head) = head else { return Ok(false) };
        let Some(bytes) = self
            .sink
            .get_bytes(&head.key, MAX_BYTES)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(true);
        };
        Ok(Manifest::parse(&bytes).is_ok_and(|m| m.trailer.day > day))
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

    /// Walks the chain from the ledger's head back to the first manifest before the
    /// range: each manifest's bytes must hash to what the next one (or the head) names.
    async fn check_chain(&self, report: &mut Report) -> Result<(), String> {
        let head: Option<Link> = self
            .ledger
            .note(CHAIN)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|v| serde_json::from_str(&v).ok());
        let mut next = head;
        let first_day = self.from.date_naive();
        let mut seen = BTreeSet::new();
        while let Some(link) = next.take() {
            if !seen.insert(link.key.clone()) {
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
            match Manifest::parse(&bytes) {
                Ok(m) if m.trailer.day >= first_day => next = m.trailer.previous,
                _ => break,
            }
        }
        Ok(())
    }
}

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

fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    (start, start + chrono::Duration::days(1))
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
