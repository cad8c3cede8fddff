//! The child table: who is serving whom, since when, and the reaper.
//!
//! Each child is recorded by PID with its client's source (IP address, or
//! uid for a Unix-socket peer) and its start time on CLOCK_MONOTONIC, which
//! keeps counting across the reload's exec (an `Instant` could not be handed
//! to the next image). Per-source counts are derived from the same entries:
//! a count goes up when a PID is recorded and down only when waitpid reaps
//! that PID, so it cannot drift however sessions end (the bug of xinetd#21
//! and systemd#20685, where counts were decremented on a different event than
//! they were incremented on).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Where a client comes from, for `max_per_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A TCP peer's address (IPv4-mapped IPv6 folded to IPv4).
    Ip(IpAddr),
    /// A Unix-socket peer's uid, from SO_PEERCRED.
    Uid(u32),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ip(ip) => write!(f, "{ip}"),
            Source::Uid(uid) => write!(f, "uid {uid}"),
        }
    }
}

impl FromStr for Source {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.strip_prefix("uid ") {
            Some(uid) => uid.parse().map(Source::Uid).map_err(drop),
            None => s.parse().map(Source::Ip).map_err(drop),
        }
    }
}

/// One live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    /// The client's source.
    pub source: Source,
    /// CLOCK_MONOTONIC microseconds at fork.
    pub started_us: u64,
}

/// The live children. Per-source counts are derived by scanning the same
/// entries, so they cannot disagree with the table.
///
/// A flat vector rather than hash maps: after every fork the parent's pages
/// are copy-on-write, and each page the parent then writes costs a fault and
/// a 4 KiB copy. Appending writes the last entry only and a removal two
/// entries, where a hash map writes wherever the hash falls (and a second map
/// for the counts). Scanning only reads, and reading shared pages is free; a
/// thousand entries are 40 KiB (40 bytes each), read in one linear scan.
#[derive(Debug, Default)]
pub struct Children {
    entries: Vec<(i32, Child)>,
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

impl Children {
    /// A table sized for `cap` sessions, so inserting never reallocates on
    /// the accept path.
    pub fn with_capacity(cap: usize) -> Self {
        Children {
            entries: Vec::with_capacity(cap),
        }
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Live sessions from `source`.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn count(&self, source: &Source) -> u32 {
        self.entries
            .iter()
            .filter(|(_, c)| c.source == *source)
            .count() as u32
    }

    /// The source of live session `pid`.
    pub fn source_of(&self, pid: i32) -> Option<Source> {
        self.entries
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, c)| c.source)
    }

    /// True if `pid` is a live session of ours.
    pub fn contains(&self, pid: i32) -> bool {
        self.entries.iter().any(|(p, _)| *p == pid)
    }

    /// Records a new child. A PID cannot repeat: the kernel does not reuse
    /// it until we have reaped it (SIGCHLD has its default disposition, see
    /// [`crate::signals::Signals::install`]), and reaping removes it.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn insert(&mut self, pid: i32, child: Child) {
        self.entries.push((pid, child));
    }

    /// Drops the entries that are not children of this process. The table
    /// handed over by a reload holds only our children, but it arrives as
    /// an environment variable, and an entry that no waitpid can ever reap
    /// would hold its source's count forever.
    pub fn forget_strangers(&mut self) {
        use nix::sys::wait::{Id, waitid};
        self.entries.retain(|&(pid, _)| {
            // WNOWAIT: look without reaping; ECHILD: not our child.
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            pid > 0 && waitid(Id::Pid(Pid::from_raw(pid)), flags) != Err(nix::errno::Errno::ECHILD)
        });
    }

    /// Forgets a reaped child and returns what we knew of it.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn remove(&mut self, pid: i32) -> Option<Child> {
        let i = self.entries.iter().position(|(p, _)| *p == pid)?;
        Some(self.entries.swap_remove(i).1)
    }

    /// The live PIDs.
    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.entries.iter().map(|(p, _)| *p)
    }

    /// The table as text for the reload's environment: `pid,source,start;…`.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(self.entries.len() * 32);
        for (pid, c) in &self.entries {
            use fmt::Write as _;
            let _ = write!(s, "{pid},{},{};", c.source, c.started_us);
        }
        s
    }

    /// Parses [`Children::encode`]'s text; malformed entries are skipped.
    pub fn decode(text: &str, cap: usize) -> Self {
        let mut t = Children::with_capacity(cap);
        for entry in text.split(';').filter(|e| !e.is_empty()) {
            let mut f = entry.split(',');
            let (Some(pid), Some(src), Some(start), None) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            if let (Ok(pid), Ok(source), Ok(started_us)) = (pid.parse(), src.parse(), start.parse())
                && !t.contains(pid)
            {
                t.insert(pid, Child { source, started_us });
            }
        }
        t
    }

    /// Reaps `pid` if it has ended: a waitpid for one PID costs the same
    /// whatever the number of children, where waitpid(-1) walks them all.
    /// Returns true if it was reaped.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn reap_pid(&mut self, pid: i32, ended: impl FnOnce(i32, Option<Child>, Ended)) -> bool {
        self.wait_for(pid, Some(WaitPidFlag::WNOHANG), ended)
    }

    /// Waits until `pid` ends and reaps it (for a child just SIGKILLed,
    /// which cannot delay its end). Returns true if it was reaped.
    pub fn wait_pid(&mut self, pid: i32, ended: impl FnOnce(i32, Option<Child>, Ended)) -> bool {
        self.wait_for(pid, None, ended)
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn wait_for(
        &mut self,
        pid: i32,
        flags: Option<WaitPidFlag>,
        ended: impl FnOnce(i32, Option<Child>, Ended),
    ) -> bool {
        let Some(how) = waitpid(Pid::from_raw(pid), flags).ok().and_then(ending) else {
            return false;
        };
        ended(pid, self.remove(pid), how);
        true
    }

    /// Reaps every child that has ended (waitpid WNOHANG in a loop) and calls
    /// `ended` for each with what we knew of it (None for a PID not in the
    /// table). Returns how many were reaped.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn reap(&mut self, mut ended: impl FnMut(i32, Option<Child>, Ended)) -> usize {
        let mut n = 0;
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
            let raw = pid.as_raw();
            ended(raw, self.remove(raw), how);
        }
        n
    }
}

