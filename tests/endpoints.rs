//! More ways in: `hostinfod -i` under the launchers that hand it one
//! connection (systemd-socket-activate, tcpserver, xinetd), and the FIFO
//! endpoint. Every launcher is started by the test on a free loopback port
//! or a temp path, and ended by its PID.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hostinfod::session::End;

/// A process the test started, ended by its PID on drop.
struct Launcher {
    child: Option<Child>,
    log: PathBuf,
}

impl Launcher {
    fn start(cmd: &mut Command, log: PathBuf) -> Launcher {
        let err = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Launcher {
            child: Some(child),
            log,
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the log holds `needle`; returns the log.
    fn wait_log(&self, needle: &str, within: Duration) -> String {
        let ok = eventually(within, || self.log_text().contains(needle));
        let text = self.log_text();
        assert!(ok, "{needle:?} not logged within {within:?}: {text}");
        text
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            end_child(c, Duration::from_secs(5));
        }
    }
}

fn require(tool: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} is not installed (Debian: systemd, ucspi-tcp, xinetd; .ci/run installs them)");
}

const FORTUNES: usize = 20;

fn cookie_text(i: usize) -> String {
    format!("endpoint test cookie {i:02}: {}", "la ".repeat(10 + i))
}

/// A fortune file of distinct cookies, so a reply can be checked whole.
fn write_fortunes(s: &Setup) -> PathBuf {
    let path = s.path("fortunes");
    let text: String = (0..FORTUNES)
        .map(|i| format!("{}\n%\n", cookie_text(i)))
        .collect();
    std::fs::write(&path, text).expect("fortunes");
    path
}

/// True if `got` is exactly one of the test cookies with its LF.
fn one_cookie(got: &[u8]) -> bool {
    (0..FORTUNES).any(|i| got == format!("{}\n", cookie_text(i)).as_bytes())
}

/// A setup whose commands read our fortunes, with `extra` appended.
fn setup(extra: &str) -> (Setup, PathBuf) {
    let s = Setup::new("");
    let f = write_fortunes(&s);
    s.write_config(&format!(
        "[commands]\nfortune_paths = [{f:?}]\nmotd_files = []\n\n{extra}"
    ));
    (s, f)
}

fn syslog(s: &Setup) -> (UnixDatagram, PathBuf) {
    let p = s.path("syslog.sock");
    (UnixDatagram::bind(&p).expect("bind syslog"), p)
}

