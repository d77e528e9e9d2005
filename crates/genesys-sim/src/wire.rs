//! The request shapes the simulator reads and the headers it writes, as the platform
//! documents them (`docs/platform.md`; the API reference's `ConversationQuery`,
//! `SegmentDetailQueryFilter`, `SegmentDetailQueryPredicate`, `PagingSpec`), written
//! here and not borrowed from the archiver's client: an oracle that parses requests
//! with the client's own types shares the client's misreadings.
//!
//! Where the platform refuses a request (a filter without its `type`, an operator it
//! does not know) the simulator refuses it too, with a 400; fields the platform
//! accepts and the simulator does not model (`clauses`, `range`, `metric` predicates)
//! are read and ignored rather than refused, so a client using them is not failed
//! by the simulator for what the platform would answer.

use serde::Deserialize;

/// `inin-ratelimit-count`: requests counted in the current window.
pub const RATELIMIT_COUNT: &str = "inin-ratelimit-count";
/// `inin-ratelimit-allowed`: the window's allowance.
pub const RATELIMIT_ALLOWED: &str = "inin-ratelimit-allowed";
/// `inin-ratelimit-reset`: seconds until the window resets.
pub const RATELIMIT_RESET: &str = "inin-ratelimit-reset";

/// `PagingSpec`: `pageSize` (1–100 on the details query) and `pageNumber` (from 1).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PagingSpec {
    #[serde(default = "PagingSpec::default_size")]
    pub page_size: u32,
    #[serde(default = "PagingSpec::first")]
    pub page_number: u32,
}

impl PagingSpec {
    fn default_size() -> u32 {
        25
    }
    fn first() -> u32 {
        1
    }
}

impl Default for PagingSpec {
    fn default() -> Self {
        Self {
            page_size: Self::default_size(),
            page_number: Self::first(),
        }
    }
}

/// `SegmentDetailQueryFilter` (and `ConversationDetailQueryFilter`, the same shape):
/// predicates combined by `type`, `and` or `or` (required).
#[derive(Debug, Clone, Deserialize)]
pub struct QueryFilter {
    #[serde(rename = "type")]
    pub kind: FilterType,
    #[serde(default)]
    pub predicates: Vec<QueryPredicate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterType {
    And,
    Or,
}

/// `SegmentDetailQueryPredicate`: a `dimension` compared by `operator` (`matches` when
/// left out; `exists`, `notExists`). `type` is `dimension` when left out; a `metric`
/// or `property` predicate is read and never holds here (the simulator models no
/// metrics).
#[derive(Debug, Clone, Deserialize)]
pub struct QueryPredicate {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub dimension: Option<String>,
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    #[default]
    Matches,
    Exists,
    NotExists,
}

impl QueryPredicate {
    /// Whether it holds for a row whose dimension has `values` (none: absent); a
    /// segment dimension can hold several values across segments, any one may match.
    fn holds(&self, values: &[String]) -> bool {
        if self.kind.as_deref().is_some_and(|k| k != "dimension") {
            return false;
        }
        match self.operator {
            Operator::Exists => !values.is_empty(),
            Operator::NotExists => values.is_empty(),
            Operator::Matches => self.value.as_ref().is_some_and(|v| values.contains(v)),
        }
    }
}

impl QueryFilter {
    /// Whether the filter holds, `lookup` giving a dimension's values in the row.
    pub fn holds(&self, lookup: &dyn Fn(&str) -> Vec<String>) -> bool {
        let one = |p: &QueryPredicate| p.holds(&p.dimension.as_deref().map(lookup).unwrap_or_default());
        match self.kind {
            FilterType::And => self.predicates.iter().all(one),
            FilterType::Or => self.predicates.iter().any(one),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: &str) -> Result<QueryFilter, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_filter_reads_as_the_platform_documents_it() {
        let f = filter(r#"{"type":"or","predicates":[{"dimension":"screenRecording","value":"true"}]}"#).unwrap();
        assert!(f.holds(&|d| if d == "screenRecording" {
            vec!["true".into()]
        } else {
            vec![]
        }));
        assert!(!f.holds(&|_| vec![]));
        let absent = filter(r#"{"type":"and","predicates":[{"type":"dimension","dimension":"conversationEnd","operator":"notExists"}]}"#).unwrap();
        assert!(absent.holds(&|_| vec![]));
    }

    #[test]
    fn what_the_platform_refuses_is_refused() {
        assert!(filter(r#"{"predicates":[]}"#).is_err(), "type is required");
        assert!(filter(r#"{"type":"xor","predicates":[]}"#).is_err());
        assert!(filter(r#"{"type":"and","predicates":[{"dimension":"x","operator":"like"}]}"#).is_err());
    }
}
