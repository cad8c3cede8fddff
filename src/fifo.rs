//! FIFO endpoints (`[listen] fifo`): whoever opens the named pipe for
//! reading reads one fortune cookie, then end-of-file — perlipc's named-pipe
//! server that keeps `~/.signature` fresh, without its `sleep 2`.
//!
//! # Telling a new reader from the one just served
//!
//! A FIFO has one pipe, shared by every process that has it open, and the
//! kernel keeps no notion of separate readers: a reader sees end-of-file only
//! while no writer has the FIFO open, and whatever a writer writes goes to
//! whichever reader reads first. perlipc's server writes, closes, and sleeps
//! two seconds so that its `open` for writing does not complete at once for
//! the reader it just served (that reader still has the FIFO open) and hand
//! it a second cookie. Nothing a writer sees on the same FIFO can replace
//! that sleep exactly:
//! - `open(O_WRONLY)` blocks only while *no* process has the FIFO open for
//!   reading, so it cannot tell the reader just served, still open, from a
//!   new one;
//! - `open(O_WRONLY | O_NONBLOCK)` fails with ENXIO exactly when there is no
//!   reader, and POLLERR on a held write end says the same, but "no reader"
//!   is a moment, not a state the kernel keeps: a new reader that arrives
//!   before the writer looks makes it look as if the old one were still
//!   there (a successful probe would then wake it with end-of-file and no
//!   cookie), and holding a write end to wait for POLLERR keeps the old
//!   reader from ever seeing its end-of-file.
//!
//! So each cookie gets a FIFO of its own. The writer keeps the FIFO at the
//! path open read-write (`O_RDWR` on a FIFO never blocks and never makes the
//! writer wait for a reader) with one cookie already written into it, and
//! watches it with inotify: IN_ACCESS comes when a reader has read data. It
//! then makes the next FIFO beside it, writes the next cookie into that one,
//! moves it over the path (`renameat2(RENAME_EXCHANGE)`, so a file that
//! is not a FIFO which someone put at the path is put back, never removed),
//! and only then closes the old one, whose readers now see end-of-file. A
//! reader that opens the path from then on gets the new FIFO; nobody can
//! ever again open the old one, which is never written again. So the reader
//! just served cannot get a second cookie, and a new reader never waits:
//! there is always a cookie waiting at the path.
//!
//! A cookie is at most PIPE_BUF (4096) bytes, written with one `write` into
//! an empty pipe, so it is there whole or not at all, and one `read` with a
//! buffer at least that large takes all of it: of several readers that share
//! one FIFO (they opened the path at the same moment), the first to read
//! gets the whole cookie and the others end-of-file at once, when the writer
//! closes it. (A reader that reads in pieces smaller than the cookie can
//! share it with another.) A reader whose `open` found the path before the
//! exchange but reached the FIFO only after the writer closed it would wait
//! for a writer that never comes; the writer keeps an `O_PATH` descriptor of
//! each retired FIFO and, 1, 10, 100 and 1000 ms later, opens it for writing
//! without blocking through `/proc/self/fd` and closes it again: ENXIO means
//! nobody waits, success wakes any such reader with end-of-file.
//!
//! The writer is a long-lived child of the daemon's parent: [`crate::fifo::spawn`] forks
//! it, [`crate::fifo::Fifos`] is the parent's book of them (restart when one dies, SIGTERM
//! at stop or before a reload's exec).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::{ForkResult, Pid, fork};

use crate::error::{Error, Result};

/// The most a cookie written into a FIFO may be: what one write to a pipe
/// moves atomically.
pub const PIPE_BUF: usize = libc::PIPE_BUF;

/// When a retired FIFO is checked for readers that reached it late.
const PROBES: [Duration; 4] = [
    Duration::from_millis(1),
    Duration::from_millis(10),
    Duration::from_millis(100),
    Duration::from_millis(1000),
];
/// Retired FIFOs kept for those checks; beyond it the oldest is checked at
/// once and dropped (a reader faster than this is rare).
const MAX_RETIRED: usize = 256;
/// A writer that dies sooner than this after its start is restarted only
/// this long after its start, so a broken path does not make a fork loop.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

fn err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Fifo {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| err(path, "path contains a NUL byte"))
}

