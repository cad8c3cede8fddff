//! Many sessions: the fork per client, the reaper, and the parent's
//! resources over time.

mod common;

use std::time::{Duration, Instant};

use common::*;

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

/// The parent's state is kept out of its children (src/parentonly.rs): the
/// daemon says so at start-up, and a session still works from what the
/// parent handed its child before the fork (a child that touched the
/// parent's state would die of SIGSEGV, and the client would see no reply).
#[test]
fn the_servers_state_is_kept_out_of_its_children() {
    let s = Setup::new("[log]\nlevel = \"debug\"\n");
    let d = s.start();
    assert!(
        d.wait_log("is kept out of forked children", Duration::from_secs(5)),
        "no start-up line saying the server's state is parent-only: {}",
        d.log_text()
    );
    for cmd in ["date", "help", "motd", "cookie"] {
        let r = one_shot_tcp(d.port, cmd);
        assert!(!r.is_empty(), "{cmd}: empty reply");
    }
    let mut u = d.unix();
    u.greeting();
    assert_eq!(u.cmd("date").trim_end().len(), 24);
}

/// A session costs the parent two page faults, both on pages the child it
/// forked still shares: one page of stack (the poll loop starts at the top
/// of a page so that the fork's frames fit in one, crate::layout; in one
/// build out of two they took two, depending on the environment) and the
/// page of its thread's control block and TLS (errno, written by the
/// accept that ends each batch, and the rseq area the kernel updates when
/// the parent runs again). The `Server` and the session table are in
/// memory no child shares, so they cost none. At `level = "warn"`, as
/// benchmarked: at `info` the EXIT record's formatting writes one more page
/// of stack.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "the layout checked is the release build's (frames of unoptimised code are larger): CI runs it with --release"
)]
fn a_session_costs_the_parent_two_page_faults() {
    let s = Setup::new("[log]\nlevel = \"warn\"\n");
    let d = s.start();
    let minflt = || -> u64 {
        proc_stat(d.pid())
            .get(7)
            .and_then(|f| f.parse().ok())
            .expect("minflt in /proc/PID/stat")
    };
    for _ in 0..200 {
        assert!(!one_shot_tcp(d.port, "date").is_empty());
    }
    const N: u64 = 2000;
    let before = minflt();
    for _ in 0..N {
        assert!(!one_shot_tcp(d.port, "date").is_empty());
    }
    let per = (minflt() - before) as f64 / N as f64;
    println!("the parent: {per:.2} page faults a session over {N} sessions");
    assert!(per < 2.5, "{per:.2} page faults a session in the parent");
}

/// Each connection is served by a forked child of the daemon, and nothing
/// is executed to produce a reply (strace -f sees clone/fork, never execve).
#[test]
fn fork_per_client_and_no_exec() {
    require_program("/usr/bin/strace", "strace");
    let s = Setup::new("");
    let trace = s.path("trace");
    // The daemon runs under strace -f, both held by guards that end them by
    // PID if an assertion fails: strace as the harness's Daemon, the daemon
    // (strace's child, not ours) by its pidfile.
    let trace_arg = trace.to_str().expect("utf8 temp path");
    let mut strace = s
        .daemon()
        .under(
            "/usr/bin/strace",
            &[
                "-f",
                "-qq",
                "-e",
                "trace=clone,clone3,fork,vfork,execve,execveat",
                "-o",
                trace_arg,
            ],
        )
        .start();
    // Ready: the daemon has written its pidfile.
    let daemon = Detached::from_pidfile(&s.pid_file, &s.config)
        .unwrap_or_else(|| panic!("no daemon named by the pidfile: {}", strace.log_text()));
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
    // interrupted call is counted once): exactly one per client.
    let forks = t
        .lines()
        .filter(|l| l.starts_with(&format!("{dpid} ")))
        .filter(|l| l.contains("clone(") || l.contains("clone3(") || l.contains("fork("))
        .count();
    let clients = sessions * commands.len() + unix_sessions;
    assert_eq!(
        forks, clients,
        "expected one fork per client ({clients}), saw {forks}:\n{t}"
    );
}

/// A daemon started with SIGCHLD ignored (an ignored disposition survives
/// exec) still sees its children end: with max_children = 1, the first
/// session fills the only place, so every later session is served only if
/// the daemon reaped (and counted out) the earlier ones. Were the
/// disposition kept, the kernel would reap them behind its back: no EXIT
/// record, no place freed, and the second client never greeted.
#[test]
fn inherited_ignored_sigchld_does_not_stop_service() {
    let s = Setup::new("[limits]\nmax_children = 1\n");
    // SAFETY: signal(2) is async-signal-safe; nothing else runs here.
    let d = unsafe {
        s.daemon().pre_exec(|| {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGCHLD,
                nix::sys::signal::SigHandler::SigIgn,
            )
            .map(drop)
            .map_err(std::io::Error::from)
        })
    }
    .start();
    for i in 0..6 {
        // Every read bounded (IO_TIMEOUT); a client left in the backlog
        // fails here, with what it got.
        let t0 = Instant::now();
        let (g, r) = try_session_tcp(d.port, "date").unwrap_or_else(|e| {
            panic!(
                "session {i} not served within {:?} (max_children = 1: the daemon \
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
        let want = i + 1;
        assert!(
            eventually(Duration::from_secs(5), || {
                d.log_text().matches("EXIT: pid=").count() == want
            }),
            "session {i}: the daemon reaped other than {want} children:\n{}",
            d.log_text()
        );
        assert!(
            eventually(Duration::from_secs(5), || children_of(d.pid()).is_empty()),
            "session {i} not reaped"
        );
    }
}
