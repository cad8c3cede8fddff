//! Runtime directories and the files hostinfod writes in them (pidfile,
//! status file, Unix sockets), made so that another local user cannot take
//! them over.
//!
//! A runtime directory is trusted the way OpenSSH's StrictModes and tmux's
//! socket directory trust theirs: it and every directory above it must be a
//! real directory owned by root or by the daemon's user, and writable by
//! nobody else, unless it is sticky and owned by root, as `/tmp` is (there
//! nobody can rename or remove what another user made). The directory itself
//! must not be a symbolic link; a symbolic link higher up (`/var/run`) is
//! followed only when its owner is trusted too. Otherwise a directory whose
//! owner or writers are someone else lets them replace the files hostinfod
//! puts there: a symlink at the status file makes the daemon overwrite a file
//! of the symlink's choosing, a socket of theirs renamed over ours greets our
//! clients, a pidfile of theirs makes `-s stop` signal a process of theirs.
//!
//! The check walks the path from `/` with `openat(O_PATH|O_NOFOLLOW)`, one
//! component at a time, so what is checked is what is used: the `Dir` it
//! returns holds the last directory open, and files are created relative to
//! that descriptor. A directory that is missing is created with a fixed mode
//! whatever the umask (0700 for an unprivileged daemon, 0755 as root, so that
//! clients can reach the sockets), and as root it is handed to the daemon's
//! user (`set_owner`) through its descriptor.
//!
//! No write follows a symbolic link: a file is replaced by writing a fresh
//! temporary name created with `O_CREAT|O_EXCL|O_NOFOLLOW` and renaming it
//! over the old one with `renameat` (which replaces a symlink rather than
//! following it). The pidfile, which must stay one locked inode, is opened
//! with `O_NOFOLLOW` and accepted only as a regular file with one link owned
//! by a trusted user.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat, umask};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, getegid, geteuid, setegid, seteuid, unlinkat};

use crate::error::{Error, Result};

/// Symbolic links followed in one path before giving up, as the kernel's
/// own limit (ELOOP after 40).
const MAX_LINKS: usize = 40;
/// Fresh temporary names tried before giving up on a replacement.
const TEMP_TRIES: usize = 16;

static OWNER_UID: AtomicU32 = AtomicU32::new(u32::MAX);
static OWNER_GID: AtomicU32 = AtomicU32::new(u32::MAX);

/// Names the user (and group) the daemon's files belong to when root starts
/// it with `daemon.user`: directories hostinfod creates are given to them,
/// the pidfile too, sockets are created as them, and directories they own
/// are trusted. Called once, before anything is created.
pub fn set_owner(owner: Option<(u32, u32)>) {
    let (u, g) = owner.unwrap_or((u32::MAX, u32::MAX));
    OWNER_UID.store(u, Ordering::Relaxed);
    OWNER_GID.store(g, Ordering::Relaxed);
}

/// The daemon's user and group set by [`set_owner`], if any.
pub fn owner() -> Option<(Uid, Gid)> {
    let u = OWNER_UID.load(Ordering::Relaxed);
    let g = OWNER_GID.load(Ordering::Relaxed);
    (u != u32::MAX).then(|| (Uid::from_raw(u), Gid::from_raw(g)))
}

/// The users whose directories and files are trusted: root, and others
/// named by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    uids: Vec<u32>,
}

impl Trust {
    /// Root and the effective user, and the daemon's user when one is set
    /// ([`set_owner`]): whom the daemon itself trusts.
    pub fn daemon() -> Trust {
        let mut t = Trust { uids: vec![0] };
        t.add(geteuid().as_raw());
        if let Some((u, _)) = owner() {
            t.add(u.as_raw());
        }
        t
    }

    /// Adds a trusted user.
    pub fn add(&mut self, uid: u32) {
        if !self.uids.contains(&uid) {
            self.uids.push(uid);
        }
    }

    /// True when `uid` is trusted.
    pub fn trusts(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }

    fn describe(&self) -> String {
        let mut names: Vec<String> = self.uids.iter().map(|&u| user_name(u)).collect();
        match names.len() {
            1 => names.remove(0),
            _ => {
                let last = names.pop().unwrap_or_default();
                format!("{} or {last}", names.join(", "))
            }
        }
    }
}

