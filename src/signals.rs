//! Signals, delivered as data: a signalfd read in the parent's poll loop.
//!
//! The parent blocks SIGCHLD, SIGHUP, SIGTERM and SIGINT and reads them from a
//! signalfd instead of running handlers, so no code of the parent runs in
//! signal context (nothing to keep async-signal-safe) and none can be lost
//! between a check and a wait. SIGPIPE is ignored: a client that went away shows up as
//! EPIPE from write, a normal end of session.
//!
//! Three facts about this mechanism shape the rest of the daemon:
//! - A forked child inherits the mask and the dispositions. A session's
//!   child waits in a blocking read, where no signalfd reaches it, so
//!   SIGTERM and SIGINT have a handler ([`crate::session::stop`]), installed
//!   here but run only in children: they unblock the two signals, the
//!   parent never does.
//! - The mask survives execve, and so do pending signals. The reload keeps the
//!   four signals blocked across its exec on purpose: a SIGHUP that arrives
//!   while the new image starts stays pending (it is not lost, and it does
//!   not kill the process with the default action) and is read from the new
//!   image's signalfd. [`Signals::install`] sets the mask explicitly, so every image
//!   starts from the same state whatever it inherited.
//! - Dispositions set to "ignore" survive exec too; handlers do not: each
//!   image installs the session's stop handler again.
//!
//! [`install`]: crate::signals::Signals::install

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Error, Result};

/// The signals the daemon handles through its signalfd.
pub fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
    ] {
        set.add(s);
    }
    set
}

/// What arrived, collapsed: the poll loop acts on flags, not on a queue.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// SIGCHLD: reap.
    pub child: bool,
    /// The child the SIGCHLD was about, when it reported an exit. Standard
    /// signals do not queue: other children may have ended while it was
    /// pending, so this is a hint for a cheap first waitpid, not a list.
    pub exited: Option<i32>,
    /// SIGHUP: reload.
    pub hangup: bool,
    /// SIGTERM or SIGINT: stop.
    pub terminate: bool,
}

/// The parent's signal source.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Ignores SIGPIPE, blocks the handled signals and opens the signalfd
    /// (non-blocking, close-on-exec).
    pub fn install() -> Result<Self> {
        ignore_sigpipe()?;
        // "Ignore" survives exec, so a daemon started with SIGCHLD ignored
        // (by a careless supervisor, or `-f` from such a parent) would have
        // its children reaped by the kernel behind its back: no SIGCHLD, no
        // zombie to wait for, and a child table that never shrinks until
        // max_children stops all service. The handled signals get their
        // default action back before they are blocked and read as data.
        for s in handled().iter() {
            // SAFETY: SIG_DFL runs no code of ours in signal context.
            unsafe { nix::sys::signal::signal(s, SigHandler::SigDfl) }
                .map_err(|e| Error::sys(format!("signal {}", s.as_str()), e))?;
        }
        // SIG_SETMASK, not SIG_BLOCK: exactly these four blocked, so a mask
        // inherited from whoever started us (with `-f` nothing else resets
        // it) does not silence other signals in the daemon and its sessions.
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&handled()), None)
            .map_err(|e| Error::sys("sigprocmask", e))?;
        crate::session::stop::install().map_err(|e| Error::sys("sigaction SIGTERM", e))?;
        let fd = SignalFd::with_flags(&handled(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::sys("signalfd", e))?;
        Ok(Signals { fd })
    }

    /// Reads every queued signal and returns what is pending.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    #[inline(never)] // its buffer stays out of the poll loop's frame
    pub fn drain(&self) -> Pending {
        let mut p = Pending::default();
        // Standard signals do not queue, so at most one record per handled
        // signal (four) can be pending: one read of a buffer with room for
        // more than that takes them all, without a second read to see EAGAIN.
        // The buffer is left uninitialised (see crate::fdio).
        const ROOM: usize = 5;
        let mut buf = std::mem::MaybeUninit::<[nix::libc::signalfd_siginfo; ROOM]>::uninit();
        loop {
            let records = match crate::fdio::read_records(self.fd.as_raw_fd(), &mut buf) {
                Ok(r) if !r.is_empty() => r,
                _ => return p,
            };
            let got = records.len();
            for info in records {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {
                        p.child = true;
                        if matches!(
                            info.ssi_code,
                            nix::libc::CLD_EXITED | nix::libc::CLD_KILLED | nix::libc::CLD_DUMPED
                        ) {
                            p.exited = Some(info.ssi_pid as i32);
                        }
                    }
                    Ok(Signal::SIGHUP) => p.hangup = true,
                    Ok(Signal::SIGTERM | Signal::SIGINT) => p.terminate = true,
                    _ => {}
                }
            }
            if got < ROOM {
                return p;
            }
        }
    }

    /// The raw fd, for poll.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// SIG_IGN for SIGPIPE. Survives fork and exec, which is what we want.
pub fn ignore_sigpipe() -> Result<()> {
    // SAFETY: installing SIG_IGN runs no code in signal context.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map(drop)
        .map_err(|e| Error::sys("signal SIGPIPE", e))
}

/// Resets every catchable signal to its default action and clears the mask:
/// the first step of daemon(7), so nothing inherited from the launching shell
/// (an ignored SIGTERM, a blocked SIGHUP) changes how the daemon behaves.
pub fn reset_all() {
    for s in Signal::iterator() {
        if matches!(s, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { nix::sys::signal::signal(s, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
