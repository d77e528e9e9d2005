//! How one statement text becomes SQLite's or PostgreSQL's.
//!
//! The ledgers' statements ([`super::statements`]) are written once, in SQLite's
//! numbered placeholders (`?1`) with a few `{fragment}` markers where the two dialects
//! say the same thing differently. Rendering is text substitution and nothing else:
//! every parameter keeps its number, so the values a caller binds are the same on
//! both backends.

/// The SQL spoken by a ledger backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `template` in this dialect: `?N` becomes `$N` for PostgreSQL, and each
    /// `{name}` or `{name:arg}` marker its fragment ([`Dialect::fragment`]).
    ///
    /// Panics on a marker it does not know: a statement is a constant of this crate,
    /// and the unit tests render every one in both dialects.
    pub(crate) fn render(self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(at) = rest.find(['{', '?']) {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(number) = tail.strip_prefix('?') {
                let digits = number.len() - number.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                out.push(if digits > 0 && self == Dialect::Postgres {
                    '$'
                } else {
                    '?'
                });
                rest = &tail[1..];
                continue;
            }
            let end = tail
                .find('}')
                .unwrap_or_else(|| panic!("an unclosed marker in a ledger statement: {template}"));
            let marker = &tail[1..end];
            let (name, arg) = marker.split_once(':').unwrap_or((marker, ""));
            out.push_str(&self.fragment(name, arg));
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// `template` in this dialect, rendered once per process and kept: ledger calls on
    /// the hot path (claims, the state changes of a claim) take the same text every time,
    /// and the drivers' statement caches key on it. The cache stays small by
    /// construction: every template is a constant of this crate, or one with a constant
    /// condition put in (a list filter, a parked selection).
    pub(crate) fn sql(self, template: &str) -> &'static str {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        static RENDERED: OnceLock<Mutex<HashMap<(Dialect, String), &'static str>>> = OnceLock::new();
        let mut rendered = RENDERED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        rendered
            .entry((self, template.to_owned()))
            .or_insert_with(|| Box::leak(self.render(template).into_boxed_str()))
    }

    /// One marker's text in this dialect.
    fn fragment(self, name: &str, arg: &str) -> String {
        use Dialect::{Postgres, Sqlite};
        match (name, self) {
            // SQLite's planner is told which partial index serves a query (it would
            // otherwise walk the table for some of them; a test reads the plans);
            // PostgreSQL's chooses by itself.
            ("index", Sqlite) => format!("INDEXED BY {arg}"),
            ("index", Postgres) => String::new(),
            // The smaller of two values: SQLite's two-argument MIN, PostgreSQL's LEAST.
            ("least", Sqlite) => "MIN".into(),
            ("least", Postgres) => "LEAST".into(),
            // A claim's end: PostgreSQL claims also name an owner and a lease.
            ("release", Sqlite) => String::new(),
            ("release", Postgres) => ", claim_owner = NULL, lease_until = NULL".into(),
            // A hand-off's end: PostgreSQL hand-offs are held under a lease too.
            ("handoff_release", Sqlite) => String::new(),
            ("handoff_release", Postgres) => ", handoff_lease = NULL, handoff_owner = NULL".into(),
            // Where a text occurs in another (1-based, 0 when it does not).
            ("find", Sqlite) => "instr".into(),
            ("find", Postgres) => "strpos".into(),
            // One value of a list: SQLite's statement runs once per value, PostgreSQL's
            // once with the list as an array.
            ("any", Sqlite) => self.render(arg),
            ("any", Postgres) => format!("ANY({})", self.render(arg)),
            // An aggregate read as a 64-bit integer (PostgreSQL's SUM of BIGINT is NUMERIC).
            ("int8", Sqlite) => String::new(),
            ("int8", Postgres) => "::int8".into(),
            _ => panic!("unknown marker {{{name}}} in a ledger statement"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn placeholders_and_fragments_are_rendered_per_dialect() {
        let template = "UPDATE t SET a = {least}(a, ?1){release} WHERE id = {any:?2} AND n > ?10 {index:t_by_n}";
        assert_eq!(
            Dialect::Sqlite.render(template),
            "UPDATE t SET a = MIN(a, ?1) WHERE id = ?2 AND n > ?10 INDEXED BY t_by_n"
        );
        assert_eq!(
            Dialect::Postgres.render(template),
            "UPDATE t SET a = LEAST(a, $1), claim_owner = NULL, lease_until = NULL WHERE id = ANY($2) AND n > $10 "
        );
    }

    #[test]
    fn a_question_mark_that_is_not_a_placeholder_stays() {
        assert_eq!(Dialect::Postgres.render("SELECT '?' || ?1"), "SELECT '?' || $1");
    }

    #[test]
    fn a_template_is_rendered_once_and_kept() {
        let first = Dialect::Postgres.sql("SELECT ?1 FROM t {index:i}");
        let again = Dialect::Postgres.sql("SELECT ?1 FROM t {index:i}");
        assert_eq!(first, "SELECT $1 FROM t ");
        assert!(std::ptr::eq(first, again), "the same text, not a second rendering");
        assert_eq!(
            Dialect::Sqlite.sql("SELECT ?1 FROM t {index:i}"),
            "SELECT ?1 FROM t INDEXED BY i"
        );
    }

    #[test]
    #[should_panic(expected = "unknown marker {nope}")]
    fn an_unknown_marker_is_a_programming_error() {
        Dialect::Sqlite.render("SELECT {nope}");
    }
}
