//! The parent: a coordinator of owned parts, and its poll loop.
//!
//! | part | file | owns |
//! |---|---|---|
//! | listeners | `listen.rs` | the listening sockets, bound or adopted |
//! | reaper | `reaper.rs` | the live sessions and the one reaping path |
//! | admission | `admission.rs` | every decision taken at accept time |
//! | publication | `publish.rs` | pidfile, status file, systemd notify and watchdog |
//! | template | `template.rs` | what every session starts from |
//! | FIFO writers | `fifo.rs` | the `[listen] fifo` endpoints and their writer children |
//!
//! and here: start-up (`start.rs`: a fresh start and a start after a
//! reload, sharing one finish), accepting and forking (`accept.rs`), the
//! reload (`reload.rs`) and the stop (`stop.rs`).
//!
//! The parent is one thread, always: it forks for every client, and fork in
//! a multi-threaded process is unsafe. It waits in one `poll` over the
//! signalfd and the listeners — only the signalfd while admission is not
//! accepting — and reads signals as data.
//!
//! The loop's stack frame, with everything inlined into it, is written on
//! every turn, and each of its pages written after a fork is a
//! copy-on-write fault (and a page an idle child then keeps to itself). So
//! the paths that run rarely or do much (reload, stop, the status and
//! metrics refresh, refusals, the full reaping pass, fd exhaustion) are
//! `#[inline(never)]`: their locals live in frames of their own, below the
//! loop's, only when they run.
//! Where the loop's frame falls matters as much as its size: it starts just
//! below a page boundary ([`crate::layout::at_page_top`]), so that a fork
//! writes one page of the parent's stack, not two.

mod accept;
mod reload;
mod start;
mod stop;

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;

use crate::admission::Admission;
use crate::config::{Config, Env};
use crate::counters::{Counter, Counters};
use crate::error::Result;
use crate::fifo::Fifos;
use crate::listen::Listener;
use crate::publish::Publication;
use crate::reaper::{Ended, Reaped, Reaper, monotonic_us};
use crate::session::End;
use crate::signals::Signals;
use crate::template::Template;

