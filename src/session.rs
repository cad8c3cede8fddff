//! One client's session, run in the forked child.
//!
//! The child owns one connected socket (non-blocking) and the signalfd it
//! inherited, on which it hears the SIGTERM its parent sends at shutdown. It
//! polls both with a timeout that is the nearer of two deadlines: the idle
//! deadline (`idle_timeout_secs` after the last input) and the session
//! deadline (`session_timeout_secs` after the start). Output waits for the
//! client under the same deadlines, so a client that stops reading cannot
//! hold a child forever either. Input goes through the [`Framer`], each line
//! through [`protocol`], and the replies to everything one read brought are
//! written with a single write.
//!
//! [`Framer`]: crate::framing::Framer

use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::config::Config;
use crate::framing::{Event, Framer};
use crate::protocol::{self, Outcome};
use crate::signals::Signals;

/// What the session needs from the parent, prepared once before any fork.
#[derive(Debug)]
pub struct Context<'a> {
    /// The configuration in force.
    pub cfg: &'a Config,
    /// Greeting line, CRLF, prompt: the first bytes of a TCP session.
    pub hello_tcp: &'a [u8],
    /// Greeting line, LF, prompt: the first bytes of a Unix session.
    pub hello_unix: &'a [u8],
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
            out: Vec::with_capacity(4096),
            line: Vec::with_capacity(max_line.min(4096)),
        }
    }
}

/// How a session ended, for the log and the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `quit`, or EOF from the client.
    Normal,
    /// Idle or session timeout.
    Timeout,
    /// The input line was too long.
    LineTooLong,
    /// The daemon is stopping.
    Shutdown,
    /// The client went away or the socket failed.
    Gone,
}

impl End {
    /// The child's exit status: 0 for a normal end, distinct codes otherwise
    /// so the parent's EXIT record says why without another channel.
    pub fn exit_code(self) -> i32 {
        match self {
            End::Normal => 0,
            End::Gone => 1,
            End::Timeout => 2,
            End::LineTooLong => 3,
            End::Shutdown => 4,
        }
    }
}

struct Io<'s> {
    fd: RawFd,
    signals: &'s Signals,
    session_deadline: Instant,
    idle: Duration,
}

enum Wait {
    Ready,
    Timeout,
    Terminate,
    Failed,
}

