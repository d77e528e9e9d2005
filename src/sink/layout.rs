//! Object keys: where a recording and its sidecar land.
//!
//! The default follows Genesys's own S3 export, so Athena tables built on it keep
//! working: `{prefix}year=YYYY/month=MM/day=DD/hour=HH/conversation_id={id}/{recordingId}.{ext}`,
//! by the recording's UTC start time, plus `{recordingId}_metadata.json` beside it.
//!
//! A screen recording can be several files (parts, one per monitor or segment). A
//! recording of one file keeps the key above; each part of several gets the key with
//! `{part}` rendered as `.part-{label}` (`r-1.part-0.webm`, `r-1.part-1.webm`), and its
//! one sidecar lists them all. A template without `{part}` gets it before its `.{ext}`.
//! The label is the part's name in `mediaUris` when that is a safe id, else a digest
//! of it ([`part_label`]).
//!
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
    /// The key of a recording of one file.
    pub media: String,
    pub sidecar: String,
    /// The media key with `{part}` still in it: what the ledger fixes at the first
    /// attempt, before the number of parts is known ([`RecordingKeys::part`]).
    pub pattern: String,
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
    "part",
];

/// How every sidecar key ends.
const SIDECAR_SUFFIX: &str = "_metadata.json";

/// Where `{part}` goes in a template that does not place it: before `.{ext}`.
const PART: &str = "{part}";

use crate::untrusted::is_safe_id;

/// Every `{name}` in `template` is one of `known`, and every `{` is closed (the key
/// layout's and the manifests' templates alike).
pub fn check_placeholders(template: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("has an unclosed `{`")? + open;
        let name = &rest[open + 1..close];
        if !known.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}} (known: {})", known.join(", ")));
        }
        rest = &rest[close + 1..];
    }
    Ok(())
}

impl KeyLayout {
    pub const DEFAULT: &'static str = "{prefix}year={year}/month={month}/day={day}/hour={hour}/conversation_id={conversationId}/{recordingId}{part}.{ext}";

    pub fn parse(template: &str) -> Result<Self, String> {
        check_placeholders(template, PLACEHOLDERS)?;
        if !template.contains("{recordingId}") {
            return Err("must contain {recordingId}, or recordings would overwrite each other".into());
        }
        let bare = template.replace(PART, "");
        if !bare.ends_with(".{ext}") && !bare.ends_with("{recordingId}") {
            return Err("must end with {recordingId} or {recordingId}.{ext} (a {part} may stand between)".into());
        }
        if template.matches(PART).count() > 1
            || (template.contains(PART) && !template.split('/').next_back().is_some_and(|f| f.contains(PART)))
        {
            return Err("{part} may stand once, in the file name".into());
        }
        if template.starts_with('/') || template.split('/').any(|s| s == "..") {
            return Err("must not start with `/` or contain `..`".into());
        }
        // Parts get their own keys even from a template written before parts existed.
        let template = if template.contains(PART) {
            template.to_owned()
        } else if let Some(stem) = template.strip_suffix(".{ext}") {
            format!("{stem}{PART}.{{ext}}")
        } else {
            format!("{template}{PART}")
        };
        Ok(Self { template })
    }

