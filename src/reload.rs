//! The mechanics of the in-place reload: checking that the binary about to
//! replace us can serve, and the exec itself. What crosses the exec is
//! [`crate::handover`]; deciding what the next image gets is the server's
//! (`server/reload.rs`).
//!
//! **The check.** The binary on disk may have changed since we started — a
//! package upgrade, or something that is not hostinfod at all. Before the
//! exec, [`preflight`] runs it as `BINARY -t -c FILE` against the new
//! configuration (as `nginx -t` is used before a reload) and requires it to
//! exit 0 saying `configuration OK` within [`PREFLIGHT_TIMEOUT`]; anything
//! else rejects the reload while this image keeps serving.
//!
//! **The exec.** Listeners, the pidfile's fd and the hand-over's memfd are
//! placed on fds 3, 4, … with FD_CLOEXEC cleared on exactly those. Moving
//! fds onto those numbers would overwrite whatever sits there (the
//! signalfd, say), and an exec can still fail, so every slot's previous
//! occupant is first copied away, and [`exec`] puts it all back when execve
//! returns: a failed reload leaves the old image exactly as it was.
//!
//! The signal mask is left as the daemon runs with it (SIGCHLD, SIGHUP,
//! SIGTERM, SIGINT blocked): it survives execve, and pending signals do too,
//! so a SIGHUP that arrives during the exec is neither lost nor fatal. The new
//! image reads it from its signalfd and reloads once more. Handlers do not
//! survive exec, and we have none; SIGPIPE stays ignored, as every image wants.

use std::ffi::{CString, OsString};
use std::io::Read as _;
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use crate::handover::FD_VAR;

/// Longest the new binary's configuration check may take.
pub const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// Variables of ours, and of socket activation, that the next image gets
/// fresh from [`exec`] rather than from our environment.
const OURS: &[&str] = &[FD_VAR, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// Runs `exe -t [-c config]` and succeeds only if it says
/// `configuration OK` and exits 0 in time.
pub fn preflight(exe: &Path, config: Option<&Path>) -> Result<(), String> {
    let mut cmd = Command::new(exe);
    cmd.arg("-t");
    if let Some(c) = config {
        cmd.arg("-c").arg(c);
    }
    for v in OURS {
        cmd.env_remove(v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} to check it: {e}", exe.display()))?;
    let deadline = Instant::now() + PREFLIGHT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} -t did not finish within {} s",
                    exe.display(),
                    PREFLIGHT_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for {} -t: {e}", exe.display())),
        }
    };
    // The check's output is a line or two; a bound keeps a strange binary
    // from making us buffer without end.
    let mut out = Vec::new();
    let mut err = Vec::new();
    if let Some(o) = child.stdout.take() {
        let _ = o.take(4096).read_to_end(&mut out);
    }
    if let Some(e) = child.stderr.take() {
        let _ = e.take(4096).read_to_end(&mut err);
    }
    if status.success() && out == b"configuration OK\n" {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&err);
    let said = said.lines().next().unwrap_or("").trim();
    Err(format!(
        "the binary {} failed its check ({status}{}{})",
        exe.display(),
        if said.is_empty() { "" } else { ": " },
        said
    ))
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

/// Replaces this process image with `exe`, passing `args`, the `listeners`
/// on fds 3, 4, … (`LISTEN_FDS` counts them), then `rest` (the pidfile, the
/// hand-over; the last one's number goes in [`FD_VAR`]). Returns only when
/// execve failed, with every fd put back as it was.
pub fn exec(exe: &Path, args: &[OsString], listeners: &[RawFd], rest: &[RawFd]) -> Errno {
    let sources: Vec<RawFd> = listeners.iter().chain(rest).copied().collect();
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
            let env = environment(listeners.len(), (!rest.is_empty()).then_some(high - 1));
            let args: Vec<CString> = args
                .iter()
                .filter_map(|a| CString::new(a.as_bytes()).ok())
                .collect();
            match CString::new(exe.as_os_str().as_bytes()) {
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

/// Our environment without [`OURS`], plus the fresh values.
fn environment(listeners: usize, handover_fd: Option<RawFd>) -> Vec<CString> {
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !OURS.iter().any(|v| k.as_bytes() == v.as_bytes()))
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut set = |k: &str, v: String| {
        if let Ok(c) = CString::new(format!("{k}={v}")) {
            env.push(c);
        }
    };
    set("LISTEN_PID", std::process::id().to_string());
    set("LISTEN_FDS", listeners.to_string());
    if let Some(fd) = handover_fd {
        set(FD_VAR, fd.to_string());
    }
    env
}

/// The fds passed by `LISTEN_FDS` when `LISTEN_PID` is this process.
pub fn listen_fds() -> Vec<RawFd> {
    let var = |k: &str| std::env::var(k).ok();
    if var("LISTEN_PID").and_then(|v| v.parse::<u32>().ok()) != Some(std::process::id()) {
        return Vec::new();
    }
    let n: RawFd = var("LISTEN_FDS").and_then(|v| v.parse().ok()).unwrap_or(0);
    // SD_LISTEN_FDS_START is 3; a count beyond any sane fd table is ignored.
    (3..3 + n.clamp(0, 4096)).collect()
}

/// `LISTEN_FDNAMES`, one per fd (empty strings when absent), for the log.
pub fn listen_names(n: usize) -> Vec<String> {
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let mut v: Vec<String> = names.split(':').map(str::to_string).collect();
    v.resize(n, String::new());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_that_is_not_hostinfod_fails_the_check() {
        let _children = crate::children_lock();
        let e = preflight(Path::new("/bin/true"), None).expect_err("true says nothing");
        assert!(e.contains("/bin/true failed its check"), "{e}");
        let e = preflight(Path::new("/nonexistent/hostinfod"), None).expect_err("missing");
        assert!(e.contains("cannot run /nonexistent/hostinfod"), "{e}");
    }
}
