//! Becoming a daemon, and telling the launcher whether it worked.
//!
//! The steps are daemon(7)'s for a SysV daemon, written with `nix` rather than
//! the `daemonize` crate (0.5 is unmaintained, RUSTSEC-2025-0069, exits the
//! launcher with a raw wait status, and reports nothing after its second
//! fork): close inherited fds above 2, reset signal dispositions and the mask,
//! fork, `setsid`, fork again so the daemon can never reacquire a controlling
//! terminal, `chdir("/")`, set the umask, point 0-2 at /dev/null.
//!
//! Readiness travels over a pipe made before the first fork. The launcher
//! blocks on it and exits 0 only when the daemon writes `OK` (it is listening
//! and has its pidfile); if the daemon writes an error, or dies and the pipe
//! reaches EOF with nothing said, the launcher prints the reason on its
//! stderr and exits non-zero. So `hostinfod` returns 0 only for a daemon that
//! serves.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::stat::{Mode, umask};
use nix::unistd::{ForkResult, chdir, dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe2, setsid};

use crate::error::{Error, Result};

/// How long the launcher waits for the daemon to report.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon's end of the readiness pipe (or nothing, in the foreground).
#[derive(Debug)]
pub struct Readiness {
    pipe: Option<std::fs::File>,
}

impl Readiness {
    /// Nobody waits (foreground, or a re-executed image).
    pub fn none() -> Self {
        Readiness { pipe: None }
    }

    /// Tells the launcher we serve; it exits 0.
    pub fn ok(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"OK\n");
        }
    }

    /// Tells the launcher why we could not start; it prints this and exits
    /// with the same status we are about to exit with.
    pub fn fail(&mut self, err: &Error) {
        if let Some(mut p) = self.pipe.take() {
            let msg = err.to_string().replace('\n', " ");
            let _ = writeln!(p, "ERR {} {msg}", err.exit_code());
        }
    }
}

/// Ends this process at once: no destructors, no atexit handlers, no
/// flush of stdio buffers that were copied from the parent by fork.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    unsafe { nix::libc::_exit(code) }
}

/// Checks the directory that will hold `path` (a pidfile, a socket), and
/// creates it when missing, with its parents, as mkdir -p does, but with a
/// fixed mode and refusing a directory another user could write (see
/// runtime.rs).
pub fn ensure_parent_dir(path: &std::path::Path) -> Result<()> {
    let (dir, _) = crate::runtime::split(path)?;
    crate::runtime::open_dir(dir, &crate::runtime::Trust::daemon(), true).map(drop)
}

/// Sets `daemon.umask`. Called in every mode, the foreground (`-f`, how
/// systemd runs it) included, before any file is created, so the files'
/// modes never depend on the shell that started the daemon.
pub fn set_umask(bits: u32) {
    umask(Mode::from_bits_truncate(bits as nix::libc::mode_t));
}

/// Closes every fd above 2 except those in `keep`.
fn close_inherited(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // Collect first: the directory stream itself holds an fd.
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: these fds were inherited and nothing in this process
            // owns them yet (no file or socket has been opened before this).
            unsafe { nix::libc::close(fd) };
        }
    }
}

/// Detaches from the terminal and the launching process. Returns in the
/// daemon; the launching process waits for readiness and exits inside.
pub fn daemonize(umask_bits: u32, keep: &[RawFd]) -> Result<Readiness> {
    close_inherited(keep);
    crate::signals::reset_all();
    let (r, w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    // SAFETY: single-threaded here (no thread is ever started), so fork is safe.
    match unsafe { fork() }.map_err(|e| Error::sys("fork", e))? {
        ForkResult::Parent { child } => {
            drop(w);
            launcher_wait(r, child)
        }
        ForkResult::Child => {
            drop(r);
            setsid().map_err(|e| Error::sys("setsid", e))?;
            // SAFETY: still single-threaded.
            match unsafe { fork() }.map_err(|e| Error::sys("fork", e))? {
                // The session leader leaves at once; the launcher reaps it.
                ForkResult::Parent { .. } => crate::daemon::exit_now(0),
                ForkResult::Child => {}
            }
            chdir("/").map_err(|e| Error::sys("chdir /", e))?;
            set_umask(umask_bits);
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(|e| Error::file("/dev/null", e))?;
            for f in [dup2_stdin, dup2_stdout, dup2_stderr] {
                f(&null).map_err(|e| Error::sys("dup2 /dev/null", e))?;
            }
            Ok(Readiness {
                pipe: Some(std::fs::File::from(w)),
            })
        }
    }
}

/// The launcher's side: wait for `OK` or an error, then exit.
fn launcher_wait(r: OwnedFd, child: nix::unistd::Pid) -> ! {
    let mut msg = String::new();
    let mut file = std::fs::File::from(r);
    let deadline = std::time::Instant::now() + LAUNCH_TIMEOUT;
    let mut buf = [0u8; 512];
    // The daemon writes one short line and closes; poll bounds the wait in
    // case it hangs before reporting.
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = [nix::libc::pollfd {
            fd: file.as_raw_fd(),
            events: nix::libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: a valid array of one pollfd for the duration of the call.
        let n = unsafe { nix::libc::poll(pfd.as_mut_ptr(), 1, left.as_millis() as i32) };
        if n == 0 {
            msg = format!(
                "ERR 1 daemon did not report readiness within {} s",
                LAUNCH_TIMEOUT.as_secs()
            );
            break;
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => msg.push_str(&String::from_utf8_lossy(&buf[..k])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
        if msg.ends_with('\n') {
            break;
        }
    }
    let _ = nix::sys::wait::waitpid(child, None);
    let line = msg.trim_end();
    if line == "OK" {
        std::process::exit(0);
    }
    let (code, text) = match line.strip_prefix("ERR ").and_then(|r| r.split_once(' ')) {
        Some((c, t)) => (c.parse().unwrap_or(1), t.to_string()),
        None => (
            1,
            "daemon exited during start-up without reporting why".to_string(),
        ),
    };
    eprintln!("hostinfod: {text}");
    std::process::exit(if code == 0 { 1 } else { code });
}
