//! A configuration file that holds a secret must not be readable by everyone.
//!
//! The daemon still starts (refusing would turn a permissions slip into an outage), but
//! says so at `warn`, naming each file, its mode and which secrets it holds, never the
//! secrets themselves. Every secret a file can hold is looked for: the client secret
//! and the shared budget's Redis URL with a password (at the top level and in every
//! `[[orgs]]` entry), the PostgreSQL ledger URL with a password, and the same in every
//! file of `orgs_dir`. Secrets passed as files (`client_secret_file`, `url_file`:
//! systemd credentials, Kubernetes secrets) or in the environment draw no warning.

use super::Sources;
use super::raw::{RawConfig, RawGenesys, RawLimits, RawSecret};
use std::path::Path;

/// The warning to log, if `path` (or a file of its `orgs_dir`) holds a secret and other
/// users can read it.
pub fn secret_exposure(path: &Path) -> Option<String> {
    let raw: RawConfig = Sources {
        file: Some(path),
        env: Some(Default::default()),
        ..Default::default()
    }
    .raw()
    .ok()?;
    let mut held = Vec::new();
    org_secrets("", &raw.genesys, &raw.limits, &mut held);
    if raw.ledger.url.as_ref().is_some_and(has_password) {
        held.push("ledger.url (with a password)".to_owned());
    }
    for org in &raw.orgs {
        let name = org.name.as_deref().unwrap_or("?");
        org_secrets(&format!("orgs[{name}]."), &org.genesys, &org.limits, &mut held);
    }
    let mut warnings: Vec<String> = exposed(path, &held).into_iter().collect();
    if let Some(dir) = raw.orgs_dir.as_deref().map(Path::new)
        && let Ok(files) = super::orgs::org_files(dir)
    {
        for file in files {
            let Ok(entry) = super::orgs::read_org_file(&file) else {
                continue;
            };
            let mut held = Vec::new();
            org_secrets("", &entry.raw.genesys, &entry.raw.limits, &mut held);
            warnings.extend(exposed(&file, &held));
        }
    }
    (!warnings.is_empty()).then(|| warnings.join("; "))
}

/// The secrets of one org's sections, named with `prefix`.
fn org_secrets(prefix: &str, genesys: &RawGenesys, limits: &RawLimits, held: &mut Vec<String>) {
    if genesys.client_secret.is_some() {
        held.push(format!("{prefix}genesys.client_secret"));
    }
    if limits.shared.as_ref().is_some_and(has_password) {
        held.push(format!("{prefix}limits.shared (with a password)"));
    }
}

fn has_password(url: &RawSecret) -> bool {
    reqwest::Url::parse(url.0.trim()).is_ok_and(|u| u.password().is_some())
}

/// The warning for `file` if it holds any of `held` and every user can read it.
fn exposed(file: &Path, held: &[String]) -> Option<String> {
    if held.is_empty() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).ok()?.permissions().mode();
        (mode & 0o004 != 0).then(|| {
            format!(
                "{} holds {} and is readable by every user (mode {:o}); chmod 600 it, or give \
                 the secrets by file (client_secret_file, url_file) or environment variable",
                file.display(),
                held.join(", "),
                mode & 0o777
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn warns_only_for_an_inline_secret_readable_by_others() {
        let dir = std::env::temp_dir().join(format!("ga-exposure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inline = dir.join("inline.toml");
        std::fs::write(&inline, "[genesys]\nclient_secret = \"s3cr3t-value\"\n").unwrap();
        let by_file = dir.join("by-file.toml");
        std::fs::write(&by_file, "[genesys]\nclient_secret_file = \"/run/credentials/x\"\n").unwrap();
        let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();

        mode(&inline, 0o644);
        let warning = secret_exposure(&inline).expect("a warning");
        assert!(
            warning.contains("mode 644") && !warning.contains("s3cr3t-value"),
            "{warning}"
        );
        mode(&inline, 0o600);
        assert_eq!(secret_exposure(&inline), None);
        mode(&inline, 0o640);
        assert_eq!(
            secret_exposure(&inline),
            None,
            "group-readable is the operator's choice"
        );
        mode(&by_file, 0o644);
        assert_eq!(secret_exposure(&by_file), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_secret_is_looked_for_in_the_file_and_in_orgs_dir() {
        let dir = std::env::temp_dir().join(format!("ga-exposure-all-{}", std::process::id()));
        let orgs = dir.join("orgs.d");
        std::fs::create_dir_all(&orgs).unwrap();
        let main = dir.join("main.toml");
        std::fs::write(
            &main,
            format!(
                "orgs_dir = {:?}\n[limits]\nshared = \"redis://:r3dis-pw@redis:6379/0\"\n\
                 [ledger]\nurl = \"postgres://archiver:pg-pw@db:5432/ledger\"\n",
                orgs.display().to_string()
            ),
        )
        .unwrap();
        let org = orgs.join("acme.toml");
        std::fs::write(&org, "name = \"acme\"\n[genesys]\nclient_secret = \"acme-secret\"\n").unwrap();
        let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        mode(&main, 0o644);
        mode(&org, 0o644);
        let warning = secret_exposure(&main).expect("a warning");
        for held in [
            "limits.shared (with a password)",
            "ledger.url (with a password)",
            "acme.toml holds genesys.client_secret",
        ] {
            assert!(warning.contains(held), "{held}: {warning}");
        }
        for secret in ["r3dis-pw", "pg-pw", "acme-secret"] {
            assert!(!warning.contains(secret), "{warning}");
        }
        mode(&main, 0o600);
        mode(&org, 0o600);
        assert_eq!(secret_exposure(&main), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn raw_urls_with_passwords_do_not_reach_debug_output() {
        let raw: RawConfig = Sources {
            text: Some(
                "[limits]\nshared = \"redis://:r3dis-pw@redis:6379/0\"\n[ledger]\nurl = \"postgres://a:pg-pw@db/l\"\n",
            ),
            env: Some(Default::default()),
            ..Default::default()
        }
        .raw()
        .unwrap();
        let shown = format!("{raw:?}");
        assert!(!shown.contains("r3dis-pw") && !shown.contains("pg-pw"), "{shown}");
    }
}