    /// The keys of a recording (its pattern keeps `{part}`, filled in per part by
    /// [`RecordingKeys::part`] once the number of parts is known). `Err` names an id that may not shape a key.
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
        // A key that is some recording's sidecar key (`…/X_metadata.json`, possible with
        // a template without `.{ext}` and an id ending in `_metadata.json`) would let one
        // recording's media and another's sidecar overwrite each other.
        if media.replacen(PART, "", 1).ends_with(SIDECAR_SUFFIX) {
            return Err(format!(
                "recording id makes its media key end in {SIDECAR_SUFFIX}, a sidecar's key"
            ));
        }
        Ok(Self::fixed(media, recording_id, prefix))
    }

    /// The key prefix every recording of `day` starts with under `prefix`: the template
    /// rendered up to its first placeholder that is not a date's (with the default
    /// layout, `PREFIX/year=2026/month=12/day=06/hour=`). `reconcile` lists it to find
    /// objects the ledger does not know; a layout without a date lists the whole prefix.
    pub fn day_prefix(&self, prefix: &str, day: chrono::NaiveDate) -> String {
        let mut cut = self.template.len();
        let mut at = 0;
        while let Some(open) = self.template[at..].find('{') {
            let open = at + open;
            let close = self.template[open..]
                .find('}')
                .map_or(self.template.len(), |c| open + c);
            let name = &self.template[open + 1..close];
            if !["prefix", "year", "month", "day"].contains(&name) {
                cut = open;
                break;
            }
            at = close + 1;
        }
        self.template[..cut]
            .replace("{prefix}", prefix)
            .replace("{year}", &format!("{:04}", day.year()))
            .replace("{month}", &format!("{:02}", day.month()))
            .replace("{day}", &format!("{:02}", day.day()))
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
    /// ledger, `{part}` in it unless fixed before parts existed): the sidecar sits
    /// beside it, and always inside the org's `prefix`: with a template whose last `/`
    /// comes before the prefix ends (`prefix = "acme-"`, keys `acme-{conversationId}-…`)
    /// the directory alone would put it outside, among another org's objects.
    pub fn fixed(pattern: impl Into<String>, recording_id: &str, prefix: &str) -> RecordingKeys {
        let pattern = pattern.into();
        let media = pattern.replacen(PART, "", 1);
        let dir = media.rsplit_once('/').map_or("", |(dir, _)| dir);
        let beside = if dir.is_empty() {
            format!("{recording_id}{SIDECAR_SUFFIX}")
        } else {
            format!("{dir}/{recording_id}{SIDECAR_SUFFIX}")
        };
        let sidecar = if beside.starts_with(prefix) {
            beside
        } else {
            format!("{prefix}{recording_id}{SIDECAR_SUFFIX}")
        };
        RecordingKeys {
            media,
            sidecar,
            pattern,
        }
    }
}

impl RecordingKeys {
    /// The key of a part labelled `label` of a recording of `parts` files: the fixed
    /// key with `{part}` empty for one file, `.part-{label}` for each of several. A key
    /// fixed before parts existed has no `{part}`: the part goes before its extension.
    pub fn part(&self, label: &str, parts: usize) -> String {
        let fill = if parts <= 1 {
            String::new()
        } else {
            format!(".part-{label}")
        };
        let p = &self.pattern;
        if p.contains(PART) {
            return p.replacen(PART, &fill, 1);
        }
        let name_at = p.rfind('/').map_or(0, |i| i + 1);
        match p[name_at..].rfind('.') {
            Some(dot) if dot > 0 => {
                let at = name_at + dot;
                format!("{}{fill}{}", &p[..at], &p[at..])
            }
            _ => format!("{p}{fill}"),
        }
    }
}

