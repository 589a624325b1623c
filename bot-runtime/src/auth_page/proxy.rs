//! Which address a request comes from: the TCP peer, unless the peer is one of the
//! definition's `trusted_proxies`; then the nearest `X-Forwarded-For` entry that is not
//! itself a trusted proxy (entries are appended by each proxy, so the ones to the left of
//! the last untrusted entry are whatever the client chose to send).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// An address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    network: IpAddr,
    prefix: u8,
}

impl Range {
    /// `address/prefix` as the definition check normalised it.
    fn parse(text: &str) -> Option<Range> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = addr.parse().ok()?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            bits
        } else {
            prefix.parse().ok().filter(|p| *p <= bits)?
        };
        Some(Range { network, prefix })
    }

    fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The definition's `trusted_proxies`.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrustedProxies {
    ranges: Vec<Range>,
    /// Whether the operator was told once that a forwarded header was ignored.
    hinted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TrustedProxies {
    /// From the definition's normalised entries; an entry that does not parse (the build
    /// checks them, so only a hand-made spec has one) is skipped with a warning.
    pub(crate) fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let ranges = entries
            .iter()
            .filter_map(|e| {
                let parsed = Range::parse(e.as_ref());
                if parsed.is_none() {
                    tracing::warn!(
                        entry = e.as_ref(),
                        "auth_page.trusted_proxies: not an address or range; ignored"
                    );
                }
                parsed
            })
            .collect();
        Self {
            ranges,
            hinted: std::sync::Arc::default(),
        }
    }

    /// Whether `addr` is a trusted proxy.
    pub(crate) fn trusts(&self, addr: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(addr))
    }

    /// The address to rate limit and log for a request from `peer`.
    pub(crate) fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let mut address = peer.ip();
        if !self.trusts(address) {
            if headers.contains_key("x-forwarded-for")
                && !self.hinted.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(peer = %address, "login page: ignoring X-Forwarded-For from a peer that is not in auth_page.trusted_proxies; if it is your reverse proxy, list it there (until then every client behind it shares its rate limit)");
            }
            return address;
        }
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        for entry in entries.into_iter().rev() {
            match entry.parse::<IpAddr>() {
                Ok(hop) => {
                    address = hop;
                    if !self.trusts(hop) {
                        break;
                    }
                }
                // Garbage where an address should be: stop at the last trusted hop.
                Err(_) => break,
            }
        }
        address
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn forwarded(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static(value));
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::new(&["127.0.0.1/32", "10.0.0.0/8"]);
        let headers = forwarded("198.51.100.7, 203.0.113.5");
        let via_proxy: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let other_loopback: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        let remote: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        assert_eq!(
            proxies.client_address(via_proxy, &headers),
            ip("203.0.113.5")
        );
        // A loopback peer that is not a listed proxy is taken as it is.
        assert_eq!(
            proxies.client_address(other_loopback, &headers),
            other_loopback.ip()
        );
        assert_eq!(proxies.client_address(remote, &headers), remote.ip());
        assert_eq!(
            proxies.client_address(via_proxy, &HeaderMap::new()),
            via_proxy.ip()
        );
        // With no trusted proxies (the default), the header is never believed.
        let none = TrustedProxies::default();
        assert_eq!(none.client_address(via_proxy, &headers), via_proxy.ip());
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_from_the_right() {
        let proxies = TrustedProxies::new(&["127.0.0.1/32", "10.0.0.0/8"]);
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            proxies.client_address(peer, &forwarded("1.1.1.1, 203.0.113.5, 10.1.2.3")),
            ip("203.0.113.5")
        );
        // Everything trusted: the leftmost hop.
        assert_eq!(
            proxies.client_address(peer, &forwarded("10.9.9.9, 10.1.2.3")),
            ip("10.9.9.9")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            proxies.client_address(peer, &forwarded("203.0.113.5, junk, 10.1.2.3")),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn ranges_match_by_prefix() {
        let r = Range::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.255.0.1")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(r.contains(ip("::ffff:10.0.0.1")));
        let all = Range::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("192.0.2.1")));
        let v6 = Range::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert_eq!(Range::parse("::1").unwrap().prefix, 128);
        assert!(Range::parse("10.0.0.0/33").is_none());
    }
}
