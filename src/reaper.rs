//! The reaper: the table of live sessions and the one way they leave it.
//!
//! Each child is recorded by PID with its client's source (the per-source
//! key [`crate::admission`] counts by) and its start on CLOCK_MONOTONIC,
//! which keeps counting across the reload's exec. Per-source counts go up
//! when a PID is recorded and down only when waitpid reaps that PID, so they
//! cannot drift however sessions end (the bug of xinetd#21 and
//! systemd#20685, where counts went down on another event than the one
//! they went up on).
//!
//! Reaping has one path, [`Reaper::on_sigchld`], and it costs the same
//! whatever the number of live children:
//! - every child writes its PID to the exit pipe just before `_exit`, and the
//!   SIGCHLD names one child; each named or announced PID is reaped with a
//!   `waitpid` for that PID, which on Linux does not walk the list of
//!   children (`waitpid(-1)` does, and with ten thousand idle sessions that
//!   walk dominated every reap);
//! - a child that ended without a word (a crash, SIGKILL) is reaped by a
//!   full `waitpid(-1, WNOHANG)` pass, owed after every SIGCHLD and run at
//!   most [`SCAN_INTERVAL`] later (longer with thousands of live sessions,
//!   up to [`SCAN_MAX`]: [`Reaper::deadline`]), or at once when
//!   every slot is taken, because a zombie then holds a slot a client waits
//!   for.
//!
//! Lookups never scan: the table is keyed by PID ([`crate::pidtable`], laid
//! out so that recording a child writes one slot) and the per-source counts
//! are a hash table, so the accept path's count and the reaper's removal
//! cost the same with ten thousand live sessions as with ten.
//!
//! Both are written at every fork and every reap, so both live in memory no
//! child inherits ([`crate::parentonly`]); the per-source counts are kept
//! only when `max_per_source` can bind (it is below the number of slots),
//! and a source whose count falls to zero keeps its entry (`PerSource`): a
//! client that comes and goes then rewrites one count instead of inserting
//! and removing an entry.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::parentonly::ParentOnly;
use crate::peer::Source;
use crate::pidtable::PidTable;

/// Longest a child that ended without announcing it stays a zombie while
/// slots are free.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(100);
/// Live sessions per [`SCAN_INTERVAL`] of delay before the full pass.
pub const SCAN_PER: usize = 1000;
/// The longest delay before the full pass, however many sessions are live.
pub const SCAN_MAX: Duration = Duration::from_secs(1);

/// One live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    /// The client's source, as counted for the per-source limits.
    pub source: Source,
    /// CLOCK_MONOTONIC microseconds at fork.
    pub started_us: u64,
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// exit(code)
    Exited(i32),
    /// Killed by a signal.
    Signaled(nix::sys::signal::Signal),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Exited(c) => write!(f, "status={c}"),
            Ended::Signaled(s) => write!(f, "signal={}", s.as_str()),
        }
    }
}

/// A child just reaped: its PID, what the table knew of it (None for a
/// process that was not a session) and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// The PID.
    pub pid: i32,
    /// The session it served, if it was one.
    pub child: Option<Child>,
    /// Its end.
    pub how: Ended,
}

/// Entries at zero kept in [`PerSource`] before they are dropped together.
const ZEROS_KEPT: usize = 1024;

/// Live sessions per source: an open-addressing table (linear probing,
/// keyed by a hash with a per-process random key, so a client cannot aim
/// addresses at one run of it) in memory no child inherits
/// ([`crate::parentonly`]). It is written at every fork and every reap, so
/// on the heap each of its pages written after a fork would be a
/// copy-on-write fault and a page each idle child keeps; no crate's map
/// lives in such memory without an allocator of our own written for it.
/// The table is at most half full of live sources plus at most
/// [`ZEROS_KEPT`] entries at zero; it is rebuilt (grown, or rid of its
/// zeros) when that no longer holds, which allocates, rarely.
#[derive(Debug)]
struct PerSource {
    slots: ParentOnly<Entry>,
    /// Entries with a key, at zero or not.
    used: usize,
    /// Entries at zero, dropped together past [`ZEROS_KEPT`].
    zeros: usize,
    hasher: std::hash::RandomState,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Source>,
    count: u32,
}