fn wait_tcp(port: u16) {
    assert!(
        eventually(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "nothing listens on {port}"
    );
}

/// A whole session: every command, then quit. Checks the replies and the
/// line ends; returns everything the server sent.
fn every_command<S: Stream>(c: &mut Client<S>, eol: &str) -> String {
    let g = c.greeting();
    assert!(
        g.starts_with("Welcome to hostinfod on ") && g.ends_with(&format!("{eol}{PROMPT}")),
        "{g:?}"
    );
    let help = c.cmd("help");
    assert_eq!(
        help,
        format!("Commands: quit date who cookie motd help{eol}")
    );
    let date = c.cmd("date");
    assert!(date.ends_with(eol) && date.len() > 20, "{date:?}");
    let _who = c.cmd("who");
    let cookie = c.cmd("cookie");
    assert!(cookie.starts_with("endpoint test cookie "), "{cookie:?}");
    assert!(cookie.ends_with(eol), "{cookie:?}");
    let motd = c.cmd("motd");
    assert_eq!(motd, format!("No message of the day.{eol}"));
    let unknown = c.cmd("frobnicate");
    assert_eq!(
        unknown,
        format!(
            "Unknown command \"frobnicate\".{eol}Commands: quit date who cookie motd help{eol}"
        )
    );
    c.send(b"quit\r\n");
    let rest = String::from_utf8_lossy(&c.read_to_end()).into_owned();
    assert_eq!(rest, format!("Goodbye.{eol}"));
    if eol == "\n" {
        assert!(!help.contains('\r') && !g.contains('\r'));
    }
    format!("{g}{help}{date}{cookie}{motd}{unknown}{rest}")
}

/// `systemd-socket-activate --accept` line for a child's exit: "Child PID
/// died with code N".
fn child_codes(log: &str) -> Vec<i32> {
    log.lines()
        .filter_map(|l| l.split_once("died with code ")?.1.trim().parse().ok())
        .collect()
}

fn socket_activate(s: &Setup, listen: &str, inetd: bool, syslog: &Path) -> Launcher {
    let mut cmd = Command::new(require("systemd-socket-activate"));
    cmd.arg("-l").arg(listen).arg("--accept");
    if inetd {
        cmd.arg("--inetd");
    }
    cmd.arg("-E")
        .arg(format!("HOSTINFOD_SYSLOG_SOCKET={}", syslog.display()))
        .arg(BIN)
        .arg("-i")
        .arg("-c")
        .arg(&s.config);
    let l = Launcher::start(&mut cmd, s.path("activate.log"));
    l.wait_log("Listening on", Duration::from_secs(10));
    l
}

#[test]
fn inetd_mode_under_systemd_socket_activate_tcp() {
    let (s, _) = setup("");
    let (log, log_path) = syslog(&s);
    // --inetd: the connection on fd 0 (StandardInput=socket); without it, on
    // fd 3 with LISTEN_FDS=1 (Accept=yes alone).
    for inetd in [true, false] {
        let port = free_port();
        let l = socket_activate(&s, &format!("127.0.0.1:{port}"), inetd, &log_path);
        let mut c = Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
        every_command(&mut c, "\r\n");
        let text = l.wait_log("died with code", Duration::from_secs(10));
        assert_eq!(child_codes(&text), vec![End::Quit.exit_code()], "{text}");
        let records = recv_datagrams(&log, Duration::from_secs(5), |r| {
            r.iter().any(|l| l.contains("EXIT: "))
        });
        let start = records.iter().find(|r| r.contains("START: 127.0.0.1:"));
        let exit = records.iter().find(|r| r.contains("EXIT: pid="));
        assert!(
            start.is_some_and(|r| r.contains(&format!("via tcp 127.0.0.1:{port}"))),
            "{records:?}"
        );
        assert!(
            exit.is_some_and(|r| r.contains("status=0") && r.contains("from 127.0.0.1")),
            "{records:?}"
        );
        assert!(!l.log_text().contains("START"), "records went to stderr");
    }
}

#[test]
fn inetd_mode_under_systemd_socket_activate_unix() {
    let (s, _) = setup("");
    let (_log, log_path) = syslog(&s);
    let sock = s.path("accept.sock");
    let l = socket_activate(&s, sock.to_str().expect("utf8"), true, &log_path);
    let mut c = Client::new(UnixStream::connect(&sock).expect("connect"));
    every_command(&mut c, "\n");
    let text = l.wait_log("died with code", Duration::from_secs(10));
    assert_eq!(child_codes(&text), vec![End::Quit.exit_code()], "{text}");
}

#[test]
fn inetd_mode_exit_status_says_how_the_session_ended() {
    let (s, _) = setup("[limits]\nidle_timeout_secs = 1\nmax_line_bytes = 64\n");
    let (_log, log_path) = syslog(&s);
    let port = free_port();
    let l = socket_activate(&s, &format!("127.0.0.1:{port}"), true, &log_path);
    let connect = || Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));

    // Idle: the daemon's timeout applies.
    let mut c = connect();
    c.greeting();
    let t0 = Instant::now();
    let rest = c.read_to_end();
    assert_eq!(rest, b"Timeout, goodbye.\r\n");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let text = l.wait_log("died with code", Duration::from_secs(10));
    assert_eq!(child_codes(&text), vec![End::Idle.exit_code()], "{text}");

    // A line over max_line_bytes.
    let mut c = connect();
    c.greeting();
    c.send(&[b'x'; 100]);
    c.send(b"\r\n");
    assert_eq!(
        c.read_to_end(),
        b"Error: line too long (max 64 bytes).\r\n".to_vec()
    );
    assert!(eventually(Duration::from_secs(10), || child_codes(
        &l.log_text()
    )
    .len()
        == 2));
    assert_eq!(child_codes(&l.log_text())[1], End::TooLong.exit_code());

    // EOF after the last line.
    let mut c = connect();
    c.greeting();
    c.send(b"help\r\n");
    c.s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let rest = String::from_utf8_lossy(&c.read_to_end()).into_owned();
    assert!(rest.starts_with("Commands: quit"), "{rest:?}");
    assert!(eventually(Duration::from_secs(10), || child_codes(
        &l.log_text()
    )
    .len()
        == 3));
    assert_eq!(child_codes(&l.log_text())[2], End::Eof.exit_code());
}