/// Checks `path` before its writer starts: a FIFO there is taken over, a
/// missing one is made by the writer (mkfifo at `mode`, moved into place
/// with its first cookie in it, so nobody ever waits on a FIFO without a
/// writer), anything else is refused and never removed. The directory is
/// created if missing and must be writable.
pub fn prepare(path: &Path, mode: u32) -> Result<()> {
    let _ = mode; // applied by the writer to every FIFO it makes
    // The directory checks sockets get (src/runtime.rs, which another change
    // brings) go here, the one call site for FIFO paths:
    //     crate::runtime::check_dir(path)?;
    crate::daemon::ensure_parent_dir(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => {}
        Ok(_) => {
            return Err(err(
                path,
                "a file that is not a FIFO is in the way (not removed)",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::file(path, e)),
    }
    // Every cookie is served from a new FIFO moved over the path.
    let dir = path.parent().unwrap_or(Path::new("/"));
    let c = cpath(dir)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(err(
            path,
            format!(
                "directory {} is not writable ({}): each cookie is served from a new FIFO \
                 moved over the path",
                dir.display(),
                Errno::last().desc()
            ),
        ));
    }
    Ok(())
}

/// Removes the FIFO at `path` (at stop, or when a reload drops it), so that
/// nobody waits on a FIFO no writer serves. Anything else is left alone.
pub fn remove(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
        match std::fs::remove_file(path) {
            Ok(()) => log::info!("removed fifo {}", path.display()),
            Err(e) => log::warn!("cannot remove fifo {}: {e}", path.display()),
        }
    }
}

/// Forks the writer child of `path` and returns its pid. The child first
/// closes `parent_fds` (every descriptor of the parent it must not keep:
/// listeners, the pidfile, the signalfd, the notify socket), runs with the
/// default actions of SIGTERM, SIGINT and SIGHUP (so SIGTERM ends it wherever
/// it is), dies with its parent (PR_SET_PDEATHSIG), and never returns.
pub fn spawn(
    path: &Path,
    mode: u32,
    fortune_paths: &[PathBuf],
    parent_fds: &[RawFd],
) -> Result<Pid> {
    let parent = nix::unistd::getpid();
    // SAFETY: the daemon's parent is single-threaded.
    match unsafe { fork() }
        .map_err(|e| Error::sys(format!("fork for fifo {}", path.display()), e))?
    {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            for &fd in parent_fds {
                // SAFETY: the child's copy of a parent-owned fd, whose owner
                // is never used or dropped in this process.
                unsafe { libc::close(fd) };
            }
            crate::log::forked();
            for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
                // SAFETY: SIG_DFL runs no code in signal context.
                let _ =
                    unsafe { nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigDfl) };
            }
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
            if nix::unistd::getppid() != parent {
                crate::daemon::exit_now(0);
            }
            log::info!(
                "fifo {}: writer pid {} serving",
                path.display(),
                crate::log::pid()
            );
            let e = writer(path, mode, fortune_paths);
            log::error!("{e}");
            crate::daemon::exit_now(1)
        }
    }
}

/// One cookie of at most [`PIPE_BUF`] bytes, LF line ends. Longer ones are
/// skipped (a few tries), then a built-in one is used.
fn cookie(paths: &[PathBuf]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    for _ in 0..8 {
        out.clear();
        crate::commands::cookie::reply(paths, b"\n", &mut out);
        if !out.is_empty() && out.len() <= PIPE_BUF {
            return out;
        }
    }
    out.clear();
    crate::commands::cookie::reply(&[], b"\n", &mut out);
    out
}

/// The FIFO currently at the path, with its cookie waiting.
struct Served {
    /// Held read-write: the writer end readers wait on (and a reader end,
    /// so the pipe and its cookie outlive any reader).
    q: OwnedFd,
    /// Its inotify watch.
    wd: i32,
    /// Its inode, to notice when the path no longer names it.
    ino: (u64, u64),
}

/// A FIFO taken out of service, checked for readers that reached it late.
struct Retired {
    opath: OwnedFd,
    since: Instant,
    step: usize,
}

fn inotify() -> Result<OwnedFd> {
    // SAFETY: plain system call; the fd is owned below.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(Error::sys("inotify_init1", Errno::last()));
    }
    // SAFETY: just created and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_raw(path: &CString, flags: i32) -> std::result::Result<OwnedFd, Errno> {
    // SAFETY: a valid NUL-terminated path; the fd is owned below.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: just opened and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_fd(fd: RawFd) -> Option<libc::stat> {
    // SAFETY: fstat fills the zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

