//! "The server is full", told to every child at once.
//!
//! While `max_children` sessions are live, sessions idle for
//! `busy_idle_secs` end, so that idle clients cannot keep new ones waiting
//! in the backlog. Only the parent knows when it is full, and it must not
//! track every session's idleness (its cost per session stays flat); so it
//! raises one flag that all children see, a pipe created before any fork:
//!
//! - the parent writes one byte when the server becomes full and reads it
//!   back when it is no longer full ([`crate::busy::Busy::set`]): the read end is
//!   readable exactly while the server is full (level-triggered), and the
//!   parent pays one system call per change, none per session;
//! - a child looks at the read end ([`crate::busy::Busy::read_fd`]) and never
//!   reads it. Only a session idle for `busy_idle_secs` can be shed, so
//!   a child looks ([`crate::busy::is_full`]) when that deadline comes: full,
//!   the session ends (`Timeout, goodbye.`); not full, it polls the pipe
//!   with its socket from then on, and ends as soon as the pipe turns
//!   readable, until a command makes it active again
//!   ([`crate::session::wait`]). So an active child never looks at the
//!   flag, and an idle one wakes for it at most once per change of it.
//!
//! Both ends are close-on-exec and non-blocking: each image of the daemon
//! has its own pipe, and a child forked by an earlier image sees its pipe
//! hang up when that image execs (no writer is left) and from then on keeps
//! only the plain idle timeout (hostinfod.toml(5) says so).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::libc;

/// The parent's side of the flag: the pipe and what it says now.
#[derive(Debug)]
pub struct Busy {
    read: OwnedFd,
    write: OwnedFd,
    full: bool,
}

impl Busy {
    /// A new pipe, saying "not full". Created before any fork.
    pub fn new() -> nix::Result<Self> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        Ok(Busy {
            read,
            write,
            full: false,
        })
    }

    /// Says whether the server is full. A system call only when this
    /// changes what the pipe says; call it whenever the number of live
    /// sessions may have crossed `max_children`.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn set(&mut self, full: bool) {
        if full == self.full {
            return;
        }
        let mut byte = [1u8];
        // SAFETY: a valid one-byte buffer and an fd this struct owns.
        let n = unsafe {
            if full {
                libc::write(self.write.as_raw_fd(), byte.as_ptr().cast(), 1)
            } else {
                libc::read(self.read.as_raw_fd(), byte.as_mut_ptr().cast(), 1)
            }
        };
        // A pipe holds the one byte, and only the parent reads it: neither
        // call fails in practice. If one did, `full` keeps saying what the
        // pipe says, and the next call tries again.
        if n == 1 {
            self.full = full;
        }
    }

    /// The end children look at.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The parent's end: closed in every child, so that the pipe hangs up
    /// for the children once the parent has gone (or exec'd).
    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }
}

/// In a child: is the server full right now? `None` when the pipe has hung
/// up (the image that made it has exec'd or exited) or cannot be polled: the
/// flag says nothing any more, and the child should stop watching it.
pub fn is_full(fd: RawFd) -> Option<bool> {
    let mut pfd = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    loop {
        // SAFETY: a valid array of one pollfd; a zero timeout never blocks.
        let r = unsafe { libc::poll(pfd.as_mut_ptr(), 1, 0) };
        if r >= 0 {
            break;
        }
        if Errno::last() != Errno::EINTR {
            return None;
        }
    }
    state(pfd[0].revents)
}

/// What `revents` of a poll for POLLIN on the read end says: see [`is_full`].
pub fn state(revents: i16) -> Option<bool> {
    if revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        None
    } else {
        Some(revents & libc::POLLIN != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_exactly_while_full() {
        let mut b = Busy::new().expect("pipe");
        assert_eq!(is_full(b.read_fd()), Some(false));
        b.set(true);
        assert_eq!(is_full(b.read_fd()), Some(true));
        // Repeated calls change nothing (and cost nothing).
        b.set(true);
        assert_eq!(is_full(b.read_fd()), Some(true));
        b.set(false);
        assert_eq!(is_full(b.read_fd()), Some(false));
        b.set(false);
        assert_eq!(is_full(b.read_fd()), Some(false));
        // Many crossings leave at most one byte in the pipe.
        for i in 0..1000 {
            b.set(i % 2 == 0);
        }
        assert_eq!(is_full(b.read_fd()), Some(false));
    }

    #[test]
    fn a_pipe_without_writer_says_nothing() {
        let b = Busy::new().expect("pipe");
        // SAFETY: a duplicate of the read end, owned by the test.
        let read = unsafe { libc::dup(b.read_fd()) };
        assert!(read >= 0);
        // SAFETY: just dup'ed.
        let read = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(read) };
        let mut full = b;
        full.set(true);
        drop(full);
        // Even with the byte still in it: the writer is gone.
        assert_eq!(is_full(read.as_raw_fd()), None);
    }

    #[test]
    fn revents_decoded() {
        assert_eq!(state(0), Some(false));
        assert_eq!(state(libc::POLLIN), Some(true));
        assert_eq!(state(libc::POLLIN | libc::POLLHUP), None);
        assert_eq!(state(libc::POLLNVAL), None);
    }
}
