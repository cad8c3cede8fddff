//! sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET`.
//!
//! `NOTIFY_SOCKET` is read, never unset: the reload's exec must find it in the
//! environment again (the sd-notify crate's issue #17 is what unsetting it
//! early does). A path starting with `@` is in the abstract namespace. The
//! socket is opened once, close-on-exec, and closed in every child; a send
//! that fails is logged at debug level and otherwise ignored, because a
//! missing supervisor must never stop the daemon.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, sendto, socket};

/// A connection to the service manager, if there is one.
#[derive(Debug)]
pub struct Notifier {
    sock: Option<(OwnedFd, UnixAddr)>,
    watchdog_usec: Option<u64>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (and `WATCHDOG_USEC` when `WATCHDOG_PID` is ours
    /// or unset). Without it every call is a no-op.
    pub fn from_env() -> Self {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let bytes = p.as_bytes();
            let addr = match bytes.strip_prefix(b"@") {
                Some(name) => UnixAddr::new_abstract(name).ok()?,
                None => UnixAddr::new(bytes).ok()?,
            };
            let fd = socket(
                AddressFamily::Unix,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .ok()?;
            Some((fd, addr))
        });
        let ours = std::env::var("WATCHDOG_PID")
            .map(|p| p.parse() == Ok(std::process::id()))
            .unwrap_or(true);
        let watchdog_usec = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v: &u64| v > 0 && ours);
        Notifier {
            sock,
            watchdog_usec,
        }
    }

    /// Sends one datagram of newline-separated `KEY=VALUE` assignments.
    pub fn send(&self, msg: &str) {
        let Some((fd, addr)) = &self.sock else {
            return;
        };
        if let Err(e) = sendto(fd.as_raw_fd(), msg.as_bytes(), addr, MsgFlags::empty()) {
            log::debug!("sd_notify {msg:?}: {e}");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` with the monotonic time systemd wants beside it.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            crate::reaper::monotonic_us()
        ));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// How often to send `WATCHDOG=1`: half the watchdog interval.
    pub fn watchdog_interval(&self) -> Option<std::time::Duration> {
        self.watchdog_usec
            .map(|u| std::time::Duration::from_micros(u / 2))
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// The socket fd, to be closed in children.
    pub fn raw(&self) -> Option<RawFd> {
        self.sock.as_ref().map(|(fd, _)| fd.as_raw_fd())
    }
}
