//! Which download URLs the archiver will fetch.
//!
//! Download URLs come from API payloads, so they are untrusted input: without this check
//! a forged or compromised answer could make the daemon read instance metadata or an
//! internal service and upload the answer to the bucket. Only HTTPS to an allowed host
//! passes; plain HTTP passes only when `allow_http` is set *and* the host is loopback,
//! which is what the simulator-based tests need and nothing else does. The same check
//! runs on every redirect hop.

use reqwest::Url;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq)]
pub struct MediaPolicy {
    patterns: Vec<HostPattern>,
    allow_http: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    /// `*.example.com`: any host strictly below `example.com`.
    Suffix(String),
    Exact(String),
}

/// Why a download URL was refused. The URL itself is not kept: its query is a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UrlRejected {
    #[error("download URL is not a valid URL")]
    Invalid,
    #[error("download URL scheme `{0}` is not allowed (https only)")]
    Scheme(String),
    #[error("download URL host `{0}` is not in genesys.media_hosts")]
    Host(String),
    #[error(
        "download URL address `{0}` is internal (loopback, private, link-local, CGNAT or unique-local) and not listed exactly in genesys.media_hosts"
    )]
    Address(String),
    /// The URL's name resolved (here, now) only to internal addresses: about this
    /// machine's resolver or network as much as about the URL (split-horizon DNS, a
    /// resolver being changed), so it is retried with backoff, not parked for good.
    #[error(
        "download URL host {0}: internal addresses only (loopback, private, link-local, CGNAT or unique-local), and the host is not listed exactly in genesys.media_hosts"
    )]
    Resolved(String),
    #[error("download URL carries user info")]
    UserInfo,
    #[error("download URL redirected to a refused target: {0}")]
    Redirect(Box<UrlRejected>),
    #[error("download URL redirected more than 5 times")]
    TooManyRedirects,
}

impl MediaPolicy {
    pub fn new(hosts: &[String], allow_http: bool) -> Result<Self, String> {
        if hosts.is_empty() {
            return Err("must list at least one host".into());
        }
        let mut patterns = Vec::new();
        for host in hosts {
            let host = host.trim().to_ascii_lowercase();
            let (wild, name) = match host.strip_prefix("*.") {
                Some(rest) => (true, rest.to_owned()),
                None => (false, host.clone()),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                && !name.starts_with('.')
                && !name.ends_with('.');
            if !valid || (wild && !name.contains('.')) {
                return Err(format!("`{host}` is not a host name or `*.domain` pattern"));
            }
            patterns.push(if wild {
                HostPattern::Suffix(name)
            } else {
                HostPattern::Exact(name)
            });
        }
        Ok(Self { patterns, allow_http })
    }

    /// Whether `host` is listed as itself, not only matched by a `*.` pattern: such a
    /// host may resolve to (or be) an internal address.
    pub fn is_listed_exactly(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.patterns
            .iter()
            .any(|p| matches!(p, HostPattern::Exact(h) if *h == host))
    }

    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.patterns.iter().any(|p| match p {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Suffix(s) => {
                host.len() > s.len() + 1 && host.ends_with(s.as_str()) && host[..host.len() - s.len()].ends_with('.')
            }
        })
    }

    /// Checks one URL (the first one, or a redirect target).
    pub fn check(&self, url: &Url) -> Result<(), UrlRejected> {
        let host = url.host_str().ok_or(UrlRejected::Invalid)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRejected::UserInfo);
        }
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http && is_loopback(host) => {}
            other => return Err(UrlRejected::Scheme(other.to_owned())),
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !self.allows_host(bare) {
            return Err(UrlRejected::Host(bare.to_owned()));
        }
        // An IP literal is never resolved, so the resolver's address check cannot see
        // it: the same rule applies here.
        if let Ok(ip) = bare.parse::<IpAddr>()
            && !super::address_guard::is_public(ip)
            && !self.is_listed_exactly(bare)
        {
            return Err(UrlRejected::Address(bare.to_owned()));
        }
        Ok(())
    }

    /// Parses and checks a URL taken from a payload.
    pub fn parse(&self, raw: &str) -> Result<Url, UrlRejected> {
        let url = Url::parse(raw).map_err(|_| UrlRejected::Invalid)?;
        self.check(&url)?;
        Ok(url)
    }
}

/// `localhost` or a loopback address: the only hosts plain HTTP is ever allowed to.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A URL as it may appear in logs and errors: scheme, host, port and path, no query.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], http: bool) -> MediaPolicy {
        MediaPolicy::new(&hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(), http).unwrap()
    }

    #[test]
    fn an_internal_ip_literal_passes_only_when_listed_exactly() {
        // `*.0.0.1` matches the text `10.0.0.1`: the address check still refuses it.
        let p = MediaPolicy::new(&["*.0.0.1".into(), "10.9.9.9".into()], false).unwrap();
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            p.check(&url("https://10.0.0.1/r.webm")),
            Err(UrlRejected::Address("10.0.0.1".into()))
        );
        assert_eq!(p.check(&url("https://10.9.9.9/r.webm")), Ok(()));
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let p = policy(&["*.mypurecloud.com"], false);
        assert!(p.allows_host("media.mypurecloud.com"));
        assert!(p.allows_host("A.B.MYPURECLOUD.COM"));
        assert!(!p.allows_host("mypurecloud.com"));
        assert!(!p.allows_host("evilmypurecloud.com"));
        assert!(!p.allows_host("mypurecloud.com.evil.io"));
    }

    #[test]
    fn only_https_to_allowed_hosts() {
        let p = policy(&["*.mypurecloud.com", "127.0.0.1"], false);
        assert!(p.parse("https://x.mypurecloud.com/a?sig=1").is_ok());
        assert_eq!(
            p.parse("http://x.mypurecloud.com/a"),
            Err(UrlRejected::Scheme("http".into()))
        );
        assert_eq!(
            p.parse("https://169.254.169.254/latest"),
            Err(UrlRejected::Host("169.254.169.254".into()))
        );
        assert_eq!(p.parse("file:///etc/passwd"), Err(UrlRejected::Invalid));
        assert_eq!(p.parse("https://u:p@x.mypurecloud.com/"), Err(UrlRejected::UserInfo));
        assert_eq!(p.parse("http://127.0.0.1:9/m"), Err(UrlRejected::Scheme("http".into())));
    }

    #[test]
    fn http_only_for_loopback_when_allowed() {
        let p = policy(&["127.0.0.1", "media.example.com"], true);
        assert!(p.parse("http://127.0.0.1:8080/m").is_ok());
        assert!(p.parse("http://media.example.com/m").is_err());
    }

    #[test]
    fn redaction_drops_the_query() {
        let url = Url::parse("https://m.example.com/rec/1.webm?X-Amz-Signature=abc&token=t").unwrap();
        assert_eq!(redact(&url), "https://m.example.com/rec/1.webm");
    }
}
