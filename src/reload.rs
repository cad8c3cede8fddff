//! The in-place reload: what one image of the daemon hands to the next
//! across `execve`, and the exec itself.
//!
//! The PID does not change, so the listeners are handed over by the systemd
//! convention: fds 3, 4, … with `LISTEN_FDS`, `LISTEN_PID` (ours) and
//! `LISTEN_FDNAMES`, FD_CLOEXEC cleared on exactly those. The new image
//! therefore adopts its listeners with the same code that serves socket
//! activation, and identifies each by `getsockname`, not by position. Beside
//! them go, as `HOSTINFOD_*` variables: the generation and reload counters,
//! the first start time, the live children (pid, source, start) so limits
//! and accounting carry over, the locked pidfile's fd, whether the listeners
//! came from systemd, and the moment the SIGHUP was read (to log latency).
//!
//! Moving fds onto 3, 4, … would overwrite whatever sits there (the
//! signalfd, say), and an exec can fail (the binary was deleted). So every
//! slot's previous occupant is first copied away, and [`exec`] puts it all
//! back when execve returns: a failed reload leaves the old image exactly as
//! it was.
//!
//! The signal mask is left as the daemon runs with it (SIGCHLD, SIGHUP,
//! SIGTERM, SIGINT blocked): it survives execve, and pending signals do too,
//! so a SIGHUP that arrives during the exec is neither lost nor fatal. The new
//! image reads it from its signalfd and reloads once more. Handlers do not
//! survive exec, and we have none; SIGPIPE stays ignored, as every image wants.

use std::ffi::{CString, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};

const GENERATION: &str = "HOSTINFOD_GENERATION";
const RELOAD_SEQ: &str = "HOSTINFOD_RELOAD_SEQ";
const STARTED: &str = "HOSTINFOD_STARTED";
const CHILDREN: &str = "HOSTINFOD_CHILDREN";
const PIDFILE_FD: &str = "HOSTINFOD_PIDFILE_FD";
const ACTIVATED: &str = "HOSTINFOD_ACTIVATED";
const HUP_AT: &str = "HOSTINFOD_HUP_AT_US";
const EXE: &str = "HOSTINFOD_EXE";
const CONFIG: &str = "HOSTINFOD_CONFIG";
const LEFTOVERS: &str = "HOSTINFOD_LEFTOVERS";
/// The effective uid whose defaults apply (see [`crate::config::Env`]):
/// after a privilege drop the re-executed image must still resolve the
/// defaults as root did, or every default path would seem to change.
pub const DEFAULTS_UID: &str = "HOSTINFOD_DEFAULTS_UID";

const HANDOVER_VARS: &[&str] = &[
    GENERATION,
    RELOAD_SEQ,
    STARTED,
    CHILDREN,
    PIDFILE_FD,
    ACTIVATED,
    HUP_AT,
    EXE,
    CONFIG,
    LEFTOVERS,
    DEFAULTS_UID,
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
];

/// What the previous image of this process handed over.
#[derive(Debug, Clone)]
pub struct Inherited {
    /// Generation of this image (the previous one's plus one).
    pub generation: u64,
    /// SIGHUPs acted upon so far.
    pub reload_seq: u64,
    /// Unix time of the first start.
    pub started: i64,
    /// The child table, encoded by [`crate::children::Children::encode`].
    pub children: String,
    /// The locked pidfile's fd, if there is a pidfile.
    pub pidfile_fd: Option<RawFd>,
    /// The listeners came from systemd's socket activation.
    pub activated: bool,
    /// CLOCK_MONOTONIC µs when the SIGHUP was read.
    pub hup_at_us: Option<u64>,
    /// The binary path resolved at the first start.
    pub exe: PathBuf,
    /// The `-c` path made absolute at the first start (the argv still holds
    /// what the operator typed, which may be relative to a directory the
    /// daemon left for `/`).
    pub config: Option<PathBuf>,
    /// Files of the previous configuration for this image to remove once it
    /// serves (see [`Handover::leftovers`]).
    pub leftovers: Vec<PathBuf>,
}

fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// The hand-over, when this image was started by a reload.
pub fn inherited() -> Option<Inherited> {
    Some(Inherited {
        generation: var(GENERATION)?,
        reload_seq: var(RELOAD_SEQ).unwrap_or(0),
        started: var(STARTED).unwrap_or(0),
        children: std::env::var(CHILDREN).unwrap_or_default(),
        pidfile_fd: var(PIDFILE_FD),
        activated: std::env::var(ACTIVATED).is_ok_and(|v| v == "1"),
        hup_at_us: var(HUP_AT),
        exe: std::env::var_os(EXE).map(PathBuf::from)?,
        config: std::env::var_os(CONFIG).map(PathBuf::from),
        leftovers: std::env::var(LEFTOVERS)
            .map(|v| decode_paths(&v))
            .unwrap_or_default(),
    })
}

/// Paths as hex of their bytes, joined by `:` (a path may hold any byte but
/// NUL, an environment value any but NUL and, by convention, not newline).
fn encode_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| {
            p.as_os_str()
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(":")
}

fn decode_paths(text: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt as _;
    text.split(':')
        .filter(|h| !h.is_empty() && h.len() % 2 == 0)
        .filter_map(|h| {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .map(|b| PathBuf::from(OsString::from_vec(b)))
        .collect()
}

/// The fds passed by `LISTEN_FDS` when `LISTEN_PID` is this process.
pub fn listen_fds() -> Vec<RawFd> {
    if var::<u32>("LISTEN_PID") != Some(std::process::id()) {
        return Vec::new();
    }
    let n: RawFd = var("LISTEN_FDS").unwrap_or(0);
    // SD_LISTEN_FDS_START is 3; a count beyond any sane fd table is ignored.
    (3..3 + n.clamp(0, 4096)).collect()
}

/// `LISTEN_FDNAMES`, one per fd (empty strings when absent).
pub fn listen_names(n: usize) -> Vec<String> {
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let mut v: Vec<String> = names.split(':').map(str::to_string).collect();
    v.resize(n, String::new());
    v
}

/// Everything the next image needs.
#[derive(Debug)]
pub struct Handover<'a> {
    /// The binary to run.
    pub exe: &'a Path,
    /// The original arguments, argv[0] included.
    pub args: &'a [OsString],
    /// Listener fds, in order, with the name each carries.
    pub listeners: Vec<(RawFd, String)>,
    /// The pidfile's fd.
    pub pidfile_fd: Option<RawFd>,
    /// Generation the next image will have.
    pub generation: u64,
    /// SIGHUPs acted upon, this one included.
    pub reload_seq: u64,
    /// First start, unix time.
    pub started: i64,
    /// Encoded child table.
    pub children: String,
    /// Listeners came from systemd.
    pub activated: bool,
    /// When the SIGHUP was read.
    pub hup_at_us: u64,
    /// The uid whose defaults apply.
    pub defaults_uid: u32,
    /// The absolute `-c` path, if one was given.
    pub config: Option<&'a Path>,
    /// Files the next image removes once it serves: the socket files of
    /// listeners the new configuration drops, and the pidfile and status
    /// file when it sets `pid_file = ""`. Removing them here, before the
    /// exec, would leave an image whose exec failed without them.
    pub leftovers: Vec<PathBuf>,
}

/// One fd slot (3, 4, …) overwritten for the exec, and how to put it back.
struct Slot {
    fd: RawFd,
    saved: Option<(RawFd, FdFlag)>,
}

fn dup_above(fd: RawFd, min: RawFd) -> nix::Result<RawFd> {
    // SAFETY: fcntl F_DUPFD_CLOEXEC on an fd number; the result is a new fd we own.
    let r = unsafe { nix::libc::fcntl(fd, nix::libc::F_DUPFD_CLOEXEC, min) };
    Errno::result(r)
}

fn close(fd: RawFd) {
    // SAFETY: closing an fd this module created or moved.
    unsafe { nix::libc::close(fd) };
}

fn fd_flags(fd: RawFd) -> Option<FdFlag> {
    // SAFETY: F_GETFD only reads the flags of an fd number.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(fd, FcntlArg::F_GETFD)
        .ok()
        .map(FdFlag::from_bits_truncate)
}

/// Replaces this process image with a fresh one of the same binary. Returns
/// only when execve failed, with everything put back as it was.
pub fn exec(h: &Handover<'_>) -> Errno {
    let mut sources: Vec<RawFd> = h.listeners.iter().map(|(fd, _)| *fd).collect();
    sources.extend(h.pidfile_fd);
    let n = sources.len() as RawFd;
    let high = 3 + n;
    // 1. Copy every source above the target range, so no step below can
    //    overwrite a source before it is placed.
    let mut copies = Vec::with_capacity(sources.len());
    for &s in &sources {
        match dup_above(s, high) {
            Ok(c) => copies.push(c),
            Err(e) => {
                copies.into_iter().for_each(close);
                return e;
            }
        }
    }
    // 2. Place the copies on 3, 4, …, saving what was there.
    let mut slots = Vec::with_capacity(sources.len());
    let mut failed = None;
    for (i, &c) in copies.iter().enumerate() {
        let target = 3 + i as RawFd;
        let saved = match fd_flags(target) {
            Some(flags) => match dup_above(target, high) {
                Ok(s) => Some((s, flags)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            },
            None => None,
        };
        slots.push(Slot { fd: target, saved });
        // dup2 leaves FD_CLOEXEC clear on the target: it crosses the exec.
        // SAFETY: both are fds we hold.
        if let Err(e) = Errno::result(unsafe { nix::libc::dup2(c, target) }) {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => {
            let env = environment(h, n);
            let args: Vec<CString> = h
                .args
                .iter()
                .filter_map(|a| CString::new(a.as_bytes()).ok())
                .collect();
            match CString::new(h.exe.as_os_str().as_bytes()) {
                Ok(path) => match nix::unistd::execve(&path, &args, &env) {
                    Err(e) => e,
                    Ok(never) => match never {},
                },
                Err(_) => Errno::EINVAL,
            }
        }
    };
    // 3. The exec failed: put every slot back and drop the copies.
    for slot in slots.into_iter().rev() {
        match slot.saved {
            Some((s, flags)) => {
                // SAFETY: restoring our own fd onto its original number.
                unsafe { nix::libc::dup2(s, slot.fd) };
                // SAFETY: as above.
                let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(slot.fd) };
                let _ = fcntl(b, FcntlArg::F_SETFD(flags));
                close(s);
            }
            None => close(slot.fd),
        }
    }
    copies.into_iter().for_each(close);
    err
}

fn environment(h: &Handover<'_>, n: RawFd) -> Vec<CString> {
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !HANDOVER_VARS.iter().any(|v| k.as_bytes() == v.as_bytes()))
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let names: Vec<&str> = h.listeners.iter().map(|(_, name)| name.as_str()).collect();
    let mut set = |k: &str, v: String| {
        if let Ok(c) = CString::new(format!("{k}={v}")) {
            env.push(c);
        }
    };
    set("LISTEN_PID", std::process::id().to_string());
    set("LISTEN_FDS", h.listeners.len().to_string());
    set("LISTEN_FDNAMES", names.join(":"));
    if h.pidfile_fd.is_some() {
        set(PIDFILE_FD, (3 + n - 1).to_string());
    }
    set(GENERATION, h.generation.to_string());
    set(RELOAD_SEQ, h.reload_seq.to_string());
    set(STARTED, h.started.to_string());
    set(CHILDREN, h.children.clone());
    set(ACTIVATED, if h.activated { "1" } else { "0" }.into());
    set(HUP_AT, h.hup_at_us.to_string());
    set(EXE, h.exe.to_string_lossy().into_owned());
    set(DEFAULTS_UID, h.defaults_uid.to_string());
    if !h.leftovers.is_empty() {
        set(LEFTOVERS, encode_paths(&h.leftovers));
    }
    if let Some(c) = h.config {
        // As bytes: a path need not be UTF-8.
        let mut kv = format!("{CONFIG}=").into_bytes();
        kv.extend_from_slice(c.as_os_str().as_bytes());
        if let Ok(c) = CString::new(kv) {
            env.push(c);
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_survive_the_environment() {
        let odd = PathBuf::from(OsString::from_vec(b"/run/x:y\n\xff.sock".to_vec()));
        let paths = vec![PathBuf::from("/run/hostinfod/a.sock"), odd];
        let text = encode_paths(&paths);
        assert!(!text.contains('\n'));
        assert_eq!(decode_paths(&text), paths);
        assert!(decode_paths("zz:1").is_empty());
        assert!(decode_paths("").is_empty());
    }
}
