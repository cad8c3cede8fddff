//! Admission at accept time against the real binary: `[access]` allow and
//! deny lists (longest prefix, deny wins a tie, IPv4 and IPv6), Unix peers
//! by uid, `max_rate_per_source`, and lists that change with a reload.
//! Loopback only: 127.0.0.0/8 gives many source addresses, ::1 is IPv6.

mod common;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, socket};

/// What a client connecting from `from` to `to` reads first: the greeting
/// line, or the refusal line and EOF.
fn first_line(from: IpAddr, to: SocketAddr) -> String {
    let family = if from.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(SocketAddr::new(from, 0)),
    )
    .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(to),
    )
    .unwrap_or_else(|e| panic!("connect {to} from {from}: {e}"));
    let mut s = TcpStream::from(fd);
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.split("\r\n").next().unwrap_or("").to_string()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The base sections plus a TCP listener on [::1] at the same port.
fn both_families(s: &Setup, extra: &str) -> String {
    format!(
        "[listen]\ntcp = [\"127.0.0.1:{p}\", \"[::1]:{p}\"]\nunix = [{:?}]\n\n[daemon]\npid_file = {:?}\n\n{extra}",
        s.sock,
        s.pid_file,
        p = s.port
    )
}

#[test]
fn access_lists_decide_by_the_longest_prefix_deny_winning_a_tie() {
    let s = Setup::new("");
    s.write_raw(&both_families(
        &s,
        "[access]\nallow = [\"127.0.0.0/8\", \"127.0.0.5\", \"127.0.2.0/24\"]\n\
         deny = [\"127.0.0.0/24\", \"127.0.2.0/24\"]\n",
    ));
    let d = s.start();
    let v4 = SocketAddr::new(ip("127.0.0.1"), s.port);
    let v6 = SocketAddr::new(ip("::1"), s.port);
    let served = |from: &str, to: SocketAddr| first_line(ip(from), to).starts_with("Welcome");
    // /24 deny is longer than /8 allow.
    assert_eq!(first_line(ip("127.0.0.1"), v4), "Access denied.");
    assert_eq!(first_line(ip("127.0.0.9"), v4), "Access denied.");
    // Only the /8 allow matches.
    assert!(served("127.0.1.1", v4));
    assert!(served("127.1.2.3", v4));
    // A /32 allow beats the /24 deny.
    assert!(served("127.0.0.5", v4));
    // Equal lengths: deny wins.
    assert_eq!(first_line(ip("127.0.2.7"), v4), "Access denied.");
    // A non-empty allow list that names no IPv6 prefix keeps ::1 out.
    assert_eq!(first_line(ip("::1"), v6), "Access denied.");
    // Refused by the parent: no session was forked for any of them.
    assert!(
        !d.log_text().contains("START: 127.0.0.1:"),
        "{}",
        d.log_text()
    );
    assert!(d.log_text().contains("REFUSED"), "{}", d.log_text());

    // The lists change with a reload: ::1 allowed, 127.0.0.1 now too.
    s.write_raw(&both_families(
        &s,
        "[access]\nallow = [\"::1\", \"127.0.0.1/32\"]\ndeny = [\"127.0.0.0/8\"]\n",
    ));
    d.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(d.wait_log("reloaded (generation 1)", Duration::from_secs(10)));
    assert!(served("::1", v6));
    assert!(served("127.0.0.1", v4));
    assert_eq!(first_line(ip("127.0.0.2"), v4), "Access denied.");
}

#[test]
fn unix_peers_are_refused_by_uid_and_served_by_group() {
    let me = nix::unistd::geteuid().as_raw();
    let other = if me == 0 { 65534 } else { 0 };
    let s = Setup::new(&format!("[access]\nunix_users = [{other}]\n"));
    let d = s.start();
    let mut c = UnixStream::connect(&s.sock).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut got = String::new();
    c.read_to_string(&mut got).expect("read");
    assert_eq!(got, "Access denied.\n");
    // TCP clients are not judged by the Unix lists.
    assert!(d.tcp().greeting().starts_with("Welcome"));
    // Our primary group passes even though the uid is not listed.
    let gid = nix::unistd::getegid().as_raw();
    s.write_config(&format!(
        "[access]\nunix_users = [{other}]\nunix_groups = [{gid}]\n"
    ));
    d.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(d.wait_log("reloaded (generation 1)", Duration::from_secs(10)));
    assert!(d.unix().greeting().starts_with("Welcome"));
}

#[test]
fn the_rate_limit_refuses_the_excess_and_serves_again_after() {
    let s = Setup::new("[limits]\nmax_rate_per_source = 5\n");
    let d = s.start();
    let to = SocketAddr::new(ip("127.0.0.1"), s.port);
    // A burst of twice the rate passes; the rest of a quick run is refused.
    let lines: Vec<String> = (0..30).map(|_| first_line(ip("127.0.0.7"), to)).collect();
    let served = lines.iter().filter(|l| l.starts_with("Welcome")).count();
    let refused = lines
        .iter()
        .filter(|l| *l == "Server busy: 127.0.0.7 is connecting too fast.")
        .count();
    eprintln!("30 quick connections: {served} served, {refused} refused");
    assert_eq!(served + refused, 30, "{lines:?}");
    assert!((10..=13).contains(&served), "{lines:?}");
    // Another source is not affected.
    assert!(first_line(ip("127.0.0.8"), to).starts_with("Welcome"));
    // A token comes back every 200 ms.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(first_line(ip("127.0.0.7"), to).starts_with("Welcome"));
    assert!(d.log_text().contains("REFUSED"), "{}", d.log_text());
}