pub use start::run;

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-c FILE`.
    pub config: Option<PathBuf>,
    /// `-f`.
    pub foreground: bool,
}

/// How to launch the next image of this daemon: fixed at the first start
/// and handed over, so every reload re-executes the same way.
#[derive(Debug, Clone)]
struct Launch {
    /// The binary, resolved absolute at the first start.
    exe: PathBuf,
    /// argv, as given.
    args: Vec<OsString>,
    /// The configuration file in force, absolute (None: built-in defaults).
    config: Option<PathBuf>,
    /// The listeners came from systemd's socket activation.
    activated: bool,
}

/// The running daemon.
///
/// It lives in memory no child inherits ([`ParentOnlyBox`]): the loop
/// writes its fields on every turn, and where children shared its pages,
/// each page written after a fork would be a copy-on-write fault. So a
/// forked child never touches it: what a session reads (configuration,
/// template) is boxed, on the heap children share, and reached
/// through the references `accept.rs`'s `Fork` gathers before the fork.
///
/// [`ParentOnlyBox`]: crate::parentonly::ParentOnlyBox
#[derive(Debug)]
pub struct Server {
    cfg: Box<Config>,
    env: Env,
    launch: Launch,
    signals: Signals,
    listeners: Vec<Listener>,
    /// A reserved descriptor, given up to accept-and-close a connection when
    /// the fd table is full, so the backlog drains instead of spinning poll.
    spare: Option<OwnedFd>,
    reaper: Reaper,
    admission: Admission,
    publication: Publication,
    template: Box<Template>,
    fifos: Fifos,
    counters: Counters,
}

impl Server {
    /// The poll loop. Returns when the daemon has stopped.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn serve(&mut self) -> Result<()> {
        // On the stack when it fits (see crate::template); built once, as
        // the listeners do not change within an image.
        const ON_STACK: usize = 16;
        let idle = libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut stack = [idle; ON_STACK];
        let mut spill = Vec::new();
        let all: &mut [libc::pollfd] = if self.listeners.len() < ON_STACK {
            &mut stack[..1 + self.listeners.len()]
        } else {
            spill.resize(1 + self.listeners.len(), idle);
            &mut spill
        };
        all[0].fd = self.signals.raw();
        for (slot, l) in all[1..].iter_mut().zip(&self.listeners) {
            slot.fd = l.raw();
        }
        loop {
            let accepting = self.admission.accepting(Instant::now(), &self.reaper);
            let fds = if accepting {
                &mut all[..]
            } else {
                &mut all[..1]
            };
            // SAFETY: fds is a valid, initialised array of its length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, self.poll_timeout()) };
            if n < 0 && Errno::last() != Errno::EINTR {
                log::error!("poll: {}", Errno::last());
                self.admission.back_off();
            }
            let now = Instant::now();
            self.publication
                .tick(now, self.reaper.len(), &self.counters);
            self.admission.tick(now);
            if self.fifos.next_due().is_some_and(|t| now >= t) {
                let fds = self.parent_fds();
                self.fifos.start_due(&fds);
            }
            self.reaper.tick(now, |r| log_exit(r, &mut self.counters));
            if n > 0 && fds[0].revents != 0 {
                let got = self.signals.drain();
                if got.child {
                    self.reaper
                        .on_sigchld(got.exited, |r| log_exit(r, &mut self.counters));
                    self.fifos.on_sigchld();
                }
                if got.terminate {
                    return self.shutdown();
                }
                if got.hangup {
                    self.reload(); // returns only if the reload was rejected
                    continue;
                }
            }
            if n > 0 {
                let ready = fds[1..].iter().map(|p| p.revents != 0);
                for (i, _) in ready.enumerate().filter(|(_, r)| *r) {
                    self.accept_on(i);
                }
            }
        }
    }

    /// Milliseconds until the nearest deadline of any part (-1: none).
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn poll_timeout(&self) -> i32 {
        let deadline = [
            self.reaper.deadline(),
            self.admission.deadline(),
            self.publication.deadline(&self.counters),
            self.fifos.next_due(),
        ]
        .into_iter()
        .flatten()
        .min();
        match deadline {
            None => -1,
            // Rounded up, so poll does not wake just before the deadline
            // and go round once more for the remaining fraction.
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_micros()
                .div_ceil(1000)
                .clamp(1, i32::MAX as u128) as i32,
        }
    }
}

impl Server {
    /// Every descriptor of the parent that a child it forks must not keep.
    fn parent_fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd as _;
        self.listeners
            .iter()
            .map(Listener::raw)
            .chain(self.publication.fds())
            .chain(self.admission.parent_fds())
            .chain(self.spare.as_ref().map(|f| f.as_raw_fd()))
            .chain([self.reaper.read_fd(), self.signals.raw()])
            .collect()
    }

    /// What `-s status` lists: the listeners, then the FIFO endpoints.
    fn endpoints(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|l| l.addr.to_string())
            .chain(self.fifos.listeners())
            .collect()
    }
}

/// The EXIT record of a reaped child, and the count of its end: how the
/// session ended is its exit status (see [`crate::session::End`]); a child
/// killed by a signal ended in error.
#[unsafe(link_section = ".text.hot.hostinfod")]
fn log_exit(r: Reaped, counters: &mut Counters) {
    let Some(c) = r.child else {
        log::info!("EXIT: pid={} {} (not a session)", r.pid, r.how);
        return;
    };
    let end = match r.how {
        Ended::Exited(code) => End::from_exit_code(code),
        Ended::Signaled(_) => End::Error,
    };
    counters.bump(Counter::of_end(end));
    if log::log_enabled!(log::Level::Info) {
        let ms = monotonic_us().saturating_sub(c.started_us) as f64 / 1000.0;
        log::info!(
            "EXIT: pid={} how={} {} duration={ms:.1}ms from {}",
            r.pid,
            end.how(),
            r.how,
            c.source
        );
    }
}
