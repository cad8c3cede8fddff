//! Shared test harness: run the real binary on free loopback ports and temp
//! Unix paths, talk to it, and clean up by PID.
//!
//! A [`Daemon`] is started in the foreground (`-f`) as a child of the test, so
//! the test runner itself is never daemonized; dropping it sends SIGTERM, then
//! SIGKILL after a bounded wait, to that PID only. Every read has a timeout.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hostinfod");
/// Default per-read timeout in tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The prompt of the default configuration.
pub const PROMPT: &str = "Command? ";

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A temporary directory with a config file for one daemon.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub sock: PathBuf,
    pub pid_file: PathBuf,
    pub config: PathBuf,
}

impl Setup {
    /// A config listening on a free TCP port and a Unix socket in a temp dir,
    /// with `extra` appended (extra sections, e.g. `[limits]`).
    pub fn new(extra: &str) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("hid")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let sock = dir.path().join("h.sock");
        let pid_file = dir.path().join("h.pid");
        let config = dir.path().join("hostinfod.toml");
        let s = Setup {
            dir,
            port,
            sock,
            pid_file,
            config,
        };
        s.write_config(extra);
        s
    }

    /// The `[listen]` and `[daemon]` sections every test config starts with.
    pub fn base(&self) -> String {
        format!(
            "[listen]\ntcp = [\"127.0.0.1:{}\"]\nunix = [{:?}]\n\n[daemon]\npid_file = {:?}\n\n",
            self.port, self.sock, self.pid_file
        )
    }

    /// Rewrites the config file with the base sections plus `extra`.
    pub fn write_config(&self, extra: &str) {
        std::fs::write(&self.config, format!("{}{extra}", self.base())).expect("write config");
    }

    /// Writes the config file verbatim.
    pub fn write_raw(&self, text: &str) {
        std::fs::write(&self.config, text).expect("write config");
    }

    /// A path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `hostinfod -f -c CONFIG` and waits until it accepts on TCP.
    pub fn start(&self) -> Daemon {
        self.start_with(&[], &[])
    }

    /// Same, with extra args and environment.
    pub fn start_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        self.start_exe_with(std::path::Path::new(BIN), args, envs)
    }

    /// Starts `EXE -f -c CONFIG` (the binary under test, or a copy of it) as
    /// a child of the test and waits until it accepts on TCP.
    pub fn start_exe_with(&self, exe: &Path, args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        self.spawn_ready(exe, args, envs, |_| {})
    }

    /// The one way the harness starts a foreground daemon: `EXE -f -c
    /// CONFIG ARGS` with `envs`, after `f` has adjusted the command (e.g. a
    /// `pre_exec` that sets resource limits); waits until it accepts on TCP.
    pub fn spawn_ready(
        &self,
        exe: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        f: impl Fn(&mut Command),
    ) -> Daemon {
        let log = self.path("stderr.log");
        let mut tries = 0;
        let child = loop {
            let err = std::fs::File::create(&log).expect("log file");
            let mut cmd = Command::new(exe);
            cmd.arg("-f")
                .arg("-c")
                .arg(&self.config)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err);
            for (k, v) in envs {
                cmd.env(k, v);
            }
            f(&mut cmd);
            match cmd.spawn() {
                Ok(c) => break c,
                // A freshly written binary can be briefly busy when another
                // test thread forked while its write fd was open.
                Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("spawn {}: {e}", exe.display()),
            }
        };
        self.adopt(child)
    }

    /// Puts a process the test spawned itself (the daemon under a tracer,
    /// say) in a [`Daemon`] guard, which ends it by its PID on drop, and
    /// waits until the daemon listens on TCP (one probe connection). Its
    /// stderr should go to `stderr.log` in the temp dir, shown on failure.
    pub fn adopt(&self, child: Child) -> Daemon {
        let mut d = Daemon {
            child: Some(child),
            log: self.path("stderr.log"),
            port: self.port,
            sock: self.sock.clone(),
        };
        d.wait_ready();
        d
    }

    /// Runs the binary with `args` (and `-c CONFIG`), returning status,
    /// stdout and stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run hostinfod");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A running daemon, a child of the test.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub port: u16,
    pub sock: PathBuf,
}

impl Daemon {
    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("hostinfod exited at start ({st}): {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("hostinfod did not listen within 20 s: {}", self.log_text());
    }

    /// What the daemon wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (bounded).
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// Waits for the daemon to exit (bounded) and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// A TCP client.
    pub fn tcp(&self) -> Client<TcpStream> {
        Client::new(TcpStream::connect(("127.0.0.1", self.port)).expect("connect tcp"))
    }

