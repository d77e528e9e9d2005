//! Object keys: where a recording and its sidecar land.
//!
//! The default follows Genesys's own S3 export, so Athena tables built on it keep
//! working: `{prefix}year=YYYY/month=MM/day=DD/hour=HH/conversation_id={id}/{recordingId}.{ext}`,
//! by the recording's UTC start time, plus `{recordingId}_metadata.json` beside it.
//! Ids come from API payloads: only `[A-Za-z0-9._-]` ids (not `.` or `..`) may shape a
//! key; anything else is refused, so a hostile id can neither climb out of the prefix
//! nor collide with another recording's key.

use chrono::{DateTime, Datelike, Timelike, Utc};

#[derive(Debug, Clone, PartialEq)]
pub struct KeyLayout {
    template: String,
}

/// The keys of one recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingKeys {
    pub media: String,
    pub sidecar: String,
}

const PLACEHOLDERS: &[&str] = &[
    "prefix",
    "year",
    "month",
    "day",
    "hour",
    "conversationId",
    "recordingId",
    "ext",
    "orgId",
    "org",
];

/// Whether an id may be used in a key or a path.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl KeyLayout {
    pub const DEFAULT: &'static str =
        "{prefix}year={year}/month={month}/day={day}/hour={hour}/conversation_id={conversationId}/{recordingId}.{ext}";

    pub fn parse(template: &str) -> Result<Self, String> {
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').ok_or("has an unclosed `{`")? + open;
            let name = &rest[open + 1..close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{name}}} (known: {})",
                    PLACEHOLDERS.join(", ")
                ));
            }
            rest = &rest[close + 1..];
        }
        if !template.contains("{recordingId}") {
            return Err("must contain {recordingId}, or recordings would overwrite each other".into());
        }
        if !template.ends_with(".{ext}") && !template.ends_with("{recordingId}") {
            return Err("must end with {recordingId} or {recordingId}.{ext}".into());
        }
        if template.starts_with('/') || template.split('/').any(|s| s == "..") {
            return Err("must not start with `/` or contain `..`".into());
        }
        Ok(Self {
            template: template.to_owned(),
        })
    }

    /// The keys of a recording; `Err` names an id that may not shape a key.
    pub fn keys(
        &self,
        prefix: &str,
        conversation_id: &str,
        recording_id: &str,
        start: DateTime<Utc>,
        ext: &str,
    ) -> Result<RecordingKeys, String> {
        if self.template.contains("{orgId}") || prefix.contains("{orgId}") {
            return Err("the key uses {orgId}, but the org id was not read (KeyLayout::with_org_id)".into());
        }
        for (what, id) in [("conversation id", conversation_id), ("recording id", recording_id)] {
            if !is_safe_id(id) {
                return Err(format!("{what} has characters that cannot be used in an object key"));
            }
        }
        let media = self
            .template
            .replace("{prefix}", prefix)
            .replace("{year}", &format!("{:04}", start.year()))
            .replace("{month}", &format!("{:02}", start.month()))
            .replace("{day}", &format!("{:02}", start.day()))
            .replace("{hour}", &format!("{:02}", start.hour()))
            .replace("{conversationId}", conversation_id)
            .replace("{recordingId}", recording_id)
            .replace("{ext}", ext);
        Ok(Self::fixed(media, recording_id))
    }

    /// Whether keys differ by org (`{org}` or `{orgId}`).
    pub fn names_org(&self) -> bool {
        self.template.contains("{org}") || self.template.contains("{orgId}")
    }

    /// The layout with `{org}` (the org's name in this configuration) filled in.
    pub fn with_org(&self, name: &str) -> Self {
        Self {
            template: self.template.replace("{org}", name),
        }
    }

    /// Whether the template needs the Genesys org id.
    pub fn needs_org_id(&self) -> bool {
        self.template.contains("{orgId}")
    }

    /// The layout with `{orgId}` filled in (read from `GET /api/v2/organizations/me`
    /// at start: Genesys's own export layout starts with it).
    pub fn with_org_id(&self, org_id: &str) -> Result<Self, String> {
        if !is_safe_id(org_id) {
            return Err("the org id has characters that cannot be used in an object key".into());
        }
        Ok(Self {
            template: self.template.replace("{orgId}", org_id),
        })
    }

    /// The keys of a recording whose media key was fixed earlier (stored in the
    /// ledger): the sidecar sits beside it.
    pub fn fixed(media: impl Into<String>, recording_id: &str) -> RecordingKeys {
        let media = media.into();
        let dir = media.rsplit_once('/').map_or("", |(dir, _)| dir);
        let sidecar = if dir.is_empty() {
            format!("{recording_id}_metadata.json")
        } else {
            format!("{dir}/{recording_id}_metadata.json")
        };
        RecordingKeys { media, sidecar }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_matches_the_genesys_export() {
        let layout = KeyLayout::parse(KeyLayout::DEFAULT).unwrap();
        let start = "2026-03-04T05:06:07Z".parse().unwrap();
        let keys = layout.keys("org1/", "c-1", "r-1", start, "webm").unwrap();
        assert_eq!(
            keys.media,
            "org1/year=2026/month=03/day=04/hour=05/conversation_id=c-1/r-1.webm"
        );
        assert_eq!(
            keys.sidecar,
            "org1/year=2026/month=03/day=04/hour=05/conversation_id=c-1/r-1_metadata.json"
        );
    }

    #[test]
    fn org_id_is_filled_in_before_any_key_is_made() {
        let layout = KeyLayout::parse("{orgId}/{recordingId}.{ext}").unwrap();
        assert!(layout.needs_org_id());
        let start = "2026-03-04T05:06:07Z".parse().unwrap();
        assert!(
            layout.keys("", "c-1", "r-1", start, "webm").is_err(),
            "never a key with the placeholder"
        );
        let filled = layout.with_org_id("6f0c2a1e-0000-4000-8000-000000000001").unwrap();
        assert_eq!(
            filled.keys("", "c-1", "r-1", start, "webm").unwrap().media,
            "6f0c2a1e-0000-4000-8000-000000000001/r-1.webm"
        );
        assert!(layout.with_org_id("../x").is_err());
    }

    #[test]
    fn hostile_ids_never_shape_a_key() {
        let layout = KeyLayout::parse(KeyLayout::DEFAULT).unwrap();
        let start = Utc::now();
        for bad in ["..", ".", "a/b", "../../etc", "a\u{0}b", "a\nb", "", "é"] {
            assert!(layout.keys("", bad, "r", start, "webm").is_err(), "{bad:?}");
            assert!(layout.keys("", "c", bad, start, "webm").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates_are_checked() {
        assert!(KeyLayout::parse("{prefix}{conversationId}/{recordingId}.{ext}").is_ok());
        assert!(KeyLayout::parse("{prefix}{conversationId}.{ext}").is_err());
        assert!(KeyLayout::parse("{prefix}{bogus}/{recordingId}.{ext}").is_err());
        assert!(KeyLayout::parse("/{recordingId}.{ext}").is_err());
        assert!(KeyLayout::parse("{recordingId}.{ext}/x").is_err());
    }
}