#[test]
fn inetd_mode_on_a_non_blocking_socket_waits_without_spinning() {
    // A launcher may hand the connection over non-blocking: the session then
    // waits in poll, not in a read that returns EAGAIN at once.
    let (s, _) = setup("[limits]\nidle_timeout_secs = 1\n");
    let (_log, log_path) = syslog(&s);
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("nonblocking");
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, for its CPU time"
    )]
    let child = Command::new(BIN)
        .env("HOSTINFOD_SYSLOG_SOCKET", &log_path)
        .arg("-i")
        .arg("-c")
        .arg(&s.config)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hostinfod -i");
    let mut c = Client::new(ours);
    let g = c.greeting();
    assert!(g.starts_with("Welcome to hostinfod on "), "{g:?}");
    let date = c.cmd("date");
    assert!(date.len() > 20, "{date:?}");
    let t0 = Instant::now();
    assert_eq!(c.read_to_end(), b"Timeout, goodbye.\n");
    let waited = t0.elapsed();
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is valid.
    let mut ru: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; the pid is our own child, waited for once.
    let r = unsafe { nix::libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(r, child.id() as i32, "wait4");
    let cpu = |t: nix::libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let used = cpu(ru.ru_utime) + cpu(ru.ru_stime);
    println!("idle 1 s on a non-blocking socket: closed after {waited:.2?}, {used:.3} s of CPU");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(
        nix::libc::WEXITSTATUS(status),
        End::Idle.exit_code(),
        "{status:#x}"
    );
    assert!(used < 0.3, "{used:.3} s of CPU over a 1 s wait: it spun");
}

#[test]
fn inetd_mode_under_tcpserver() {
    let (s, _) = setup("[limits]\nidle_timeout_secs = 1\n");
    let (_log, log_path) = syslog(&s);
    let port = free_port();
    let mut cmd = Command::new(require("tcpserver"));
    // -v: "tcpserver: end PID status N" per connection; -H -R -l 0: no DNS
    // or ident lookups.
    cmd.env("HOSTINFOD_SYSLOG_SOCKET", &log_path)
        .args(["-v", "-H", "-R", "-l", "0", "127.0.0.1"])
        .arg(port.to_string())
        .arg(BIN)
        .arg("-i")
        .arg("-c")
        .arg(&s.config);
    let l = Launcher::start(&mut cmd, s.path("tcpserver.log"));
    wait_tcp(port);
    // The probe connection of wait_tcp is a session too (EOF at once).
    l.wait_log(" status ", Duration::from_secs(10));
    let mut c = Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    let all = every_command(&mut c, "\r\n");
    assert!(
        !all.contains("hostinfod["),
        "a log record reached the client"
    );
    let mut c = Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    c.greeting();
    assert_eq!(c.read_to_end(), b"Timeout, goodbye.\r\n");
    let ok = eventually(Duration::from_secs(10), || {
        l.log_text().matches(" status ").count() >= 3
    });
    let text = l.log_text();
    assert!(ok, "{text}");
    let codes: Vec<i32> = text
        .lines()
        .filter_map(|line| line.split_once(" status ")?.1.trim().parse::<i32>().ok())
        // tcpserver prints the raw wait status: the exit code is its high byte.
        .map(|st| st >> 8)
        .collect();
    // The first is the readiness probe, which leaves at once (Normal, or
    // Gone when it has left before the greeting was written).
    assert_eq!(
        codes[1..],
        [End::Quit.exit_code(), End::Idle.exit_code()],
        "{text}"
    );
}