    /// A Unix-socket client.
    pub fn unix(&self) -> Client<UnixStream> {
        Client::new(UnixStream::connect(&self.sock).expect("connect unix"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sockets we can talk through with timeouts.
pub trait Stream: Read + Write {
    fn set_timeout(&self, t: Option<Duration>);
}

impl Stream for TcpStream {
    fn set_timeout(&self, t: Option<Duration>) {
        self.set_read_timeout(t).expect("timeout");
    }
}

impl Stream for UnixStream {
    fn set_timeout(&self, t: Option<Duration>) {
        self.set_read_timeout(t).expect("timeout");
    }
}

/// A line-protocol client.
pub struct Client<S: Stream> {
    pub s: S,
    buf: Vec<u8>,
}

impl<S: Stream> Client<S> {
    pub fn new(s: S) -> Self {
        s.set_timeout(Some(IO_TIMEOUT));
        Client { s, buf: Vec::new() }
    }

    /// Reads until `needle` has been received; returns everything up to and
    /// including it. Panics on EOF or timeout.
    pub fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = find(&self.buf, needle) {
                let rest = self.buf.split_off(i + needle.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => panic!(
                    "EOF while waiting for {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!(
                    "read error {e} while waiting for {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Reads the greeting and first prompt; returns the greeting text.
    pub fn greeting(&mut self) -> String {
        let g = self.read_until(PROMPT.as_bytes());
        String::from_utf8_lossy(&g).into_owned()
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write");
    }

    /// Sends `line` + LF and returns the reply up to the next prompt (without it).
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        let r = self.read_until(PROMPT.as_bytes());
        String::from_utf8_lossy(&r[..r.len() - PROMPT.len()]).into_owned()
    }

    /// Reads everything until EOF (bounded by the read timeout).
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 4096];
        loop {
            match self.s.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
                Err(e) => panic!("read error {e}; got {:?}", String::from_utf8_lossy(&out)),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One whole session: greeting, `cmd`, quit; returns the reply to `cmd`.
pub fn one_shot_tcp(port: u16, cmd: &str) -> String {
    let mut c = Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    c.greeting();
    let r = c.cmd(cmd);
    c.send(b"quit\n");
    c.read_to_end();
    r
}

/// Number of open fds of `pid`.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Children of `pid` that are zombies.
pub fn zombies_of(pid: i32) -> Vec<i32> {
    children_of(pid)
        .into_iter()
        .filter(|c| proc_state(*c) == Some('Z'))
        .collect()
}

/// Children of `pid` (from /proc/PID/task/PID/children).
pub fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Waits (bounded) until `pid` has exactly one child and returns it: the
/// session of the client just greeted.
pub fn single_child(pid: i32) -> i32 {
    let mut kids = Vec::new();
    let ok = eventually(Duration::from_secs(5), || {
        kids = children_of(pid);
        kids.len() == 1
    });
    assert!(ok, "expected one child of {pid}, have {kids:?}");
    kids[0]
}

/// The one-letter state of a process.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// True unless the process is gone or a zombie (a zombie has ended; one
/// reparented to a slow subreaper may linger as such, and a child of the test
/// stays one until the test waits for it).
pub fn running(pid: i32) -> bool {
    !matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// Polls `f` until it returns true or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Receives datagrams on `sock` (syslog records, sd_notify messages) until
/// `done` says the ones so far are enough or `within` passes; returns them
/// all, for the caller to assert on.
pub fn recv_datagrams(
    sock: &UnixDatagram,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !done(&got) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

/// True if `path` exists.
pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

// ---- helpers for the limits tests (tests/limits.rs) ----

/// CPU time (user + system) `pid` has used so far, from /proc/PID/stat.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after "(comm) ": state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Resident set size of `pid` in kB (VmRSS).
pub fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The open fd numbers of `pid`.
pub fn fds_of(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Sets the soft limit `res` of another process (prlimit(2)), keeping its
/// hard limit; returns the previous (soft, hard) pair.
pub fn set_rlimit_of(pid: i32, res: nix::sys::resource::Resource, soft: u64) -> (u64, u64) {
    use nix::libc;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer; a null new-limit only reads.
    let r = unsafe { libc::prlimit(pid, res as _, std::ptr::null(), &mut old) };
    assert_eq!(r, 0, "prlimit get: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: valid pointers for the call.
    let r = unsafe { libc::prlimit(pid, res as _, &new, std::ptr::null_mut()) };
    assert_eq!(r, 0, "prlimit set: {}", std::io::Error::last_os_error());
    (old.rlim_cur, old.rlim_max)
}

/// Sets the soft RLIMIT_NOFILE of another process; returns the previous
/// (soft, hard) pair.
pub fn set_nofile_of(pid: i32, soft: u64) -> (u64, u64) {
    set_rlimit_of(pid, nix::sys::resource::Resource::RLIMIT_NOFILE, soft)
}

/// Raises this test process's soft RLIMIT_NOFILE to at least `want` (up to
/// the hard limit); returns the soft limit now in force.
pub fn raise_own_nofile(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= want {
        return soft;
    }
    let new = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, new, hard).expect("setrlimit");
    new
}

impl<S: Stream> Client<S> {
    /// True if nothing at all arrives within `within` (the connection stays
    /// open and silent). Data or EOF in that time gives false.
    pub fn silent_for(&mut self, within: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.s.set_timeout(Some(within));
        let mut chunk = [0u8; 4096];
        let silent = match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.s.set_timeout(Some(IO_TIMEOUT));
        silent
    }
}

impl Setup {
    /// Like [`Setup::start`], with `f` adjusting the command before it is
    /// spawned (e.g. a `pre_exec` that sets resource limits).
    pub fn start_custom(&self, f: impl Fn(&mut Command)) -> Daemon {
        self.spawn_ready(Path::new(BIN), &[], &[], f)
    }
}

/// Tasks (threads of all processes) whose real uid is `uid`: what
/// RLIMIT_NPROC counts.
pub fn tasks_of_uid(uid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
                == Some(uid)
        })
        .map(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1)
        })
        .sum()
}
