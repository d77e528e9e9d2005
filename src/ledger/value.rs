//! An owned statement parameter, typed as its column is.
//!
//! Built once for both ledgers ([`super::changes`]); each backend binds it its own
//! way. PostgreSQL checks a parameter's type against its column, so the two integer
//! widths of the schema (`BIGINT` times, sizes and tokens; `INTEGER` counts of
//! attempts and checks) are kept apart; SQLite stores both as one integer.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A `BIGINT` column.
    Int(Option<i64>),
    /// An `INTEGER` column.
    Int4(Option<i32>),
    Text(Option<String>),
}

impl Value {
    /// A count (attempts, checks) as its `INTEGER` column holds it.
    pub(crate) fn count(n: u32) -> Self {
        Value::Int4(Some(n.min(i32::MAX as u32) as i32))
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
