//! Admission: every decision taken at accept time, in one place.
//!
//! [`Admission::accepting`] says whether the parent takes connections off
//! its listeners at all (not while every slot is taken — new clients then
//! wait in the kernel's backlog, as with tcpserver — nor while backing off
//! after fd exhaustion or a failed fork). [`Admission::decide`] turns one
//! accepted peer into "admit, counted under this source" or "refuse with
//! this line"; a refusal is written by the parent itself, without a fork.
//!
//! In order, a peer is refused when `[access]` does not allow it
//! (`Access denied.`), when it connects faster than `max_rate_per_source`
//! (a token bucket, [`crate::rate`]), or when `max_per_source` of its
//! sessions are live. IPv6 peers count per `ipv6_prefix` network for both
//! per-source limits ([`Source::key`]).
//!
//! Admission also raises the "server is full" flag every child watches
//! ([`crate::busy`]) when the last slot is taken, so idle sessions are shed
//! after `busy_idle_secs`; and it logs refusals one line per burst, with a
//! count, so a flood of refused clients cannot flood the log.
//!
//! This runs once per connection in the parent, so it allocates nothing
//! and looks things up by hash, never by scanning the sessions.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::libc;

use crate::access::Rules;
use crate::busy::Busy;
use crate::config::Config;
use crate::peer::{Peer, Source};
use crate::rate::RateLimit;
use crate::reaper::{Reaped, Reaper};

/// Pause after fd exhaustion or a failed fork.
pub const BACKOFF: Duration = Duration::from_millis(100);

/// Longest a burst of refusals goes unlogged: its count is logged then.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// Why a client is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `[access]` does not allow it.
    Access,
    /// Its source connects faster than `max_rate_per_source`.
    Rate(Source),
    /// `max_per_source` sessions from its source are live.
    Busy(Source),
    /// No process could be forked for it.
    NoFork,
}

