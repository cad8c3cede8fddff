//! Accepting and forking: take a batch of connections off one listener, ask
//! admission about each, fork for those admitted, and in the child serve
//! the session and exit.
//!
//! The parent's work per connection is what only it can do: accept, the
//! admission verdict, fork, close, one table insert. The START record is
//! logged by the child.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::libc;
use nix::unistd::{ForkResult, fork};

use crate::admission::{Refusal, Verdict};
use crate::counters::Counter;
use crate::peer::{self, Peer, PeerPid, Source};
use crate::reaper::{Child, monotonic_us};
use crate::session;

use super::{Server, log_exit};

/// Most connections taken from one listener per wake-up, so one busy
/// listener cannot starve the others or the signalfd.
const ACCEPT_BATCH: usize = 64;

/// The spare descriptor (see [`Server::spare`]).
pub(super) fn open_spare() -> Option<OwnedFd> {
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

impl Server {
    /// Accepts and forks for up to a batch of pending clients on listener `idx`.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub(super) fn accept_on(&mut self, idx: usize) {
        let Some(listener) = self.listeners.get(idx) else {
            return;
        };
        let (lfd, tcp) = (listener.raw(), listener.addr.is_tcp());
        for _ in 0..ACCEPT_BATCH {
            // The loop asked `accepting` before polling; within the batch a
            // fork fills the last slot or a failure backs off (no clock
            // read per connection).
            if self.reaper.full() || self.admission.paused() {
                return;
            }
            // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: ss and len describe a writable sockaddr_storage; the
            // new fd is owned below.
            let fd = unsafe {
                libc::accept4(
                    lfd,
                    (&raw mut ss).cast(),
                    &mut len,
                    // Blocking: the child waits in read (see
                    // crate::session::wait); the parent's refusals are
                    // sent with MSG_DONTWAIT.
                    libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                match Errno::last() {
                    Errno::EAGAIN => return,
                    Errno::EINTR | Errno::ECONNABORTED | Errno::EPROTO => continue,
                    Errno::EMFILE | Errno::ENFILE => return self.fd_exhausted(lfd, Errno::last()),
                    e => {
                        log::warn!("accept on {}: {e}", self.listeners[idx].addr);
                        return self.admission.back_off();
                    }
                }
            }
            self.admission.accepted();
            // SAFETY: accept4 just returned this fd and nothing else owns it.
            let client = unsafe { OwnedFd::from_raw_fd(fd) };
            let Some(peer) = peer::of(&ss, tcp, &client) else {
                continue;
            };
            let ended = |r| log_exit(r, &mut self.counters);
            match self.admission.decide(&peer, &mut self.reaper, ended) {
                Verdict::Admit(source) => self.spawn(client, idx, tcp, peer, source),
                Verdict::Refuse(why) => {
                    self.counters.count_refusal(&why);
                    self.admission.refused(&why, &peer);
                    why.tell(&client, tcp);
                }
            }
        }
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn spawn(&mut self, client: OwnedFd, idx: usize, tcp: bool, peer: Peer, source: Source) {
        let start = self.fork_start(idx);
        // SAFETY: the parent is single-threaded, so the child starts with a
        // consistent heap and no lock held by a vanished thread.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => child(start, client, tcp, peer),
            Ok(ForkResult::Parent { child }) => {
                drop(start);
                let started_us = monotonic_us();
                self.counters.bump(Counter::Sessions);
                self.reaper
                    .insert(child.as_raw(), Child { source, started_us });
                drop(client);
            }
            Err(e) => {
                drop(start);
                self.counters.bump(Counter::ForkFailures);
                log::error!("fork for {}: {e}; backing off", peer.source);
                Refusal::NoFork.tell(&client, tcp);
                self.admission.back_off();
            }
        }
    }

    /// What the child of a connection on listener `idx` needs, gathered
    /// before the fork: the child cannot read the `Server` (see its doc).
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn fork_start(&self, idx: usize) -> Fork<'_> {
        // The listeners, the pidfile lock, the spare fd, the notify socket
        // and the exit pipe's read end are the parent's.
        let close = CloseList::of(
            self.listeners
                .iter()
                .map(|l| l.raw())
                .chain(self.publication.fds())
                .chain(self.admission.parent_fds())
                .chain(self.spare.as_ref().map(AsRawFd::as_raw_fd))
                .chain(std::iter::once(self.reaper.read_fd())),
        );
        Fork {
            close,
            via: self.listeners.get(idx).map(|l| &l.addr),
            ctx: self.template.context(&self.cfg, self.admission.busy_fd()),
            template: &self.template,
            announce: self.reaper.announce_fd(),
        }
    }

    #[cold]
    #[inline(never)] // out of the poll loop's frame (see Server::serve)
    fn fd_exhausted(&mut self, lfd: RawFd, e: Errno) {
        if self.admission.fds_exhausted() {
            log::warn!("accept: {e}; shedding pending connections until fds free up");
        }
        // Give up the spare fd to accept one pending connection and close it,
        // so the listener does not stay readable forever; then back off.
        self.spare = None;
        // SAFETY: accept4 with null address; the fd, if any, is closed at once.
        let fd = unsafe {
            libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: we own the fd just accepted.
            unsafe { libc::close(fd) };
        }
        self.spare = open_spare();
    }
}

