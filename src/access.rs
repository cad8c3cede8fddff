//! `[access]`: who may connect, decided by the parent at accept time.
//!
//! TCP clients by address: `allow` and `deny` hold addresses and CIDR
//! prefixes, IPv4 and IPv6 kept apart (an IPv4-mapped IPv6 address, client
//! or entry, is taken as the IPv4 address it carries). Of all entries that
//! match a client, the longest prefix decides; when an `allow` and a `deny`
//! entry of the same length match, `deny` wins. An empty `allow` allows
//! every address that no `deny` entry matches; a non-empty one allows only
//! the addresses it matches.
//!
//! Unix-socket clients by SO_PEERCRED: with neither `unix_users` nor
//! `unix_groups` set, every peer is served; otherwise a peer is served when
//! `unix_users` names its uid or `unix_groups` its (primary) gid. Names are
//! resolved once, when the configuration is loaded.
//!
//! [`Rules`] is built once per configuration; its checks read only, never
//! allocate, and cost a scan of the (short) lists: they run in the parent's
//! accept path.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::config::{Access, IdRef};

/// An address or CIDR prefix of `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// IPv6 (else IPv4, in the low 32 bits of `net`).
    v6: bool,
    /// The network, host bits zero.
    net: u128,
    /// Prefix length: 0-32 for IPv4, 0-128 for IPv6.
    len: u8,
}

/// `ip` as (is IPv6, bits), IPv4-mapped IPv6 taken as IPv4.
fn bits(ip: IpAddr) -> (bool, u128) {
    match ip.to_canonical() {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// The mask of a `len`-bit prefix in a `width`-bit address.
fn mask(len: u8, width: u8) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    all & !all.checked_shr(u32::from(len)).unwrap_or(0)
}

impl Prefix {
    fn width(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    /// Whether `ip` is in this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v6, a) = bits(ip);
        v6 == self.v6 && a & mask(self.len, self.width()) == self.net
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `/0`, which matches every address of its family.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromStr for Prefix {
    type Err = String;

    /// `ADDRESS` or `ADDRESS/LEN`; host bits set after the prefix are an
    /// error that names the network meant.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR prefix"))?;
        let (mut v6, mut a) = match ip {
            IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (true, u128::from(v6)),
        };
        let width = if v6 { 128 } else { 32 };
        let mut len = match len {
            None => width,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= width && !l.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "{s:?}: the prefix length must be a number from 0 to {width}"
                    ));
                }
            },
        };
        // An IPv4-mapped IPv6 prefix means the IPv4 addresses it covers.
        if let IpAddr::V6(v) = ip
            && v.to_ipv4_mapped().is_some()
            && len >= 96
        {
            (v6, a, len) = (false, a & u128::from(u32::MAX), len - 96);
        }
        let p = Prefix {
            v6,
            net: a & mask(len, if v6 { 128 } else { 32 }),
            len,
        };
        if p.net != a {
            return Err(format!("{s:?} has host bits set (the network is {p})"));
        }
        Ok(p)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v6 {
            write!(f, "{}/{}", Ipv6Addr::from(self.net), self.len)
        } else {
            write!(f, "{}/{}", Ipv4Addr::from(self.net as u32), self.len)
        }
    }
}

/// Looks up user and group names (the system's, or a test's).
pub trait Ids {
    /// The uid of user `name`.
    fn uid(&self, name: &str) -> Option<u32>;
    /// The gid of group `name`.
    fn gid(&self, name: &str) -> Option<u32>;
}

/// The system's user and group database (getpwnam, getgrnam), answered
/// from /etc/passwd and /etc/group in a static build as for `daemon.user`
/// ([`crate::privileges::files_only_lookups`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemIds;

impl Ids for SystemIds {
    fn uid(&self, name: &str) -> Option<u32> {
        crate::privileges::files_only_lookups();
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    }
    fn gid(&self, name: &str) -> Option<u32> {
        crate::privileges::files_only_lookups();
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    }
}

/// The `[access]` lists, parsed and resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    allow: Vec<Prefix>,
    deny: Vec<Prefix>,
    users: Vec<u32>,
    groups: Vec<u32>,
}