/// A part's label in its key: its name in `mediaUris` when that is a short safe id,
/// else the first 16 hex digits of its SHA-256 after a `p` (an untrusted string never
/// shapes a key, and two names never share a label).
pub fn part_label(name: &str) -> String {
    if is_safe_id(name) && name.len() <= 32 {
        return name.to_owned();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    format!("p{}", &crate::hex::hex(&digest)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_stays_inside_the_org_prefix_whatever_the_template() {
        let layout = KeyLayout::parse("{prefix}{conversationId}-{recordingId}.{ext}").unwrap();
        let keys = layout.keys("acme-", "c1", "r1", Utc::now(), "webm").unwrap();
        assert_eq!(keys.media, "acme-c1-r1.webm");
        assert_eq!(keys.sidecar, "acme-r1_metadata.json");
        let default = KeyLayout::parse(KeyLayout::DEFAULT).unwrap();
        let keys = default.keys("acme/", "c1", "r1", Utc::now(), "webm").unwrap();
        assert!(keys.sidecar.starts_with("acme/year=") && keys.sidecar.ends_with("/r1_metadata.json"));
    }

    #[test]
    fn an_id_that_would_make_its_media_key_a_sidecar_key_is_refused() {
        let layout = KeyLayout::parse("{prefix}{recordingId}").unwrap();
        let start = Utc::now();
        assert!(layout.keys("p/", "c", "r1", start, "webm").is_ok());
        let error = layout.keys("p/", "c", "r1_metadata.json", start, "webm").unwrap_err();
        assert!(error.contains("sidecar"), "{error}");
    }

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
    fn parts_of_several_get_their_own_keys_and_one_file_keeps_the_old_key() {
        let layout = KeyLayout::parse(KeyLayout::DEFAULT).unwrap();
        let start = "2026-03-04T05:06:07Z".parse().unwrap();
        let keys = layout.keys("org1/", "c-1", "r-1", start, "webm").unwrap();
        let dir = "org1/year=2026/month=03/day=04/hour=05/conversation_id=c-1";
        assert_eq!(keys.part("S", 1), format!("{dir}/r-1.webm"));
        assert_eq!(keys.part("0", 2), format!("{dir}/r-1.part-0.webm"));
        assert_eq!(keys.part("1", 2), format!("{dir}/r-1.part-1.webm"));
        assert_eq!(keys.sidecar, format!("{dir}/r-1_metadata.json"));
        // A key fixed by a version before parts (no `{part}` in it).
        let old = KeyLayout::fixed(format!("{dir}/r-1.webm"), "r-1", "");
        assert_eq!(old.part("S", 1), format!("{dir}/r-1.webm"));
        assert_eq!(old.part("1", 3), format!("{dir}/r-1.part-1.webm"));
        // A custom template without `{part}` gets it before the extension.
        let custom = KeyLayout::parse("{prefix}{recordingId}.{ext}").unwrap();
        let k = custom.keys("p/", "c", "r", start, "webm").unwrap();
        assert_eq!(
            (k.part("a", 1), k.part("a", 2)),
            ("p/r.webm".into(), "p/r.part-a.webm".into())
        );
    }

    #[test]
    fn a_day_lists_under_the_prefix_of_its_date() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let layout = KeyLayout::parse(KeyLayout::DEFAULT).unwrap();
        assert_eq!(layout.day_prefix("acme/", day), "acme/year=2026/month=12/day=06/hour=");
        let flat = KeyLayout::parse("{prefix}{conversationId}/{recordingId}.{ext}").unwrap();
        assert_eq!(flat.day_prefix("acme/", day), "acme/");
    }

    #[test]
    fn untrusted_part_names_never_shape_a_key() {
        assert_eq!(part_label("0"), "0");
        for bad in ["../x", "a/b", "", "é", "x\u{0}", &"a".repeat(200)] {
            let label = part_label(bad);
            assert!(
                is_safe_id(&label) && label.starts_with('p') && label.len() == 17,
                "{bad:?} -> {label}"
            );
        }
        assert_ne!(part_label("a/b"), part_label("a/c"));
    }

    #[test]
    fn templates_are_checked() {
        assert!(KeyLayout::parse("{prefix}{recordingId}{part}.{ext}").is_ok());
        assert!(KeyLayout::parse("{prefix}{part}/{recordingId}.{ext}").is_err());
        assert!(KeyLayout::parse("{prefix}{recordingId}{part}{part}.{ext}").is_err());
        assert!(KeyLayout::parse("{prefix}{conversationId}/{recordingId}.{ext}").is_ok());
        assert!(KeyLayout::parse("{prefix}{conversationId}.{ext}").is_err());
        assert!(KeyLayout::parse("{prefix}{bogus}/{recordingId}.{ext}").is_err());
        assert!(KeyLayout::parse("/{recordingId}.{ext}").is_err());
        assert!(KeyLayout::parse("{recordingId}.{ext}/x").is_err());
    }
}
