//! The pidfile: created, locked with flock for the daemon's whole life, and
//! removed at a clean exit.
//!
//! The lock, not the file's existence, says whether a daemon runs: a pidfile
//! left by a crash is unlocked and simply taken over. The file is written in
//! place with one `pwrite` of the whole line before any truncation, so a
//! reader sees either the old line or the new one, never an empty file from
//! a truncation. The descriptor is close-on-exec except across the reload's
//! exec, where the new image adopts it by number (see [`Pidfile::adopt`]):
//! flock locks belong to the open file description, so the lock is never
//! released in between. Children close their copy right after fork, so a
//! session outliving a dead parent cannot keep the lock.
//!
//! [`Pidfile::adopt`]: crate::pidfile::Pidfile::adopt

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::{Mode, fstat};

use crate::error::{Error, Result};
use crate::runtime::{self, Trust};

/// A held pidfile. Dropping it in the process that took it removes the
/// file (while the lock is still held), so a start that fails after taking
/// the lock leaves no stale pidfile behind.
#[derive(Debug)]
pub struct Pidfile {
    lock: Flock<File>,
    path: PathBuf,
    /// The pid that owns the file: a forked child that unwinds must not
    /// remove its parent's pidfile.
    owner: u32,
}

impl Pidfile {
    /// Creates or opens `path` in a checked runtime directory (see
    /// runtime.rs), takes the lock, writes our pid. The file is opened
    /// without following a symbolic link and must be a regular file with one
    /// link, owned by root or the daemon's user: it is written in place, so a
    /// link planted there would have us overwrite another file.
    pub fn acquire(path: &Path) -> Result<Self> {
        let (dir, name) = runtime::split(path)?;
        let trust = Trust::daemon();
        let dir = runtime::open_dir(dir, &trust, true)?;
        let file = dir.open_regular(name, &trust, 0o644)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((file, Errno::EWOULDBLOCK)) => {
                return Err(Error::AlreadyRunning {
                    pid: pid_in(&file).unwrap_or(0),
                });
            }
            Err((_, e)) => return Err(Error::sys(format!("flock {}", path.display()), e)),
        };
        let pf = Pidfile {
            lock,
            path: path.to_path_buf(),
            owner: std::process::id(),
        };
        // Root hands the file to the daemon's user, who removes it at exit;
        // through the descriptor, never by path.
        if let Some((u, g)) = runtime::owner().filter(|_| nix::unistd::geteuid().is_root()) {
            nix::unistd::fchown(&*pf.lock, Some(u), Some(g))
                .map_err(|e| Error::sys(format!("fchown {}", path.display()), e))?;
        }
        // 0644 whatever the daemon's umask (or an older file's mode), so
        // unprivileged tools can read the pid.
        pf.lock
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::file(path, e))?;
        pf.write_pid()?;
        Ok(pf)
    }

    /// Adopts the locked pidfile descriptor handed over by the previous
    /// image of this same process.
    ///
    /// # Safety
    /// `raw` must be an open fd that nothing else in this process owns.
    pub unsafe fn adopt(raw: RawFd, path: &Path) -> Result<Self> {
        // SAFETY: per the caller, we own the fd.
        let file = unsafe { File::from_raw_fd(raw) };
        crate::listen::set_cloexec(raw)
            .map_err(|e| Error::sys(format!("fcntl {}", path.display()), e))?;
        // Taking the lock again on the description we already lock is a
        // no-op that succeeds; it gives us the Flock guard type.
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| Error::sys(format!("flock {}", path.display()), e))?;
        let pf = Pidfile {
            lock,
            path: path.to_path_buf(),
            owner: std::process::id(),
        };
        pf.write_pid()?;
        Ok(pf)
    }

    fn write_pid(&self) -> Result<()> {
        let line = format!("{}\n", std::process::id());
        let e = |err| Error::file(&self.path, err);
        self.lock.write_all_at(line.as_bytes(), 0).map_err(e)?;
        self.lock.set_len(line.len() as u64).map_err(e)?;
        Ok(())
    }

    /// The descriptor, for the reload's hand-over and for closing in children.
    pub fn raw(&self) -> RawFd {
        self.lock.as_raw_fd()
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the pidfile to `new` (a reload changed `daemon.pid_file`): the
    /// new file is locked and written before the old one is removed, so the
    /// daemon is never without a locked pidfile.
    pub fn relocate(&mut self, new: &Path) -> Result<()> {
        let next = Pidfile::acquire(new)?;
        // Dropping the old one removes its file, then releases its lock.
        drop(std::mem::replace(self, next));
        Ok(())
    }

    /// Removes the file (at a clean exit). The lock goes with the descriptor.
    pub fn remove(self) {
        drop(self);
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        // Removed while still locked: no other instance can have taken it.
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot remove pidfile {}: {e}", self.path.display()),
        }
    }
}

