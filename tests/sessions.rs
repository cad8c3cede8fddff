//! Many sessions: the fork per client, the reaper, and the parent's
//! resources over time.

mod common;
#[path = "common/daemon_mode.rs"]
mod daemon_mode;

use std::time::{Duration, Instant};

use common::*;
use daemon_mode::*;

/// 2000 sequential sessions over TCP and Unix: afterwards no zombie and the
/// parent holds exactly the fds it held before.
#[test]
fn thousands_of_sessions_leave_no_zombie_and_no_fd_growth() {
    let s = Setup::new("[log]\nlevel = \"warn\"\n");
    let d = s.start();
    let pid = d.pid();
    // Warm up once so lazily opened fds (if any) exist before the baseline.
    one_shot_tcp(d.port, "date");
    assert!(eventually(Duration::from_secs(5), || children_of(pid).is_empty()));
    let fds_before = fd_count(pid);
    for i in 0..2000 {
        if i % 2 == 0 {
            let r = one_shot_tcp(d.port, "date");
            assert_eq!(r.trim_end().len(), 24, "session {i}: {r:?}");
        } else {
            let mut c = d.unix();
            c.greeting();
            c.send(b"quit\n");
            assert_eq!(c.read_to_end(), b"Goodbye.\n", "session {i}");
        }
    }
    assert!(
        eventually(Duration::from_secs(10), || children_of(pid).is_empty()),
        "children left: {:?}",
        children_of(pid)
    );
    assert!(zombies_of(pid).is_empty());
    assert_eq!(fd_count(pid), fds_before, "parent fd count changed");
}

/// Each connection is served by a forked child of the daemon, and nothing
/// is executed to produce a reply (strace -f sees clone/fork, never execve).
#[test]
fn fork_per_client_and_no_exec() {
    if !std::path::Path::new("/usr/bin/strace").exists() {
        eprintln!("skipped: strace not installed");
        return;
    }
    let s = Setup::new("");
    let trace = s.path("trace");
    // Run the daemon under strace -f, both held by guards that end them by
    // PID if an assertion fails: strace as the harness's Daemon (which waits
    // until the daemon listens, with one probe connection), the daemon, not
    // our child, by its pidfile.
    let err = std::fs::File::create(s.path("stderr.log")).expect("log");
    let strace = std::process::Command::new("/usr/bin/strace")
        .arg("-f")
        .arg("-qq")
        .arg("-e")
        .arg("trace=clone,clone3,fork,vfork,execve,execveat")
        .arg("-o")
        .arg(&trace)
        .arg(BIN)
        .arg("-f")
        .arg("-c")
        .arg(&s.config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("strace");
    let mut strace = s.adopt(strace);
    let probes = 1;
    let mut daemon = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            daemon = Detached::from_pidfile(&s.pid_file, &s.config);
            daemon.is_some()
        }),
        "no daemon named by the pidfile: {}",
        strace.log_text()
    );
    let daemon = daemon.expect("daemon");
    let dpid = daemon.pid;
    let sessions = 5;
    let commands = ["date", "who", "cookie", "motd"];
    for _ in 0..sessions {
        for cmd in commands {
            let _ = one_shot_tcp(s.port, cmd);
        }
    }
    let mut u = Client::new(std::os::unix::net::UnixStream::connect(&s.sock).expect("unix"));
    u.greeting();
    u.cmd("date");
    drop(u);
    let unix_sessions = 1;
    // Stop the daemon (strace's child) by its pid: strace follows it out.
    std::thread::sleep(Duration::from_millis(200));
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        daemon.wait_gone(Duration::from_secs(10)),
        "daemon {dpid} did not stop"
    );
    assert_eq!(
        strace.wait_exit(Duration::from_secs(10)),
        Some(0),
        "strace: {}",
        strace.log_text()
    );
    let t = std::fs::read_to_string(&trace).expect("trace");
    let execs: Vec<&str> = t.lines().filter(|l| l.contains("execve")).collect();
    // Exactly one execve: strace starting the daemon itself.
    assert_eq!(execs.len(), 1, "unexpected exec:\n{}", execs.join("\n"));
    // The daemon's forks ("<... clone resumed>" lines hold no "clone(", so an
    // interrupted call is counted once): one per client, the harness's
    // probe connection included, and nothing else.
    let forks = t
        .lines()
        .filter(|l| l.starts_with(&format!("{dpid} ")))
        .filter(|l| l.contains("clone(") || l.contains("clone3(") || l.contains("fork("))
        .count();
    let clients = sessions * commands.len() + unix_sessions + probes;
    assert_eq!(
        forks, clients,
        "expected one fork per client ({clients}), saw {forks}:\n{t}"
    );
}

/// A daemon started with SIGCHLD ignored (an ignored disposition survives
/// exec) still sees its children end: with max_children = 2, the readiness
/// probe and the first session fill both places, so every later session is
/// served only if the daemon reaped (and counted out) the earlier ones. Were
/// the disposition kept, the kernel would reap them behind its back: no
/// EXIT record, no place freed, and the third client never greeted.
#[test]
fn inherited_ignored_sigchld_does_not_stop_service() {
    let s = Setup::new("[limits]\nmax_children = 2\n");
    let d = s.start_custom(|cmd| {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: signal(2) is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGCHLD,
                    nix::sys::signal::SigHandler::SigIgn,
                )
                .map(drop)
                .map_err(std::io::Error::from)
            });
        }
    });
    let probes = 1;
    for i in 0..6 {
        // Every read bounded (IO_TIMEOUT); a client left in the backlog
        // fails here, with what it got.
        let t0 = Instant::now();
        let (g, r) = try_session_tcp(d.port, "date").unwrap_or_else(|e| {
            panic!(
                "session {i} not served within {:?} (max_children = 2: the daemon \
                 did not see the earlier sessions end): {e}\n{}",
                t0.elapsed(),
                d.log_text()
            )
        });
        assert!(
            g.starts_with("Welcome to hostinfod on "),
            "session {i}: greeting {g:?}"
        );
        assert_eq!(r.trim_end().len(), 24, "session {i}: {r:?}");
        // The daemon itself reaped it: its EXIT record is logged.
        let want = probes + i + 1;
        assert!(
            eventually(Duration::from_secs(5), || {
                d.log_text().matches("EXIT: pid=").count() >= want
            }),
            "session {i}: the daemon reaped fewer than {want} children:\n{}",
            d.log_text()
        );
        assert!(
            eventually(Duration::from_secs(5), || children_of(d.pid()).is_empty()),
            "session {i} not reaped"
        );
    }
}