impl Refusal {
    /// Writes the refusal's line to the client.
    #[inline(never)] // out of the poll loop's frame (see crate::server)
    pub fn tell(&self, client: &OwnedFd, tcp: bool) {
        match self {
            Refusal::Access => send_line(client, tcp, format_args!("Access denied.")),
            Refusal::Rate(src) => send_line(
                client,
                tcp,
                format_args!("Server busy: {src} is connecting too fast."),
            ),
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

    fn what(&self) -> &'static str {
        match self {
            Refusal::Access => "access denied",
            Refusal::Rate(_) => "connecting too fast",
            Refusal::Busy(_) => "too many sessions from one source",
            Refusal::NoFork => "no fork",
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
    rules: Rules,
    rate: RateLimit,
    max_per_source: u32,
    v6_prefix: u8,
    busy: Option<Busy>,
    paused_until: Option<Instant>,
    /// fd exhaustion was logged and has not ended since.
    exhausted: bool,
    quiet: QuietLog,
}

impl Admission {
    /// Admission as `cfg` sets it. The busy pipe is made here, before any
    /// fork, so every child has its read end.
    pub fn new(cfg: &Config) -> Self {
        let rules = Rules::from_config(&cfg.access).unwrap_or_else(|(key, e)| {
            // Checked when the configuration was loaded; unreachable unless
            // a name vanished from /etc/passwd since. Refuse everyone
            // rather than serve those the operator meant to keep out.
            log::error!("{key}: {e}; refusing every client until a reload");
            Rules::deny_all()
        });
        Admission {
            rules,
            rate: RateLimit::new(cfg.limits.max_rate_per_source),
            max_per_source: cfg.limits.max_per_source,
            v6_prefix: cfg.limits.ipv6_prefix,
            busy: Busy::new()
                .map_err(|e| log::warn!("busy pipe: {e}; idle sessions are not shed when full"))
                .ok(),
            paused_until: None,
            exhausted: false,
            quiet: QuietLog::default(),
        }
    }

    /// True when the parent should take connections off its listeners.
    /// Also tells the children whether the server is full (a system call
    /// only when that changes).
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn accepting(&mut self, now: Instant, reaper: &Reaper) -> bool {
        let full = reaper.full();
        if let Some(b) = self.busy.as_mut() {
            b.set(full);
        }
        if self.paused_until.is_some_and(|t| now < t) {
            return false;
        }
        self.paused_until = None;
        !full
    }

    /// The read end of the "server is full" pipe, which sessions watch.
    pub fn busy_fd(&self) -> Option<std::os::fd::RawFd> {
        self.busy.as_ref().map(Busy::read_fd)
    }

    /// The fds a session's child must not keep: the busy pipe's write end.
    pub fn parent_fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        self.busy.as_ref().map(Busy::write_fd).into_iter()
    }

    /// Logs a refusal, quietly: the first of a burst at once, the rest as a
    /// count at most every [`LOG_EVERY`].
    #[inline(never)] // out of the poll loop's frame (see crate::server)
    pub fn refused(&mut self, why: &Refusal, peer: &Peer) {
        if self.quiet.note(Instant::now()) {
            log::info!("REFUSED: {} ({})", peer, why.what());
        }
    }

    /// Flushes the count of refusals not yet logged, when it is due.
    pub fn tick(&mut self, now: Instant) {
        if let Some(n) = self.quiet.due(now) {
            log::info!(
                "REFUSED: {n} more client(s) in the last {} s",
                LOG_EVERY.as_secs()
            );
        }
    }

    /// True while backing off (until the poll loop's next `accepting`).
    pub fn paused(&self) -> bool {
        self.paused_until.is_some()
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

    /// When accepting may resume, if paused, or refusals are to be logged.
    pub fn deadline(&self) -> Option<Instant> {
        [self.paused_until, self.quiet.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The verdict on `peer`. Before refusing for `max_per_source` the
    /// reaper settles, so a client that got its `Goodbye.` and reconnects
    /// at once is not refused for the session that just ended.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn decide(
        &mut self,
        peer: &Peer,
        reaper: &mut Reaper,
        ended: impl FnMut(Reaped),
    ) -> Verdict {
        let allowed = self.rules.is_open()
            || match (peer.source, peer.cred) {
                (Source::Ip(ip), _) => self.rules.allows_ip(ip),
                (Source::Uid(uid), Some((_, gid))) => self.rules.allows_peer(uid, gid),
                (Source::Uid(uid), None) => self.rules.allows_peer(uid, u32::MAX),
            };
        if !allowed {
            return Verdict::Refuse(Refusal::Access);
        }
        let source = peer.source.key(self.v6_prefix);
        if self.rate.enabled()
            && !self
                .rate
                .allow(source, crate::reaper::monotonic_us() * 1000)
        {
            return Verdict::Refuse(Refusal::Rate(peer.source));
        }
        if reaper.count(&source) >= self.max_per_source {
            reaper.settle(ended);
            if reaper.count(&source) >= self.max_per_source {
                return Verdict::Refuse(Refusal::Busy(peer.source));
            }
        }
        Verdict::Admit(source)
    }
}

/// Refusals logged one line per burst.
#[derive(Debug, Default)]
struct QuietLog {
    /// Refusals since the last line, and when that line was logged.
    unlogged: u64,
    last: Option<Instant>,
}

impl QuietLog {
    /// A refusal at `now`: true if it is to be logged itself.
    fn note(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now < t + LOG_EVERY => {
                self.unlogged += 1;
                false
            }
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.last
            .filter(|_| self.unlogged > 0)
            .map(|t| t + LOG_EVERY)
    }

    /// The count to log now, if one is due.
    fn due(&mut self, now: Instant) -> Option<u64> {
        let t = self.deadline()?;
        if now < t {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// One line to a client the parent will not serve: formatted on the stack
/// (this runs in the accept loop, under a flood of refusals too) and sent
/// with the transport's line end in one non-blocking write; whatever does
/// not fit is dropped (the client must not be able to stall the parent).
#[unsafe(link_section = ".text.hot.hostinfod")]
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
        (Admission::new(&cfg), Reaper::new(4, max).expect("reaper"))
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