/// The pid on the first line of an open pidfile.
fn pid_in(f: &File) -> Option<i32> {
    let mut s = String::new();
    f.take(64).read_to_string(&mut s).ok()?;
    s.lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|&p: &i32| p > 0)
}

fn open_nofollow(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
}

/// Reads the pid from a pidfile (never through a symbolic link).
pub fn read_pid(path: &Path) -> Option<i32> {
    pid_in(&open_nofollow(path)?)
}

/// True if someone holds the lock on `path` (never through a symbolic link).
pub fn is_locked(path: &Path) -> bool {
    let Some(f) = open_nofollow(path) else {
        return false;
    };
    match Flock::lock(f, FlockArg::LockSharedNonblock) {
        Ok(_) => false,
        Err((_, e)) => e == Errno::EWOULDBLOCK,
    }
}

/// Finds the daemon that holds the pidfile `path`, for `-s stop|reload|status`.
///
/// Ok(Ok(pid)) only when everything checks out: the pidfile's directory
/// passes the runtime checks, the file is a regular file (not followed
/// through a symbolic link) owned by root or the daemon's user, it is
/// locked, and the pid it names holds that lock (per /proc/locks). Ok(Err)
/// says why no daemon runs; Err is a pidfile that cannot be trusted, which
/// the caller reports without signalling anything.
///
/// The daemon's user is the caller, `daemon_user` (the configured
/// `daemon.user`), and, when the caller is root, whoever holds the lock:
/// root may signal the daemon run by a service user, whose directory
/// /run/hostinfod is, but only the process that really holds the lock.
pub fn find_daemon(
    path: &Path,
    daemon_user: Option<u32>,
) -> Result<std::result::Result<i32, String>> {
    let not_running = |why: String| Ok(Err(why));
    let (dir, name) = runtime::split(path)?;
    let mut trust = Trust::daemon();
    if let Some(u) = daemon_user {
        trust.add(u);
    }
    if nix::unistd::geteuid().is_root()
        && let Ok(meta) = std::fs::symlink_metadata(path)
    {
        for pid in lock_holders(meta.dev(), meta.ino()) {
            if let Some(uid) = uid_of(pid) {
                trust.add(uid);
            }
        }
    }
    let dir = match runtime::open_dir(dir, &trust, false) {
        Ok(d) => d,
        Err(Error::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return not_running(format!("no daemon holds {}", path.display()));
        }
        Err(e) => return Err(e),
    };
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::openat(dir.fd(), name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return not_running(format!("no daemon holds {}", path.display())),
        Err(Errno::ELOOP) => {
            return Err(Error::Untrusted {
                path: path.to_path_buf(),
                reason: "is a symbolic link (not followed)".into(),
            });
        }
        Err(e) => return Err(Error::sys(format!("open {}", path.display()), e)),
    };
    let st = fstat(&fd).map_err(|e| Error::sys(format!("fstat {}", path.display()), e))?;
    runtime::check_file(path, &st, &trust)?;
    let file = File::from(fd);
    let pid = pid_in(&file);
    // Probing with a shared lock: taken means nobody holds it.
    let file = match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => return not_running(format!("no daemon holds {}", path.display())),
        Err((f, Errno::EWOULDBLOCK)) => f,
        Err((_, e)) => return Err(Error::sys(format!("flock {}", path.display()), e)),
    };
    drop(file);
    let Some(pid) = pid else {
        return not_running(format!("{} holds no pid", path.display()));
    };
    let holders = lock_holders(st.st_dev, st.st_ino);
    if !holders.contains(&pid) && !holds_lock(pid, st.st_dev, st.st_ino) {
        let by = match holders.as_slice() {
            [] => "an unknown process".to_string(),
            h => format!(
                "pid {}",
                h.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        return Err(Error::Untrusted {
            path: path.to_path_buf(),
            reason: format!("names pid {pid}, but its lock is held by {by}; nothing signalled"),
        });
    }
    Ok(Ok(pid))
}

/// The `MAJ:MIN:INO` by which /proc names a file in its lock lines.
fn lock_id(dev: u64, ino: u64) -> String {
    format!(
        "{:02x}:{:02x}:{ino}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    )
}

/// Whether `pid` holds a flock on the file (dev, ino), from the `lock:`
/// lines of its /proc/PID/fdinfo entries. This is the answer where
/// /proc/locks cannot be read: systemd's `ProcSubset=pid` (as the shipped
/// unit sets) leaves only the process directories in /proc, and
/// `ExecReload=hostinfod -s reload` runs in that sandbox.
fn holds_lock(pid: i32, dev: u64, ino: u64) -> bool {
    let want = lock_id(dev, ino);
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return false;
    };
    dir.filter_map(|e| e.ok())
        .take(4096)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|text| {
            text.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // "lock:\t1: FLOCK  ADVISORY  WRITE 81 fe:00:5317484 0 EOF"
                matches!(f.as_slice(), ["lock:", _, "FLOCK", _, _, p, id, ..]
                    if *id == want && p.parse::<i32>().ok() == Some(pid))
            })
        })
}