fn user_name(uid: u32) -> String {
    if uid == 0 {
        return "root".into();
    }
    let name = passwd_entries().find(|(_, u)| *u == uid).map(|(n, _)| n);
    match name {
        Some(n) => format!("{n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// The uid of a user named in /etc/passwd. Read directly rather than with
/// getpwnam: a static glibc build cannot load NSS modules (see
/// privileges.rs), and messages and the control commands need no more.
pub fn passwd_uid(name: &str) -> Option<u32> {
    passwd_entries().find(|(n, _)| n == name).map(|(_, u)| u)
}

fn passwd_entries() -> impl Iterator<Item = (String, u32)> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.to_string();
            let uid = f.nth(1)?.parse().ok()?;
            Some((name, uid))
        })
        .collect::<Vec<_>>()
        .into_iter()
}

fn untrusted(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
    Error::Untrusted {
        path: path.into(),
        reason: reason.into(),
    }
}

fn nix_file(path: &Path, e: Errno) -> Error {
    Error::file(path, std::io::Error::from(e))
}

/// A runtime directory that passed the checks, held open for the `*at`
/// calls that create and replace files in it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    uid: u32,
}

/// Splits a file path into its directory and its name.
pub fn split(path: &Path) -> Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) if path.is_absolute() => Ok((d, n)),
        _ => Err(untrusted(path, "is not an absolute path to a file")),
    }
}

/// Opens the directory `path` after checking it and every directory above
/// it (see the module notes); creates what is missing when `create`.
pub fn open_dir(path: &Path, trust: &Trust, create: bool) -> Result<Dir> {
    if !path.is_absolute() {
        return Err(untrusted(path, "is not an absolute path"));
    }
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_components(&mut todo, path, false);
    let root = openat(AT_FDCWD, "/", dir_flags(), Mode::empty())
        .map_err(|e| nix_file(Path::new("/"), e))?;
    let st = fstat(&root).map_err(|e| nix_file(Path::new("/"), e))?;
    check_dir(Path::new("/"), &st, trust)?;
    let mut stack: Vec<(OwnedFd, PathBuf, u32)> = vec![(root, PathBuf::from("/"), st.st_uid)];
    let mut links = 0;
    let mode = if geteuid().is_root() { 0o755 } else { 0o700 };
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let last = todo.is_empty();
        let (cur, here, _) = stack.last().ok_or_else(|| untrusted(path, "empty walk"))?;
        let at = here.join(&c);
        let mut created = false;
        let fd = match openat(cur, c.as_os_str(), dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                let st = fstatat(cur, c.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| nix_file(&at, e))?;
                if !is(&st, SFlag::S_IFLNK) {
                    return Err(untrusted(&at, "is not a directory"));
                }
                if last {
                    return Err(untrusted(
                        &at,
                        "is a symbolic link; a runtime directory must be a real directory",
                    ));
                }
                if !trust.trusts(st.st_uid) {
                    return Err(untrusted(
                        &at,
                        format!(
                            "is a symbolic link owned by {}, not by {}",
                            user_name(st.st_uid),
                            trust.describe()
                        ),
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(nix_file(&at, Errno::ELOOP));
                }
                let target = readlinkat(cur, c.as_os_str()).map_err(|e| nix_file(&at, e))?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    stack.truncate(1);
                }
                push_components(&mut todo, target, true);
                continue;
            }
            Err(Errno::ENOENT) if create => {
                mkdir_fixed(cur, &c, mode).map_err(|e| nix_file(&at, e))?;
                created = true;
                openat(cur, c.as_os_str(), dir_flags(), Mode::empty())
                    .map_err(|e| nix_file(&at, e))?
            }
            Err(e) => return Err(nix_file(&at, e)),
        };
        if created && last {
            give_to_owner(cur, &c).map_err(|e| nix_file(&at, e))?;
        }
        let st = fstat(&fd).map_err(|e| nix_file(&at, e))?;
        check_dir(&at, &st, trust)?;
        stack.push((fd, at, st.st_uid));
    }
    let (fd, path, uid) = stack.pop().ok_or_else(|| untrusted(path, "empty walk"))?;
    Ok(Dir { fd, path, uid })
}

/// Queues the components of `p`; `front` puts them before what is queued
/// (the rest of a path after a symbolic link's target).
fn push_components(todo: &mut VecDeque<OsString>, p: &Path, front: bool) {
    let comps: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    if front {
        for c in comps.into_iter().rev() {
            todo.push_front(c);
        }
    } else {
        todo.extend(comps);
    }
}

fn dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

/// The owner check every directory and file hostinfod trusts passes.
fn check_owner(at: &Path, st: &FileStat, trust: &Trust) -> Result<()> {
    if trust.trusts(st.st_uid) {
        return Ok(());
    }
    Err(untrusted(
        at,
        format!(
            "is owned by {}, not by {}",
            user_name(st.st_uid),
            trust.describe()
        ),
    ))
}