const EMPTY: Entry = Entry {
    key: None,
    count: 0,
};

impl Default for PerSource {
    fn default() -> Self {
        PerSource {
            slots: ParentOnly::new(64, EMPTY),
            used: 0,
            zeros: 0,
            hasher: std::hash::RandomState::new(),
        }
    }
}

impl PerSource {
    /// The index of `source`'s entry, or of the empty one where it would go.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn find(&self, source: &Source) -> Result<usize, usize> {
        use std::hash::BuildHasher as _;
        let mask = self.slots.len() - 1;
        let mut i = self.hasher.hash_one(source) as usize & mask;
        loop {
            match self.slots[i].key {
                Some(k) if k == *source => return Ok(i),
                Some(_) => i = (i + 1) & mask,
                None => return Err(i),
            }
        }
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn get(&self, source: &Source) -> u32 {
        self.find(source).map_or(0, |i| self.slots[i].count)
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn up(&mut self, source: Source) {
        match self.find(&source) {
            Ok(i) => {
                if self.slots[i].count == 0 {
                    self.zeros -= 1;
                }
                self.slots[i].count += 1;
            }
            Err(i) => {
                self.slots[i] = Entry {
                    key: Some(source),
                    count: 1,
                };
                self.used += 1;
                if self.used * 2 > self.slots.len() {
                    self.rebuild(self.zeros <= ZEROS_KEPT);
                }
            }
        }
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn down(&mut self, source: &Source) {
        if let Ok(i) = self.find(source) {
            let n = &mut self.slots[i].count;
            if *n > 0 {
                *n -= 1;
                if *n == 0 {
                    self.zeros += 1;
                    if self.zeros > ZEROS_KEPT {
                        self.rebuild(false);
                    }
                }
            }
        }
    }

    /// Moves the entries (those at zero too if `keep_zeros`) into a table
    /// at most half full.
    #[cold]
    fn rebuild(&mut self, keep_zeros: bool) {
        let kept: Vec<Entry> = self
            .slots
            .iter()
            .filter(|e| e.key.is_some() && (keep_zeros || e.count > 0))
            .copied()
            .collect();
        let len = (kept.len() * 2 + 1).next_power_of_two().max(64);
        self.slots = ParentOnly::new(len, EMPTY);
        self.used = 0;
        self.zeros = 0;
        for e in kept {
            let Some(key) = e.key else { continue };
            if let Err(i) = self.find(&key) {
                self.slots[i] = e;
                self.used += 1;
                self.zeros += usize::from(e.count == 0);
            }
        }
    }

    /// Sources with an entry, at zero or not.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.used
    }
}

/// The live children and the reaping of them.
#[derive(Debug)]
pub struct Reaper {
    table: PidTable,
    /// None when `max_per_source` cannot bind.
    per_source: Option<PerSource>,
    /// Slots: from this many live sessions on a full pass is not deferred.
    capacity: usize,
    exits: ExitPipe,
    /// Announced PIDs that were not yet zombies when read.
    exiting: Vec<i32>,
    /// When the owed full pass runs.
    scan_due: Option<Instant>,
}

impl Reaper {
    /// An empty table for up to `capacity` sessions, with its exit pipe,
    /// counting sessions per source if `max_per_source` is below `capacity`.
    pub fn new(capacity: usize, max_per_source: u32) -> nix::Result<Self> {
        Ok(Reaper {
            table: PidTable::new(),
            per_source: ((max_per_source as usize) < capacity).then(PerSource::default),
            capacity,
            exits: ExitPipe::new()?,
            exiting: Vec::with_capacity(64),
            scan_due: None,
        })
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// True when every slot is taken.
    pub fn full(&self) -> bool {
        self.table.len() >= self.capacity
    }

    /// Live sessions from `source`, leaving out those that have announced
    /// their end but were not reapable yet: their clients have had EOF and
    /// may already be connecting again.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn count(&self, source: &Source) -> u32 {
        let Some(per_source) = &self.per_source else {
            return 0;
        };
        let live = per_source.get(source);
        if live == 0 || self.exiting.is_empty() {
            return live;
        }
        let ending = self
            .exiting
            .iter()
            .filter(|&&pid| self.table.get(pid).is_some_and(|c| c.source == *source))
            .count() as u32;
        live.saturating_sub(ending)
    }