/// A new FIFO at `tmp` holding one cookie, opened read-write and watched.
fn fresh(path: &Path, tmp: &Path, mode: u32, ino: &OwnedFd, cookie: &[u8]) -> Result<Served> {
    match std::fs::symlink_metadata(tmp) {
        // Left by a writer that died between mkfifo and the exchange.
        Ok(m) if m.file_type().is_fifo() => {
            std::fs::remove_file(tmp).map_err(|e| Error::file(tmp, e))?;
        }
        Ok(_) => {
            return Err(err(
                path,
                format!("{} is in the way (not removed)", tmp.display()),
            ));
        }
        Err(_) => {}
    }
    let c = cpath(tmp)?;
    nix::unistd::mkfifo(tmp, nix::sys::stat::Mode::from_bits_truncate(mode))
        .map_err(|e| err(path, format!("mkfifo {}: {}", tmp.display(), e.desc())))?;
    let q = open_raw(&c, libc::O_RDWR | libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .map_err(|e| err(path, format!("open {}: {}", tmp.display(), e.desc())))?;
    let st = stat_fd(q.as_raw_fd()).ok_or_else(|| err(path, "fstat"))?;
    // SAFETY: plain system call.
    let me = unsafe { libc::geteuid() };
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO || st.st_uid != me {
        return Err(err(path, format!("{} was replaced", tmp.display())));
    }
    // SAFETY: fchmod on an fd we own.
    unsafe { libc::fchmod(q.as_raw_fd(), mode as libc::mode_t) };
    // One write of at most PIPE_BUF bytes into an empty pipe: all or nothing.
    // SAFETY: a valid buffer of the given length.
    let n = unsafe { libc::write(q.as_raw_fd(), cookie.as_ptr().cast(), cookie.len()) };
    if n != cookie.len() as isize {
        return Err(err(path, format!("write: {}", Errno::last().desc())));
    }
    let mask = libc::IN_ACCESS | libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;
    // SAFETY: a valid inotify fd and NUL-terminated path.
    let wd = unsafe { libc::inotify_add_watch(ino.as_raw_fd(), c.as_ptr(), mask) };
    if wd < 0 {
        return Err(err(
            path,
            format!("inotify_add_watch: {}", Errno::last().desc()),
        ));
    }
    Ok(Served {
        q,
        wd,
        ino: (st.st_dev, st.st_ino),
    })
}

/// Moves the FIFO at `tmp` over `path`; returns an O_PATH descriptor of the
/// FIFO it replaced, if there was one.
fn swap_in(path: &Path, tmp: &Path) -> Result<Option<OwnedFd>> {
    let (cp, ct) = (cpath(path)?, cpath(tmp)?);
    // Atomically swaps the two names (renameat2 RENAME_EXCHANGE).
    let exchange = || {
        // SAFETY: valid NUL-terminated paths.
        unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ct.as_ptr(),
                libc::AT_FDCWD,
                cp.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        }
    };
    if exchange() == 0 {
        // tmp now names what the path held.
        let old = std::fs::symlink_metadata(tmp).map_err(|e| Error::file(tmp, e))?;
        if !old.file_type().is_fifo() {
            // Someone put another file at the path: put it back.
            exchange();
            let _ = std::fs::remove_file(tmp);
            return Err(err(
                path,
                "a file that is not a FIFO is in the way (not removed)",
            ));
        }
        let opath = open_raw(&ct, libc::O_PATH | libc::O_NOFOLLOW).ok();
        std::fs::remove_file(tmp).map_err(|e| Error::file(tmp, e))?;
        return Ok(opath);
    }
    match Errno::last() {
        // Nothing at the path (removed by someone): the new FIFO takes it.
        Errno::ENOENT => {
            std::fs::rename(tmp, path).map_err(|e| Error::file(path, e))?;
            Ok(None)
        }
        // A file system without RENAME_EXCHANGE: look, then rename.
        Errno::EINVAL | Errno::ENOSYS => {
            let opath = match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_fifo() => {
                    open_raw(&cp, libc::O_PATH | libc::O_NOFOLLOW).ok()
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(tmp);
                    return Err(err(
                        path,
                        "a file that is not a FIFO is in the way (not removed)",
                    ));
                }
                Err(_) => None,
            };
            std::fs::rename(tmp, path).map_err(|e| Error::file(path, e))?;
            Ok(opath)
        }
        e => Err(err(path, format!("renameat2: {}", e.desc()))),
    }
}

/// Opens a retired FIFO for writing without blocking and closes it again:
/// a reader blocked in `open` on it wakes and sees end-of-file. True while
/// a reader still has it open.
fn probe(opath: &OwnedFd) -> bool {
    let Ok(c) = CString::new(format!("/proc/self/fd/{}", opath.as_raw_fd())) else {
        return false;
    };
    open_raw(&c, libc::O_WRONLY | libc::O_NONBLOCK).is_ok()
}

