//! Strings the platform sent us, made safe to keep and to show.
//!
//! Ids, `fileState` and `media` values, error bodies: anything an API answer carries
//! may hold NUL bytes, control characters or megabytes. PostgreSQL refuses NUL in
//! `TEXT` (SQLSTATE 22021) and keys too large for a btree page (54000), terminals obey
//! escape sequences, and a key shaped by `..` climbs out of its prefix. So an untrusted
//! string is never used raw: an id that is not [`is_safe_id`] is kept under a derived
//! [`ledger_key`], shown through [`shown`], and every reason written to the ledger
//! passes through [`reason`], the one sanitizer.

use sha2::{Digest, Sha256};

/// The longest id used as it is (Genesys ids are 36-character UUIDs).
pub const MAX_ID: usize = 128;
/// The longest untrusted value shown in a reason or a log line.
const MAX_SHOWN: usize = 80;
/// The longest reason the ledger keeps.
pub const MAX_REASON: usize = 512;
/// The mark that begins every derived key (never part of a safe id).
const DERIVED: &str = "!unsafe:";

/// Whether an id may be used in a key, a path or an API call: ASCII letters, digits,
/// `-`, `_` and `.`, at most [`MAX_ID`] bytes, never `.` or `..`.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The key an id is kept under: a safe id as it is; any other a short derived key
/// (`!unsafe:` and 32 hex digits of its SHA-256). The derived key is stable (the same
/// raw id always gives the same row, so re-listings do not duplicate it), bounded, and
/// itself unsafe: whatever takes it from the ledger (`retry --parked`) parks it again
/// before any call, as it would the raw id.
pub fn ledger_key(raw: &str) -> String {
    if is_safe_id(raw) || is_derived(raw) {
        return raw.to_owned();
    }
    let digest = crate::hex::hex(&Sha256::digest(raw.as_bytes()));
    format!("{DERIVED}{}", &digest[..32])
}

/// Whether `key` is a derived key already (so deriving again keeps it).
fn is_derived(key: &str) -> bool {
    key.strip_prefix(DERIVED)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An untrusted value as a reason or log line may show it: control characters and
/// quotes escaped, at most [`MAX_SHOWN`] characters (then `…` and the full length).
pub fn shown(raw: &str) -> String {
    let escaped: String = raw.escape_debug().collect();
    match escaped.char_indices().nth(MAX_SHOWN) {
        None => format!("\"{escaped}\""),
        Some((cut, _)) => format!("\"{}…\" ({} bytes)", &escaped[..cut], raw.len()),
    }
}

/// The one sanitizer every reason passes before the ledger keeps it: control
/// characters (NUL among them) escaped, at most [`MAX_REASON`] bytes, cut at a
/// character boundary. Printable text, quotes and non-ASCII letters are kept as they
/// are, so a reason already shown through [`shown`] reads the same.
pub fn reason(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_REASON));
    for c in text.chars() {
        let piece: String = match c {
            c if c.is_control() => c.escape_default().collect(),
            c => c.into(),
        };
        if out.len() + piece.len() > MAX_REASON - '…'.len_utf8() {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_are_kept_and_others_derived() {
        assert_eq!(ledger_key("4f1e-ab_c.1"), "4f1e-ab_c.1");
        for raw in ["..", ".", "", "a/b", "x\u{0}y", &"a".repeat(MAX_ID + 1), "é"] {
            let key = ledger_key(raw);
            assert!(key.starts_with(DERIVED) && key.len() == DERIVED.len() + 32, "{key}");
            assert!(!is_safe_id(&key), "a derived key is never usable as an id");
            assert_eq!(key, ledger_key(raw), "stable");
            assert_eq!(key, ledger_key(&key), "deriving again keeps it");
        }
        assert_ne!(ledger_key("a/b"), ledger_key("a/c"));
    }

    #[test]
    fn shown_escapes_and_caps() {
        assert_eq!(shown("a\u{0}\u{1b}[31m\n"), "\"a\\0\\u{1b}[31m\\n\"");
        let long = "x".repeat(10_000);
        let s = shown(&long);
        assert!(s.len() < 120 && s.ends_with("(10000 bytes)"), "{s}");
    }

    #[test]
    fn reasons_hold_no_control_character_and_are_bounded() {
        assert_eq!(reason("state \"QUAR\u{0}\""), "state \"QUAR\\u{0}\"");
        assert_eq!(reason("déjà vu"), "déjà vu");
        let r = reason(&"\u{0}é".repeat(10_000));
        assert!(r.len() <= MAX_REASON && r.ends_with('…'), "{}", r.len());
        assert!(!r.chars().any(char::is_control));
    }
}