fn check_dir(at: &Path, st: &FileStat, trust: &Trust) -> Result<()> {
    if !is(st, SFlag::S_IFDIR) {
        return Err(untrusted(at, "is not a directory"));
    }
    check_owner(at, st, trust)?;
    let perm = st.st_mode & 0o7777;
    let sticky_root = perm & 0o1000 != 0 && st.st_uid == 0;
    if perm & 0o022 != 0 && !sticky_root {
        return Err(untrusted(
            at,
            format!(
                "is writable by {} (mode {perm:04o}), who could replace the files in it",
                if perm & 0o002 != 0 {
                    "others"
                } else {
                    "its group"
                }
            ),
        ));
    }
    Ok(())
}

/// mkdir with exactly `mode`: the umask is cleared around the call (the
/// daemon is single-threaded, so nothing else creates a file meanwhile).
fn mkdir_fixed(dir: &OwnedFd, name: &OsStr, mode: u32) -> nix::Result<()> {
    let old = umask(Mode::empty());
    let r = mkdirat(
        dir,
        name,
        Mode::from_bits_truncate(mode as nix::libc::mode_t),
    );
    umask(old);
    r
}

/// Gives a directory root just made to the daemon's user, through a
/// descriptor of that very directory.
fn give_to_owner(parent: &OwnedFd, name: &OsStr) -> nix::Result<()> {
    let Some((u, g)) = owner().filter(|_| geteuid().is_root()) else {
        return Ok(());
    };
    let fd = openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    fchown(&fd, Some(u), Some(g))
}

impl Dir {
    /// The directory's path, symbolic links above it resolved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor, for `*at` calls.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory's owner.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// `lstat` of `name` in this directory; None when there is nothing.
    pub fn stat(&self, name: &OsStr) -> Result<Option<FileStat>> {
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(nix_file(&self.path.join(name), e)),
        }
    }

    /// Removes `name` (never what a symbolic link points to).
    pub fn remove(&self, name: &OsStr) -> Result<()> {
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(nix_file(&self.path.join(name), e)),
        }
    }

    /// Opens the regular file `name` for reading and writing, creating it
    /// with `mode` when missing, without following a symbolic link. Refuses
    /// anything but a regular file with one link owned by a trusted user: a
    /// hard link to another file would have us overwrite that file.
    pub fn open_regular(&self, name: &OsStr, trust: &Trust, mode: u32) -> Result<File> {
        let at = self.path.join(name);
        let flags = OFlag::O_RDWR
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = openat(
            &self.fd,
            name,
            flags,
            Mode::from_bits_truncate(mode as nix::libc::mode_t),
        )
        .map_err(|e| {
            // Say what is in the way rather than the errno: in a sticky
            // directory the kernel answers EACCES, not ELOOP, for another
            // user's symbolic link.
            match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if is(&st, SFlag::S_IFLNK) => {
                    untrusted(&at, "is a symbolic link (not followed)")
                }
                Ok(st) => check_file(&at, &st, trust)
                    .err()
                    .unwrap_or_else(|| nix_file(&at, e)),
                Err(_) => nix_file(&at, e),
            }
        })?;
        let st = fstat(&fd).map_err(|e| nix_file(&at, e))?;
        check_file(&at, &st, trust)?;
        Ok(File::from(fd))
    }

    /// Replaces `name` with `contents` atomically: a fresh temporary file
    /// created exclusively beside it, then renamed over it. A reader sees the
    /// old file or the new one; nothing that was at either name is followed.
    pub fn replace(&self, name: &OsStr, contents: &[u8], mode: u32) -> Result<()> {
        let at = self.path.join(name);
        let (tmp, file) = self.create_temp(name, mode)?;
        let written = std::io::Write::write_all(&mut &file, contents);
        drop(file);
        if let Err(e) = written {
            let _ = self.remove(&tmp);
            return Err(Error::file(&at, e));
        }
        renameat(&self.fd, tmp.as_os_str(), &self.fd, name).map_err(|e| {
            let _ = self.remove(&tmp);
            nix_file(&at, e)
        })
    }

    fn create_temp(&self, name: &OsStr, mode: u32) -> Result<(OsString, File)> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut last = Errno::EEXIST;
        for _ in 0..TEMP_TRIES {
            let mut tmp = name.to_os_string();
            tmp.push(format!(".tmp.{:016x}", random_u64()));
            match openat(
                &self.fd,
                tmp.as_os_str(),
                flags,
                Mode::from_bits_truncate(mode as nix::libc::mode_t),
            ) {
                Ok(fd) => return Ok((tmp, File::from(fd))),
                Err(Errno::EEXIST) => last = Errno::EEXIST,
                Err(e) => return Err(nix_file(&self.path.join(&tmp), e)),
            }
        }
        Err(nix_file(&self.path.join(name), last))
    }

    /// Reads at most `max` bytes of the regular file `name`, never through
    /// a symbolic link; None when it does not exist.
    pub fn read(&self, name: &OsStr, max: usize) -> Result<Option<Vec<u8>>> {
        let at = self.path.join(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(untrusted(&at, "is a symbolic link (not followed)")),
            Err(e) => return Err(nix_file(&at, e)),
        };
        let st = fstat(&fd).map_err(|e| nix_file(&at, e))?;
        if !is(&st, SFlag::S_IFREG) {
            return Err(untrusted(&at, "is not a regular file"));
        }
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(File::from(fd), max as u64),
            &mut buf,
        )
        .map_err(|e| Error::file(&at, e))?;
        Ok(Some(buf))
    }
}