impl Rules {
    /// Parses `[access]`, resolving names with the system's database.
    /// Errors are (dotted key, message naming the entry).
    pub fn from_config(access: &Access) -> Result<Self, (String, String)> {
        Self::new(access, &SystemIds)
    }

    /// Parses `[access]`, resolving names with `ids`.
    pub fn new(access: &Access, ids: &impl Ids) -> Result<Self, (String, String)> {
        let prefixes = |key: &str, list: &[String]| {
            list.iter()
                .map(|s| s.parse::<Prefix>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| (key.to_string(), m))
        };
        let resolve =
            |key: &str, kind: &str, list: &[IdRef], look: &dyn Fn(&str) -> Option<u32>| {
                list.iter()
                    .map(|r| match r {
                        IdRef::Id(n) => Ok(*n),
                        IdRef::Name(s) => s
                            .parse::<u32>()
                            .ok()
                            .or_else(|| look(s))
                            .ok_or_else(|| (key.to_string(), format!("unknown {kind} {s:?}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
        Ok(Rules {
            allow: prefixes("access.allow", &access.allow)?,
            deny: prefixes("access.deny", &access.deny)?,
            users: resolve("access.unix_users", "user", &access.unix_users, &|n| {
                ids.uid(n)
            })?,
            groups: resolve("access.unix_groups", "group", &access.unix_groups, &|n| {
                ids.gid(n)
            })?,
        })
    }

    /// Rules that refuse every client.
    pub fn deny_all() -> Self {
        let all = |s: &str| s.parse::<Prefix>().ok();
        Rules {
            allow: Vec::new(),
            deny: [all("0.0.0.0/0"), all("::/0")]
                .into_iter()
                .flatten()
                .collect(),
            users: vec![u32::MAX],
            groups: Vec::new(),
        }
    }

    /// True when nothing is restricted: the parent can skip the checks.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && !self.restricts_unix()
    }

    /// True when TCP clients are checked at all.
    pub fn restricts_ip(&self) -> bool {
        !(self.allow.is_empty() && self.deny.is_empty())
    }

    /// True when Unix-socket peers are checked at all.
    pub fn restricts_unix(&self) -> bool {
        !(self.users.is_empty() && self.groups.is_empty())
    }

    /// Whether a TCP client from `ip` is served.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let longest = |list: &[Prefix]| {
            list.iter()
                .filter(|p| p.contains(ip))
                .map(|p| i16::from(p.len))
                .max()
        };
        // An empty allow list allows everything, shorter than any prefix.
        let allow = if self.allow.is_empty() {
            Some(-1)
        } else {
            longest(&self.allow)
        };
        match (allow, longest(&self.deny)) {
            (allow, None) => allow.is_some(),
            (None, Some(_)) => false,
            (Some(a), Some(d)) => a > d,
        }
    }

    /// Whether a Unix-socket peer with this uid and gid (SO_PEERCRED) is served.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn allows_peer(&self, uid: u32, gid: u32) -> bool {
        !self.restricts_unix() || self.users.contains(&uid) || self.groups.contains(&gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn rules(allow: &[&str], deny: &[&str]) -> Rules {
        let access = Access {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            ..Access::default()
        };
        Rules::new(&access, &NoIds).expect("valid rules")
    }

    struct NoIds;
    impl Ids for NoIds {
        fn uid(&self, name: &str) -> Option<u32> {
            (name == "alice").then_some(1001)
        }
        fn gid(&self, name: &str) -> Option<u32> {
            (name == "staff").then_some(50)
        }
    }

    #[test]
    fn prefixes_parse_and_name_their_errors() {
        let p: Prefix = "192.0.2.0/24".parse().expect("v4");
        assert_eq!(p.to_string(), "192.0.2.0/24");
        assert_eq!("::1".parse::<Prefix>().expect("v6").to_string(), "::1/128");
        assert_eq!(
            "10.1.2.3".parse::<Prefix>().expect("host").to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            "::ffff:10.0.0.0/104".parse::<Prefix>().expect("mapped"),
            "10.0.0.0/8".parse().expect("v4")
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Prefix>().expect("all").to_string(),
            "0.0.0.0/0"
        );
        let e = "10.0.0.1/8".parse::<Prefix>().expect_err("host bits");
        assert_eq!(
            e,
            "\"10.0.0.1/8\" has host bits set (the network is 10.0.0.0/8)"
        );
        let e = "2001:db8::1/32".parse::<Prefix>().expect_err("host bits");
        assert!(e.contains("2001:db8::/32"), "{e}");
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "host.example",
            "",
            "10.0.0.0/8/8",
            "[::1]",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn everyone_by_default() {
        let r = rules(&[], &[]);
        assert!(r.is_open());
        assert!(r.allows_ip(ip("192.0.2.1")) && r.allows_ip(ip("2001:db8::1")));
        assert!(r.allows_peer(1000, 1000));
    }

    #[test]
    fn allow_list_admits_only_what_it_names() {
        let r = rules(&["192.0.2.0/24", "2001:db8::/32"], &[]);
        assert!(r.allows_ip(ip("192.0.2.200")));
        assert!(!r.allows_ip(ip("192.0.3.1")));
        assert!(r.allows_ip(ip("2001:db8:ffff::1")));
        assert!(!r.allows_ip(ip("2001:db9::1")));
        // IPv4-mapped IPv6 clients are IPv4 clients.
        assert!(r.allows_ip(ip("::ffff:192.0.2.7")));
        assert!(!r.allows_ip(ip("::ffff:192.0.3.7")));
    }

    #[test]
    fn the_longest_prefix_decides_and_deny_wins_a_tie() {
        let r = rules(&["10.0.0.0/8", "10.1.2.3"], &["10.1.0.0/16"]);
        assert!(r.allows_ip(ip("10.2.0.1")), "only /8 allow matches");
        assert!(!r.allows_ip(ip("10.1.0.1")), "/16 deny beats /8 allow");
        assert!(r.allows_ip(ip("10.1.2.3")), "/32 allow beats /16 deny");
        let tie = rules(&["10.0.0.0/8"], &["10.0.0.0/8"]);
        assert!(!tie.allows_ip(ip("10.0.0.1")));
        // Deny alone: everything else is allowed.
        let r = rules(&[], &["127.0.0.2", "::1"]);
        assert!(!r.allows_ip(ip("127.0.0.2")) && !r.allows_ip(ip("::1")));
        assert!(r.allows_ip(ip("127.0.0.1")) && r.allows_ip(ip("::2")));
        // Deny all but one host.
        let r = rules(&["127.0.0.1"], &["0.0.0.0/0"]);
        assert!(r.allows_ip(ip("127.0.0.1")) && !r.allows_ip(ip("127.0.0.2")));
    }

    #[test]
    fn families_are_kept_apart() {
        // ::/0 is every IPv6 address, not the IPv4 ones too.
        let r = rules(&[], &["::/0"]);
        assert!(!r.allows_ip(ip("2001:db8::1")));
        assert!(r.allows_ip(ip("192.0.2.1")));
        assert!(r.allows_ip(ip("::ffff:192.0.2.1")));
        let r = rules(&[], &["0.0.0.0/0"]);
        assert!(r.allows_ip(ip("::1")));
        assert!(!r.allows_ip(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn unix_peers_by_uid_or_gid() {
        let access = Access {
            unix_users: vec![IdRef::Name("alice".into()), IdRef::Id(0)],
            unix_groups: vec![IdRef::Name("staff".into()), IdRef::Name("7".into())],
            ..Access::default()
        };
        let r = Rules::new(&access, &NoIds).expect("valid");
        assert!(!r.is_open() && !r.restricts_ip() && r.restricts_unix());
        assert!(r.allows_peer(1001, 100), "alice");
        assert!(r.allows_peer(0, 0), "uid 0");
        assert!(r.allows_peer(2000, 50), "group staff");
        assert!(r.allows_peer(2000, 7), "gid 7");
        assert!(!r.allows_peer(2000, 100));
        // Users only: the group list does not open the door to everyone.
        let access = Access {
            unix_users: vec![IdRef::Id(1001)],
            ..Access::default()
        };
        let r = Rules::new(&access, &NoIds).expect("valid");
        assert!(r.allows_peer(1001, 1) && !r.allows_peer(1002, 1));
    }

    #[test]
    fn errors_name_the_key_and_the_entry() {
        let bad = |a: Access| Rules::new(&a, &NoIds).expect_err("invalid");
        let (k, m) = bad(Access {
            deny: vec!["10.0.0.0/8".into(), "10.0.0.1/24".into()],
            ..Access::default()
        });
        assert_eq!(k, "access.deny");
        assert!(
            m.contains("\"10.0.0.1/24\"") && m.contains("host bits"),
            "{m}"
        );
        let (k, m) = bad(Access {
            allow: vec!["nonsense".into()],
            ..Access::default()
        });
        assert_eq!(
            (k.as_str(), m.as_str()),
            (
                "access.allow",
                "\"nonsense\" is not an address or CIDR prefix"
            )
        );
        let (k, m) = bad(Access {
            unix_users: vec![IdRef::Name("nobody-here".into())],
            ..Access::default()
        });
        assert_eq!(
            (k.as_str(), m.as_str()),
            ("access.unix_users", "unknown user \"nobody-here\"")
        );
        let (k, m) = bad(Access {
            unix_groups: vec![IdRef::Name("nogroup-here".into())],
            ..Access::default()
        });
        assert_eq!(
            (k.as_str(), m.as_str()),
            ("access.unix_groups", "unknown group \"nogroup-here\"")
        );
    }

    #[test]
    fn system_ids_resolve_root() {
        assert_eq!(SystemIds.uid("root"), Some(0));
        assert_eq!(SystemIds.gid("root"), Some(0));
        assert_eq!(SystemIds.uid("no-such-user-hostinfod"), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_prefix_contains_exactly_the_addresses_sharing_its_bits(
            net in any::<u32>(), len in 0u8..=32, probe in any::<u32>(),
        ) {
            let m = mask(len, 32) as u32;
            let p: Prefix = format!("{}/{len}", Ipv4Addr::from(net & m)).parse().expect("valid");
            let inside = probe & m == net & m;
            prop_assert_eq!(p.contains(IpAddr::V4(Ipv4Addr::from(probe))), inside);
            prop_assert_eq!(p.to_string().parse::<Prefix>(), Ok(p));
        }

        #[test]
        fn v6_prefix_round_trips_and_matches(
            net in any::<u128>(), len in 0u8..=128, probe in any::<u128>(),
        ) {
            let m = mask(len, 128);
            let s = format!("{}/{len}", Ipv6Addr::from(net & m));
            let p: Prefix = s.parse().expect("valid");
            let probe = IpAddr::V6(Ipv6Addr::from(probe));
            // Mapped addresses are IPv4 on both sides; compare only true IPv6.
            if !matches!(probe.to_canonical(), IpAddr::V4(_)) && p.v6 {
                let inside = bits(probe).1 & m == net & m;
                prop_assert_eq!(p.contains(probe), inside);
            }
        }

        #[test]
        fn decision_is_the_longest_match_with_deny_on_ties(
            allow in prop::collection::vec((any::<u8>(), 0u8..=8), 0..6),
            deny in prop::collection::vec((any::<u8>(), 0u8..=8), 0..6),
            probe in any::<u8>(),
        ) {
            // Prefixes of 10.0.0.0/24's last octet, so matches are frequent.
            let entry = |(net, len): &(u8, u8)| {
                let m = mask(*len, 8) as u8;
                format!("10.0.0.{}/{}", net & m, 24 + len)
            };
            let access = Access {
                allow: allow.iter().map(entry).collect(),
                deny: deny.iter().map(entry).collect(),
                ..Access::default()
            };
            let r = Rules::new(&access, &SystemIds).expect("valid");
            let hit = |list: &[(u8, u8)]| list.iter()
                .filter(|(n, l)| { let m = mask(*l, 8) as u8; probe & m == n & m })
                .map(|(_, l)| i16::from(*l)).max();
            let a = if allow.is_empty() { Some(-1) } else { hit(&allow) };
            let want = match (a, hit(&deny)) {
                (a, None) => a.is_some(),
                (None, Some(_)) => false,
                (Some(a), Some(d)) => a > d,
            };
            prop_assert_eq!(r.allows_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, probe))), want);
        }
    }
}