/// True if `path` still names the FIFO `ino`.
fn still_at(path: &Path, ino: (u64, u64)) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == ino)
}

/// The writer's loop: returns only with the error that ends it.
fn writer(path: &Path, mode: u32, fortune_paths: &[PathBuf]) -> Error {
    match serve(path, mode, fortune_paths) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn serve(path: &Path, mode: u32, fortune_paths: &[PathBuf]) -> Result<std::convert::Infallible> {
    let ino = inotify()?;
    let name = path.file_name().ok_or_else(|| err(path, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".hostinfod-next");
    let tmp = path.with_file_name(tmp_name);
    let mut current: Option<Served> = None;
    let mut retired: std::collections::VecDeque<Retired> = std::collections::VecDeque::new();
    // First of all, a FIFO of our own with a cookie in it takes the path, or
    // replaces the FIFO there (readers that wait on that one, which nobody
    // writes to, are woken by the probes with end-of-file: it may be the
    // FIFO of a writer that ended after its cookie was read, whose reader
    // must not get a second one).
    let mut turn = true;
    let mut events = vec![0u8; 4096];
    // Chosen ahead, so that a reader waits for no file reads between its
    // cookie and its end-of-file.
    let mut next_cookie = cookie(fortune_paths);
    loop {
        if turn {
            turn = false;
            let next = fresh(path, &tmp, mode, &ino, &next_cookie)?;
            let old_file = swap_in(path, &tmp)?;
            if let Some(old) = current.replace(next) {
                // SAFETY: plain system call on our inotify fd.
                unsafe { libc::inotify_rm_watch(ino.as_raw_fd(), old.wd) };
                // Its readers see end-of-file now; nobody can open it again.
                drop(old.q);
                log::debug!("fifo {}: cookie taken", path.display());
            }
            if let Some(opath) = old_file {
                if retired.len() >= MAX_RETIRED
                    && let Some(r) = retired.pop_front()
                {
                    probe(&r.opath);
                }
                retired.push_back(Retired {
                    opath,
                    since: Instant::now(),
                    step: 0,
                });
            }
            next_cookie = cookie(fortune_paths);
        }
        let now = Instant::now();
        let due = retired.iter().map(|r| r.since + PROBES[r.step]).min();
        let timeout = due.map_or(-1, |d| {
            d.saturating_duration_since(now)
                .as_millis()
                .clamp(0, i32::MAX as u128) as i32
        });
        let mut pfd = [libc::pollfd {
            fd: ino.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: a valid array of one pollfd.
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), 1, timeout) };
        if n < 0 && Errno::last() != Errno::EINTR {
            return Err(Error::sys("poll", Errno::last()));
        }
        if n > 0 {
            // SAFETY: events is writable for its length.
            let got =
                unsafe { libc::read(ino.as_raw_fd(), events.as_mut_ptr().cast(), events.len()) };
            let got = usize::try_from(got).unwrap_or(0);
            let mut at = 0;
            while at + 16 <= got {
                let field = |i: usize| {
                    let b = &events[at + i..at + i + 4];
                    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                };
                let (wd, mask, len) = (field(0) as i32, field(4), field(12) as usize);
                at += 16 + len;
                if mask & libc::IN_Q_OVERFLOW != 0 {
                    // Events were lost: a new FIFO is always safe.
                    turn = true;
                }
                let Some(cur) = &current else { continue };
                if wd != cur.wd {
                    continue; // a retired FIFO's last events
                }
                if mask & libc::IN_ACCESS != 0 {
                    // A reader has read the cookie.
                    turn = true;
                } else if !still_at(path, cur.ino) {
                    // Moved or removed: put a FIFO back at the path.
                    turn = true;
                }
            }
        }
        let now = Instant::now();
        for r in retired.iter_mut() {
            if now >= r.since + PROBES[r.step] {
                probe(&r.opath);
                r.step += 1;
            }
        }
        retired.retain(|r| r.step < PROBES.len());
    }
}

/// One FIFO endpoint in the parent's book.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    pid: Option<i32>,
    started: Instant,
    restart_at: Option<Instant>,
}

/// The parent's FIFO endpoints and their writer children.
#[derive(Debug, Default)]
pub struct Fifos {
    entries: Vec<Entry>,
    mode: u32,
    fortune_paths: Vec<PathBuf>,
}