impl Io<'_> {
    /// Waits until `events` are ready on the socket, a deadline passes, or a
    /// terminating signal arrives.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn wait(&self, events: i16, deadline: Instant) -> Wait {
        loop {
            let now = Instant::now();
            let deadline = deadline.min(self.session_deadline);
            if now >= deadline {
                return Wait::Timeout;
            }
            let ms = (deadline - now).as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [
                nix::libc::pollfd {
                    fd: self.fd,
                    events,
                    revents: 0,
                },
                nix::libc::pollfd {
                    fd: self.signals.raw(),
                    events: nix::libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: fds is a valid array of two pollfd for the whole call.
            let r = unsafe { nix::libc::poll(fds.as_mut_ptr(), 2, ms.max(1)) };
            if r < 0 {
                if Errno::last() == Errno::EINTR {
                    continue;
                }
                return Wait::Failed;
            }
            if fds[1].revents != 0 && self.signals.drain().terminate {
                return Wait::Terminate;
            }
            if fds[0].revents != 0 {
                return Wait::Ready;
            }
        }
    }

    /// Writes all of `buf` before the deadlines. Fails with how the session
    /// ends if the client is gone, too slow, or the daemon is stopping.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn write_all(&self, mut buf: &[u8]) -> Result<(), End> {
        let deadline = Instant::now() + self.idle;
        while !buf.is_empty() {
            // SAFETY: buf is a valid slice for the length given.
            let n = unsafe { nix::libc::write(self.fd, buf.as_ptr().cast(), buf.len()) };
            if n >= 0 {
                buf = &buf[n as usize..];
                continue;
            }
            match Errno::last() {
                Errno::EINTR => {}
                Errno::EAGAIN => match self.wait(nix::libc::POLLOUT, deadline) {
                    Wait::Ready => {}
                    Wait::Timeout => return Err(End::Timeout),
                    Wait::Terminate => return Err(End::Shutdown),
                    Wait::Failed => return Err(End::Gone),
                },
                _ => return Err(End::Gone),
            }
        }
        Ok(())
    }

    /// Best effort: one last line before closing, built in the session's
    /// output buffer (allocated by the parent), so no malloc in the child.
    fn farewell(&self, out: &mut Vec<u8>, line: &[u8], eol: &[u8]) {
        out.clear();
        crate::text::push_line(out, line, eol);
        let _ = self.write_all(out);
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
    let io = Io {
        fd: sock.as_raw_fd(),
        signals,
        session_deadline: started + Duration::from_secs(cfg.limits.session_timeout_secs),
        idle: Duration::from_secs(cfg.limits.idle_timeout_secs),
    };
    let eol: &[u8] = if tcp { b"\r\n" } else { b"\n" };
    let prompt = cfg.protocol.prompt.as_bytes();
    if let Err(end) = io.write_all(if tcp { ctx.hello_tcp } else { ctx.hello_unix }) {
        return end;
    }
    let max_line = cfg.limits.max_line_bytes as usize;
    // Never dropped: the child _exits after the session, and a free() would
    // only dirty more of the allocator's pages shared with the parent. (The
    // start-up rehearsal runs one session in the parent and so leaks its two
    // buffers, once.)
    let mut framer = std::mem::ManuallyDrop::new(Framer::with_buffer(max_line, bufs.line));
    let mut out = std::mem::ManuallyDrop::new(bufs.out);
    out.clear();
    // Small and left uninitialised on purpose (see crate::fdio): every stack
    // page a fresh child writes is a copy-on-write fault; commands are short
    // lines (a longer input takes more reads).
    let mut buf = std::mem::MaybeUninit::<[u8; 1024]>::uninit();
    let mut idle_deadline = started + io.idle;
    loop {
        match io.wait(nix::libc::POLLIN, idle_deadline) {
            Wait::Ready => {}
            Wait::Timeout => {
                io.farewell(&mut out, protocol::TIMEOUT, eol);
                return End::Timeout;
            }
            Wait::Terminate => {
                io.farewell(&mut out, protocol::SHUTTING_DOWN, eol);
                return End::Shutdown;
            }
            Wait::Failed => return End::Gone,
        }
        let input = match crate::fdio::read_records(io.fd, &mut buf) {
            Ok([]) => return End::Normal, // EOF: the client is done
            Ok(input) => input,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(_) => return End::Gone,
        };
        idle_deadline = Instant::now() + io.idle;
        let flow = framer.feed(input, |event| match event {
            Event::Line(line) => {
                match protocol::respond(protocol::parse(line), &cfg.commands, eol, &mut out) {
                    Outcome::Continue => {
                        out.extend_from_slice(prompt);
                        ControlFlow::Continue(())
                    }
                    Outcome::Close => ControlFlow::Break(End::Normal),
                }
            }
            Event::TooLong => {
                use std::io::Write as _;
                let _ = write!(out, "Error: line too long (max {max_line} bytes).");
                out.extend_from_slice(eol);
                ControlFlow::Break(End::LineTooLong)
            }
        });
        if !out.is_empty() {
            if let Err(end) = io.write_all(&out) {
                return end;
            }
            out.clear();
        }
        if let ControlFlow::Break(end) = flow {
            return end;
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
        if end != End::Normal || !reply.ends_with(b"Goodbye.\r\n") || !has(protocol::HELP) {
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
        };
        assert_eq!(Rehearsal::prepare(&ctx).and_then(|r| r.run(&ctx)), Ok(()));
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
        };
        let err = Rehearsal::prepare(&ctx)
            .and_then(|r| r.run(&ctx))
            .expect_err("too-long line");
        assert!(err.contains("LineTooLong"), "{err}");
    }
}
