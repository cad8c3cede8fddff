//! One client's session, run in the forked child.
//!
//! The child owns one connected socket, the read end of the parent's "server
//! is full" pipe ([`crate::busy`]) and a handler for the stop
//! ([`stop`]). It waits for its client in a blocking read timed by the
//! nearest of its deadlines ([`wait`]): the idle deadline
//! (`idle_timeout_secs` after the last command, or `busy_idle_secs` after
//! it while the server is full) and the session deadline
//! (`session_timeout_secs` after the start).
//!
//! Only a command moves the idle deadline: a non-blank line. Bytes of an
//! unfinished line, blank lines and Telnet negotiation do not, so a client
//! that trickles cannot hold a session past its idle timeout.
//!
//! Input goes through the [`crate::framing::Framer`], each line through [`crate::protocol`], and
//! replies collect in one buffer that is written when the input read so far
//! is used up or the buffer holds [`crate::session::OUT_HIGH`] bytes. While replies wait for
//! the client, the child reads nothing more: it waits for room (POLLOUT), writes
//! what fits, and goes back to the input only once all is sent. So a client
//! that sends and does not read holds at most one read of input and
//! [`crate::session::OUT_HIGH`] bytes plus one reply, whatever it sends; a client that reads
//! still gets any number of pipelined lines answered, in order.
//!
//! How a session ended is the child's exit status ([`End`]), which the
//! parent reads with waitpid.

pub mod stop;
pub mod wait;

use std::mem::MaybeUninit;
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::config::Config;
use crate::framing::{self, Event, Framer};
use crate::protocol::{self, Command, Outcome};

use wait::{Got, Wait, Waiter};

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

/// Best effort: one last line before closing, when no reply is still
/// waiting to go before it. One non-blocking write, built in the session's
/// output buffer (allocated by the parent), so no malloc in the child and no
/// wait for a client that does not read.
fn farewell(io: &Waiter, out: &mut Vec<u8>, sent: usize, line: &[u8], eol: &[u8]) {
    if sent < out.len() {
        return;
    }
    out.clear();
    crate::text::push_line(out, line, eol);
    let _ = io.write_some(out);
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

/// Serves one client until it quits, leaves, times out or the daemon
/// stops, in a session's child: arms the stop handler for `sock` first
/// ([`stop::arm`]).
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn serve(sock: &OwnedFd, tcp: bool, ctx: &Context<'_>, bufs: Buffers) -> End {
    stop::arm(sock.as_raw_fd());
    run(sock, tcp, ctx, bufs, true)
}

#[unsafe(link_section = ".text.hot.hostinfod")]
fn run(sock: &OwnedFd, tcp: bool, ctx: &Context<'_>, bufs: Buffers, armed: bool) -> End {
    let cfg = ctx.cfg;
    let mut io = Waiter::new(sock.as_raw_fd(), ctx, armed, Instant::now());
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
    let mut buf = MaybeUninit::<[u8; 512]>::uninit();
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
        let ended = if sent < out.len() {
            // Replies wait for the client: nothing is read until they are
            // sent.
            match io.writable() {
                Wait::Ready => continue,
                Wait::Ended(end) => end,
            }
        } else if let Some(end) = closing {
            return end;
        } else if used < got {
            continue;
        } else {
            // All input is answered: read more.
            match io.read(&mut buf) {
                Got::Input(n) => {
                    (used, got) = (0, n);
                    continue;
                }
                Got::Eof => {
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
                    continue;
                }
                Got::Gone(end) => return end,
                Got::Ended(end) => end,
            }
        };
        let line = match ended {
            End::Shutdown => protocol::SHUTTING_DOWN,
            _ => protocol::TIMEOUT,
        };
        if closing.is_none() && ended != End::Error {
            farewell(&io, &mut out, sent, line, eol);
        }
        return closing.unwrap_or(ended);
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
            bufs: Buffers::new(ctx.cfg.limits.max_line_bytes as usize),
            reply: vec![0u8; 8192],
        })
    }

    /// Runs the session and checks the replies.
    pub fn run(mut self, ctx: &Context<'_>) -> Result<(), String> {
        // Unarmed: this is the parent, whose stop signals stay blocked.
        let end = run(&self.theirs, true, ctx, self.bufs, false);
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

    fn config() -> Config {
        Config::defaults(&crate::config::Env {
            euid: 1000,
            xdg_runtime_dir: None,
        })
    }

    /// A rehearsal's context: `hello` on both transports, no busy pipe.
    fn context<'a>(cfg: &'a Config, hello: &'a [u8]) -> Context<'a> {
        Context {
            cfg,
            hello_tcp: hello,
            hello_unix: hello,
            busy: None,
        }
    }

    #[test]
    fn rehearsal_runs_a_whole_session() {
        let cfg = config();
        let ctx = context(&cfg, b"Welcome\r\nCommand? ");
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
        let mut cfg = config();
        // Lines of at most 3 bytes: "date" is too long, the session ends early.
        cfg.limits.max_line_bytes = 3;
        let ctx = context(&cfg, b"Welcome\r\n");
        let err = Rehearsal::prepare(&ctx)
            .and_then(|r| r.run(&ctx))
            .expect_err("too-long line");
        assert!(err.contains("TooLong"), "{err}");
    }
}
