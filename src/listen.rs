//! Listening sockets: binding the configured addresses, or adopting ones
//! handed to us (by systemd's socket activation or by our own reload).
//!
//! Every listener is non-blocking (the poll loop accepts until EAGAIN) and
//! close-on-exec (only the reload, deliberately, lets one cross an exec). A
//! Unix socket path is taken over only when a `connect()` shows that nobody
//! listens on it; any other file at that path is left alone and is an error.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, UnixAddr,
    bind, getsockname, getsockopt, listen, setsockopt, socket, sockopt,
};

use crate::error::{Error, Result};
use crate::runtime::{self, Trust};

/// What a listener listens on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "tcp {a}"),
            Addr::Unix(p) => write!(f, "unix {}", p.display()),
        }
    }
}

impl Addr {
    /// True for TCP: replies end in CRLF there, LF on Unix sockets.
    pub fn is_tcp(&self) -> bool {
        matches!(self, Addr::Tcp(_))
    }
}

/// One listening socket.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub fd: OwnedFd,
    /// Its address.
    pub addr: Addr,
    /// Whether this daemon created the socket file and removes it at exit
    /// (not for sockets systemd made: the socket unit owns those).
    pub owns_path: bool,
}

impl Listener {
    /// The socket file this daemon created and removes at exit, if any.
    pub fn owned_path(&self) -> Option<&Path> {
        match &self.addr {
            Addr::Unix(p) if self.owns_path => Some(p),
            _ => None,
        }
    }

    /// The raw fd, for poll and accept.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn listen_err(addr: impl fmt::Display, source: Errno) -> Error {
    Error::Listen {
        addr: addr.to_string(),
        source,
    }
}

/// Binds and listens on a TCP address.
pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> Result<Listener> {
    let shown = Addr::Tcp(addr);
    let e = |source| listen_err(&shown, source);
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(e)?;
    // SO_REUSEADDR so a restart does not wait out TIME_WAIT; V6ONLY so that
    // [::]:2345 and 0.0.0.0:2345 can both be configured, as in nginx.
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(e)?;
    match addr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)).map_err(e)?,
        SocketAddr::V6(a) => {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(e)?;
            bind(fd.as_raw_fd(), &SockaddrIn6::from(a)).map_err(e)?
        }
    }
    listen(&fd, backlog_of(backlog)).map_err(e)?;
    Ok(Listener {
        fd,
        addr: shown,
        owns_path: false,
    })
}

fn backlog_of(n: u32) -> Backlog {
    Backlog::new(i32::try_from(n).unwrap_or(i32::MAX)).unwrap_or(Backlog::MAXCONN)
}

