//! How a session's child waits for its client: in a blocking `read`, timed
//! by the socket's receive timeout (`SO_RCVTIMEO`), not in `poll`.
//!
//! A session reads twice or so and waits before each read. A `poll` over
//! the socket, the signalfd and the "server is full" pipe, then the `read`,
//! cost a child 3–11 µs of CPU more per session than one `read` that waits
//! in the kernel, which is how the C floors wait (BENCHMARKS.md, "no `poll`
//! before the child's reads"). The blocking read keeps every rule the poll
//! kept:
//!
//! - **Deadlines** (idle, session, and `busy_idle_secs` while the server is
//!   full) are the socket's receive timeout: a read with nothing to read
//!   returns EAGAIN when the nearest one passes. The timeout is set only
//!   when it is more than [`SLACK`] away from the nearest deadline: after a
//!   command the new idle deadline is as far as the last one was, so an
//!   active client costs no `setsockopt`; a client that trickles bytes
//!   without a command gets a shorter timeout at each read, and cannot hold
//!   its session past its idle deadline. The first read of a session sets
//!   it (one `setsockopt`): a TCP socket would inherit its listener's, but
//!   not one queued before the listener had it (a socket-activated start, a
//!   reload that changed the limits), and a Unix socket inherits none.
//! - **The stop** comes as a signal whose handler shuts the socket's read
//!   side ([`crate::session::stop`]).
//! - **The "server is full" flag** ([`crate::busy`]) matters only to a
//!   session idle for `busy_idle_secs`. Until then the child reads with a
//!   timeout at that deadline and then looks at the pipe once: full, the
//!   session ends; not full, the child waits in `poll` over the socket and
//!   the pipe from then on, as every child did before, until a command
//!   comes. Only sessions idle that long ever poll.
//! - **Writes** never block (`MSG_DONTWAIT`); only when the socket is full
//!   does the child wait, in `ppoll`, for the client to read.
//! - **A non-blocking socket** (one handed to `-i` that way, or the start-up
//!   rehearsal's) returns EAGAIN before the deadline: the child notices and
//!   waits in `poll` before each read instead.
//!
//! `tests/limits.rs` and `tests/abuse.rs` (idle, session and busy-idle
//! timeouts, tricklers, a client that does not read), `tests/lifecycle.rs`
//! (the stop, in a read and in a wait to write) and `tests/endpoints.rs`
//! (`-i` on a non-blocking socket) fail if any of these stops working.

use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;

use super::stop;
use super::{Context, End};

/// How far the socket's receive timeout may be from the nearest deadline
/// before it is set again: a read may time out this much after its
/// deadline (the kernel rounds to its clock tick, 1–10 ms, beyond that).
pub const SLACK: Duration = Duration::from_millis(25);

fn set_rcvtimeo(fd: RawFd, t: Duration) -> bool {
    // Rounded up to a microsecond: a zero timeval would mean "no timeout".
    let micros = t.as_micros().max(1);
    let tv = libc::timeval {
        tv_sec: (micros / 1_000_000).min(libc::time_t::MAX as u128) as libc::time_t,
        tv_usec: (micros % 1_000_000) as libc::suseconds_t,
    };
    // SAFETY: a valid timeval of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        ) == 0
    }
}

/// Where the session stands with the "server is full" flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    /// No pipe, `busy_idle_secs = 0` (or not shorter than the idle
    /// timeout), or the pipe hung up: only the idle and session deadlines.
    Off,
    /// The busy deadline (`busy_idle_secs` after the last command) is
    /// ahead: the pipe is looked at when it comes.
    Ahead,
    /// Past the busy deadline and the server was not full: the pipe is
    /// polled with the socket.
    Watching,
    /// Past the busy deadline and the server is full.
    Full,
}

/// What the next wait is.
enum Next {
    /// Wait until this instant at most.
    Until(Instant),
    /// A deadline passed, but input waits: read it first.
    ReadNow,
    /// The session ends.
    End(End),
}

/// What a read brought.
pub(super) enum Got {
    /// This many bytes.
    Input(usize),
    /// End of file from the client.
    Eof,
    /// A deadline or the stop: the session ends with a last line.
    Ended(End),
    /// The socket failed or the client reset it: the session ends silently.
    Gone(End),
}

