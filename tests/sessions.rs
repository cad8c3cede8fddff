//! Many sessions: the fork per client, the reaper, and the parent's
//! resources over time.

mod common;

use std::time::Duration;

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
    // Run the daemon under strace -f; the harness waits for it to listen.
    let log = s.path("stderr.log");
    let err = std::fs::File::create(&log).expect("log");
    let mut child = std::process::Command::new("/usr/bin/strace")
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
        .stderr(err)
        .spawn()
        .expect("strace");
    assert!(
        eventually(Duration::from_secs(20), || std::net::TcpStream::connect((
            "127.0.0.1",
            s.port
        ))
        .is_ok()),
        "daemon under strace did not listen"
    );
    // The probe connection above was one client too; count forks relative
    // to the sessions we make now.
    let sessions = 5;
    for _ in 0..sessions {
        for cmd in ["date", "who", "cookie", "motd"] {
            let _ = one_shot_tcp(s.port, cmd);
        }
    }
    let mut u = Client::new(std::os::unix::net::UnixStream::connect(&s.sock).expect("unix"));
    u.greeting();
    u.cmd("date");
    drop(u);
    // Stop the daemon (strace's child) by its pid: strace follows it out.
    std::thread::sleep(Duration::from_millis(200));
    let pid_text = std::fs::read_to_string(&s.pid_file).expect("pidfile");
    let dpid: i32 = pid_text.trim().parse().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dpid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let st = child.wait().expect("strace exits");
    assert!(st.success(), "strace: {st}");
    let t = std::fs::read_to_string(&trace).expect("trace");
    let execs: Vec<&str> = t.lines().filter(|l| l.contains("execve")).collect();
    // Exactly one execve: strace starting the daemon itself.
    assert_eq!(execs.len(), 1, "unexpected exec:\n{}", execs.join("\n"));
    let forks = t
        .lines()
        .filter(|l| l.contains("clone(") || l.contains("clone3(") || l.contains("fork("))
        .filter(|l| !l.contains("resumed>") || l.contains("= "))
        .count();
    // 4 commands × 5 rounds + 1 Unix session + the readiness probes.
    assert!(
        forks > sessions * 4,
        "expected a fork per client, saw {forks}:\n{t}"
    );
}

/// A daemon started with SIGCHLD ignored (an ignored disposition survives
/// exec) still sees its children end: with max_children = 2, sessions three
/// and four are served too.
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
    for i in 0..6 {
        let r = one_shot_tcp(d.port, "date");
        assert_eq!(r.trim_end().len(), 24, "session {i}: {r:?}");
        assert!(
            eventually(Duration::from_secs(5), || children_of(d.pid()).is_empty()),
            "session {i} not reaped"
        );
    }
}