/// How a wait status ends a child, if it does (not when stopped or continued).
fn ending(status: WaitStatus) -> Option<Ended> {
    match status {
        WaitStatus::Exited(_, code) => Some(Ended::Exited(code)),
        WaitStatus::Signaled(_, sig, _) => Some(Ended::Signaled(sig)),
        _ => None,
    }
}

/// Children announce their exit here, so the parent can reap them by PID.
///
/// waitpid(-1) walks the kernel's whole list of the parent's children to find
/// a zombie, and the oldest children (idle sessions) sit at the head of that
/// list: with a thousand of them every reap costs tens of microseconds. A
/// SIGCHLD names one child, but standard signals merge, so under load most
/// exits arrive unnamed. So each child, just before `_exit`, writes its PID
/// (4 bytes, atomic in a pipe) to this pipe; on SIGCHLD the parent reads all
/// the PIDs in one read and waits for each by PID, which costs the same
/// however many children there are. A PID read before its child has become a
/// zombie is kept and tried again: that child's own SIGCHLD comes after. A
/// child that dies without writing (a crash, SIGKILL) is found by the full
/// pass the server still runs shortly after every SIGCHLD. Both ends are
/// non-blocking: a child never waits for a full pipe (its write just fails
/// and the full pass reaps it) and close-on-exec, so each image of the
/// daemon has its own.
#[derive(Debug)]
pub struct ExitPipe {
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
    /// Announced PIDs that were not yet zombies when read.
    exiting: Vec<i32>,
}

