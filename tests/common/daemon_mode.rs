//! Daemon mode (no -f), reload and /proc helpers for tests/lifecycle.rs and
//! tests/reload.rs, included by each with
//! `#[path = "common/daemon_mode.rs"] mod daemon_mode;` beside `mod common;`.
//!
//! A daemon started without -f is not a child of the test: it is found
//! through its pidfile and stopped by a [`Detached`] guard (SIGTERM, bounded
//! wait, SIGKILL), so a failing test never leaks a daemon.

#![allow(dead_code)]

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, Daemon, IO_TIMEOUT, PROMPT, Setup, Stream, eventually, proc_state};

/// What the launching command (`hostinfod -c CONFIG`, daemon mode) did.
#[derive(Debug)]
pub struct Launch {
    /// Its exit code (None: killed by a signal or did not exit in time).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The launcher's own pid.
    pub launcher_pid: i32,
    /// How long it took to exit.
    pub elapsed: Duration,
    /// The daemon it left running, if any (from the pidfile), stopped on drop.
    pub daemon: Option<Detached>,
}

/// Daemon-mode and reload extensions of the shared [`Setup`].
pub trait SetupExt {
    fn launch(&self, envs: &[(&str, &str)]) -> Launch;
    fn launch_cmd(&self, envs: &[(&str, &str)], adjust: impl FnOnce(&mut Command)) -> Launch;
    fn start_exe(&self, exe: &Path, args: &[&str], envs: &[(&str, &str)]) -> Daemon;
    fn status(&self) -> std::collections::BTreeMap<String, String>;
}

impl SetupExt for Setup {
    /// Runs `hostinfod -c CONFIG` in daemon mode and waits (bounded, 30 s)
    /// for the launcher to exit. Its stdout and stderr go to files, so a
    /// daemon that kept them open cannot hang the test. Whatever daemon the
    /// pidfile then names (if it runs with our config) is put in a guard.
    fn launch(&self, envs: &[(&str, &str)]) -> Launch {
        self.launch_cmd(envs, |_| {})
    }

