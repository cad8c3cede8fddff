//! One client's session, run in the forked child.
//!
//! The child owns one connected socket (non-blocking), the signalfd it
//! inherited (on which it hears the SIGTERM its parent sends at shutdown)
//! and the read end of the parent's "server is full" pipe ([`crate::busy`]).
//! It polls them with a timeout that is the nearest of its deadlines: the
//! idle deadline (`idle_timeout_secs` after the last command, or
//! `busy_idle_secs` after it while the server is full) and the session
//! deadline (`session_timeout_secs` after the start).
//!
//! Only a command moves the idle deadline: a non-blank line. Bytes of an
//! unfinished line, blank lines and Telnet negotiation do not, so a client
//! that trickles cannot hold a session past its idle timeout.
//!
//! Input goes through the [`crate::framing::Framer`], each line through [`crate::protocol`], and
//! replies collect in one buffer that is written when the input read so far
//! is used up or the buffer holds [`crate::session::OUT_HIGH`] bytes. While replies wait for
//! the client, the child reads nothing more: it polls for POLLOUT, writes
//! what fits, and goes back to the input only once all is sent. So a client
//! that sends and does not read holds at most one read of input and
//! [`crate::session::OUT_HIGH`] bytes plus one reply, whatever it sends; a client that reads
//! still gets any number of pipelined lines answered, in order.
//!
//! How a session ended is the child's exit status ([`End`]), which the
//! parent reads with waitpid.

use std::mem::MaybeUninit;
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;

use crate::config::Config;
use crate::framing::{self, Event, Framer};
use crate::protocol::{self, Command, Outcome};
use crate::signals::Signals;

/// Replies are sent once this many bytes wait (or the input read so far is
/// used up), and no further line is answered until they are sent: the bound
/// on what a child holds for a client that does not read is this plus one
/// reply (a `motd` of at most 64 KiB, its line ends doubled at worst).
pub const OUT_HIGH: usize = 4096;

/// What the session needs from the parent, prepared once before any fork.
#[derive(Debug)]
pub struct Context<'a> {
    /// The configuration in force.
    pub cfg: &'a Config,
    /// Greeting line, CRLF, prompt: the first bytes of a TCP session.
    pub hello_tcp: &'a [u8],
    /// Greeting line, LF, prompt: the first bytes of a Unix session.
    pub hello_unix: &'a [u8],
    /// The read end of the "server is full" pipe ([`crate::busy::Busy`]),
    /// or None (the start-up rehearsal, or no pipe).
    pub busy: Option<RawFd>,
}

/// Buffers allocated by the parent before any fork, so that a session's
/// child starts without touching the allocator (every page malloc writes in
/// a child is a copy-on-write fault).
#[derive(Debug)]
pub struct Buffers {
    /// Replies accumulate here between writes.
    pub out: Vec<u8>,
    /// The framer's line.
    pub line: Vec<u8>,
}

impl Buffers {
    /// Buffers for lines up to `max_line` bytes (they grow if a reply is larger).
    pub fn new(max_line: usize) -> Self {
        Buffers {
            out: Vec::with_capacity(OUT_HIGH),
            line: Vec::with_capacity(max_line.min(4096)),
        }
    }
}

/// How a session ended: the child's exit status, from which the parent
/// knows it (for the EXIT record and the counters).
///
/// | status | end | counted as |
/// |---|---|---|
/// | 0 | `quit` or `exit` | quit |
/// | 1 | error: the socket failed, or the child crashed (also any status not listed, and death by a signal) | error |
/// | 2 | idle for `idle_timeout_secs` | idle |
/// | 3 | an input line longer than `max_line_bytes` | too_long |
/// | 4 | the daemon is stopping | shutdown |
/// | 5 | end of file from the client (or the client reset the connection) | eof |
/// | 6 | older than `session_timeout_secs` | session_timeout |
/// | 7 | idle for `busy_idle_secs` while the server was full | idle |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `quit` or `exit`.
    Quit,
    /// The socket failed (or, read back by the parent, the child crashed).
    Error,
    /// Idle for `idle_timeout_secs`.
    Idle,
    /// An input line was too long.
    TooLong,
    /// The daemon is stopping.
    Shutdown,
    /// End of file from the client, or the client reset the connection.
    Eof,
    /// The session reached `session_timeout_secs`.
    SessionTimeout,
    /// Idle for `busy_idle_secs` while `max_children` sessions were live.
    BusyIdle,
}