#[test]
fn inetd_mode_under_xinetd() {
    let (s, _) = setup("[limits]\nidle_timeout_secs = 1\n");
    let (log, log_path) = syslog(&s);
    let port = free_port();
    let xlog = s.path("xinetd-service.log");
    let root = nix::unistd::geteuid().is_root();
    let conf = s.path("xinetd.conf");
    std::fs::write(
        &conf,
        format!(
            "defaults\n{{\n}}\n\nservice hostinfod-test\n{{\n    type = UNLISTED\n    \
             port = {port}\n    bind = 127.0.0.1\n    socket_type = stream\n    \
             protocol = tcp\n    wait = no\n{user}    server = {BIN}\n    \
             server_args = -i -c {cfg}\n    env = HOSTINFOD_SYSLOG_SOCKET={log}\n    \
             log_type = FILE {xlog}\n    log_on_success = PID EXIT\n    flags = REUSE\n}}\n",
            user = if root { "    user = root\n" } else { "" },
            cfg = s.config.display(),
            log = log_path.display(),
            xlog = xlog.display(),
        ),
    )
    .expect("xinetd.conf");
    let mut cmd = Command::new(require("xinetd"));
    cmd.arg("-f")
        .arg(&conf)
        .arg("-dontfork")
        .arg("-pidfile")
        .arg(s.path("xinetd.pid"));
    let l = Launcher::start(&mut cmd, s.path("xinetd.log"));
    wait_tcp(port);
    // xinetd hands the connection over as fds 0, 1 and 2: nothing but the
    // session may reach the client.
    let mut c = Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    let all = every_command(&mut c, "\r\n");
    assert!(!all.contains("hostinfod["), "{all:?}");
    let mut c = Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    c.greeting();
    assert_eq!(c.read_to_end(), b"Timeout, goodbye.\r\n");
    let want = format!("status={}", End::Idle.exit_code());
    let ok = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&xlog).is_ok_and(|t| t.contains(&want))
    });
    let text = std::fs::read_to_string(&xlog).unwrap_or_default();
    assert!(ok, "xinetd log: {text}\nxinetd stderr: {}", l.log_text());
    assert!(
        text.contains(&format!("status={}", End::Quit.exit_code())),
        "{text}"
    );
    let records = recv_datagrams(&log, Duration::from_secs(5), |r| {
        r.iter().filter(|l| l.contains("EXIT: ")).count() >= 2
    });
    assert!(
        records.iter().any(|r| r.contains("START: 127.0.0.1:")),
        "{records:?}"
    );
    assert!(l.pid() > 0);
}

#[test]
fn inetd_mode_without_a_socket_says_so() {
    let (s, _) = setup("");
    let out = Command::new(BIN)
        .arg("-i")
        .arg("-c")
        .arg(&s.config)
        .stdin(Stdio::null())
        .env("HOSTINFOD_SYSLOG_SOCKET", s.path("nobody-listens"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("inherited fd 0: not a socket"), "{err}");
    // No listener, pidfile or socket file was made.
    assert!(!exists(&s.pid_file) && !exists(&s.sock));
}

#[test]
fn connected_socket_in_listen_fds_is_a_clear_error() {
    let (s, _) = setup("");
    let port = free_port();
    let mut cmd = Command::new(require("systemd-socket-activate"));
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--accept")
        .arg(BIN)
        .arg("-f")
        .arg("-c")
        .arg(&s.config);
    let l = Launcher::start(&mut cmd, s.path("activate.log"));
    l.wait_log("Listening on", Duration::from_secs(10));
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let text = l.wait_log("died with code", Duration::from_secs(10));
    assert!(
        text.contains("hostinfod: inherited fd 3: a connected socket, not a listening one"),
        "{text}"
    );
    assert!(text.contains("hostinfod -i"), "{text}");
    assert_eq!(child_codes(&text), vec![1], "{text}");
    assert!(!exists(&s.pid_file));
}

// ---- the FIFO endpoint ----

fn fifo_setup(names: &[&str]) -> (Setup, Vec<PathBuf>) {
    let s = Setup::new("");
    let f = write_fortunes(&s);
    let paths: Vec<PathBuf> = names.iter().map(|n| s.path(n)).collect();
    s.write_config(&format!("[commands]\nfortune_paths = [{f:?}]\n"));
    let text = std::fs::read_to_string(&s.config).expect("config");
    let fifo = format!("fifo = {paths:?}\nfifo_mode = \"0640\"\n");
    std::fs::write(
        &s.config,
        text.replacen("\n\n[daemon]", &format!("\n{fifo}\n[daemon]"), 1),
    )
    .expect("config");
    (s, paths)
}

fn is_fifo(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo())
}

/// `cat PATH` with a bound; returns what it printed and whether it ended on
/// its own, with status 0, within the bound.
fn cat(p: &Path, within: Duration) -> (Vec<u8>, bool) {
    let mut child = Command::new("cat")
        .arg(p)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cat");
    let mut out = child.stdout.take().expect("stdout");
    let deadline = Instant::now() + within;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut got = Vec::new();
    let _ = out.read_to_end(&mut got);
    (got, status.is_some_and(|s| s.success()))
}

fn writers(d: &Daemon) -> Vec<i32> {
    children_of(d.pid())
}

