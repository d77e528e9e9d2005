//! The `# HELP` and `# TYPE` lines of a family that has no series yet.
//!
//! The text encoder leaves a family without series out altogether, so an alert or a
//! dashboard naming it (429s, cooldowns, sink errors, deadlines) could not be checked
//! against a daemon that has not seen its first event, and a typo would go unnoticed.
//! Every family is registered through [`Described::register`], which remembers its
//! exposed name and type; [`Described::append_missing`] writes the descriptor of each
//! one the encoder left out (a descriptor without samples is valid text format).

use super::PREFIX;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Metric, Registry};

#[derive(Debug, Default)]
pub(crate) struct Described(Vec<(String, &'static str, MetricType)>);

impl Described {
    /// Registers `metric` in `registry` as `name` (without the prefix; a counter
    /// without `_total`, which the encoder appends) and remembers its descriptor.
    pub(crate) fn register<M: Metric + TypedMetric>(
        &mut self,
        registry: &mut Registry,
        name: &'static str,
        help: &'static str,
        metric: M,
    ) {
        let suffix = if M::TYPE == MetricType::Counter { "_total" } else { "" };
        self.0.push((format!("{PREFIX}_{name}{suffix}"), help, M::TYPE));
        registry.register(name, help, metric);
    }

    /// Appends to `out` (an exposition) the descriptor of every family it lacks.
    pub(crate) fn append_missing(&self, out: &mut String) {
        for (name, help, kind) in &self.0 {
            if out.contains(&format!("# TYPE {name} ")) {
                continue;
            }
            let kind = match kind {
                MetricType::Counter => "counter",
                MetricType::Gauge | MetricType::Info => "gauge",
                MetricType::Histogram => "histogram",
                MetricType::Unknown => "untyped",
            };
            out.push_str(&format!("# HELP {name} {help}.\n# TYPE {name} {kind}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    #[test]
    fn a_family_without_series_still_shows_its_type() {
        let mut registry = Registry::with_prefix(PREFIX);
        let mut described = Described::default();
        let empty = Family::<Vec<(String, String)>, Counter>::default();
        let used = Family::<Vec<(String, String)>, Counter>::default();
        used.get_or_create(&vec![("org".into(), "acme".into())]).inc();
        described.register(&mut registry, "empty", "Nothing yet", empty);
        described.register(&mut registry, "used", "Something", used);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(
            !out.contains("genesys_archiver_empty"),
            "the encoder leaves it out: {out}"
        );
        described.append_missing(&mut out);
        assert!(out.ends_with(
            "# HELP genesys_archiver_empty_total Nothing yet.\n# TYPE genesys_archiver_empty_total counter\n"
        ));
        assert_eq!(out.matches("# TYPE genesys_archiver_used_total counter").count(), 1);
    }
}