impl End {
    /// Every end, in exit-status order.
    pub const ALL: [End; 8] = [
        End::Quit,
        End::Error,
        End::Idle,
        End::TooLong,
        End::Shutdown,
        End::Eof,
        End::SessionTimeout,
        End::BusyIdle,
    ];

    /// The child's exit status for this end (the table above).
    pub fn exit_code(self) -> i32 {
        match self {
            End::Quit => 0,
            End::Error => 1,
            End::Idle => 2,
            End::TooLong => 3,
            End::Shutdown => 4,
            End::Eof => 5,
            End::SessionTimeout => 6,
            End::BusyIdle => 7,
        }
    }

    /// The end a child's exit status says (the parent's side of
    /// [`End::exit_code`]); a status no session exits with is an error. A
    /// child killed by a signal is an error too.
    pub fn from_exit_code(code: i32) -> End {
        End::ALL
            .into_iter()
            .find(|e| e.exit_code() == code)
            .unwrap_or(End::Error)
    }

    /// The name it is counted under: `quit`, `eof`, `idle` (both idle
    /// timeouts), `session_timeout`, `too_long`, `shutdown` or `error`.
    pub fn how(self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::Error => "error",
            End::Idle | End::BusyIdle => "idle",
            End::TooLong => "too_long",
            End::Shutdown => "shutdown",
            End::Eof => "eof",
            End::SessionTimeout => "session_timeout",
        }
    }
}

/// Whether this child watches the "server is full" pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    /// No pipe, `busy_idle_secs = 0`, or the pipe hung up: plain idle timeout.
    Off,
    /// Polled with the socket; the server is not full.
    Watching,
    /// The server was full when last looked at: the idle deadline is the
    /// busy one, and the pipe is looked at again only when it passes.
    Full,
}

struct Io<'s> {
    fd: RawFd,
    signals: &'s Signals,
    busy_fd: RawFd,
    busy: Busy,
    session_deadline: Instant,
    idle: Duration,
    busy_idle: Duration,
    last_command: Instant,
    /// The idle deadline at which input already waiting was read instead of
    /// ending the session (see [`Io::wait`]).
    graced: Option<Instant>,
}

enum Wait {
    Ready,
    Ended(End),
}