    /// Records a new child. A PID cannot repeat: the kernel does not reuse
    /// it until we have reaped it, and reaping removes it.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn insert(&mut self, pid: i32, child: Child) {
        let old = self.table.insert(pid, child);
        if let Some(counts) = &mut self.per_source {
            if let Some(old) = old {
                counts.down(&old.source);
            }
            counts.up(child.source);
        }
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn remove(&mut self, pid: i32) -> Option<Child> {
        let child = self.table.remove(pid)?;
        if let Some(counts) = &mut self.per_source {
            counts.down(&child.source);
        }
        Some(child)
    }

    /// The live PIDs and their sessions.
    pub fn iter(&self) -> impl Iterator<Item = (i32, Child)> + '_ {
        self.table.iter()
    }

    /// Takes over the sessions a previous image served, dropping any entry
    /// that is not a child of this process (one no waitpid could ever reap
    /// would hold its source's count forever).
    pub fn adopt(&mut self, children: impl IntoIterator<Item = (i32, Child)>) {
        use nix::sys::wait::{Id, waitid};
        for (pid, child) in children {
            // WNOWAIT: look without reaping; ECHILD: not our child.
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            if pid > 0
                && waitid(Id::Pid(Pid::from_raw(pid)), flags) != Err(nix::errno::Errno::ECHILD)
            {
                self.insert(pid, child);
            }
        }
    }

    /// The write end children announce their exit on (see [`announce`]).
    pub fn announce_fd(&self) -> RawFd {
        self.exits.write.as_raw_fd()
    }

    /// The read end, which a forked child closes.
    pub fn read_fd(&self) -> RawFd {
        self.exits.read.as_raw_fd()
    }