impl Fifos {
    /// Prepares every configured FIFO ([`prepare`]); the first failure is
    /// the error (the daemon does not start, a reload is rejected).
    pub fn prepare(cfg: &crate::config::Config) -> Result<Self> {
        let mode = cfg.fifo_mode();
        let mut entries = Vec::new();
        for p in &cfg.listen.fifo {
            prepare(p, mode)?;
            entries.push(Entry {
                path: p.clone(),
                pid: None,
                started: Instant::now(),
                restart_at: Some(Instant::now()),
            });
        }
        Ok(Fifos {
            entries,
            mode,
            fortune_paths: cfg.commands.fortune_paths.clone(),
        })
    }

    /// `fifo PATH` for each endpoint, as `-s status` lists listeners.
    pub fn listeners(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .iter()
            .map(|e| format!("fifo {}", e.path.display()))
    }

    /// The configured paths.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.entries.iter().map(|e| e.path.as_path())
    }

    /// The live writers' pids.
    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.entries.iter().filter_map(|e| e.pid)
    }

    /// True if `pid` is one of the writers (alive or not yet noticed dead).
    pub fn is_writer(&self, pid: i32) -> bool {
        self.entries.iter().any(|e| e.pid == Some(pid))
    }

    /// After a SIGCHLD: notes the writers that have ended (whether or not the
    /// reaper has waited for them yet) and schedules their restart.
    pub fn on_sigchld(&mut self) {
        use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
        for e in &mut self.entries {
            let Some(pid) = e.pid else { continue };
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            let gone = !matches!(
                waitid(Id::Pid(Pid::from_raw(pid)), flags),
                Ok(WaitStatus::StillAlive)
            );
            if gone {
                log::warn!(
                    "fifo {}: writer pid {pid} ended; restarting it",
                    e.path.display()
                );
                e.pid = None;
                e.restart_at = Some((e.started + RESTART_BACKOFF).max(Instant::now()));
            }
        }
    }

    /// When [`Fifos::start_due`] has work next.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|e| e.restart_at).min()
    }

    /// Starts the writers that are due (all of them at first).
    pub fn start_due(&mut self, parent_fds: &[RawFd]) {
        let now = Instant::now();
        for e in &mut self.entries {
            if e.restart_at.is_none_or(|t| t > now) {
                continue;
            }
            match spawn(&e.path, self.mode, &self.fortune_paths, parent_fds) {
                Ok(pid) => {
                    e.pid = Some(pid.as_raw());
                    e.started = now;
                    e.restart_at = None;
                }
                Err(err) => {
                    log::error!("{err}; trying again in a second");
                    e.restart_at = Some(now + RESTART_BACKOFF);
                }
            }
        }
    }

    /// Ends every writer (SIGTERM, then SIGKILL after a second) and waits
    /// for it, so none outlives this image of the daemon. Restarted by
    /// [`Fifos::start_due`] if this image serves on (a failed reload exec).
    pub fn stop(&mut self) {
        for e in &self.entries {
            if let Some(pid) = e.pid {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for e in &mut self.entries {
            let Some(pid) = e.pid.take() else { continue };
            let p = Pid::from_raw(pid);
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
                match waitpid(p, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Ok(WaitStatus::StillAlive) => {
                        let _ = kill(p, Signal::SIGKILL);
                        let _ = waitpid(p, None);
                        break;
                    }
                    Err(Errno::EINTR) => {}
                    _ => break,
                }
            }
            e.restart_at = Some(Instant::now());
        }
    }

    /// Removes the FIFO files (at stop).
    pub fn remove_files(&self) {
        for e in &self.entries {
            remove(&e.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_accepts_missing_and_fifo_refuses_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub").join("sig");
        prepare(&p, 0o640).expect("missing is fine");
        assert!(dir.path().join("sub").is_dir(), "directory made");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        prepare(&p, 0o644).expect("an existing FIFO is taken");
        let f = dir.path().join("file");
        std::fs::write(&f, "keep").expect("write");
        let e = prepare(&f, 0o644).expect_err("a regular file is refused");
        assert!(e.to_string().contains("not a FIFO"), "{e}");
        assert_eq!(std::fs::read_to_string(&f).expect("kept"), "keep");
    }

    #[test]
    fn cookies_fit_a_pipe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "x".repeat(5000);
        std::fs::write(dir.path().join("f"), format!("{long}\n%\n")).expect("write");
        // Only a cookie too long for one atomic write: a built-in one instead.
        let c = cookie(&[dir.path().to_path_buf()]);
        assert!(c.len() <= PIPE_BUF && !c.is_empty());
        assert!(!c.starts_with(b"xxx"));
    }
}