/// Binds and listens on a Unix-domain socket path with permissions `mode`.
///
/// The directory is checked first (see runtime.rs), and the socket file gets
/// its mode, and as root with `daemon.user` its owner, from the `bind()`
/// that creates it ([`runtime::create_as_owner`]): nothing is changed by
/// path afterwards, where a symlink swapped in meanwhile would redirect it.
pub fn bind_unix(path: &Path, backlog: u32, mode: u32) -> Result<Listener> {
    let shown = Addr::Unix(path.to_path_buf());
    let e = |source| listen_err(&shown, source);
    let (dir, name) = runtime::split(path)?;
    let dir = runtime::open_dir(dir, &Trust::daemon(), true)?;
    clear_stale(&dir, name, path)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(e)?;
    let sa = UnixAddr::new(path).map_err(e)?;
    runtime::create_as_owner(&dir, mode, || bind(fd.as_raw_fd(), &sa)).map_err(
        |err| match err {
            Error::File { source, .. } => {
                e(source.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
            }
            other => other,
        },
    )?;
    listen(&fd, backlog_of(backlog)).map_err(e)?;
    Ok(Listener {
        fd,
        addr: shown,
        owns_path: true,
    })
}

/// Removes a socket file left by a dead process; refuses anything else (a
/// symbolic link included: it is neither followed nor removed).
fn clear_stale(dir: &runtime::Dir, name: &std::ffi::OsStr, path: &Path) -> Result<()> {
    let Some(st) = dir.stat(name)? else {
        return Ok(());
    };
    let kind =
        nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT;
    if kind == nix::sys::stat::SFlag::S_IFLNK {
        return Err(Error::UnixPathBusy {
            path: path.to_path_buf(),
            reason: "a symbolic link is in the way (not followed, not removed)".into(),
        });
    }
    if kind != nix::sys::stat::SFlag::S_IFSOCK {
        return Err(Error::UnixPathBusy {
            path: path.to_path_buf(),
            reason: "a file that is not a socket is in the way (not removed)".into(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Error::UnixPathBusy {
            path: path.to_path_buf(),
            reason: "another process is listening on it".into(),
        }),
        Err(err) if err.raw_os_error() == Some(Errno::ECONNREFUSED as i32) => dir.remove(name),
        Err(err) => Err(Error::file(path, err)),
    }
}

/// Takes over an inherited fd: checks it is a listening stream socket, finds
/// its address, and makes it non-blocking and close-on-exec.
///
/// # Safety
/// `raw` must be an open fd that nothing else in this process owns.
pub unsafe fn adopt(raw: RawFd) -> Result<Listener> {
    // SAFETY: the caller hands us ownership of an open, otherwise unowned fd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let shown = format!("inherited fd {raw}");
    let e = |source| listen_err(&shown, source);
    let inherited = |reason: &str| Error::Inherited {
        fd: raw,
        reason: reason.into(),
    };
    match getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(_) => {
            return Err(inherited(
                "not a stream socket; expected a listening TCP or Unix stream socket",
            ));
        }
        Err(Errno::ENOTSOCK) => {
            return Err(inherited(
                "not a socket; expected a listening TCP or Unix stream socket",
            ));
        }
        Err(err) => return Err(e(err)),
    }
    // A connected socket is what systemd passes with Accept=yes: one
    // connection for a process that serves just it. The daemon serves
    // listeners; it says so rather than fail later with a bare EINVAL from
    // accept (see hostinfod(8), INETD MODE).
    if !getsockopt(&fd, sockopt::AcceptConn).map_err(e)? {
        return Err(inherited(
            "a connected socket, not a listening one (systemd Accept=yes?): \
             run \"hostinfod -i\" for one connection (hostinfod-accept@.service), or use Accept=no",
        ));
    }
    let sa: SockaddrStorage = getsockname(fd.as_raw_fd()).map_err(e)?;
    let addr = if let Some(a) = sa.as_sockaddr_in() {
        Addr::Tcp(SocketAddr::V4((*a).into()))
    } else if let Some(a) = sa.as_sockaddr_in6() {
        Addr::Tcp(SocketAddr::V6((*a).into()))
    } else if let Some(u) = sa.as_unix_addr() {
        match u.path() {
            Some(p) => Addr::Unix(p.to_path_buf()),
            None => Addr::Unix(PathBuf::from(format!("@fd{raw}"))),
        }
    } else {
        return Err(e(Errno::EAFNOSUPPORT));
    };
    set_cloexec(fd.as_fd().as_raw_fd()).map_err(e)?;
    let fl = fcntl(&fd, FcntlArg::F_GETFL).map_err(e)?;
    fcntl(
        &fd,
        FcntlArg::F_SETFL(OFlag::from_bits_retain(fl) | OFlag::O_NONBLOCK),
    )
    .map_err(e)?;
    Ok(Listener {
        fd,
        addr,
        owns_path: false,
    })
}

/// Sets FD_CLOEXEC.
pub fn set_cloexec(raw: RawFd) -> nix::Result<()> {
    // SAFETY: fcntl on a borrowed fd number for the duration of the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(drop)
}

/// Opens every configured listener. A built-in default TCP address whose
/// family the host lacks (no IPv6) is skipped with a warning; any other
/// failure is an error.
pub fn bind_configured(cfg: &crate::config::Config, skip: &[Addr]) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    for a in &cfg.listen.tcp {
        let sa = a.addr;
        if skip.contains(&Addr::Tcp(sa)) {
            continue;
        }
        match bind_tcp(sa, cfg.listen.backlog) {
            Ok(l) => out.push(l),
            Err(Error::Listen { source, .. })
                if a.built_in && matches!(source, Errno::EAFNOSUPPORT | Errno::EADDRNOTAVAIL) =>
            {
                log::warn!("skipping default address tcp {sa}: {source}");
            }
            Err(err) => return Err(err),
        }
    }
    for p in &cfg.listen.unix {
        if skip.contains(&Addr::Unix(p.clone())) {
            continue;
        }
        match bind_unix(p, cfg.listen.backlog, cfg.unix_mode()) {
            Ok(l) => out.push(l),
            Err(err) => {
                // All or nothing: the socket files made for this call go too.
                remove_socket_files(&out);
                return Err(err);
            }
        }
    }
    Ok(out)
}

/// Removes the socket files of listeners this daemon created (before they
/// are dropped without ever serving, e.g. when a reload is abandoned).
pub fn remove_socket_files(listeners: &[Listener]) {
    for p in listeners.iter().filter_map(Listener::owned_path) {
        let _ = std::fs::remove_file(p);
    }
}

/// Applies a reloaded configuration's backlog, and for a Unix socket its
/// file mode, to a listener that is kept.
pub fn reconfigure(l: &Listener, backlog: u32, mode: u32) {
    let _ = listen(&l.fd, backlog_of(backlog));
    if let Addr::Unix(p) = &l.addr
        && l.owns_path
        && let Err(e) = runtime::chmod_socket(p, mode)
    {
        log::warn!("cannot set listen.unix_mode on {}: {e}", p.display());
    }
}

/// The configured addresses, in configuration order.
pub fn configured(cfg: &crate::config::Config) -> Vec<Addr> {
    cfg.listen
        .tcp
        .iter()
        .map(|a| Addr::Tcp(a.addr))
        .chain(cfg.listen.unix.iter().cloned().map(Addr::Unix))
        .collect()
}
