//! A configuration file that holds the client secret must not be readable by everyone.
//!
//! The daemon still starts (refusing would turn a permissions slip into an outage), but
//! says so at `warn`, naming the file and its mode, never the secret. Secrets passed as
//! `client_secret_file` (systemd credentials, Kubernetes secrets) or in the environment
//! draw no warning.

use super::Sources;
use super::raw::RawConfig;
use std::path::Path;

/// The warning to log, if `path` holds an inline `client_secret` and other users can
/// read it.
pub fn secret_exposure(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o004 == 0 {
            return None;
        }
        let raw: RawConfig = Sources {
            file: Some(path),
            env: Some(Default::default()),
            ..Default::default()
        }
        .raw()
        .ok()?;
        raw.genesys.client_secret.as_ref()?;
        Some(format!(
            "{} holds genesys.client_secret and is readable by every user (mode {:o}); \
             chmod 600 it, or use genesys.client_secret_file or GENESYS_ARCHIVER__GENESYS__CLIENT_SECRET",
            path.display(),
            mode & 0o777
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
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
}
