//! Configuration: a TOML file, overridden by `GENESYS_ARCHIVER__SECTION__KEY` environment
//! variables, deserialized into [`raw`] structs and validated into [`settings::Settings`].
//!
//! Loading and validation happen before anything starts, so a bad value is one line on
//! stderr and a non-zero exit, never a half-started daemon.

pub mod compliance;
mod discovery;
pub mod exposure;
mod genesys;
mod ledger;
mod limits;
pub mod orgs;
pub mod raw;
pub mod retention;
pub mod settings;
mod sink;
mod telemetry;
mod workers;

use config::{Config, Environment, File, FileFormat};
pub use settings::{ConfigError, Settings};
use std::collections::HashMap;
use std::path::Path;

/// Prefix of overriding environment variables; `__` separates prefix, section and key.
pub const ENV_PREFIX: &str = "GENESYS_ARCHIVER";

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &["genesys.media_hosts"];

/// Where configuration comes from.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    /// A TOML file.
    pub file: Option<&'a Path>,
    /// TOML text (the demo's and the tests' embedded configurations).
    pub text: Option<&'a str>,
    /// Environment variables: `None` reads the process environment; `Some` uses the map
    /// (tests use it to exercise overrides without touching the process).
    pub env: Option<HashMap<String, String>>,
}

impl Sources<'_> {
    /// Reads, merges, deserializes and validates.
    pub fn load(self) -> Result<Settings, ConfigError> {
        let (raw, located) = self.located_raw()?;
        Settings::validate(raw).map_err(|e| located.locate(e))
    }

    /// Reads and checks only what the ledger commands need ([`settings::LedgerPart`]).
    pub fn load_ledger_part(self) -> Result<settings::LedgerPart, ConfigError> {
        let (raw, located) = self.located_raw()?;
        settings::LedgerPart::validate(raw).map_err(|e| located.locate(e))
    }

    /// Reads and merges the sources into the raw structs, unchecked.
    pub fn raw<T: serde::de::DeserializeOwned>(self) -> Result<T, ConfigError> {
        self.located_raw().map(|(raw, _)| raw)
    }

    fn located_raw<T: serde::de::DeserializeOwned>(self) -> Result<(T, Located), ConfigError> {
        let mut builder = Config::builder();
        let mut file_name = None;
        // The `[[orgs]]` names of the sources, read from the syntax check's parse.
        let mut org_names = Vec::new();
        if let Some(path) = self.file {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new("--config", format!("`{name}` cannot be read: {e}")))?;
            org_names = entry_names(&check_syntax(&text, &name)?);
            builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
            file_name = Some(name);
        }
        if let Some(text) = self.text {
            let names = entry_names(&check_syntax(text, "the embedded configuration")?);
            if org_names.is_empty() {
                org_names = names;
            }
            builder = builder.add_source(File::from_str(text, FileFormat::Toml));
        }
        let variables: HashMap<String, String> = match self.env {
            Some(map) => map,
            None => std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect(),
        };
        let mut env = Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .source(Some(variables.clone().into_iter().collect()));
        for key in LIST_KEYS {
            env = env.with_list_parse_key(key);
        }
        let located = Located {
            variables,
            file: file_name,
            org_names,
        };
        let config = builder
            .add_source(env)
            .build()
            .map_err(|e| located.locate(ConfigError::new("config", plain(&e))))?;
        // The key of a value that does not fit comes from the deserializer's own path,
        // never from the text of serde's message.
        let raw = serde_path_to_error::deserialize(config).map_err(|e| {
            let key = e.path().to_string();
            located.locate(ConfigError::new(key, plain(e.inner())))
        })?;
        Ok((raw, located))
    }
}

/// Where values came from, to tell an operator which variable or file to fix.
struct Located {
    /// The `GENESYS_ARCHIVER__*` variables that were read.
    variables: HashMap<String, String>,
    file: Option<String>,
    /// The names of the `[[orgs]]` entries, in order, to say `orgs[acme]` for `orgs[0]`.
    org_names: Vec<Option<String>>,
}

/// The `name` of every `[[orgs]]` entry of a parsed file.
fn entry_names(table: &toml::Table) -> Vec<Option<String>> {
    match table.get("orgs").and_then(toml::Value::as_array) {
        Some(orgs) => orgs
            .iter()
            .map(|o| o.get("name").and_then(toml::Value::as_str).map(str::to_owned))
            .collect(),
        None => Vec::new(),
    }
}

impl Located {
    /// Names the variable when the key was set by one (it overrides the file), else the
    /// file (unless the error names its own, an org file's).
    fn locate(&self, mut error: ConfigError) -> ConfigError {
        if let Some(rest) = error.key.strip_prefix("orgs[")
            && let Some((index, tail)) = rest.split_once(']')
            && let Ok(index) = index.parse::<usize>()
            && let Some(Some(name)) = self.org_names.get(index)
        {
            error.key = format!("orgs[{name}]{tail}");
        }
        let variable = variable_for(&error.key);
        if self.variables.contains_key(&variable) {
            error.variable = Some(variable);
        } else if error.file.is_none() && error.key != "--config" && error.key != "config" {
            error.file = self.file.clone();
            if error.unset {
                error.message = format!(
                    "{}: set it in the file, or with the environment variable {variable}",
                    error.message
                );
            }
        }
        error
    }
}

