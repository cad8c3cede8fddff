//! `hostinfod -i`: one session on a connection an inetd-style launcher
//! accepted (inetd, xinetd with `wait = no`, tcpserver, s6-tcpserver,
//! systemd `Accept=yes`), then exit.
//!
//! The connection is fd 0 (what inetd, xinetd, tcpserver and systemd's
//! `StandardInput=socket` give), or fd 3 when `LISTEN_PID` names us and
//! `LISTEN_FDS` is 1 (systemd `Accept=yes` without `StandardInput=socket`,
//! `systemd-socket-activate --accept`). The session is the daemon's own
//! [`crate::session::serve`], with the same greeting, line ends (CRLF on TCP, LF on
//! a Unix socket), timeouts and line limit; the peer comes from getpeername
//! (SO_PEERCRED on a Unix socket). Per-source and total limits are the
//! launcher's (`MaxConnectionsPerSource=`, xinetd's `per_source`,
//! tcpserver's `-c`): one process sees one connection.
//!
//! There are no listeners, no pidfile, no daemonizing and no status file.
//! Logging goes to syslog (`log.destination = "auto"`), since stderr may be
//! the client: xinetd hands the connection over as fds 0, 1 and 2. Those of
//! fds 0-2 that are the connection but not the descriptor served are pointed
//! at /dev/null first, so nothing meant for a log (a panic, a fallback
//! logger) can reach the client. The START and EXIT records are the daemon's, and the exit status
//! says how the session ended ([`crate::session::End::exit_code`]).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{SockType, SockaddrStorage, getpeername, getsockname, getsockopt, sockopt};

use crate::config::{Config, Env};
use crate::error::Error;
use crate::peer::{Peer, PeerPid, Source};
use crate::session;
use crate::signals::Signals;
use crate::template::Template;

/// Runs one session on the inherited connection and returns the process
/// exit status: the session's end code, 78 for a configuration error, 1 when
/// there is no usable connection.
pub fn main(config: Option<&Path>) -> i32 {
    let started = Instant::now();
    let fd = connection_fd();
    quiet_stdio(fd);
    let env = Env::current();
    let cfg = match Config::load(config, &env) {
        Ok(c) => c,
        Err(e) => {
            // Said on stderr (unless that is the client) and to syslog, where
            // the operator of an inetd service looks.
            crate::log::init(&Config::defaults(&env), false);
            log::error!("-i: {e}");
            report(&e);
            return e.exit_code();
        }
    };
    crate::log::init(&cfg, false);
    match serve(fd, &cfg, started) {
        Ok(code) => code,
        Err(e) => {
            log::error!("-i: {e}");
            report(&e);
            e.exit_code()
        }
    }
}

fn report(e: &Error) {
    match e {
        Error::Config(c) => eprintln!("{c}"),
        _ => eprintln!("hostinfod: {e}"),
    }
}

/// fd 3 when systemd passed exactly one socket to this process, else fd 0.
fn connection_fd() -> RawFd {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        == Some(std::process::id());
    let one = std::env::var("LISTEN_FDS").ok().as_deref() == Some("1");
    if ours && one { 3 } else { 0 }
}

