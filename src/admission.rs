//! Admission: every decision taken at accept time, in one place.
//!
//! [`Admission::accepting`] says whether the parent takes connections off
//! its listeners at all (not while every slot is taken — new clients then
//! wait in the kernel's backlog, as with tcpserver — nor while backing off
//! after fd exhaustion or a failed fork). [`Admission::decide`] turns one
//! accepted peer into "admit, counted under this source" or "refuse with
//! this line"; a refusal is written by the parent itself, without a fork.
//!
//! This runs once per connection in the parent, so it allocates nothing
//! and looks things up by hash, never by scanning the sessions.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::libc;

use crate::config::Config;
use crate::peer::{Peer, Source};
use crate::reaper::{Reaped, Reaper};

/// Pause after fd exhaustion or a failed fork.
pub const BACKOFF: Duration = Duration::from_millis(100);

/// Why a client is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_per_source` sessions from its source are live.
    Busy(Source),
    /// No process could be forked for it.
    NoFork,
}

impl Refusal {
    /// Writes the refusal's line to the client.
    pub fn tell(&self, client: &OwnedFd, tcp: bool) {
        match self {
            Refusal::Busy(src) => send_line(
                client,
                tcp,
                format_args!("Server busy: too many sessions from {src}."),
            ),
            Refusal::NoFork => {
                send_line(client, tcp, format_args!("Server busy, try again later."))
            }
        }
    }
}

/// The verdict on one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it; its session counts under this source.
    Admit(Source),
    /// Do not.
    Refuse(Refusal),
}

/// The admission state of one image of the daemon.
#[derive(Debug)]
pub struct Admission {
    max_per_source: u32,
    v6_prefix: u8,
    paused_until: Option<Instant>,
    /// fd exhaustion was logged and has not ended since.
    exhausted: bool,
}

impl Admission {
    /// Admission as `cfg` sets it.
    pub fn new(cfg: &Config) -> Self {
        Admission {
            max_per_source: cfg.limits.max_per_source,
            v6_prefix: 64,
            paused_until: None,
            exhausted: false,
        }
    }

    /// True when the parent should take connections off its listeners.
    pub fn accepting(&mut self, now: Instant, reaper: &Reaper) -> bool {
        if self.paused_until.is_some_and(|t| now < t) {
            return false;
        }
        self.paused_until = None;
        !reaper.full()
    }

    /// Stops accepting for [`BACKOFF`].
    pub fn back_off(&mut self) {
        self.paused_until = Some(Instant::now() + BACKOFF);
    }

    /// The fd table is full: backs off, and returns true the first time
    /// since an accept last worked (to log it once, not per attempt).
    pub fn fds_exhausted(&mut self) -> bool {
        self.back_off();
        !std::mem::replace(&mut self.exhausted, true)
    }

    /// An accept worked: fd exhaustion, if any, has ended.
    pub fn accepted(&mut self) {
        if self.exhausted {
            self.exhausted = false;
        }
    }

    /// When accepting may resume, if paused.
    pub fn deadline(&self) -> Option<Instant> {
        self.paused_until
    }

    /// The verdict on `peer`. Before refusing for `max_per_source` the
    /// reaper settles, so a client that got its `Goodbye.` and reconnects
    /// at once is not refused for the session that just ended.
    pub fn decide(
        &mut self,
        peer: &Peer,
        reaper: &mut Reaper,
        ended: impl FnMut(Reaped),
    ) -> Verdict {
        let source = peer.source.key(self.v6_prefix);
        if reaper.count(&source) >= self.max_per_source {
            reaper.settle(ended);
            if reaper.count(&source) >= self.max_per_source {
                return Verdict::Refuse(Refusal::Busy(source));
            }
        }
        Verdict::Admit(source)
    }
}

/// One line to a client the parent will not serve: formatted on the stack
/// (this runs in the accept loop, under a flood of refusals too) and sent
/// with the transport's line end in one non-blocking write; whatever does
/// not fit is dropped (the client must not be able to stall the parent).
fn send_line(fd: &OwnedFd, tcp: bool, line: std::fmt::Arguments<'_>) {
    use std::fmt::Write as _;
    let mut buf = [0u8; 256];
    let mut w = crate::text::Fixed::new(&mut buf[..254]);
    let _ = w.write_fmt(line);
    let n = w.as_bytes().len();
    let eol: &[u8] = if tcp { b"\r\n" } else { b"\n" };
    buf[n..n + eol.len()].copy_from_slice(eol);
    let bytes = &buf[..n + eol.len()];
    // SAFETY: a valid buffer of the given length; MSG_DONTWAIT never blocks,
    // MSG_NOSIGNAL avoids SIGPIPE for a peer that already left.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use crate::reaper::Child;

    fn setup(max: u32) -> (Admission, Reaper) {
        let env = Env {
            euid: 1000,
            xdg_runtime_dir: None,
        };
        let mut cfg = Config::defaults(&env);
        cfg.limits.max_per_source = max;
        cfg.limits.max_children = 4;
        (Admission::new(&cfg), Reaper::new(4).expect("reaper"))
    }

    fn peer(ip: &str) -> Peer {
        Peer {
            source: ip.parse().expect("ip"),
            port: 1,
            cred: None,
        }
    }

    #[test]
    fn per_source_limit_counts_the_source_key() {
        let (mut a, mut r) = setup(2);
        let p = peer("2001:db8::1");
        let Verdict::Admit(key) = a.decide(&p, &mut r, |_| {}) else {
            panic!("first is admitted")
        };
        let child = Child {
            source: key,
            started_us: 0,
        };
        r.insert(4_000_001, child);
        r.insert(4_000_002, child);
        // Another address of the same /64 is the same source.
        assert!(matches!(
            a.decide(&peer("2001:db8::2"), &mut r, |_| {}),
            Verdict::Refuse(Refusal::Busy(_))
        ));
        assert_eq!(
            a.decide(&peer("2001:db8:0:1::2"), &mut r, |_| {}),
            Verdict::Admit("2001:db8:0:1::".parse().expect("ip"))
        );
        r.forget(4_000_001);
        assert!(matches!(a.decide(&p, &mut r, |_| {}), Verdict::Admit(_)));
    }

    #[test]
    fn back_off_pauses_accepting() {
        let (mut a, r) = setup(2);
        let now = Instant::now();
        assert!(a.accepting(now, &r));
        a.back_off();
        assert!(!a.accepting(Instant::now(), &r));
        assert!(a.deadline().is_some());
        assert!(a.accepting(Instant::now() + BACKOFF * 2, &r));
        assert!(a.deadline().is_none());
    }
}
