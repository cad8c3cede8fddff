//! The parent's admission checks at accept time, in one call: `[access]`
//! first (a refused client costs no rate token), then `max_rate_per_source`.
//! Pure apart from the clock the caller passes; no allocation per
//! connection. `max_per_source` stays with the child table (it counts live
//! sessions), keyed by the same [`SourceKey`](crate::rate::SourceKey).

use std::fmt;
use std::net::IpAddr;

use crate::access::Rules;
use crate::config::Config;
use crate::rate::{RateLimit, SourceKey};

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it (then check `max_per_source` for this source).
    Serve(SourceKey),
    /// Refused by `[access]`: write `Access denied.` and close.
    Denied(SourceKey),
    /// Over `max_rate_per_source`: write the busy line and close.
    TooFast(SourceKey),
}

impl Verdict {
    /// The source the verdict is about.
    pub fn source(&self) -> SourceKey {
        match *self {
            Verdict::Serve(k) | Verdict::Denied(k) | Verdict::TooFast(k) => k,
        }
    }

    /// The line a refused client gets (without line end); None to serve.
    pub fn refusal(&self) -> Option<Refusal> {
        match *self {
            Verdict::Serve(_) => None,
            Verdict::Denied(_) => Some(Refusal::Denied),
            Verdict::TooFast(k) => Some(Refusal::TooFast(k)),
        }
    }
}

/// A refusal line, formatted without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Access denied.`
    Denied,
    /// `Server busy: ADDRESS is connecting too fast.`
    TooFast(SourceKey),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Denied => f.write_str("Access denied."),
            Refusal::TooFast(k) => write!(f, "Server busy: {k} is connecting too fast."),
        }
    }
}

/// The checks of one configuration.
#[derive(Debug)]
pub struct Admission {
    rules: Rules,
    rate: RateLimit,
    ipv6_prefix: u8,
}

impl Admission {
    /// The checks `cfg` asks for (names resolved now). Fails only on what
    /// `-t` rejects: (dotted key, message).
    pub fn new(cfg: &Config) -> Result<Self, (String, String)> {
        Ok(Self::from_parts(
            Rules::from_config(&cfg.access)?,
            cfg.limits.max_rate_per_source,
            cfg.limits.ipv6_prefix,
        ))
    }

    /// The checks from their parts.
    pub fn from_parts(rules: Rules, max_rate_per_source: u32, ipv6_prefix: u8) -> Self {
        Admission {
            rules,
            rate: RateLimit::new(max_rate_per_source),
            ipv6_prefix,
        }
    }

    /// A TCP client from `ip`, at `now_ns` (CLOCK_MONOTONIC nanoseconds).
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn tcp(&mut self, ip: IpAddr, now_ns: u64) -> Verdict {
        let key = SourceKey::ip(ip, self.ipv6_prefix);
        if self.rules.restricts_ip() && !self.rules.allows_ip(ip) {
            Verdict::Denied(key)
        } else if !self.rate.allow(key, now_ns) {
            Verdict::TooFast(key)
        } else {
            Verdict::Serve(key)
        }
    }

    /// A Unix-socket peer (SO_PEERCRED's uid and gid), at `now_ns`.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn unix(&mut self, uid: u32, gid: u32, now_ns: u64) -> Verdict {
        let key = SourceKey::uid(uid);
        if !self.rules.allows_peer(uid, gid) {
            Verdict::Denied(key)
        } else if !self.rate.allow(key, now_ns) {
            Verdict::TooFast(key)
        } else {
            Verdict::Serve(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Access, Env, IdRef};

    fn admission(access: Access, rate: u32) -> Admission {
        let mut cfg = Config::defaults(&Env {
            euid: 1000,
            xdg_runtime_dir: None,
        });
        cfg.access = access;
        cfg.limits.max_rate_per_source = rate;
        Admission::new(&cfg).expect("valid")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn access_first_then_rate() {
        let mut a = admission(
            Access {
                deny: vec!["127.0.0.2".into()],
                ..Access::default()
            },
            1,
        );
        // A denied client never takes a token: denied every time, never "too fast".
        for _ in 0..5 {
            assert!(matches!(a.tcp(ip("127.0.0.2"), 0), Verdict::Denied(_)));
        }
        // Two at once (the burst), then too fast; a second later one more.
        assert!(matches!(a.tcp(ip("127.0.0.1"), 0), Verdict::Serve(_)));
        assert!(matches!(a.tcp(ip("127.0.0.1"), 0), Verdict::Serve(_)));
        let v = a.tcp(ip("127.0.0.1"), 0);
        assert_eq!(v, Verdict::TooFast(SourceKey::ip(ip("127.0.0.1"), 64)));
        assert_eq!(
            v.refusal().map(|r| r.to_string()).as_deref(),
            Some("Server busy: 127.0.0.1 is connecting too fast.")
        );
        assert!(matches!(
            a.tcp(ip("127.0.0.1"), 1_000_000_000),
            Verdict::Serve(_)
        ));
        assert_eq!(
            Verdict::Denied(SourceKey::uid(1))
                .refusal()
                .map(|r| r.to_string())
                .as_deref(),
            Some("Access denied.")
        );
        assert_eq!(Verdict::Serve(SourceKey::uid(1)).refusal(), None);
    }

    #[test]
    fn ipv6_sources_share_a_bucket_per_prefix() {
        let mut a = admission(Access::default(), 1);
        assert!(matches!(a.tcp(ip("2001:db8::1"), 0), Verdict::Serve(_)));
        assert!(matches!(a.tcp(ip("2001:db8::2"), 0), Verdict::Serve(_)));
        let v = a.tcp(ip("2001:db8::3"), 0);
        assert!(matches!(v, Verdict::TooFast(_)));
        assert_eq!(v.source().to_string(), "2001:db8::/64");
        // Another /64 has its own.
        assert!(matches!(a.tcp(ip("2001:db8:0:1::1"), 0), Verdict::Serve(_)));
    }

    #[test]
    fn unix_peers_by_uid_and_gid() {
        let mut a = admission(
            Access {
                unix_users: vec![IdRef::Id(1000)],
                ..Access::default()
            },
            0,
        );
        assert_eq!(a.unix(1000, 1, 0), Verdict::Serve(SourceKey::uid(1000)));
        assert_eq!(a.unix(1001, 1, 0), Verdict::Denied(SourceKey::uid(1001)));
        // TCP is not restricted by the Unix lists, and no rate is set.
        for _ in 0..100 {
            assert!(matches!(a.tcp(ip("192.0.2.1"), 0), Verdict::Serve(_)));
        }
    }
}
