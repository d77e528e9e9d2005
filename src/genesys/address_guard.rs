//! Where a download may connect: checked on the resolved address, not only the name.
//!
//! The name allow-list (`genesys.media_hosts`) cannot tell a Genesys media bucket from a
//! name under the same wildcard that resolves to an internal address (or is made to,
//! between two lookups: DNS rebinding). So the media client resolves names through
//! [`GuardedResolver`], which drops loopback, private, link-local (instance metadata
//! included), CGNAT, unique-local, unspecified, broadcast and multicast addresses and
//! fails the lookup when nothing else is left. The connection uses exactly the
//! addresses that passed, so there is no second lookup to rebind. IP literals never
//! reach a resolver; [`super::media_policy::MediaPolicy::check`] applies the same rule
//! to them, on the first URL and on every redirect hop.
//!
//! A host listed *exactly* (no `*.`) in `media_hosts` may resolve anywhere: that is an
//! operator's explicit choice (an internal media proxy), and how the loopback simulator
//! is allowed in tests.

use super::media_policy::MediaPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// Whether a download may connect to `ip` without the host being listed exactly.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let cgnat = a == 100 && (64..128).contains(&b);
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || cgnat
        || a == 0)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

/// Looks a name up; the system resolver in production, a table in tests.
pub type Lookup =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>> + Send + Sync>;

/// The system resolver (getaddrinfo on tokio's blocking pool).
pub fn system_lookup() -> Lookup {
    Arc::new(|name: String| Box::pin(async move { Ok(tokio::net::lookup_host((name.as_str(), 0)).await?.collect()) }))
}

/// The media client's resolver: resolves, then keeps only the addresses a download may
/// use (see the module docs).
#[derive(Clone)]
pub struct GuardedResolver {
    policy: MediaPolicy,
    lookup: Lookup,
}

/// A name whose every address was refused; its text names the host, not a URL.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{host}` resolves only to addresses downloads may not use ({refused}); list it exactly in genesys.media_hosts to allow it"
)]
pub struct AddressRefused {
    pub host: String,
    pub refused: String,
}

impl GuardedResolver {
    pub fn new(policy: MediaPolicy, lookup: Lookup) -> Self {
        Self { policy, lookup }
    }

    /// The addresses of `host` a download may connect to.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addresses = (self.lookup)(host.to_owned()).await?;
        if self.policy.is_listed_exactly(host) {
            return Ok(addresses);
        }
        let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
            addresses.into_iter().partition(|a| is_public(a.ip()));
        if allowed.is_empty() {
            return Err(Box::new(AddressRefused {
                host: host.to_owned(),
                refused: refused
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }));
        }
        Ok(allowed)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addresses = this.resolve_host(name.as_str()).await?;
            let addrs: Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A table of answers; each lookup of a name takes the next answer (rebinding).
    fn table(answers: &[(&str, &[&str])]) -> Lookup {
        let answers: HashMap<String, Vec<String>> = answers
            .iter()
            .map(|(name, ips)| (name.to_string(), ips.iter().map(|s| s.to_string()).collect()))
            .collect();
        let answers = Arc::new(Mutex::new(answers));
        Arc::new(move |name: String| {
            let answers = answers.clone();
            Box::pin(async move {
                let mut answers = answers.lock().unwrap();
                let list = answers.get_mut(&name).filter(|l| !l.is_empty()).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, format!("no answer for {name}"))
                })?;
                let ip: IpAddr = list.remove(0).parse().unwrap();
                Ok(vec![SocketAddr::new(ip, 443)])
            })
        })
    }

    fn guard(lookup: Lookup) -> GuardedResolver {
        let policy = MediaPolicy::new(&["*.example.com".into(), "proxy.internal.example".into()], false).unwrap();
        GuardedResolver::new(policy, lookup)
    }

    #[test]
    fn internal_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["52.216.1.2", "100.128.0.1", "2600:1f18::1", "8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_wildcard_name_resolving_inside_is_refused() {
        let g = guard(table(&[
            ("media.example.com", &["169.254.169.254"]),
            ("bucket.example.com", &["52.216.1.2"]),
            ("proxy.internal.example", &["10.0.0.8"]),
        ]));
        let refused = g.resolve_host("media.example.com").await.unwrap_err().to_string();
        assert!(
            refused.contains("media.example.com") && refused.contains("169.254.169.254"),
            "{refused}"
        );
        assert_eq!(g.resolve_host("bucket.example.com").await.unwrap().len(), 1);
        assert_eq!(
            g.resolve_host("proxy.internal.example").await.unwrap()[0]
                .ip()
                .to_string(),
            "10.0.0.8",
            "listed exactly: the operator allowed it"
        );
    }

    #[tokio::test]
    async fn a_rebinding_name_is_caught_at_the_lookup_the_connection_uses() {
        // Public when first asked, internal the next time: each lookup is checked, and
        // the connection only ever gets addresses that passed.
        let g = guard(table(&[("media.example.com", &["52.216.1.2", "127.0.0.1"])]));
        assert!(g.resolve_host("media.example.com").await.is_ok());
        assert!(g.resolve_host("media.example.com").await.is_err());
    }

    #[tokio::test]
    async fn a_download_through_the_client_never_connects_to_a_refused_address() {
        // A real listener on loopback that a wildcard name is made to resolve to.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = accepted.clone();
        tokio::spawn(async move {
            if listener.accept().await.is_ok() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // The media client as the archiver builds it, with names looked up in a table.
        let policy = MediaPolicy::new(&["*.example.com".into()], false).unwrap();
        let lookup = table(&[("media.example.com", &["127.0.0.1"])]);
        let client =
            super::super::media::MediaClient::with_lookup(policy, std::time::Duration::from_secs(5), lookup, None)
                .unwrap();
        let url = reqwest::Url::parse(&format!("https://media.example.com:{port}/r.webm?sig=x")).unwrap();
        let error = client.open(&url).await.err().expect("refused");
        // The resolver's refusal: no connection, and a refusal the worker retries (the
        // environment may be why), never parks for good.
        assert!(
            matches!(&error, super::super::ApiError::UrlRejected(super::super::media_policy::UrlRejected::Resolved(a))
                if a.contains("media.example.com") && a.contains("127.0.0.1")),
            "{error:?}"
        );
        assert!(
            !accepted.load(std::sync::atomic::Ordering::SeqCst),
            "no connection was made"
        );
    }
}
