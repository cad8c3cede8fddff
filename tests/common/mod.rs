//! Shared test harness: run the real binary on free loopback ports and temp
//! Unix paths, talk to it, and clean up by PID.
//!
//! Every daemon a test runs is started by one builder, [`Setup::daemon`]:
//!
//! ```ignore
//! let s = Setup::new("[limits]\nmax_children = 2\n");
//! let d = s.start();                                   // the common case
//! let d = s.daemon().env("TZ", "UTC").args(&["-x"]).exe(&copy).start();
//! let l = s.daemon().pre_exec(..).launch();            // daemon mode (no -f)
//! ```
//!
//! [`DaemonBuilder::start`] runs `EXE -f -c CONFIG ARGS` as a child of the
//! test (so the test runner itself is never daemonized) and returns once the
//! daemon says it serves, by its own readiness report rather than by a probe
//! connection (which would be a session the test then has to discount): the
//! harness binds a Unix datagram socket (abstract, so that a daemon that
//! dropped root reaches it too), passes it as `NOTIFY_SOCKET`, waits
//! (bounded) for `READY=1`, and closes it, so later notifications fail at
//! once instead of filling a queue nobody reads. A
//! test that sets `NOTIFY_SOCKET` itself is waited for through the status
//! file beside the pidfile naming the child's pid, which the daemon writes
//! just before `READY=1`. Dropping the [`Daemon`] sends SIGTERM, then
//! SIGKILL after a bounded wait, to that PID only.
//!
//! [`DaemonBuilder::launch`] runs the binary in daemon mode and waits for the
//! launching command to exit; the daemon it leaves (found by its pidfile) is
//! held by a [`Detached`] guard that stops it the same way. Every read has a
//! timeout.

#![allow(dead_code)]

mod client;
mod procfs;

pub use client::*;
pub use procfs::*;

use std::ffi::{OsStr, OsString};
use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hostinfod");
/// Default per-read timeout in tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The prompt of the default configuration.
pub const PROMPT: &str = "Command? ";
/// How long a daemon may take to report that it serves.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Fails the test unless it runs as root: what it checks exists only for
/// root. `.ci/run` runs the suite as root.
pub fn require_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root ({why}); euid is {}",
        nix::unistd::geteuid()
    );
}

/// Fails the test unless `path` exists: a program the test runs, from the
/// Debian package `package` (which `.ci/run` installs).
pub fn require_program(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "this test needs {path}: install the package {package}"
    );
}

/// A Unix user made for one test (useradd, with its own group) and deleted
/// (userdel) when dropped: its processes are the test's alone. Needs root.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// A new user named after `tag`, this process and a sequence number.
    pub fn new(tag: &str) -> TestUser {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hid{tag}{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = user_tool(&[
            "useradd",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]) {
            panic!("{e}");
        }
        let u = nix::unistd::User::from_name(&name)
            .expect("getpwnam")
            .unwrap_or_else(|| panic!("user {name} missing after useradd"));
        TestUser {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }
}

impl Drop for TestUser {
    /// A user left behind fails the test, unless it is failing already.
    fn drop(&mut self) {
        if let Err(e) = user_tool(&["userdel", &self.name]) {
            if std::thread::panicking() {
                eprintln!("test user {} left behind: {e}", self.name);
            } else {
                panic!("{e}");
            }
        }
    }
}

/// Runs useradd or userdel (bounded), retrying while another one holds
/// /etc/passwd's lock (exit 10, or 1 from some versions); any other failure
/// is returned with what the tool said.
fn user_tool(args: &[&str]) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..100 {
        let out = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", args[0]))?;
        last = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
        match out.status.code() {
            Some(0) => return Ok(()),
            Some(10) | Some(1) => std::thread::sleep(Duration::from_millis(50)),
            _ => break,
        }
    }
    Err(format!("{args:?} failed: {last}"))
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

    /// The status file beside the pidfile.
    pub fn status_file(&self) -> PathBuf {
        self.pid_file.with_extension("status")
    }

    /// The status file as a map (empty when absent).
    pub fn status(&self) -> std::collections::BTreeMap<String, String> {
        std::fs::read_to_string(self.status_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The one way to start a daemon: a builder for this setup's config.
    pub fn daemon(&self) -> DaemonBuilder<'_> {
        DaemonBuilder {
            setup: self,
            exe: PathBuf::from(BIN),
            config: self.config.clone(),
            cwd: None,
            wrapper: Vec::new(),
            args: Vec::new(),
            envs: Vec::new(),
            pre_exec: Vec::new(),
        }
    }

    /// `self.daemon().start()`: `hostinfod -f -c CONFIG`, ready to serve.
    pub fn start(&self) -> Daemon {
        self.daemon().start()
    }

    /// Runs the binary with `-c CONFIG` and `args` (a control command, `-t`,
    /// a start expected to fail), bounded to 30 s (killed after that), and
    /// returns its exit code, stdout and stderr.
    pub fn run_bounded(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out_path = self.path("run.out");
        let err_path = self.path("run.err");
        let mut child = Command::new(BIN)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("run.out"))
            .stderr(std::fs::File::create(&err_path).expect("run.err"))
            .spawn()
            .expect("spawn hostinfod");
        let code = wait_or_kill(&mut child, Instant::now() + Duration::from_secs(30));
        (
            code,
            std::fs::read_to_string(&out_path).unwrap_or_default(),
            std::fs::read_to_string(&err_path).unwrap_or_default(),
        )
    }

    /// [`Setup::run_bounded`] with the exit code as a number (-1: killed by
    /// a signal, or did not exit within 30 s).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let (code, out, err) = self.run_bounded(args);
        (code.unwrap_or(-1), out, err)
    }
}

