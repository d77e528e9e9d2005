//! Daily manifests: for each org and UTC day, once every conversation that started on
//! that day has settled, one object listing every archived file of the day, chained to
//! the org's previous manifest, so that an auditor can prove the archive complete and
//! unaltered with nothing but the bucket (and `reconcile` can check it).
//!
//! A manifest is JSON lines: one per archived file (`key`, `size`, `sha256`,
//! `recording_id`, `conversation_id`, `part`, `conversation_start`), then one closing
//! line `{"manifest": {...}}` with the org, the day, the number of files and the key
//! and SHA-256 of the org's previous manifest. Removing or editing any manifest breaks
//! the chain at the next one (or at the head the ledger keeps); editing a line breaks
//! its agreement with the bucket.

pub mod key;
pub mod writer;

use crate::ledger::LedgerRecord;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One archived file, as a manifest line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub recording_id: String,
    pub conversation_id: String,
    /// The part's label; empty for a recording of one file.
    pub part: String,
    pub conversation_start: DateTime<Utc>,
}

/// A manifest by key and the SHA-256 of its bytes: a link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub key: String,
    pub sha256: String,
}

/// The closing line's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub org: String,
    pub day: NaiveDate,
    pub files: u64,
    /// The org's manifest written before this one (none for the first).
    pub previous: Option<Link>,
    pub written_at: DateTime<Utc>,
    pub archiver: String,
}

#[derive(Serialize, Deserialize)]
struct Closing {
    manifest: Trailer,
}

/// A manifest, built or read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub lines: Vec<Line>,
    pub trailer: Trailer,
}

impl Manifest {
    /// The manifest of `org`'s `day` from the ledger's records of that day: every file
    /// of every archived recording, in the ledger's order (by conversation start).
    pub fn of_day(org: &str, day: NaiveDate, records: &[LedgerRecord], previous: Option<Link>) -> Self {
        let lines: Vec<Line> = records
            .iter()
            .flat_map(|r| {
                r.files.iter().map(|f| Line {
                    key: f.key.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                    recording_id: r.recording_id.clone(),
                    conversation_id: r.conversation_id.clone(),
                    part: f.part.clone(),
                    conversation_start: r.conversation_start,
                })
            })
            .collect();
        let trailer = Trailer {
            org: org.to_owned(),
            day,
            files: lines.len() as u64,
            previous,
            written_at: Utc::now(),
            archiver: concat!("genesys-archiver/", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        Self { lines, trailer }
    }

    /// The bytes of the object.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for line in &self.lines {
            serde_json::to_writer(&mut out, line).expect("lines serialize");
            out.push(b'\n');
        }
        let closing = Closing {
            manifest: self.trailer.clone(),
        };
        serde_json::to_writer(&mut out, &closing).expect("trailers serialize");
        out.push(b'\n');
        out
    }

    /// Reads a manifest back; `Err` says which line is not what a manifest holds.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        let rows: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let (last, body) = rows.split_last().ok_or("empty")?;
        let closing: Closing = serde_json::from_str(last).map_err(|e| format!("closing line: {e}"))?;
        let lines = body
            .iter()
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
            .collect::<Result<Vec<Line>, String>>()?;
        if lines.len() as u64 != closing.manifest.files {
            return Err(format!(
                "the closing line counts {} files, the manifest lists {}",
                closing.manifest.files,
                lines.len()
            ));
        }
        Ok(Self {
            lines,
            trailer: closing.manifest,
        })
    }
}

/// The SHA-256 of a manifest's bytes, in hex: what the next link names.
pub fn digest(bytes: &[u8]) -> String {
    crate::hex::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::PartFacts;

    fn record(id: &str, files: usize) -> LedgerRecord {
        LedgerRecord {
            recording_id: id.into(),
            conversation_id: format!("c-{id}"),
            state: "archived".into(),
            reason: None,
            conversation_start: "2026-12-01T10:00:00Z".parse().unwrap(),
            key: None,
            files: (0..files)
                .map(|i| PartFacts {
                    part: if files > 1 { i.to_string() } else { String::new() },
                    key: format!("k/{id}-{i}"),
                    size: 10,
                    sha256: "ab".into(),
                    checksum: String::new(),
                })
                .collect(),
            handoff: None,
        }
    }

    #[test]
    fn a_manifest_lists_every_file_and_reads_back_whole() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let previous = Link {
            key: "m/2026-11-30.jsonl".into(),
            sha256: "ff".into(),
        };
        let m = Manifest::of_day("acme", day, &[record("a", 1), record("b", 3)], Some(previous.clone()));
        assert_eq!(m.lines.len(), 4);
        assert_eq!(m.trailer.files, 4);
        let bytes = m.to_bytes();
        let back = Manifest::parse(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.trailer.previous, Some(previous));
        // A line removed by hand no longer matches the count.
        let text = String::from_utf8(bytes).unwrap();
        let edited: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
        assert!(Manifest::parse(edited.as_bytes()).unwrap_err().contains("counts 4"));
    }
}