/// `workers.count` -> `GENESYS_ARCHIVER__WORKERS__COUNT` (an index such as
/// `segment_filters[0]...` belongs to the variable of the whole list).
pub fn variable_for(key: &str) -> String {
    let key = key.split('[').next().unwrap_or(key);
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_ascii_uppercase())
}

/// The parsed text, or its TOML syntax error as one line: where (file, line, column)
/// and what.
pub(crate) fn check_syntax(text: &str, name: &str) -> Result<toml::Table, ConfigError> {
    let error = match text.parse::<toml::Table>() {
        Ok(table) => return Ok(table),
        Err(error) => error,
    };
    let at = error.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" at line {line}, column {column}")
    });
    Err(ConfigError::new(
        "--config",
        format!(
            "{name} is not valid TOML{}: {}",
            at.unwrap_or_default(),
            error.message().trim().replace('\n', " ")
        ),
    ))
}

/// The config crate's error in plain words, without the key or origin it appends
/// (those are reported from the path and the sources).
fn plain(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::Type {
            unexpected, expected, ..
        } => {
            let found = unexpected.to_string();
            let found = if found.contains("`-") {
                format!("a negative number ({found})")
            } else {
                found
            };
            format!("expected {}, found {found}", plain_expected(expected))
        }
        config::ConfigError::At { error, .. } => plain(error),
        config::ConfigError::NotFound(key) => format!("`{key}` is not set"),
        // serde says "field" for what an operator calls a key.
        config::ConfigError::Message(message) => message.replacen("unknown field", "unknown key", 1).replace('\n', " "),
        other => other.to_string().replace('\n', " "),
    }
}