impl Io<'_> {
    /// The idle deadline in force.
    fn idle_deadline(&self) -> Instant {
        let idle = if self.busy == Busy::Full {
            self.idle.min(self.busy_idle)
        } else {
            self.idle
        };
        self.last_command + idle
    }

    /// Waits until `events` are ready on the socket, a deadline passes, or a
    /// terminating signal arrives.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn wait(&mut self, events: i16) -> Wait {
        loop {
            let now = Instant::now();
            if now >= self.session_deadline {
                return Wait::Ended(End::SessionTimeout);
            }
            let idle_deadline = self.idle_deadline();
            if now >= idle_deadline {
                if self.busy == Busy::Full {
                    // The busy deadline: is the server still full?
                    match crate::busy::is_full(self.busy_fd) {
                        Some(true) => {}
                        Some(false) => {
                            self.busy = Busy::Watching;
                            continue;
                        }
                        None => {
                            self.busy = Busy::Off;
                            continue;
                        }
                    }
                }
                // Input that arrived by the deadline is read first (the flag
                // and a command can arrive together): it may hold a command.
                // Once per deadline, so input that holds none cannot keep
                // the session past it.
                if events == libc::POLLIN && self.graced != Some(idle_deadline) && readable(self.fd)
                {
                    self.graced = Some(idle_deadline);
                    return Wait::Ready;
                }
                return Wait::Ended(if self.busy == Busy::Full {
                    End::BusyIdle
                } else {
                    End::Idle
                });
            }
            let deadline = idle_deadline.min(self.session_deadline);
            let ms = (deadline - now)
                .as_micros()
                .div_ceil(1000)
                .min(i32::MAX as u128) as i32;
            let mut fds = [
                libc::pollfd {
                    fd: self.fd,
                    events,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.signals.raw(),
                    events: libc::POLLIN,
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
            // SAFETY: fds is a valid array of three pollfd for the whole call.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, ms.max(1)) };
            if r < 0 {
                if Errno::last() == Errno::EINTR {
                    continue;
                }
                return Wait::Ended(End::Error);
            }
            if fds[1].revents != 0 && self.signals.drain().terminate {
                return Wait::Ended(End::Shutdown);
            }
            if fds[2].revents != 0 {
                self.busy = match crate::busy::state(fds[2].revents) {
                    Some(true) => Busy::Full,
                    Some(false) => Busy::Watching,
                    None => Busy::Off,
                };
            }
            if fds[0].revents != 0 {
                return Wait::Ready;
            }
        }
    }

    /// One non-blocking write of `buf`: how much was sent (0 when the
    /// socket is full), or how the session ends.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn write_some(&self, buf: &[u8]) -> Result<usize, End> {
        loop {
            // SAFETY: buf is a valid slice for the length given.
            let n = unsafe { libc::write(self.fd, buf.as_ptr().cast(), buf.len()) };
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

    /// Best effort: one last line before closing, when no reply is still
    /// waiting to go before it. One non-blocking write, built in the
    /// session's output buffer (allocated by the parent), so no malloc in the
    /// child and no wait for a client that does not read.
    fn farewell(&self, out: &mut Vec<u8>, sent: usize, line: &[u8], eol: &[u8]) {
        if sent < out.len() {
            return;
        }
        out.clear();
        crate::text::push_line(out, line, eol);
        let _ = self.write_some(out);
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

/// Answers one framer event into `out`. Breaks with the end of the session,
/// or with None to pause while the replies so far are sent.
#[unsafe(link_section = ".text.hot.hostinfod")]
fn on_event(
    event: Event<'_>,
    ctx: &Context<'_>,
    tcp: bool,
    eol: &[u8],
    out: &mut Vec<u8>,
    last_command: &mut Instant,
) -> ControlFlow<Option<End>> {
    match event {
        Event::Line(line) => {
            let cmd = protocol::parse(line);
            if cmd != Command::Blank {
                *last_command = Instant::now();
            }
            match protocol::respond(cmd, &ctx.cfg.commands, eol, out) {
                Outcome::Continue => out.extend_from_slice(ctx.cfg.protocol.prompt.as_bytes()),
                Outcome::Close => return ControlFlow::Break(Some(End::Quit)),
            }
        }
        Event::TooLong => {
            use std::io::Write as _;
            let max_line = ctx.cfg.limits.max_line_bytes;
            let _ = write!(out, "Error: line too long (max {max_line} bytes).");
            out.extend_from_slice(eol);
            return ControlFlow::Break(Some(End::TooLong));
        }
        Event::Negotiation { verb, option } => {
            // Telnet is answered on TCP only: a Unix-socket client is no
            // Telnet client, and is sent nothing it did not ask for.
            if tcp && let Some(reply) = framing::answer(verb, option) {
                out.extend_from_slice(&reply);
            }
        }
    }
    if out.len() >= OUT_HIGH {
        ControlFlow::Break(None)
    } else {
        ControlFlow::Continue(())
    }
}

/// Serves one client until it quits, leaves, times out or the daemon stops.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn serve(
    sock: &OwnedFd,
    tcp: bool,
    ctx: &Context<'_>,
    signals: &Signals,
    bufs: Buffers,
) -> End {
    let cfg = ctx.cfg;
    let started = Instant::now();
    let busy_idle = Duration::from_secs(cfg.limits.busy_idle_secs);
    let mut io = Io {
        fd: sock.as_raw_fd(),
        signals,
        busy_fd: ctx.busy.unwrap_or(-1),
        busy: match ctx.busy {
            Some(_) if !busy_idle.is_zero() => Busy::Watching,
            _ => Busy::Off,
        },
        session_deadline: started + Duration::from_secs(cfg.limits.session_timeout_secs),
        idle: Duration::from_secs(cfg.limits.idle_timeout_secs),
        busy_idle,
        last_command: started,
        graced: None,
    };
    let eol: &[u8] = if tcp { b"\r\n" } else { b"\n" };
    let max_line = cfg.limits.max_line_bytes as usize;
    // Never dropped: the child _exits after the session, and a free() would
    // only dirty more of the allocator's pages shared with the parent. (The
    // start-up rehearsal runs one session in the parent and so leaks its two
    // buffers, once.)
    let mut framer = std::mem::ManuallyDrop::new(Framer::with_buffer(max_line, bufs.line));
    let mut out = std::mem::ManuallyDrop::new(bufs.out);
    out.clear();
    // The greeting goes from the template's bytes, not through `out`: a
    // session that never sends a command then never writes the buffer's
    // page (each page a child writes becomes its own copy, and an idle
    // session holds it for as long as it lasts).
    let hello = if tcp { ctx.hello_tcp } else { ctx.hello_unix };
    match io.write_some(hello) {
        Ok(n) => out.extend_from_slice(&hello[n..]),
        Err(end) => return end,
    }
    // Bytes of `out` already written.
    let mut sent = 0;
    // Small and left uninitialised on purpose (see crate::fdio): every stack
    // page a fresh child writes is a copy-on-write fault; commands are short
    // lines (a longer input takes more reads). `buf[used..got]` is input
    // read but not yet fed to the framer.
    let mut buf = MaybeUninit::<[u8; 1024]>::uninit();
    let (mut used, mut got) = (0, 0);
    // Set once the session is over but for sending what `out` holds.
    let mut closing: Option<End> = None;
    loop {
        // Answer the input read so far, until replies pile up.
        if used < got && closing.is_none() && out.len() - sent < OUT_HIGH {
            // SAFETY: read(2) filled buf[..got] (see below), so these bytes
            // are initialised.
            let input = unsafe {
                std::slice::from_raw_parts(buf.as_ptr().cast::<u8>().add(used), got - used)
            };
            let (n, flow) = framer.feed(input, |e| {
                on_event(e, ctx, tcp, eol, &mut out, &mut io.last_command)
            });
            used += n;
            if let ControlFlow::Break(Some(end)) = flow {
                closing = Some(end);
            }
        }
        // Send what waits, as much as the socket takes.
        if sent < out.len() {
            match io.write_some(&out[sent..]) {
                Ok(n) => sent += n,
                Err(end) => return end,
            }
            if sent == out.len() {
                out.clear();
                sent = 0;
            }
        }
        let waiting = sent < out.len();
        if !waiting {
            if let Some(end) = closing {
                return end;
            }
            if used < got {
                continue;
            }
        }
        // Either replies wait for the client (then nothing is read until
        // they are sent) or all input is answered: wait for the one or the
        // other.
        match io.wait(if waiting { libc::POLLOUT } else { libc::POLLIN }) {
            Wait::Ready => {}
            Wait::Ended(end) => {
                let line = match end {
                    End::Shutdown => protocol::SHUTTING_DOWN,
                    _ => protocol::TIMEOUT,
                };
                if closing.is_none() && end != End::Error {
                    io.farewell(&mut out, sent, line, eol);
                }
                return closing.unwrap_or(end);
            }
        }
        if waiting {
            continue;
        }
        match crate::fdio::read_records(io.fd, &mut buf) {
            Ok([]) => {
                // End of file: answer an unfinished last line, then close.
                closing = Some(End::Eof);
                if let Some(line) = framer.finish() {
                    let flow = on_event(
                        Event::Line(line),
                        ctx,
                        tcp,
                        eol,
                        &mut out,
                        &mut io.last_command,
                    );
                    if let ControlFlow::Break(Some(end)) = flow {
                        closing = Some(end);
                    }
                }
            }
            Ok(input) => (used, got) = (0, input.len()),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(Errno::ECONNRESET) => return End::Eof,
            Err(_) => return End::Error,
        }
    }
}

/// One scripted session run inside the parent, over a socketpair, before
/// the first client: a self-test of the whole exchange, and a way to have the
/// parent map the code pages a session runs (those of the script's `date`,
/// `help`, an unknown word, a blank line and `quit`; `who`, `cookie` and
/// `motd` read files and are left out, so their code is mapped by the
/// children that run it). After fork, code pages mapped by
/// both parent and child are shared; pages only a child maps would count as
/// that child's own memory. [`Rehearsal::prepare`] does the setup (socket
/// pair, script, buffers) and [`Rehearsal::run`] only the session, so that
/// the server can give back its start-up pages in between.
#[derive(Debug)]
pub struct Rehearsal {
    ours: OwnedFd,
    theirs: OwnedFd,
    signals: Signals,
    bufs: Buffers,
    reply: Vec<u8>,
}

impl Rehearsal {
    /// Sets up the socket pair with the client's script already queued.
    pub fn prepare(ctx: &Context<'_>) -> Result<Self, String> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("socketpair: {e}"))?;
        let script = b"date\r\nhelp\r\nnope\r\n\r\nquit\r\n";
        // SAFETY: a valid buffer; the socket buffer holds these few bytes.
        let n = unsafe { nix::libc::write(ours.as_raw_fd(), script.as_ptr().cast(), script.len()) };
        if n != script.len() as isize {
            return Err("cannot write the script".into());
        }
        Ok(Rehearsal {
            ours,
            theirs,
            signals: Signals::inert().map_err(|e| e.to_string())?,
            bufs: Buffers::new(ctx.cfg.limits.max_line_bytes as usize),
            reply: vec![0u8; 8192],
        })
    }

    /// Runs the session and checks the replies.
    pub fn run(mut self, ctx: &Context<'_>) -> Result<(), String> {
        let end = serve(&self.theirs, true, ctx, &self.signals, self.bufs);
        // SAFETY: reply is writable for its length; everything is queued.
        let n = unsafe {
            nix::libc::read(
                self.ours.as_raw_fd(),
                self.reply.as_mut_ptr().cast(),
                self.reply.len(),
            )
        };
        let reply = &self.reply[..usize::try_from(n).unwrap_or(0)];
        let has = |needle: &[u8]| reply.windows(needle.len()).any(|w| w == needle);
        if end != End::Quit || !reply.ends_with(b"Goodbye.\r\n") || !has(protocol::HELP) {
            return Err(format!(
                "ended {end:?}, replied {:?}",
                String::from_utf8_lossy(reply)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rehearsal_runs_a_whole_session() {
        let env = crate::config::Env {
            euid: 1000,
            xdg_runtime_dir: None,
        };
        let cfg = Config::defaults(&env);
        let hello = b"Welcome\r\nCommand? ".to_vec();
        let ctx = Context {
            cfg: &cfg,
            hello_tcp: &hello,
            hello_unix: &hello,
            busy: None,
        };
        assert_eq!(Rehearsal::prepare(&ctx).and_then(|r| r.run(&ctx)), Ok(()));
    }

    #[test]
    fn every_end_has_its_own_exit_status_and_reads_back() {
        let mut codes: Vec<i32> = End::ALL.iter().map(|e| e.exit_code()).collect();
        for e in End::ALL {
            assert_eq!(End::from_exit_code(e.exit_code()), e);
        }
        codes.dedup();
        assert_eq!(codes, (0..8).collect::<Vec<_>>());
        // Anything else a child can exit with is an error (101: a panic
        // that unwound; 127, 255: not ours).
        for other in [-1, 8, 101, 127, 255] {
            assert_eq!(End::from_exit_code(other), End::Error);
        }
        assert_eq!(End::BusyIdle.how(), "idle");
        assert_eq!(End::SessionTimeout.how(), "session_timeout");
        assert_eq!(End::TooLong.how(), "too_long");
    }

    #[test]
    fn rehearsal_reports_a_broken_exchange() {
        let env = crate::config::Env {
            euid: 1000,
            xdg_runtime_dir: None,
        };
        let mut cfg = Config::defaults(&env);
        // Lines of at most 3 bytes: "date" is too long, the session ends early.
        cfg.limits.max_line_bytes = 3;
        let hello = b"Welcome\r\n".to_vec();
        let ctx = Context {
            cfg: &cfg,
            hello_tcp: &hello,
            hello_unix: &hello,
            busy: None,
        };
        let err = Rehearsal::prepare(&ctx)
            .and_then(|r| r.run(&ctx))
            .expect_err("too-long line");
        assert!(err.contains("TooLong"), "{err}");
    }
}