#[test]
fn fifo_cat_prints_one_cookie_and_ends() {
    let (s, paths) = fifo_setup(&["signature"]);
    let d = s.start();
    let p = &paths[0];
    assert!(eventually(Duration::from_secs(5), || is_fifo(p)));
    let meta = std::fs::symlink_metadata(p).expect("fifo");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    let t0 = Instant::now();
    let (got, ended) = cat(p, Duration::from_secs(5));
    assert!(
        ended,
        "cat did not end: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(one_cookie(&got), "{:?}", String::from_utf8_lossy(&got));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The writer is a child but not a session.
    let out = s.run(&["-s", "status"]).1;
    assert!(out.contains("sessions=0"), "{out}");
    assert!(out.contains(&format!("fifo {}", p.display())), "{out}");
    drop(d);
}

#[test]
fn fifo_hundred_readers_in_sequence_each_get_one_whole_cookie() {
    let (s, paths) = fifo_setup(&["sig"]);
    let _d = s.start();
    let p = &paths[0];
    assert!(eventually(Duration::from_secs(5), || is_fifo(p)));
    let mut seen = std::collections::BTreeSet::new();
    let t0 = Instant::now();
    for i in 0..100 {
        let (got, ended) = cat(p, Duration::from_secs(5));
        assert!(ended, "reader {i} did not end");
        assert!(
            one_cookie(&got),
            "reader {i}: {:?}",
            String::from_utf8_lossy(&got)
        );
        seen.insert(got);
    }
    let took = t0.elapsed();
    eprintln!(
        "100 sequential readers: 100 whole cookies, {} distinct, in {:.0} ms",
        seen.len(),
        took.as_secs_f64() * 1000.0
    );
    // Random picks from 20: fresh cookies, not one repeated.
    assert!(seen.len() >= 10, "{}", seen.len());
}

#[test]
fn fifo_ten_readers_at_once_get_one_whole_cookie_or_nothing() {
    let (s, paths) = fifo_setup(&["sig"]);
    let _d = s.start();
    let p = paths[0].clone();
    assert!(eventually(Duration::from_secs(5), || is_fifo(&p)));
    let mut with_cookie_total = 0;
    for round in 0..5 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(10));
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let b = barrier.clone();
                let p = p.clone();
                std::thread::spawn(move || {
                    b.wait();
                    let t0 = Instant::now();
                    let (got, ended) = cat(&p, Duration::from_secs(5));
                    (got, ended, t0.elapsed())
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("reader"))
            .collect();
        let mut with_cookie = 0;
        for (got, ended, took) in &results {
            assert!(ended, "round {round}: a reader did not end");
            assert!(*took < Duration::from_secs(3), "round {round}: {took:?}");
            assert!(
                got.is_empty() || one_cookie(got),
                "round {round}: partial or mixed: {:?}",
                String::from_utf8_lossy(got)
            );
            with_cookie += usize::from(!got.is_empty());
        }
        assert!(with_cookie >= 1, "round {round}: nobody got a cookie");
        eprintln!(
            "round {round}: 10 readers at once, {with_cookie} with a cookie, {} with nothing",
            10 - with_cookie
        );
        with_cookie_total += with_cookie;
    }
    assert!(with_cookie_total >= 5);
}

#[test]
fn fifo_writer_is_restarted_and_ended_at_stop() {
    let (s, paths) = fifo_setup(&["a", "b"]);
    let mut d = s.start();
    assert!(eventually(Duration::from_secs(5), || writers(&d).len() == 2));
    let first = writers(&d);
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p).map(|m| m.ino()).unwrap_or(0)
    };
    assert!(eventually(Duration::from_secs(5), || paths
        .iter()
        .all(|p| is_fifo(p))));
    let before = inode(&paths[0]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill writer");
    assert!(
        eventually(Duration::from_secs(5), || {
            let w = writers(&d);
            w.len() == 2 && !w.contains(&first[0])
        }),
        "writer not restarted: {:?}; {}",
        writers(&d),
        d.log_text()
    );
    // The new writer has put a FIFO of its own at the path (a reader that
    // came in between would have got end-of-file without a cookie).
    assert!(eventually(Duration::from_secs(5), || inode(&paths[0]) != before));
    for p in &paths {
        let (got, ended) = cat(p, Duration::from_secs(5));
        assert!(ended && one_cookie(&got), "{}", p.display());
    }
    let now = writers(&d);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    for w in now {
        assert!(!running(w), "writer {w} outlived the daemon");
    }
    for p in &paths {
        assert!(!exists(p), "{} left behind", p.display());
    }
}

