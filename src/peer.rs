//! Who is on the other end of an accepted connection.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::str::FromStr;

use nix::libc;

/// Where a client comes from, for the per-source limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A TCP peer's address (IPv4-mapped IPv6 folded to IPv4), or for
    /// IPv6 its network when counted per prefix.
    Ip(IpAddr),
    /// A Unix-socket peer's uid, from SO_PEERCRED.
    Uid(u32),
}

impl Source {
    /// The key the per-source limits count by: IPv6 addresses folded to
    /// their first `v6_prefix` bits, since one site holds a whole /64.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn key(self, v6_prefix: u8) -> Source {
        match self {
            Source::Ip(IpAddr::V6(a)) if v6_prefix < 128 => {
                let bits = u128::from(a);
                let mask = if v6_prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(v6_prefix))
                };
                Source::Ip(IpAddr::V6(Ipv6Addr::from(bits & mask)))
            }
            other => other,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ip(ip) => write!(f, "{ip}"),
            Source::Uid(uid) => write!(f, "uid {uid}"),
        }
    }
}

impl FromStr for Source {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.strip_prefix("uid ") {
            Some(uid) => uid.parse().map(Source::Uid).map_err(drop),
            None => s.parse().map(Source::Ip).map_err(drop),
        }
    }
}

/// A connected client.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Its address or uid.
    pub source: Source,
    /// TCP source port (0 on Unix sockets).
    pub port: u16,
    /// For Unix peers, SO_PEERCRED's pid and gid.
    pub cred: Option<(i32, u32)>,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Ip(ip) => write!(f, "{}", SocketAddr::new(ip, self.port)),
            Source::Uid(uid) => write!(f, "unix peer uid={uid}"),
        }
    }
}

/// ` peer_pid=N` for a Unix peer, nothing for TCP.
#[derive(Debug)]
pub struct PeerPid(pub Option<(i32, u32)>);

impl fmt::Display for PeerPid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((pid, _)) => write!(f, " peer_pid={pid}"),
            None => Ok(()),
        }
    }
}

/// The peer of `client`, from the address accept(2) filled in (TCP) or
/// SO_PEERCRED (Unix).
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn of(ss: &libc::sockaddr_storage, tcp: bool, client: &OwnedFd) -> Option<Peer> {
    if !tcp {
        let cred = nix::sys::socket::getsockopt(client, nix::sys::socket::sockopt::PeerCredentials)
            .ok()?;
        return Some(Peer {
            source: Source::Uid(cred.uid()),
            port: 0,
            cred: Some((cred.pid(), cred.gid())),
        });
    }
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            let ip = IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes());
            Some(Peer {
                source: Source::Ip(ip),
                port: u16::from_be(sin.sin_port),
                cred: None,
            })
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            let ip = IpAddr::from(sin6.sin6_addr.s6_addr).to_canonical();
            Some(Peer {
                source: Source::Ip(ip),
                port: u16::from_be(sin6.sin6_port),
                cred: None,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_sources_fold_to_their_prefix() {
        let a: Source = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: Source = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: Source = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(a.key(64), b.key(64));
        assert_ne!(a.key(64), c.key(64));
        assert_eq!(a.key(48), c.key(48));
        assert_ne!(a.key(128), b.key(128));
        assert_eq!(a.key(0), c.key(0));
        let v4: Source = "192.0.2.1".parse().expect("ip");
        assert_eq!(v4.key(64), v4);
        assert_eq!(Source::Uid(5).key(64), Source::Uid(5));
    }

    #[test]
    fn sources_round_trip_as_text() {
        for s in ["192.0.2.1", "2001:db8::1", "uid 1000"] {
            let src: Source = s.parse().expect("parse");
            assert_eq!(src.to_string(), s);
        }
        assert!("uid x".parse::<Source>().is_err());
    }
}