/// serde's type names in an operator's words.
fn plain_expected(expected: &str) -> &str {
    if expected.contains("unsigned") || expected.contains("u64") || expected.contains("usize") {
        "a whole number of 0 or more"
    } else if expected.contains("integer") {
        "a whole number"
    } else if expected.contains("string") {
        "a string (in quotes)"
    } else if expected.contains("bool") {
        "true or false"
    } else {
        expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [genesys]
        region = "mypurecloud.ie"
        client_id = "id"
        client_secret = "s3cret"
        [s3]
        bucket = "recordings"
    "#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Sources {
            text: Some(text),
            env: Some(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }
        .load()
    }

    #[test]
    fn region_gives_both_hosts_and_defaults_apply() {
        let s = load(MINIMAL, &[]).unwrap();
        assert_eq!(s.first_org().genesys.api_url.as_str(), "https://api.mypurecloud.ie/");
        assert_eq!(
            s.first_org().genesys.login_url.as_str(),
            "https://login.mypurecloud.ie/"
        );
        assert_eq!(
            s.first_org().limits.token_budget,
            300,
            "the documented default until the org's is read"
        );
        assert_eq!(s.workers.count, 8);
        assert!(
            !format!("{:?}", s).contains("s3cret"),
            "the secret must not be printable"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let s = load(
            MINIMAL,
            &[
                ("GENESYS_ARCHIVER__LIMITS__REQUESTS_PER_MINUTE", "120"),
                ("GENESYS_ARCHIVER__WORKERS__COUNT", "3"),
                (
                    "GENESYS_ARCHIVER__GENESYS__MEDIA_HOSTS",
                    "a.example.com,*.b.example.com",
                ),
                ("GENESYS_ARCHIVER__GENESYS__CLIENT_ID", "12345"),
            ],
        )
        .unwrap();
        assert_eq!(s.first_org().limits.token_budget, 120);
        assert_eq!(s.workers.count, 3);
        assert_eq!(s.first_org().genesys.client_id, "12345");
        assert!(s.first_org().genesys.media.allows_host("x.b.example.com"));
        assert!(!s.first_org().genesys.media.allows_host("x.mypurecloud.ie"));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = load(&format!("{MINIMAL}\n[workers]\ncuont = 3\n"), &[]).unwrap_err();
        assert_eq!(e.key, "workers.cuont", "{e}");
        let e = load(MINIMAL, &[("GENESYS_ARCHIVER__LIMITS__BOGUS", "1")]).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[workers]\ncount = 0", "workers.count"),
            ("[limits]\nwindow = \"soon\"", "limits.window"),
            ("[limits.endpoints]\nrecordings = 5", "limits.endpoints.recordings"),
            ("[retry]\nbase = \"2s\"\ncap = \"1s\"", "retry.cap"),
        ];
        for (extra, key) in cases {
            let e = load(&format!("{MINIMAL}\n{extra}\n"), &[]).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(!e.to_string().contains('\n'));
        }
        let e = load("[genesys]\nregion = \"mypurecloud.ie\"\nclient_id = \"x\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "genesys.client_secret");
        let e = load(
            "[genesys]\nformat_id = \"AVI\"\nregion = \"r.com\"\nclient_id = \"x\"\nclient_secret = \"y\"",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "genesys.format_id");
    }

    #[test]
    fn segment_filters_default_to_screen_recordings_and_are_checked() {
        use super::settings::FetchMode;
        let s = load(MINIMAL, &[]).unwrap();
        assert_eq!(
            s.first_org().discovery.segment_filters[0].predicates[0].dimension,
            "screenRecording"
        );
        assert_eq!(s.first_org().discovery.fetch_mode, FetchMode::Conversation);
        assert!(s.first_org().limits.auto_budget, "requests_per_minute defaults to auto");
        let tables = format!(
            "{MINIMAL}\n[discovery]\nfetch_mode = \"recording\"\n[[discovery.segment_filters]]\ntype = \"and\"\n\
             predicates = [{{ dimension = \"screenRecording\", value = \"true\" }}, \
             {{ dimension = \"queueId\", operator = \"exists\" }}]\n"
        );
        let s = load(&tables, &[]).unwrap();
        assert_eq!(s.first_org().discovery.segment_filters[0].predicates.len(), 2);
        assert_eq!(s.first_org().discovery.fetch_mode, FetchMode::Recording);
        let json = r#"[{"type":"or","predicates":[{"dimension":"mediaType","value":"chat"}]}]"#;
        let s = load(MINIMAL, &[("GENESYS_ARCHIVER__DISCOVERY__SEGMENT_FILTERS", json)]).unwrap();
        assert_eq!(
            s.first_org().discovery.segment_filters[0].predicates[0]
                .value
                .as_deref(),
            Some("chat")
        );
        let bad = r#"[{"type":"or","predicates":[{"dimension":"mediaType","operator":"like","value":"x"}]}]"#;
        let e = load(MINIMAL, &[("GENESYS_ARCHIVER__DISCOVERY__SEGMENT_FILTERS", bad)]).unwrap_err();
        assert_eq!(e.key, "discovery.segment_filters[0].predicates[0].operator", "{e}");
        let e = load(
            MINIMAL,
            &[("GENESYS_ARCHIVER__DISCOVERY__SEGMENT_FILTERS", "[{\"type\":\"xor\"")],
        )
        .unwrap_err();
        assert_eq!(e.key, "discovery.segment_filters", "{e}");
        let e = load(&format!("{MINIMAL}\n[discovery]\nfetch_mode = \"batch\"\n"), &[]).unwrap_err();
        assert_eq!(e.key, "discovery.fetch_mode");
    }

    #[test]
    fn ledger_retain_defaults_to_400_days_and_never_below_the_lookback() {
        let s = load(MINIMAL, &[]).unwrap();
        assert_eq!(s.ledger.retain, std::time::Duration::from_secs(400 * 24 * 3600));
        let e = load(
            &format!("{MINIMAL}\n[ledger]\nretain = \"2d\"\n[discovery]\nlookback = \"3d\"\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "ledger.retain", "{e}");
        let e = load(MINIMAL, &[("GENESYS_ARCHIVER__LEDGER__RETAIN", "1h")]).unwrap_err();
        assert_eq!(e.variable.as_deref(), Some("GENESYS_ARCHIVER__LEDGER__RETAIN"), "{e}");
    }

    #[test]
    fn requests_per_minute_is_auto_or_a_positive_number() {
        let s = load(MINIMAL, &[("GENESYS_ARCHIVER__LIMITS__REQUESTS_PER_MINUTE", "auto")]).unwrap();
        assert!(s.first_org().limits.auto_budget);
        let s = load(&format!("{MINIMAL}\n[limits]\nrequests_per_minute = 120\n"), &[]).unwrap();
        assert!(!s.first_org().limits.auto_budget);
        assert_eq!(s.first_org().limits.token_budget, 120);
        for bad in ["-5", "0", "lots"] {
            let e = load(MINIMAL, &[("GENESYS_ARCHIVER__LIMITS__REQUESTS_PER_MINUTE", bad)]).unwrap_err();
            assert_eq!(e.key, "limits.requests_per_minute", "{bad}: {e}");
        }
    }

    #[test]
    fn secret_can_come_from_a_file() {
        let dir = std::env::temp_dir().join(format!("ga-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        let text = format!(
            "[genesys]\nregion = \"r.com\"\nclient_id = \"x\"\nclient_secret_file = \"{}\"\n[s3]\nbucket = \"b-1\"\n",
            path.display()
        );
        let s = load(&text, &[]).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(s.first_org().genesys.client_secret.expose_secret(), "from-file");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