type PreExec = Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>;

/// How a daemon is started: see [`Setup::daemon`].
pub struct DaemonBuilder<'a> {
    setup: &'a Setup,
    exe: PathBuf,
    config: PathBuf,
    cwd: Option<PathBuf>,
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    pre_exec: Vec<PreExec>,
}

impl DaemonBuilder<'_> {
    /// Arguments after `-c CONFIG`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    /// One environment variable. `NOTIFY_SOCKET` is the test's own: the
    /// harness then waits for the status file instead.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The binary to run instead of the one under test (a copy of it, say).
    pub fn exe(mut self, exe: &Path) -> Self {
        self.exe = exe.to_path_buf();
        self
    }

    /// The path given to `-c`, instead of the setup's absolute one (a path
    /// relative to [`DaemonBuilder::current_dir`], say).
    pub fn config_arg(mut self, config: &Path) -> Self {
        self.config = config.to_path_buf();
        self
    }

    /// The directory the command starts in.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Runs the daemon under `program` with `args` before the daemon's own
    /// command line (`strace -f -o FILE`, say). The [`Daemon`] then holds
    /// that program's pid.
    pub fn under(mut self, program: &str, args: &[&str]) -> Self {
        self.wrapper = std::iter::once(program)
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        self
    }

    /// Runs `f` in the forked child before the exec (set resource limits,
    /// dispositions, inherited fds), as [`std::os::unix::process::CommandExt::pre_exec`].
    ///
    /// # Safety
    ///
    /// As for `CommandExt::pre_exec`: `f` runs between fork and exec, where
    /// only async-signal-safe calls are allowed.
    pub unsafe fn pre_exec(
        mut self,
        f: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.pre_exec.push(Box::new(f));
        self
    }

    /// `[WRAPPER…] EXE [-f] -c CONFIG ARGS…` with the environment and hooks.
    fn command(self, foreground: bool) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        if foreground {
            cmd.arg("-f");
        }
        cmd.arg("-c")
            .arg(&self.config)
            .args(&self.args)
            .stdin(Stdio::null());
        cmd.envs(self.envs);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        for f in self.pre_exec {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: the caller of DaemonBuilder::pre_exec vouched for `f`.
            unsafe { cmd.pre_exec(f) };
        }
        cmd
    }

    /// Starts the daemon in the foreground (`-f`) as a child of the test,
    /// its stderr in `stderr.log` of the temp dir, and returns once it
    /// serves (see the module doc); panics if it exits or stays silent for
    /// 20 s, with its log.
    pub fn start(self) -> Daemon {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let setup = self.setup;
        let log = setup.path("stderr.log");
        let wrapped = !self.wrapper.is_empty();
        let exe = self.exe.clone();
        let own_notify = self.envs.iter().any(|(k, _)| k == "NOTIFY_SOCKET");
        // In the abstract namespace: a daemon that drops root to another
        // user must still reach it, whatever the temp dir's permissions.
        let notify = (!own_notify).then(|| {
            let name = format!(
                "hostinfod-test-{}-{}",
                std::process::id(),
                STARTS.fetch_add(1, Ordering::Relaxed)
            );
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name)
                .expect("abstract socket name");
            let sock = UnixDatagram::bind_addr(&addr).expect("bind the readiness socket");
            (sock, format!("@{name}"))
        });
        let mut cmd = self.command(true);
        if let Some((_, path)) = &notify {
            cmd.env("NOTIFY_SOCKET", path);
        }
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let mut tries = 0;
        let child = loop {
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
        let mut d = Daemon {
            child: Some(child),
            log,
            port: setup.port,
            sock: setup.sock.clone(),
        };
        match notify {
            Some((sock, _)) => d.wait_notified_ready(&sock),
            None => d.wait_status_file(&setup.status_file(), wrapped),
        }
        d
    }

    /// Runs the binary in daemon mode (no `-f`) and waits (bounded, 30 s)
    /// for the launching command to exit. Its stdout and stderr go to files,
    /// so a daemon that kept them open cannot hang the test. Whatever daemon
    /// the pidfile then names (if it runs with our `-c` argument) is put in
    /// a guard.
    pub fn launch(self) -> Launch {
        let setup = self.setup;
        let out_path = setup.path("launcher.out");
        let err_path = setup.path("launcher.err");
        let config = self.config.clone();
        let mut cmd = self.command(false);
        cmd.stdout(std::fs::File::create(&out_path).expect("launcher.out"))
            .stderr(std::fs::File::create(&err_path).expect("launcher.err"));
        let t0 = Instant::now();
        let mut child = cmd.spawn().expect("spawn launcher");
        let launcher_pid = child.id() as i32;
        let code = wait_or_kill(&mut child, t0 + Duration::from_secs(30));
        let elapsed = t0.elapsed();
        let daemon = Detached::from_pidfile(&setup.pid_file, &config);
        Launch {
            code,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
            launcher_pid,
            elapsed,
            daemon,
        }
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
    /// The daemon's pid (of the wrapping program, for one started `under`).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Panics with the log if the child has exited.
    fn check_alive(&mut self, waiting_for: &str) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            panic!(
                "hostinfod exited at start ({st}) before {waiting_for}: {}",
                self.log_text()
            );
        }
    }

    /// Waits for a datagram with the line `READY=1` on `sock`.
    fn wait_notified_ready(&mut self, sock: &UnixDatagram) {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.lines().any(|l| l == "READY=1") {
                    return;
                }
                got.push(msg);
            }
            self.check_alive("READY=1");
        }
        panic!(
            "hostinfod sent no READY=1 within {READY_TIMEOUT:?} (got {got:?}): {}",
            self.log_text()
        );
    }

    /// Waits until `path` names the child's pid (any pid when the child is
    /// a wrapping program).
    fn wait_status_file(&mut self, path: &Path, any_pid: bool) {
        let want = format!("pid={}", self.pid());
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text
                .lines()
                .any(|l| l == want || (any_pid && l.starts_with("pid=")))
            {
                return;
            }
            self.check_alive("its status file");
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "no status file {} naming pid {} within {READY_TIMEOUT:?}: {}",
            path.display(),
            self.pid(),
            self.log_text()
        );
    }

    /// What the daemon wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (bounded).
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        eventually(within, || self.log_text().contains(needle))
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// True while the child has not exited.
    pub fn still_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
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
        if let Some(c) = self.child.take() {
            end_child(c, Duration::from_secs(10));
        }
    }
}

/// Ends a process the test started: SIGTERM to its PID, a bounded wait,
/// then SIGKILL; always reaped.
pub fn end_child(mut c: Child, within: Duration) {
    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = c.kill();
    let _ = c.wait();
}

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

impl Launch {
    /// The daemon of a launch that succeeded; panics with the launcher's
    /// output otherwise.
    pub fn launched(&self) -> &Detached {
        assert_eq!(
            self.code,
            Some(0),
            "launcher failed: stdout {:?} stderr {:?}",
            self.stdout,
            self.stderr
        );
        self.daemon
            .as_ref()
            .unwrap_or_else(|| panic!("launcher said 0 but no daemon runs: {:?}", self.stderr))
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
        runs_with_config(self.pid, &self.config)
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

/// Waits for a process we spawned until `deadline`; past it, kills it (by
/// its handle, so by its PID) and returns None.
fn wait_or_kill(child: &mut Child, deadline: Instant) -> Option<i32> {
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