    /// After a SIGCHLD naming `named` (when the signal said): reap it and
    /// every announced child, and owe a full pass for those that ended
    /// without a word.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn on_sigchld(&mut self, named: Option<i32>, mut ended: impl FnMut(Reaped)) {
        if let Some(pid) = named {
            self.wait_for(pid, Some(WaitPidFlag::WNOHANG), &mut ended);
        }
        self.reap_announced(&mut ended);
        if self.full() {
            self.reap_all(&mut ended);
        } else if self.scan_due.is_none() {
            self.scan_due = Some(Instant::now() + self.scan_interval());
        }
    }

    /// How long after a SIGCHLD the full pass runs: [`SCAN_INTERVAL`], and
    /// one more for every further [`SCAN_PER`] live sessions, up to
    /// [`SCAN_MAX`]. A pass is a walk over every live child in the kernel,
    /// owed after every SIGCHLD, so under load it runs at its interval;
    /// lengthening the interval with the table keeps the walking per second
    /// flat. (Only children that ended without a word wait for it: a crash,
    /// a SIGKILL. When every slot is taken the pass runs at once.)
    fn scan_interval(&self) -> Duration {
        let steps = (self.table.len() / SCAN_PER).max(1);
        SCAN_INTERVAL
            .saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX))
            .min(SCAN_MAX)
    }

    /// Reaps the announced children now: before a per-source refusal, so a
    /// client is never refused for a session that has ended.
    pub fn settle(&mut self, mut ended: impl FnMut(Reaped)) {
        self.reap_announced(&mut ended);
    }

    /// When the owed full pass is due, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        self.scan_due
    }

    /// Runs the owed full pass if it is due.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn tick(&mut self, now: Instant, mut ended: impl FnMut(Reaped)) {
        if self.scan_due.is_some_and(|t| now >= t) {
            self.reap_all(&mut ended);
        }
    }

    /// The full pass: waitpid(-1, WNOHANG) until nothing is left. Returns
    /// how many were reaped.
    ///
    /// Each waitpid(-1) walks the list of children up to the first zombie,
    /// past every older session: with ten thousand idle sessions, a walk
    /// costs about a millisecond. So the announced children are reaped by
    /// PID first, and the walks are left with the children that ended
    /// without a word, normally none: one walk per pass. (Taken the other
    /// way round, every session that had ended since the last SIGCHLD was
    /// read cost a walk, and the rate with 10,000 idle sessions fell to a
    /// tenth.)
    #[inline(never)] // out of the poll loop's frame (see crate::server)
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn reap_all(&mut self, mut ended: impl FnMut(Reaped)) -> usize {
        self.scan_due = None;
        let mut n = 0;
        self.reap_announced(&mut |r| {
            n += 1;
            ended(r);
        });
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => status,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break, // ECHILD: no children at all
            };
            // Stopped or continued is not an end.
            let (Some(pid), Some(how)) = (status.pid(), ending(status)) else {
                continue;
            };
            n += 1;
            let pid = pid.as_raw();
            ended(Reaped {
                pid,
                child: self.remove(pid),
                how,
            });
        }
        n
    }

    /// Waits until `pid` ends and reaps it (for a child just SIGKILLed,
    /// which cannot delay its end). Returns true if it was reaped.
    pub fn wait_pid(&mut self, pid: i32, mut ended: impl FnMut(Reaped)) -> bool {
        self.wait_for(pid, None, &mut ended)
    }

    /// Forgets a PID no waitpid can reap any more.
    pub fn forget(&mut self, pid: i32) {
        self.remove(pid);
    }

    fn wait_for(
        &mut self,
        pid: i32,
        flags: Option<WaitPidFlag>,
        ended: &mut impl FnMut(Reaped),
    ) -> bool {
        let Some(how) = waitpid(Pid::from_raw(pid), flags).ok().and_then(ending) else {
            return false;
        };
        ended(Reaped {
            pid,
            child: self.remove(pid),
            how,
        });
        true
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn reap_announced(&mut self, ended: &mut impl FnMut(Reaped)) {
        // 128 PIDs per read (more are read by the next turn of the loop),
        // into an uninitialised buffer (see crate::fdio).
        const ROOM: usize = 512;
        let mut buf = std::mem::MaybeUninit::<[u8; ROOM]>::uninit();
        // Announced PIDs still exiting from an earlier call come first.
        if !self.exiting.is_empty() {
            let mut exiting = std::mem::take(&mut self.exiting);
            exiting.retain(|&pid| {
                self.table.get(pid).is_some()
                    && !self.wait_for(pid, Some(WaitPidFlag::WNOHANG), ended)
            });
            self.exiting = exiting;
        }
        loop {
            let got = match crate::fdio::read_records(self.exits.read.as_raw_fd(), &mut buf) {
                Ok(got) if !got.is_empty() => got,
                _ => break,
            };
            let n = got.len();
            for c in got.chunks_exact(4) {
                let pid = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                // Reaped now, or kept while not yet a zombie (its own
                // SIGCHLD comes later): the list is written only then, so
                // the usual announcement writes no page of the parent's.
                if pid > 0
                    && self.table.get(pid).is_some()
                    && !self.wait_for(pid, Some(WaitPidFlag::WNOHANG), ended)
                {
                    self.exiting.push(pid);
                }
            }
            if n < ROOM {
                break;
            }
        }
    }
}

/// In a session's child, just before `_exit`: tells the parent this PID is
/// ending, on the fd of [`Reaper::announce_fd`]. One 4-byte write, atomic
/// in a pipe; best effort (a full pipe leaves the child to the full pass).
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn announce(fd: RawFd, pid: i32) {
    let b = pid.to_ne_bytes();
    // SAFETY: a valid 4-byte buffer; the fd is open for the child's life.
    unsafe { nix::libc::write(fd, b.as_ptr().cast(), b.len()) };
}