    /// Same, with a hook to adjust the command (e.g. `pre_exec`).
    fn launch_cmd(&self, envs: &[(&str, &str)], adjust: impl FnOnce(&mut Command)) -> Launch {
        let out_path = self.path("launcher.out");
        let err_path = self.path("launcher.err");
        let mut cmd = Command::new(BIN);
        cmd.arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("launcher.out"))
            .stderr(std::fs::File::create(&err_path).expect("launcher.err"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        adjust(&mut cmd);
        let t0 = Instant::now();
        let mut child = cmd.spawn().expect("spawn launcher");
        let launcher_pid = child.id() as i32;
        let deadline = t0 + Duration::from_secs(30);
        let code = wait_or_kill(&mut child, deadline);
        let elapsed = t0.elapsed();
        let daemon = Detached::from_pidfile(&self.pid_file, &self.config);
        Launch {
            code,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
            launcher_pid,
            elapsed,
            daemon,
        }
    }

    /// Starts `EXE -f -c CONFIG` (a copy of the binary, say) as a child of
    /// the test and waits until it accepts on TCP.
    fn start_exe(&self, exe: &Path, args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        self.start_exe_with(exe, args, envs)
    }

    /// The status file beside the pidfile, as a map (empty when absent).
    fn status(&self) -> std::collections::BTreeMap<String, String> {
        std::fs::read_to_string(self.pid_file.with_extension("status"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// A daemon that is not our child, known by pid, stopped on drop: SIGTERM,
/// a bounded wait, then SIGKILL. The pid is only signalled while its
/// command line still names our config file, so a recycled pid is never hit.
#[derive(Debug)]
pub struct Detached {
    pub pid: i32,
    config: PathBuf,
}

impl Detached {
    /// The daemon named by `pid_file`, if it runs with `config`.
    pub fn from_pidfile(pid_file: &Path, config: &Path) -> Option<Detached> {
        let pid: i32 = std::fs::read_to_string(pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let d = Detached {
            pid,
            config: config.to_path_buf(),
        };
        d.alive().then_some(d)
    }

    /// True while the process exists, is not a zombie, and is ours.
    pub fn alive(&self) -> bool {
        let ours = std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .map(|c| {
                let want = self.config.as_os_str().as_encoded_bytes();
                c.split(|&b| b == 0).any(|arg| arg == want)
            })
            .unwrap_or(false);
        ours && !matches!(proc_state(self.pid), None | Some('Z') | Some('X'))
    }

    /// Waits (bounded) until the process is gone.
    pub fn wait_gone(&self, within: Duration) -> bool {
        eventually(within, || !self.alive())
    }

    /// Sends a signal, if the process is still ours.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if self.alive() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig);
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if !self.alive() {
            return;
        }
        self.signal(nix::sys::signal::Signal::SIGTERM);
        if !self.wait_gone(Duration::from_secs(10)) {
            self.signal(nix::sys::signal::Signal::SIGKILL);
            self.wait_gone(Duration::from_secs(5));
        }
    }
}

/// `/proc/PID/stat` fields after the command name: [0] state, [1] ppid,
/// [2] pgrp, [3] session, [4] tty_nr, …
pub fn proc_stat(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.to_string()))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The value of a `/proc/PID/status` line (`Umask`, `Uid`, …), trimmed.
pub fn proc_status(pid: i32, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
}

/// Where `/proc/PID/fd/N` points.
pub fn fd_target(pid: i32, fd: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// One whole session that never panics: greeting, `cmd`, quit. Returns the
/// greeting and the reply, or what went wrong.
pub fn try_session_tcp(port: u16, cmd: &str) -> Result<(String, String), String> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    try_session(s, cmd, "\r\n")
}

/// The same over a Unix socket.
pub fn try_session_unix(path: &Path, cmd: &str) -> Result<(String, String), String> {
    let s = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    try_session(s, cmd, "\n")
}

fn try_session<S: Stream>(mut s: S, cmd: &str, eol: &str) -> Result<(String, String), String> {
    s.set_timeout(Some(IO_TIMEOUT));
    let mut buf = Vec::new();
    let read_until = |s: &mut S, buf: &mut Vec<u8>, needle: &[u8]| -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = buf.windows(needle.len()).position(|w| w == needle) {
                let rest = buf.split_off(i + needle.len());
                return Ok(std::mem::replace(buf, rest));
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => {
                    return Err(format!(
                        "EOF waiting for {:?}; got {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(buf)
                    ));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}; got {:?}", String::from_utf8_lossy(buf))),
            }
        }
    };
    let g = read_until(&mut s, &mut buf, PROMPT.as_bytes())?;
    s.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let r = read_until(&mut s, &mut buf, PROMPT.as_bytes())?;
    s.write_all(b"quit\n").map_err(|e| format!("write: {e}"))?;
    let bye = read_until(&mut s, &mut buf, format!("Goodbye.{eol}").as_bytes())?;
    if !bye.starts_with(b"Goodbye.") {
        return Err(format!("after quit: {:?}", String::from_utf8_lossy(&bye)));
    }
    Ok((
        String::from_utf8_lossy(&g[..g.len() - PROMPT.len()]).into_owned(),
        String::from_utf8_lossy(&r[..r.len() - PROMPT.len()]).into_owned(),
    ))
}

/// Runs the binary with `-c CONFIG` and `args`, bounded to 30 s (killed
/// after that), returning exit code, stdout and stderr.
pub fn run_bounded(s: &Setup, args: &[&str]) -> (Option<i32>, String, String) {
    let out_path = s.path("run.out");
    let err_path = s.path("run.err");
    let mut child = Command::new(BIN)
        .arg("-c")
        .arg(&s.config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("run.out"))
        .stderr(std::fs::File::create(&err_path).expect("run.err"))
        .spawn()
        .expect("spawn hostinfod");
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = wait_or_kill(&mut child, deadline);
    (
        code,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

/// Live (non-zombie) processes whose command line names `config`.
pub fn procs_with_config(config: &Path) -> Vec<i32> {
    let want = config.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == want))
                        && !matches!(proc_state(pid), None | Some('Z') | Some('X'))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A bit of a `/proc/PID/status` signal mask line (SigIgn, SigBlk, …).
pub fn sig_in_mask(pid: i32, key: &str, sig: nix::sys::signal::Signal) -> bool {
    let mask = proc_status(pid, key)
        .and_then(|m| u64::from_str_radix(&m, 16).ok())
        .unwrap_or_else(|| panic!("no {key} for pid {pid}"));
    mask & (1u64 << (sig as i32 - 1)) != 0
}

/// Waits until the harness's readiness probe (a TCP connection that
/// `Setup::start` opened and closed) has been accepted, served and reaped,
/// so that "the daemon's only child" means the test's own session. Needs the
/// default log level (the probe's EXIT record is what is waited for).
pub fn settle(d: &Daemon) {
    assert!(
        d.wait_log("EXIT: pid=", Duration::from_secs(10)),
        "readiness probe never reaped: {}",
        d.log_text()
    );
}

/// Waits for a process we spawned until `deadline`; past it, kills it (by
/// its handle, so by its PID) and returns None.
fn wait_or_kill(child: &mut std::process::Child, deadline: Instant) -> Option<i32> {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.code(),
            _ if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