/// The pids holding a flock on the file (dev, ino), from /proc/locks.
fn lock_holders(dev: u64, ino: u64) -> Vec<i32> {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let want = lock_id(dev, ino);
    text.lines()
        .filter_map(|l| {
            // "1: FLOCK  ADVISORY  WRITE 10680 fe:00:5317484 0 EOF"; waiters
            // carry "->" after the number and hold nothing.
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [_, "FLOCK", _, _, pid, id, ..] if *id == want => pid.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

/// The real uid of a process.
fn uid_of(pid: i32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_a_lock_is_found_in_its_fdinfo() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.pid");
        let _held = Pidfile::acquire(&path).expect("acquire");
        let meta = std::fs::metadata(&path).expect("stat");
        let me = std::process::id() as i32;
        assert!(holds_lock(me, meta.dev(), meta.ino()));
        assert!(!holds_lock(me, meta.dev(), meta.ino() + 1));
        assert!(!holds_lock(1, meta.dev(), meta.ino()));
    }

    #[test]
    fn lock_excludes_second_holder_and_pid_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/x.pid");
        let pf = Pidfile::acquire(&path).expect("first");
        assert_eq!(read_pid(&path), Some(std::process::id() as i32));
        assert!(is_locked(&path));
        match Pidfile::acquire(&path) {
            Err(Error::AlreadyRunning { pid }) => assert_eq!(pid, std::process::id() as i32),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        pf.remove();
        assert!(!path.exists());
    }

    #[test]
    fn stale_longer_pid_is_overwritten_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        std::fs::write(&path, "99999999999\n").expect("write");
        let _pf = Pidfile::acquire(&path).expect("stale file taken over");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", std::process::id())
        );
    }

    #[test]
    fn relocate_locks_the_new_file_and_removes_the_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.pid"), dir.path().join("sub/b.pid"));
        let mut pf = Pidfile::acquire(&a).expect("acquire");
        pf.relocate(&b).expect("relocate");
        assert!(!a.exists());
        assert!(is_locked(&b) && !is_locked(&a));
        assert_eq!(read_pid(&b), Some(std::process::id() as i32));
        assert_eq!(pf.path(), b);
    }

    #[test]
    fn mode_is_0644_and_drop_removes_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        std::fs::write(&path, "1\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let pf = Pidfile::acquire(&path).expect("acquire");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        drop(pf);
        assert!(
            !path.exists(),
            "a dropped pidfile (failed start) is removed"
        );
    }
}