/// What a wait for the client to read brought.
pub(super) enum Wait {
    /// Room to write.
    Ready,
    /// The session ends (with a last line where one is due).
    Ended(End),
}

/// A session's clock and its socket.
pub(super) struct Waiter {
    fd: RawFd,
    busy_fd: RawFd,
    busy: Busy,
    /// The stop handler is armed for this socket (false in the rehearsal).
    armed: bool,
    /// Reads wait in `poll`: the socket turned out non-blocking, or its
    /// receive timeout could not be set.
    polls: bool,
    /// The socket's receive timeout, as last set (None: none known).
    timeout: Option<Duration>,
    session_deadline: Instant,
    idle: Duration,
    busy_idle: Duration,
    /// When the last command came (the session's start at first).
    pub(super) last_command: Instant,
    /// The deadline at which input already waiting was read instead of
    /// ending the session (see [`Waiter::expire`]).
    graced: Option<Instant>,
}

impl Waiter {
    pub(super) fn new(fd: RawFd, ctx: &Context<'_>, armed: bool, started: Instant) -> Self {
        let l = &ctx.cfg.limits;
        let idle = Duration::from_secs(l.idle_timeout_secs);
        let busy_idle = Duration::from_secs(l.busy_idle_secs);
        Waiter {
            fd,
            busy_fd: ctx.busy.unwrap_or(-1),
            busy: match ctx.busy {
                Some(_) if !busy_idle.is_zero() && busy_idle < idle => Busy::Ahead,
                _ => Busy::Off,
            },
            armed,
            polls: false,
            timeout: None,
            session_deadline: started + Duration::from_secs(l.session_timeout_secs),
            idle,
            busy_idle,
            last_command: started,
            graced: None,
        }
    }