impl ExitPipe {
    /// A new pipe.
    pub fn new() -> nix::Result<Self> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        Ok(ExitPipe {
            read,
            write,
            exiting: Vec::with_capacity(64),
        })
    }

    /// The read end (closed in children).
    pub fn read_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.read.as_raw_fd()
    }

    /// In the child, just before `_exit`: announce `pid`. Best effort.
    pub fn announce(&self, pid: i32) {
        use std::os::fd::AsRawFd;
        let b = pid.to_ne_bytes();
        // SAFETY: a valid 4-byte buffer; the fd is open for the child's life.
        unsafe { nix::libc::write(self.write.as_raw_fd(), b.as_ptr().cast(), b.len()) };
    }

    /// How many children from `source` have announced their end but were
    /// not reapable yet at the last [`ExitPipe::reap_announced`].
    pub fn ending(&self, table: &Children, source: &Source) -> u32 {
        self.exiting
            .iter()
            .filter(|&&pid| table.source_of(pid) == Some(*source))
            .count() as u32
    }

    /// Reaps every announced child that has ended. Children still exiting
    /// are kept for the next call.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn reap_announced(
        &mut self,
        table: &mut Children,
        mut ended: impl FnMut(i32, Option<Child>, Ended),
    ) {
        use std::os::fd::AsRawFd;
        // 128 PIDs per read (more are read by the next turn of the loop),
        // into an uninitialised buffer (see crate::fdio).
        const ROOM: usize = 512;
        let mut buf = std::mem::MaybeUninit::<[u8; ROOM]>::uninit();
        loop {
            let got = match crate::fdio::read_records(self.read.as_raw_fd(), &mut buf) {
                Ok(got) if !got.is_empty() => got,
                _ => break,
            };
            let n = got.len();
            for c in got.chunks_exact(4) {
                let pid = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                if pid > 0 {
                    self.exiting.push(pid);
                }
            }
            if n < ROOM {
                break;
            }
        }
        // Kept: announced PIDs not yet zombies. Dropped: reaped now, or no
        // longer in the table (a full pass reaped them first).
        self.exiting
            .retain(|&pid| table.contains(pid) && !table.reap_pid(pid, &mut ended));
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

    fn ip(s: &str) -> Source {
        Source::Ip(s.parse().expect("ip"))
    }

    #[test]
    fn counts_follow_pids() {
        let mut t = Children::with_capacity(4);
        let a = ip("127.0.0.1");
        t.insert(
            10,
            Child {
                source: a,
                started_us: 1,
            },
        );
        t.insert(
            11,
            Child {
                source: a,
                started_us: 2,
            },
        );
        t.insert(
            12,
            Child {
                source: Source::Uid(1000),
                started_us: 3,
            },
        );
        assert_eq!(
            (t.len(), t.count(&a), t.count(&Source::Uid(1000))),
            (3, 2, 1)
        );
        assert!(t.remove(10).is_some());
        assert!(
            t.remove(10).is_none(),
            "a second reap of a pid changes nothing"
        );
        assert_eq!(t.count(&a), 1);
        t.remove(11);
        t.remove(12);
        assert_eq!((t.len(), t.count(&a)), (0, 0));
    }

    #[test]
    fn a_repeated_pid_in_the_handover_does_not_leak_a_count() {
        let t = Children::decode("10,10.0.0.1,1;10,10.0.0.2,2;", 4);
        assert_eq!(t.len(), 1);
        assert_eq!(t.count(&ip("10.0.0.1")) + t.count(&ip("10.0.0.2")), 1);
    }

    #[test]
    fn strangers_are_forgotten_and_our_children_kept() {
        let mut kid = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let ours = kid.id() as i32;
        // PID 1 is never a child of the test process.
        let mut t = Children::decode(&format!("1,10.0.0.1,1;{ours},10.0.0.2,2;"), 4);
        assert_eq!(t.len(), 2);
        t.forget_strangers();
        let left: Vec<i32> = t.pids().collect();
        let _ = kid.kill();
        let _ = kid.wait();
        assert_eq!(left, vec![ours]);
    }

    #[test]
    fn announced_children_are_reaped_by_pid() {
        let mut pipe = ExitPipe::new().expect("pipe");
        let mut t = Children::with_capacity(4);
        let mut kids = Vec::new();
        for _ in 0..3 {
            let c = std::process::Command::new("true")
                .spawn()
                .expect("spawn true");
            let pid = c.id() as i32;
            t.insert(
                pid,
                Child {
                    source: Source::Uid(0),
                    started_us: 0,
                },
            );
            pipe.announce(pid);
            kids.push(c);
        }
        pipe.announce(1); // not ours: ignored
        let mut reaped = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while reaped.len() < 3 && std::time::Instant::now() < deadline {
            pipe.reap_announced(&mut t, |pid, c, how| {
                assert!(c.is_some());
                assert_eq!(how, Ended::Exited(0));
                reaped.push(pid);
            });
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        reaped.sort_unstable();
        let mut want: Vec<i32> = kids.iter().map(|k| k.id() as i32).collect();
        want.sort_unstable();
        assert_eq!(reaped, want);
        assert!(t.is_empty() && pipe.exiting.is_empty());
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut t = Children::with_capacity(4);
        t.insert(
            10,
            Child {
                source: ip("::1"),
                started_us: 5,
            },
        );
        t.insert(
            11,
            Child {
                source: Source::Uid(0),
                started_us: 6,
            },
        );
        t.insert(
            12,
            Child {
                source: ip("192.0.2.1"),
                started_us: 7,
            },
        );
        let back = Children::decode(&t.encode(), 4);
        assert_eq!(back.entries, t.entries);
        let junk = Children::decode("x;1,2;3,uid z,4;5,127.0.0.1,6,7;8,::1,9;", 1);
        assert_eq!(junk.len(), 1);
    }
}