/// How a wait status ends a child, if it does (not when stopped or continued).
fn ending(status: WaitStatus) -> Option<Ended> {
    match status {
        WaitStatus::Exited(_, code) => Some(Ended::Exited(code)),
        WaitStatus::Signaled(_, sig, _) => Some(Ended::Signaled(sig)),
        _ => None,
    }
}

/// The pipe children announce their exit on. Both ends are non-blocking (a
/// child never waits for a full pipe) and close-on-exec, so each image of
/// the daemon has its own.
#[derive(Debug)]
struct ExitPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl ExitPipe {
    fn new() -> nix::Result<Self> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        Ok(ExitPipe { read, write })
    }
}

/// CLOCK_MONOTONIC in microseconds: the same clock across exec.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn monotonic_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| (t.tv_sec() as u64) * 1_000_000 + (t.tv_nsec() as u64) / 1000)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::{ForkResult, fork};

    fn ip(s: &str) -> Source {
        Source::Ip(s.parse().expect("ip"))
    }

    fn child(src: &str) -> Child {
        Child {
            source: ip(src),
            started_us: 1,
        }
    }

    /// Forks a child that announces itself on `fd` (or not) and exits 7.
    fn spawn(fd: RawFd, announce_it: bool) -> i32 {
        // SAFETY: the test child only writes and _exits.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                if announce_it {
                    announce(fd, std::process::id() as i32);
                }
                crate::daemon::exit_now(7)
            }
            ForkResult::Parent { child } => child.as_raw(),
        }
    }

    #[test]
    fn the_full_pass_waits_longer_with_thousands_live() {
        let mut r = Reaper::new(1 << 20, 1).expect("reaper");
        assert_eq!(r.scan_interval(), SCAN_INTERVAL);
        // Table entries only: no process is waited for here.
        for pid in 0..5000 {
            r.insert(1_000_000 + pid, child("10.0.0.1"));
        }
        assert_eq!(r.scan_interval(), SCAN_INTERVAL * 5);
        for pid in 5000..20_000 {
            r.insert(1_000_000 + pid, child("10.0.0.1"));
        }
        assert_eq!(r.scan_interval(), SCAN_MAX);
    }

    #[test]
    fn counts_follow_pids() {
        let mut r = Reaper::new(8, 1).expect("reaper");
        r.insert(100, child("10.0.0.1"));
        r.insert(101, child("10.0.0.1"));
        r.insert(102, child("10.0.0.2"));
        r.insert(102, child("10.0.0.2")); // a repeat does not count twice
        assert_eq!(r.count(&ip("10.0.0.1")), 2);
        assert_eq!(r.count(&ip("10.0.0.2")), 1);
        assert_eq!(r.len(), 3);
        r.forget(100);
        assert_eq!(r.count(&ip("10.0.0.1")), 1);
        r.forget(100);
        assert_eq!(r.count(&ip("10.0.0.1")), 1);
        r.forget(101);
        assert_eq!(r.count(&ip("10.0.0.1")), 0);
        r.insert(103, child("10.0.0.1"));
        assert_eq!(r.count(&ip("10.0.0.1")), 1, "counted again from zero");
    }

    #[test]
    fn sources_at_zero_are_kept_and_then_dropped_together() {
        let mut r = Reaper::new(1 << 16, 1).expect("reaper");
        let per = |r: &Reaper| r.per_source.as_ref().expect("counted").len();
        for i in 0..ZEROS_KEPT as i32 {
            let src = format!("10.1.{}.{}", i / 256, i % 256);
            r.insert(10_000 + i, child(&src));
            r.forget(10_000 + i);
        }
        assert_eq!(per(&r), ZEROS_KEPT, "entries at zero are kept");
        r.insert(1, child("10.0.0.9"));
        r.insert(2, child("10.0.0.10"));
        r.forget(2);
        assert_eq!(per(&r), 1, "past the bound, only live sources stay");
        assert_eq!(r.count(&ip("10.0.0.9")), 1);
    }

    #[test]
    fn per_source_counts_grow_shrink_and_stay_parent_only() {
        let mut p = PerSource::default();
        assert!(p.slots.is_parent_only());
        let src = |i: u32| ip(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
        for i in 0..5000 {
            p.up(src(i));
            p.up(src(i % 7));
        }
        assert!(p.slots.len() >= 2 * p.len(), "at most half full");
        assert!(p.slots.is_parent_only(), "after growing too");
        assert_eq!(p.get(&src(0)), 1 + 715, "0 and every seventh");
        assert_eq!(p.get(&src(6)), 1 + 714);
        assert_eq!(p.get(&src(4999)), 1);
        assert_eq!(p.get(&src(9999)), 0);
        for i in 0..5000 {
            p.down(&src(i));
        }
        assert_eq!(p.get(&src(4999)), 0);
        assert_eq!(p.get(&src(1)), 715);
        assert!(
            p.zeros <= ZEROS_KEPT,
            "past ZEROS_KEPT the sources at zero are dropped"
        );
        assert_eq!(p.len(), 7 + p.zeros);
        p.down(&src(9999));
        assert_eq!(p.get(&src(9999)), 0, "an unknown source stays at zero");
    }

    #[test]
    fn a_limit_that_cannot_bind_is_not_counted() {
        let mut r = Reaper::new(8, 8).expect("reaper");
        r.insert(100, child("10.0.0.1"));
        assert!(r.per_source.is_none());
        assert_eq!(r.count(&ip("10.0.0.1")), 0);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn strangers_are_not_adopted() {
        let _children = crate::children_lock();
        let mut r = Reaper::new(8, 1).expect("reaper");
        let mine = spawn(r.announce_fd(), false);
        r.adopt([(mine, child("10.0.0.1")), (1, child("10.0.0.2"))]);
        assert_eq!(r.len(), 1);
        assert!(r.wait_pid(mine, |_| {}));
        assert!(r.is_empty());
    }

    #[test]
    fn announced_and_silent_children_are_both_reaped() {
        let _children = crate::children_lock();
        let mut r = Reaper::new(8, 1).expect("reaper");
        let loud = spawn(r.announce_fd(), true);
        let quiet = spawn(r.announce_fd(), false);
        r.insert(loud, child("10.0.0.1"));
        r.insert(quiet, child("10.0.0.1"));
        let mut got = Vec::new();
        // Wait for both to be zombies, then one SIGCHLD naming neither.
        std::thread::sleep(Duration::from_millis(200));
        r.on_sigchld(None, |x| got.push(x.pid));
        assert_eq!(got, vec![loud], "the announced child is reaped by PID");
        assert!(r.deadline().is_some(), "a full pass is owed");
        r.tick(Instant::now() + SCAN_INTERVAL, |x| got.push(x.pid));
        assert_eq!(got, vec![loud, quiet]);
        assert!(r.is_empty() && r.deadline().is_none());
    }

    #[test]
    fn a_full_table_is_scanned_at_once() {
        let _children = crate::children_lock();
        let mut r = Reaper::new(1, 0).expect("reaper");
        let quiet = spawn(r.announce_fd(), false);
        r.insert(quiet, child("10.0.0.1"));
        std::thread::sleep(Duration::from_millis(200));
        let mut got = Vec::new();
        r.on_sigchld(None, |x| got.push((x.pid, x.how)));
        assert_eq!(got, vec![(quiet, Ended::Exited(7))]);
    }

    #[test]
    fn an_announced_child_does_not_count_against_its_source() {
        let _children = crate::children_lock();
        let mut r = Reaper::new(8, 1).expect("reaper");
        r.insert(4_000_000, child("10.0.0.1"));
        r.insert(4_000_001, child("10.0.0.1"));
        announce(r.announce_fd(), 4_000_000);
        // Not our child: waitpid fails, so the PID is kept as "exiting".
        r.settle(|_| {});
        assert_eq!(r.count(&ip("10.0.0.1")), 1);
    }
}