/// The checks on a file hostinfod writes in place or trusts (the pidfile).
pub fn check_file(at: &Path, st: &FileStat, trust: &Trust) -> Result<()> {
    if !is(st, SFlag::S_IFREG) {
        return Err(untrusted(at, "is not a regular file"));
    }
    check_owner(at, st, trust)?;
    if st.st_nlink != 1 {
        return Err(untrusted(
            at,
            format!(
                "has {} hard links, so writing it would change another file",
                st.st_nlink
            ),
        ));
    }
    Ok(())
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into the buffer.
    let n = unsafe { nix::libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Without entropy the names still differ per call; O_EXCL keeps a
        // guessed name from being used anyway.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ u64::from(std::process::id()) << 32;
    }
    u64::from_ne_bytes(b)
}

/// Replaces the file at `path` with `contents` (mode at most `mode`, less
/// what the umask takes), in a checked runtime directory created if missing:
/// the status file, and any other file the daemon republishes.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let (dir, name) = split(path)?;
    open_dir(dir, &Trust::daemon(), true)?.replace(name, contents, mode)
}

/// Runs `f` (a `bind()` of a Unix socket in `dir`) so that the file it
/// creates has `mode` and its owner from the start: the umask is set to
/// the complement of `mode`, and as root with a daemon user the effective
/// group is theirs, and the effective user too when the directory is
/// theirs. Nothing is changed by path afterwards.
pub fn create_as_owner<T>(
    dir: &Dir,
    mode: u32,
    mut f: impl FnMut() -> nix::Result<T>,
) -> Result<T> {
    let swap = owner().filter(|_| geteuid().is_root());
    let old_mask = umask(Mode::from_bits_truncate(
        (!mode & 0o777) as nix::libc::mode_t,
    ));
    let out = match swap {
        None => Ok(f()),
        Some((u, g)) => as_owner(dir, u, g, &mut f),
    };
    umask(old_mask);
    out?.map_err(|e| nix_file(dir.path(), e))
}

/// The root half of [`create_as_owner`]: `f` with the daemon user's group,
/// and as that user when the directory is theirs. The outer Err is a failure
/// to become root again, after which the process must not go on.
fn as_owner<T>(
    dir: &Dir,
    u: Uid,
    g: Gid,
    f: &mut impl FnMut() -> nix::Result<T>,
) -> Result<nix::Result<T>> {
    let old_gid = getegid();
    if let Err(e) = setegid(g) {
        return Ok(Err(e));
    }
    let mut out = None;
    if dir.uid() == u.as_raw() {
        let r = seteuid(u).and_then(|()| f());
        seteuid(Uid::from_raw(0)).map_err(|e| Error::sys("seteuid 0", e))?;
        // EACCES: the user cannot reach its directory (a parent only root
        // may search); then root creates the file, still in their group.
        if !matches!(r, Err(Errno::EACCES)) {
            out = Some(r);
        }
    }
    let out = out.unwrap_or_else(f);
    setegid(old_gid).map_err(|e| Error::sys(format!("setegid {old_gid}"), e))?;
    Ok(out)
}