#[test]
fn fifo_reload_adds_and_removes_endpoints() {
    let (s, paths) = fifo_setup(&["old"]);
    let d = s.start();
    assert!(eventually(Duration::from_secs(5), || is_fifo(&paths[0])));
    // The FIFO's writer is the daemon's only child.
    assert!(eventually(Duration::from_secs(5), || writers(&d).len() == 1));
    let old_writer = writers(&d);
    let new = s.path("new");
    let text = std::fs::read_to_string(&s.config).expect("config");
    std::fs::write(
        &s.config,
        text.replace(&format!("{:?}", paths[0]), &format!("{new:?}")),
    )
    .expect("config");
    let (code, _, err) = s.run(&["-s", "reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        eventually(Duration::from_secs(5), || is_fifo(&new)
            && !exists(&paths[0])),
        "{}",
        d.log_text()
    );
    let (got, ended) = cat(&new, Duration::from_secs(5));
    assert!(ended && one_cookie(&got));
    assert!(!running(old_writer[0]), "old writer still running");
    let (_, out, _) = s.run(&["-s", "status"]);
    assert!(out.contains(&format!("fifo {}", new.display())), "{out}");
    assert!(
        !out.contains(&format!("fifo {}", paths[0].display())),
        "{out}"
    );
}

#[test]
fn fifo_path_holding_a_file_is_refused_and_kept() {
    let (s, paths) = fifo_setup(&["taken"]);
    std::fs::write(&paths[0], "mine").expect("file");
    let (code, _, err) = s.run(&["-f"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a FIFO"), "{err}");
    assert_eq!(std::fs::read_to_string(&paths[0]).expect("kept"), "mine");
}

#[test]
fn inetd_flag_is_in_help() {
    let out = Command::new(BIN).arg("--help").output().expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-i, --inetd"), "{text}");
}

/// Reads what arrives on `f` until end-of-file, each wait bounded by `within`;
/// None if it neither sends nor ends in time.
fn read_bounded(f: &mut std::fs::File, within: Duration) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    loop {
        let mut pfd = [nix::libc::pollfd {
            fd: f.as_raw_fd(),
            events: nix::libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: a valid array of one pollfd.
        let n = unsafe { nix::libc::poll(pfd.as_mut_ptr(), 1, within.as_millis() as i32) };
        if n <= 0 {
            return None;
        }
        let mut buf = [0u8; 8192];
        match f.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(k) => out.extend_from_slice(&buf[..k]),
            Err(_) => return None,
        }
    }
}

#[test]
fn fifo_reader_that_stays_open_never_gets_a_second_cookie() {
    // perlipc's writer, without its sleep, hands the reader it just served
    // the next cookie too when that reader still has the FIFO open.
    let (s, paths) = fifo_setup(&["sig"]);
    let _d = s.start();
    let p = &paths[0];
    assert!(eventually(Duration::from_secs(5), || is_fifo(p)));
    let mut first = std::fs::File::open(p).expect("open");
    let got = read_bounded(&mut first, Duration::from_secs(5)).expect("cookie and EOF");
    assert!(one_cookie(&got), "{:?}", String::from_utf8_lossy(&got));
    // Still open: other readers are served meanwhile, and nothing more
    // reaches this one.
    for _ in 0..5 {
        let (c, ended) = cat(p, Duration::from_secs(5));
        assert!(ended && one_cookie(&c));
        let more = read_bounded(&mut first, Duration::from_secs(2)).expect("EOF");
        assert!(
            more.is_empty(),
            "second cookie: {:?}",
            String::from_utf8_lossy(&more)
        );
    }
}

#[test]
fn inetd_mode_applies_the_access_lists() {
    let (s, _) = setup("[access]\ndeny = [\"127.0.0.0/8\"]\n");
    let (log, log_path) = syslog(&s);
    let port = free_port();
    let l = socket_activate(&s, &format!("127.0.0.1:{port}"), true, &log_path);
    let mut c = Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    assert_eq!(c.read_to_end(), b"Access denied.\r\n");
    let text = l.wait_log("died with code", Duration::from_secs(10));
    assert_eq!(child_codes(&text), vec![End::Quit.exit_code()], "{text}");
    let records = recv_datagrams(&log, Duration::from_secs(5), |r| {
        r.iter().any(|l| l.contains("REFUSED"))
    });
    assert!(
        records
            .iter()
            .any(|r| r.contains("REFUSED: 127.0.0.1:") && r.contains("access denied")),
        "{records:?}"
    );
    assert!(!records.iter().any(|r| r.contains("START")), "{records:?}");
}