/// (st_dev, st_ino) of an open fd.
fn identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: fstat writes into the zeroed struct; a bad fd only fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// Points fds 0-2 at /dev/null where they are the connection but not the
/// descriptor served (xinetd passes it as all three; systemd with
/// `StandardInput=socket` as fd 0 and fd 1 beside fd 3), so only the session
/// writes to the client, and closing the served descriptor ends the
/// connection.
fn quiet_stdio(conn: RawFd) {
    let Some(id) = identity(conn) else { return };
    for fd in [0, 1, 2] {
        if fd != conn && identity(fd) == Some(id) {
            let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            else {
                continue;
            };
            // SAFETY: dup2 onto a standard descriptor this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn fd_err(fd: RawFd, why: impl Into<String>) -> Error {
    Error::Inherited {
        fd,
        reason: why.into(),
    }
}

/// Checks that `fd` is a connected stream socket; returns whether it is TCP
/// and the local address as the daemon's logs name listeners.
fn check(fd: RawFd) -> Result<(bool, String), Error> {
    // SAFETY: borrowed for these calls only; the fd stays open.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    match getsockopt(&b, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(_) => return Err(fd_err(fd, "-i needs a stream socket (no UDP service)")),
        Err(Errno::ENOTSOCK) => {
            return Err(fd_err(
                fd,
                "not a socket: -i serves the connection that inetd, xinetd, tcpserver or \
                 systemd (Accept=yes) passes on standard input",
            ));
        }
        Err(e) => return Err(fd_err(fd, e.desc())),
    }
    if getsockopt(&b, sockopt::AcceptConn).unwrap_or(false) {
        return Err(fd_err(
            fd,
            "a listening socket, not a connection: with xinetd use \"wait = no\", with \
             systemd Accept=yes (or run hostinfod without -i)",
        ));
    }
    if let Err(e) = getpeername::<SockaddrStorage>(fd) {
        return Err(fd_err(fd, format!("not connected ({})", e.desc())));
    }
    let local: SockaddrStorage = getsockname(fd).map_err(|e| fd_err(fd, e.desc()))?;
    Ok(if let Some(a) = local.as_sockaddr_in() {
        (true, format!("tcp {}", SocketAddr::V4((*a).into())))
    } else if let Some(a) = local.as_sockaddr_in6() {
        (true, format!("tcp {}", SocketAddr::V6((*a).into())))
    } else if let Some(u) = local.as_unix_addr() {
        let p = u
            .path()
            .map_or_else(|| "(unnamed)".into(), |p| p.display().to_string());
        (false, format!("unix {p}"))
    } else {
        return Err(fd_err(fd, "neither a TCP nor a Unix-domain socket"));
    })
}

/// Who is on the other end, as the daemon's START record names it (`ADDR:PORT`
/// or `unix peer uid=N`), the peer's pid for a Unix peer, and the source
/// the EXIT record names.
/// The peer: getpeername on TCP (IPv4-mapped IPv6 folded to IPv4, as the
/// daemon counts sources), SO_PEERCRED on a Unix socket.
fn peer(fd: RawFd, tcp: bool) -> Option<Peer> {
    if !tcp {
        // SAFETY: borrowed for this call only.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let c = getsockopt(&b, sockopt::PeerCredentials).ok()?;
        return Some(Peer {
            source: Source::Uid(c.uid()),
            port: 0,
            cred: Some((c.pid(), c.gid())),
        });
    }
    let sa = getpeername::<SockaddrStorage>(fd).ok()?;
    let a = sa
        .as_sockaddr_in()
        .map(|a| SocketAddr::V4((*a).into()))
        .or_else(|| sa.as_sockaddr_in6().map(|a| SocketAddr::V6((*a).into())))?;
    Some(Peer {
        source: Source::Ip(a.ip().to_canonical()),
        port: a.port(),
        cred: None,
    })
}

fn serve(fd: RawFd, cfg: &Config, started: Instant) -> Result<i32, Error> {
    let (tcp, via) = check(fd)?;
    // SIGHUP and SIGCHLD stay blocked, SIGPIPE ignored; the session takes
    // SIGTERM and SIGINT with its stop handler.
    let _signals = Signals::install()?;
    // SAFETY: the launcher handed this descriptor to us; nothing else in this
    // process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // Blocking or not, as the launcher made it: the session waits in a
    // blocking read, and in poll on a non-blocking socket (see
    // crate::session::wait).
    crate::listen::set_cloexec(fd).map_err(|e| fd_err(fd, e.desc()))?;
    let pid = std::process::id();
    let peer = peer(fd, tcp);
    // [access] holds here as in the daemon: refused with its line, no session.
    let rules = crate::access::Rules::from_config(&cfg.access)
        .map_err(|(key, e)| Error::Usage(format!("{key}: {e}")))?;
    let allowed = match peer.map(|p| (p.source, p.cred)) {
        Some((Source::Ip(ip), _)) => rules.allows_ip(ip),
        Some((Source::Uid(uid), cred)) => rules.allows_peer(uid, cred.map_or(u32::MAX, |c| c.1)),
        None => !rules.restricts_ip() && !rules.restricts_unix(),
    };
    let shown = peer.map_or_else(|| "unknown peer".to_string(), |p| p.to_string());
    let source = peer.map_or_else(|| "unknown".to_string(), |p| p.source.to_string());
    if !allowed {
        log::info!("REFUSED: {shown} (access denied)");
        let line: &[u8] = if tcp {
            b"Access denied.\r\n"
        } else {
            b"Access denied.\n"
        };
        // SAFETY: a valid buffer; the socket is ours.
        unsafe { libc::send(fd, line.as_ptr().cast(), line.len(), libc::MSG_NOSIGNAL) };
        return Ok(crate::session::End::Quit.exit_code());
    }
    log::info!(
        "START: {shown} pid={pid}{} via {via}",
        PeerPid(peer.and_then(|p| p.cred))
    );
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let template = Template::new(cfg, &hostname);
    let ctx = template.context(cfg, None);
    let bufs = session::Buffers::new(cfg.limits.max_line_bytes as usize);
    let end = session::serve(&sock, tcp, &ctx, bufs);
    // The client sees EOF now, not after the log record.
    drop(sock);
    let code = end.exit_code();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    log::info!("EXIT: pid={pid} status={code} duration={ms:.1}ms from {source}");
    Ok(code)
}