/// Sets the mode of the Unix socket file at `path` (a reload changed
/// `listen.unix_mode`) through a descriptor of that very file, after
/// checking its directory and that it is a socket we own.
pub fn chmod_socket(path: &Path, mode: u32) -> Result<()> {
    let (dir, name) = split(path)?;
    let dir = open_dir(dir, &Trust::daemon(), false)?;
    let fd = openat(
        dir.fd(),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| nix_file(path, e))?;
    let st = fstat(&fd).map_err(|e| nix_file(path, e))?;
    if is(&st, SFlag::S_IFSOCK) && st.st_mode & 0o7777 == mode {
        return Ok(());
    }
    if !is(&st, SFlag::S_IFSOCK) || st.st_uid != geteuid().as_raw() {
        return Err(untrusted(path, "is not a socket of this daemon's user"));
    }
    // chmod(2) on the /proc link reaches exactly the inode the descriptor
    // holds (fchmod does not take an O_PATH descriptor).
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::sys::stat::fchmodat(
        AT_FDCWD,
        link.as_str(),
        Mode::from_bits_truncate(mode as nix::libc::mode_t),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| nix_file(path, e))
}

/// Checks the runtime directories a configuration names (the pidfile's,
/// the status file's, the Unix sockets'), as a reload must before it
/// switches to them. Only what the checks reject fails here; a directory
/// that is missing or that this process cannot search is left to the step
/// that creates or uses it.
pub fn check_config(cfg: &crate::config::Config, env: &crate::config::Env) -> Result<()> {
    let mut files: Vec<PathBuf> = cfg.listen.unix.clone();
    if !cfg.daemon.pid_file.as_os_str().is_empty() {
        files.push(cfg.daemon.pid_file.clone());
    }
    files.push(cfg.status_file(env));
    let trust = Trust::daemon();
    for f in &files {
        let (dir, _) = split(f)?;
        match open_dir(dir, &trust, false) {
            Ok(_) | Err(Error::File { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn creates_with_fixed_mode_whatever_the_umask() {
        let d = tmp();
        let p = d.path().join("a/b");
        let old = umask(Mode::empty());
        let r = open_dir(&p, &Trust::daemon(), true);
        umask(old);
        let dir = r.expect("created");
        let want = if geteuid().is_root() { 0o755 } else { 0o700 };
        for q in [d.path().join("a"), p.clone()] {
            let m = std::fs::metadata(&q).expect("meta").permissions().mode() & 0o7777;
            assert_eq!(m, want, "{}", q.display());
        }
        assert_eq!(dir.path(), std::fs::canonicalize(&p).expect("canon"));
    }

    #[test]
    fn refuses_symlink_world_writable_and_names_the_path() {
        let d = tmp();
        let real = d.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = open_dir(&link, &Trust::daemon(), true).expect_err("symlink");
        assert!(e.to_string().contains(&*link.to_string_lossy()), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // A symlink above the directory is followed (its owner is trusted).
        std::fs::create_dir(real.join("sub")).expect("mkdir");
        open_dir(&link.join("sub"), &Trust::daemon(), false).expect("link above");

        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = open_dir(&real, &Trust::daemon(), false).expect_err("0777");
        assert!(
            e.to_string().contains("writable by others (mode 0777)"),
            "{e}"
        );
        let e = open_dir(&real.join("sub"), &Trust::daemon(), false).expect_err("under 0777");
        assert!(e.to_string().contains(&*real.to_string_lossy()), "{e}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let sticky = open_dir(&real, &Trust::daemon(), false);
        assert_eq!(
            sticky.is_ok(),
            geteuid().is_root(),
            "sticky only when root-owned"
        );
    }

    #[test]
    fn untrusted_owner_is_refused() {
        let d = tmp();
        let t = Trust {
            uids: vec![u32::MAX - 7],
        };
        let e = open_dir(d.path(), &t, false).expect_err("owner");
        assert!(e.to_string().contains("is owned by"), "{e}");
    }

    #[test]
    fn replace_never_follows_and_refuses_links_in_place() {
        let d = tmp();
        let dir = open_dir(d.path(), &Trust::daemon(), false).expect("dir");
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").expect("write");
        let st = d.path().join("x.status");
        std::os::unix::fs::symlink(&victim, &st).expect("symlink");
        std::os::unix::fs::symlink(&victim, d.path().join("x.status.tmp")).expect("symlink");
        dir.replace(OsStr::new("x.status"), b"new\n", 0o644)
            .expect("replace");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        assert_eq!(std::fs::read_to_string(&st).expect("read"), "new\n");
        assert!(std::fs::symlink_metadata(&st).expect("meta").is_file());

        std::os::unix::fs::symlink(&victim, d.path().join("p")).expect("symlink");
        let e = dir
            .open_regular(OsStr::new("p"), &Trust::daemon(), 0o644)
            .expect_err("symlink");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::hard_link(&victim, d.path().join("h")).expect("link");
        let e = dir
            .open_regular(OsStr::new("h"), &Trust::daemon(), 0o644)
            .expect_err("hard link");
        assert!(e.to_string().contains("hard links"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
    }
}