/// What a session's child reads of the parent: references into the heap
/// children share, and plain numbers.
struct Fork<'a> {
    close: CloseList,
    via: Option<&'a crate::listen::Addr>,
    ctx: crate::session::Context<'a>,
    template: &'a crate::template::Template,
    announce: RawFd,
}

/// The child's whole life: close what belongs to the parent, serve, exit.
#[unsafe(link_section = ".text.hot.hostinfod")]
fn child(start: Fork<'_>, client: OwnedFd, tcp: bool, peer: Peer) -> ! {
    // Closing raw numbers (and never running their destructors) matters
    // for the pidfile: dropping its lock would unlock the description the
    // parent shares.
    start.close.close();
    crate::log::forked();
    if let Some(via) = start.via {
        // Display values formatted straight into the record: no String.
        log::info!(
            "START: {} pid={}{} via {}",
            peer,
            crate::log::pid(),
            PeerPid(peer.cred),
            via
        );
    }
    // SAFETY: this process never returns from here and never drops the
    // template.
    let bufs = unsafe { start.template.buffers() };
    let end = session::serve(&client, tcp, &start.ctx, bufs);
    // Announced before the client can see EOF: a client that connects
    // again at once must not be refused by max_per_source for this
    // session, whose child is still exiting (see crate::reaper).
    crate::reaper::announce(start.announce, std::process::id() as i32);
    // Closed here, not by _exit: _exit tears the address space down
    // before it closes files, so the client would wait for that teardown
    // to see EOF. Closing first lets it go on while this process unmaps.
    drop(client);
    // _exit: no destructors, no atexit handlers, no stdio flush of
    // buffers that are the parent's.
    crate::daemon::exit_now(end.exit_code())
}

/// The parent's fds a child closes: gathered by the parent (it alone can
/// read its parts), sorted and closed by the child in as few system calls
/// as the numbering allows: the parent opens its own fds one after another
/// at start-up, so they usually form one run that a single close_range(2)
/// closes. Up to [`CloseList::MAX`] are kept on the stack (no allocation);
/// more, which only a configuration of very many listeners has, go to a
/// list on the heap.
struct CloseList {
    set: [RawFd; CloseList::MAX],
    n: usize,
    rest: Vec<RawFd>,
}

impl CloseList {
    const MAX: usize = 32;

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn of(fds: impl Iterator<Item = RawFd>) -> Self {
        let mut list = CloseList {
            set: [0; Self::MAX],
            n: 0,
            rest: Vec::new(),
        };
        for fd in fds {
            if list.n < Self::MAX {
                list.set[list.n] = fd;
                list.n += 1;
            } else {
                list.rest.push(fd);
            }
        }
        list
    }

    /// In the child.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn close(mut self) {
        let set = &mut self.set[..self.n];
        set.sort_unstable();
        let mut i = 0;
        while i < set.len() {
            let mut j = i;
            while j + 1 < set.len() && set[j + 1] <= set[j] + 1 {
                j += 1;
            }
            // SAFETY: every fd in the run is one of the parent's, whose
            // owning objects are never used or dropped in this child.
            let r = unsafe { libc::close_range(set[i] as u32, set[j] as u32, 0) };
            if r != 0 {
                for &fd in &set[i..=j] {
                    // SAFETY: as above; close_range is missing on old kernels.
                    unsafe { libc::close(fd) };
                }
            }
            i = j + 1;
        }
        for &fd in &self.rest {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
        // Never dropped: this child frees nothing (see crate::template).
        std::mem::forget(self);
    }
}