    /// The nearest deadline, or how the session ends now (a deadline
    /// passed, or the daemon is stopping). `reading`: the caller waits to
    /// read, so input that came by a deadline may be read first.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn next(&mut self, now: Instant, reading: bool) -> Next {
        if stop::requested() {
            return Next::End(End::Shutdown);
        }
        if now >= self.session_deadline {
            return Next::End(End::SessionTimeout);
        }
        let idle_deadline = self.last_command + self.idle;
        let busy_deadline = self.last_command + self.busy_idle;
        if matches!(self.busy, Busy::Watching | Busy::Full) && now < busy_deadline {
            // A command came since: the busy deadline is ahead again.
            self.busy = Busy::Ahead;
        }
        if self.busy == Busy::Ahead && now >= busy_deadline {
            self.busy = match crate::busy::is_full(self.busy_fd) {
                Some(true) => Busy::Full,
                Some(false) => Busy::Watching,
                None => Busy::Off,
            };
        }
        if self.busy == Busy::Full {
            return self.expire(busy_deadline, End::BusyIdle, reading);
        }
        if now >= idle_deadline {
            return self.expire(idle_deadline, End::Idle, reading);
        }
        let mut until = idle_deadline.min(self.session_deadline);
        if self.busy == Busy::Ahead {
            until = until.min(busy_deadline);
        }
        Next::Until(until)
    }

    /// A deadline has passed. Input that arrived by then is read first (a
    /// command and the deadline can come together), once per deadline, so
    /// input that holds no command cannot keep the session past it.
    fn expire(&mut self, deadline: Instant, end: End, reading: bool) -> Next {
        if reading && self.graced != Some(deadline) && readable(self.fd) {
            self.graced = Some(deadline);
            return Next::ReadNow;
        }
        Next::End(end)
    }

    /// Reads what the client sends into `buf`, waiting as long as the
    /// session's deadlines allow.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub(super) fn read<const N: usize>(&mut self, buf: &mut MaybeUninit<[u8; N]>) -> Got {
        loop {
            let now = Instant::now();
            let until = match self.next(now, true) {
                Next::End(end) => return Got::Ended(end),
                Next::ReadNow => None,
                Next::Until(until) => Some(until),
            };
            if let Some(until) = until {
                if self.polls || self.busy == Busy::Watching {
                    match self.poll(libc::POLLIN, until, now) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(end) => return Got::Gone(end),
                    }
                } else {
                    self.time(until - now);
                }
            }
            match crate::fdio::read_records(self.fd, buf) {
                Ok([]) if stop::requested() => return Got::Ended(End::Shutdown),
                Ok([]) => return Got::Eof,
                Ok(input) => return Got::Input(input.len()),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    // The timeout passed, or the socket is non-blocking: a
                    // read that returns well before its deadline says so.
                    if let Some(until) = until
                        && Instant::now() + 2 * SLACK < until
                    {
                        self.polls = true;
                    }
                }
                Err(Errno::ECONNRESET) => return Got::Gone(End::Eof),
                Err(_) => return Got::Gone(End::Error),
            }
        }
    }

    /// Sets the socket's receive timeout to `want`, unless it is within
    /// [`SLACK`] of it already.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn time(&mut self, want: Duration) {
        if let Some(t) = self.timeout
            && t.abs_diff(want) <= SLACK
        {
            return;
        }
        if set_rcvtimeo(self.fd, want) {
            self.timeout = Some(want);
        } else {
            self.polls = true;
        }
    }

    /// Waits until the client has read enough for more to be written.
    pub(super) fn writable(&mut self) -> Wait {
        loop {
            let now = Instant::now();
            let until = match self.next(now, false) {
                Next::End(end) => return Wait::Ended(end),
                // Not reading: no deadline is ever graced.
                Next::ReadNow => now,
                Next::Until(until) => until,
            };
            match self.poll(libc::POLLOUT, until, now) {
                Ok(true) => return Wait::Ready,
                Ok(false) => {}
                Err(end) => return Wait::Ended(end),
            }
        }
    }

    /// One `ppoll` for `events` on the socket (and the pipe while
    /// watching it) until `until`: whether the socket is ready.
    fn poll(&mut self, events: i16, until: Instant, now: Instant) -> Result<bool, End> {
        let left = until.saturating_duration_since(now);
        let ts = libc::timespec {
            tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        let mut fds = [
            libc::pollfd {
                fd: self.fd,
                events,
                revents: 0,
            },
            libc::pollfd {
                fd: if self.busy == Busy::Watching {
                    self.busy_fd
                } else {
                    -1
                },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // A stop shuts the read side, which wakes a wait for input but not
        // one for room to write: that one blocks the stop signals for the
        // check and waits with them unblocked (see crate::session::stop).
        let mask = if self.armed && events == libc::POLLOUT {
            stop::Mask::block()
        } else {
            None
        };
        if mask.is_some() && stop::requested() {
            return Err(End::Shutdown);
        }
        let during = mask.as_ref().map_or(std::ptr::null(), |m| m.during());
        // SAFETY: two valid pollfd, a valid timespec, a valid or null mask.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, during) };
        drop(mask);
        if r < 0 {
            return match Errno::last() {
                Errno::EINTR => Ok(false),
                _ => Err(End::Error),
            };
        }
        if fds[1].revents != 0 {
            self.busy = match crate::busy::state(fds[1].revents) {
                Some(true) => Busy::Full,
                Some(false) => Busy::Watching,
                None => Busy::Off,
            };
        }
        Ok(fds[0].revents != 0)
    }

    /// One non-blocking send of `buf`: how much was sent (0 when the
    /// socket is full), or how the session ends.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub(super) fn write_some(&self, buf: &[u8]) -> Result<usize, End> {
        loop {
            // SAFETY: buf is a valid slice for the length given.
            let n = unsafe {
                libc::send(
                    self.fd,
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            match Errno::last() {
                Errno::EINTR => {}
                Errno::EAGAIN => return Ok(0),
                // The client went away: as good as its end of file.
                Errno::EPIPE | Errno::ECONNRESET => return Err(End::Eof),
                _ => return Err(End::Error),
            }
        }
    }
}

/// Whether input waits on `fd`, without waiting.
fn readable(fd: RawFd) -> bool {
    let mut pfd = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: a valid array of one pollfd; a zero timeout never blocks.
    unsafe { libc::poll(pfd.as_mut_ptr(), 1, 0) == 1 }
}
