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

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

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
    /// Creates or opens `path`, takes the lock, writes our pid.
    pub fn acquire(path: &Path) -> Result<Self> {
        crate::daemon::ensure_parent_dir(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::file(path, e))?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(Error::AlreadyRunning {
                    pid: read_pid(path).unwrap_or(0),
                });
            }
            Err((_, e)) => return Err(Error::sys(format!("flock {}", path.display()), e)),
        };
        let pf = Pidfile {
            lock,
            path: path.to_path_buf(),
            owner: std::process::id(),
        };
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

/// Reads the pid from a pidfile.
pub fn read_pid(path: &Path) -> Option<i32> {
    let mut s = String::new();
    File::open(path)
        .ok()?
        .take(64)
        .read_to_string(&mut s)
        .ok()?;
    s.lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|&p: &i32| p > 0)
}

/// True if someone holds the lock on `path`: a daemon runs.
pub fn is_locked(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    match Flock::lock(f, FlockArg::LockSharedNonblock) {
        Ok(_) => false,
        Err((_, e)) => e == Errno::EWOULDBLOCK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
