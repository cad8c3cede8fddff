//! How a session's child hears that the daemon is stopping.
//!
//! A child waits for its client inside a blocking `read` (see
//! [`crate::session::wait`]), where no signalfd can reach it. So the child
//! takes SIGTERM and SIGINT with a handler: the stop request is the one place
//! where code of ours runs in signal context, and only in children.
//!
//! - The parent installs the handler ([`install`]) while it keeps both
//!   signals blocked and reads them from its signalfd, so the handler never
//!   runs in the parent. A child inherits it with the mask.
//! - A child [`arm`]s it for its socket before its first wait: it notes the
//!   socket's fd, then unblocks the two signals (one `rt_sigprocmask`). A
//!   SIGTERM that came earlier was pending, and runs the handler now.
//! - The handler sets a flag and shuts the socket's read side. That is what
//!   makes the request impossible to lose: a `read` or `poll` already
//!   waiting returns (`EINTR`, or end of file), and one that starts after the
//!   handler ran returns at once, since the socket is already shut. The child
//!   then finds the flag ([`requested`]) and tells its client
//!   `Server shutting down.` (the write side stays open).
//! - A wait for the client to read (POLLOUT) is not woken by the read side's
//!   shutdown, so it blocks the two signals around its flag check and waits
//!   in `ppoll` with them unblocked (`Mask`): a signal between the check
//!   and the wait is delivered inside it.
//!
//! The fd and the flag are named (`no_mangle`) so that `bench/hot-symbols.txt`
//! can place the fd beside the C library's variables a child writes anyway:
//! arming then costs no page of its own.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::libc;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};

/// The socket the handler shuts, or -1 (the parent, the rehearsal).
#[unsafe(no_mangle)]
static hostinfod_session_fd: AtomicI32 = AtomicI32::new(-1);

/// Set by the handler: the daemon is stopping.
#[unsafe(no_mangle)]
static hostinfod_stopping: AtomicBool = AtomicBool::new(false);

/// The signals that stop a session.
fn set() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGINT);
    s
}

extern "C" fn on_stop(_: libc::c_int) {
    // Only atomics and one system call: async-signal-safe. errno is kept
    // for the code this interrupted.
    let saved = nix::errno::Errno::last_raw();
    hostinfod_stopping.store(true, Ordering::Relaxed);
    let fd = hostinfod_session_fd.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: shutdown(2) on a number; at worst EBADF.
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    }
    nix::errno::Errno::set_raw(saved);
}

/// Installs the handler for SIGTERM and SIGINT. Call with both blocked (the
/// parent reads them from its signalfd); handlers do not survive exec, so
/// each image installs it again.
pub fn install() -> nix::Result<()> {
    // No SA_RESTART: a wait the signal interrupts returns EINTR.
    let act = SigAction::new(SigHandler::Handler(on_stop), SaFlags::empty(), set());
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: on_stop is async-signal-safe (see above).
        unsafe { sigaction(s, &act) }?;
    }
    Ok(())
}

/// In a session's child, before its first wait: the handler now shuts
/// `fd`, and SIGTERM and SIGINT reach it.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn arm(fd: RawFd) {
    hostinfod_session_fd.store(fd, Ordering::Relaxed);
    // Cannot fail with a valid `how`; if it did, the parent's SIGKILL after
    // `shutdown_grace_secs` still ends this child.
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set()), None);
}

/// Whether the handler has run: the daemon is stopping.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn requested() -> bool {
    hostinfod_stopping.load(Ordering::Relaxed)
}

/// The signal mask of an armed child, with the stop signals blocked for a
/// check and a wait (see the module's doc).
#[derive(Debug)]
pub(crate) struct Mask {
    before: SigSet,
}

impl Mask {
    /// Blocks SIGTERM and SIGINT; the mask before is what [`Mask::during`]
    /// gives `ppoll`.
    pub fn block() -> Option<Mask> {
        let mut before = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set()), Some(&mut before))
            .ok()?;
        Some(Mask { before })
    }

    /// The mask to wait with: the stop signals as they were before.
    pub fn during(&self) -> &libc::sigset_t {
        self.before.as_ref()
    }
}

impl Drop for Mask {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.before), None);
    }
}
