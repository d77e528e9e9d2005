//! Where an org's daily manifests go: a key template (`[sink] manifest_key_template`),
//! by default `{prefix}manifests/{year}/{month}/{day}.jsonl`, beside the org's
//! recordings and apart from them (the recordings' key layout never starts with
//! `manifests/`, so no recording key can take a manifest's).

use chrono::{Datelike, NaiveDate};

#[derive(Debug, Clone, PartialEq)]
pub struct ManifestKey {
    template: String,
}

const PLACEHOLDERS: &[&str] = &["prefix", "year", "month", "day", "org", "orgId"];

impl ManifestKey {
    pub const DEFAULT: &'static str = "{prefix}manifests/{year}/{month}/{day}.jsonl";

    pub fn parse(template: &str) -> Result<Self, String> {
        crate::sink::layout::check_placeholders(template, PLACEHOLDERS)?;
        for needed in ["{year}", "{month}", "{day}"] {
            if !template.contains(needed) {
                return Err(format!("must contain {needed}: one manifest per day"));
            }
        }
        if template.starts_with('/') || template.split('/').any(|s| s == "..") {
            return Err("must not start with `/` or contain `..`".into());
        }
        Ok(Self {
            template: template.to_owned(),
        })
    }

    /// Whether keys differ by org (`{org}` or `{orgId}`).
    pub fn names_org(&self) -> bool {
        self.template.contains("{org}") || self.template.contains("{orgId}")
    }

    /// The template with `placeholder` (`{org}` or `{orgId}`) as the first folder
    /// after the prefix: for orgs whose recordings' keys differ by org while their
    /// prefix does not, so that their manifests do not share keys either.
    pub fn under(&self, placeholder: &str) -> Self {
        let template = match self.template.strip_prefix("{prefix}") {
            Some(rest) => format!("{{prefix}}{placeholder}/{rest}"),
            None => format!("{placeholder}/{}", self.template),
        };
        Self { template }
    }

    /// With `{org}` filled in.
    pub fn with_org(&self, name: &str) -> Self {
        Self {
            template: self.template.replace("{org}", name),
        }
    }

    /// With `{orgId}` filled in (read at start, as for the recordings' keys).
    pub fn with_org_id(&self, org_id: &str) -> Self {
        Self {
            template: self.template.replace("{orgId}", org_id),
        }
    }

    pub fn needs_org_id(&self) -> bool {
        self.template.contains("{orgId}")
    }

    /// The part of every manifest key before its date, under `prefix` (with the
    /// default, `PREFIX/manifests/`): what sets manifests apart from recordings.
    pub fn dir_prefix(&self, prefix: &str) -> String {
        let cut = ["{year}", "{month}", "{day}"]
            .iter()
            .filter_map(|p| self.template.find(p))
            .min()
            .unwrap_or(self.template.len());
        self.template[..cut].replace("{prefix}", prefix)
    }

    /// The key of `day`'s manifest under `prefix`.
    pub fn render(&self, prefix: &str, day: NaiveDate) -> String {
        self.template
            .replace("{prefix}", prefix)
            .replace("{year}", &format!("{:04}", day.year()))
            .replace("{month}", &format!("{:02}", day.month()))
            .replace("{day}", &format!("{:02}", day.day()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_per_day_under_the_org_prefix() {
        let key = ManifestKey::parse(ManifestKey::DEFAULT).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
        assert_eq!(key.render("acme/", day), "acme/manifests/2026/03/04.jsonl");
        assert_eq!(key.dir_prefix("acme/"), "acme/manifests/");
        assert_eq!(
            key.under("{org}").with_org("acme").render("all/", day),
            "all/acme/manifests/2026/03/04.jsonl"
        );
        assert!(ManifestKey::parse("{prefix}manifests/{year}-{month}.jsonl").is_err());
        assert!(ManifestKey::parse("{prefix}{bogus}/{year}{month}{day}").is_err());
        assert!(ManifestKey::parse("../{year}{month}{day}").is_err());
    }
}
