//! Daemon mode against the real binary: the launcher's exit status, the
//! detached daemon's state in /proc, the pidfile lock, privilege drop,
//! logging, and stopping by SIGTERM or `-s stop`.
//!
//! The binary is what forks; the test runner is never daemonized. Daemons
//! started without `-f` are not children of the test: every one is held by a
//! [`Detached`] guard that stops it by the pid in its pidfile (SIGTERM,
//! bounded wait, SIGKILL) even when an assertion fails.

mod common;

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use nix::libc;
use nix::sys::signal::Signal;

#[test]
fn daemon_mode_detaches_and_serves() {
    let s = Setup::new("umask = \"0027\"\n");
    // What a sloppy launching shell may leave behind: an inherited fd without
    // close-on-exec, SIGTERM and SIGUSR1 ignored, SIGUSR2 blocked. daemon(7)
    // says the daemon must close and reset all of that.
    let marker = s.path("inherited-marker");
    let marker_file = std::fs::File::create(&marker).expect("marker");
    let mfd = marker_file.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    let l = unsafe {
        s.daemon().pre_exec(move || {
            if libc::dup2(mfd, 50) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGUSR1, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        })
    }
    .launch();
    let d = l.launched();
    // Ready means ready: the very first connection attempts, with no retry,
    // are served on both transports.
    let (g, help) = try_session_tcp(s.port, "help").expect("TCP served at once");
    assert!(g.starts_with("Welcome to hostinfod on "), "{g:?}");
    assert_eq!(help, "Commands: quit date who cookie motd help\r\n");
    try_session_unix(&s.sock, "date").expect("Unix socket served at once");

    let pid = d.pid;
    assert_eq!(
        std::fs::read_to_string(&s.pid_file).expect("pidfile"),
        format!("{pid}\n")
    );
    let meta = std::fs::metadata(&s.pid_file).expect("pidfile meta");
    assert_eq!(meta.permissions().mode() & 0o777, 0o644, "pidfile mode");

    let stat = proc_stat(pid);
    let (ppid, pgrp, sid, tty): (i32, i32, i32, i32) = (
        stat[1].parse().expect("ppid"),
        stat[2].parse().expect("pgrp"),
        stat[3].parse().expect("sid"),
        stat[4].parse().expect("tty"),
    );
    let my_sid = nix::unistd::getsid(None).expect("getsid").as_raw();
    eprintln!(
        "daemon pid {pid} ppid {ppid} pgrp {pgrp} sid {sid} tty {tty}; launcher {} test sid {my_sid}",
        l.launcher_pid
    );
    assert_ne!(
        ppid,
        std::process::id() as i32,
        "the test is not its parent"
    );
    assert_eq!(tty, 0, "no controlling terminal");
    assert_ne!(sid, my_sid, "not in the launcher's session");
    assert_ne!(sid, pid, "not a session leader (second fork)");
    assert_eq!(pgrp, sid, "in the group of its own new session");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd"),
        Path::new("/")
    );
    for fd in 0..=2 {
        assert_eq!(
            fd_target(pid, fd).as_deref(),
            Some(Path::new("/dev/null")),
            "fd {fd}"
        );
    }
    assert_eq!(proc_status(pid, "Umask").as_deref(), Some("0027"));
    // Inherited descriptors are closed: nothing points at the marker or at
    // the launcher's output files.
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fds") {
        let t = std::fs::read_link(e.expect("fd").path()).unwrap_or_default();
        assert!(
            t != marker && !t.starts_with(s.dir.path().join("launcher")),
            "daemon holds an inherited fd: {}",
            t.display()
        );
    }
    // Dispositions and mask were reset, then SIGPIPE ignored on purpose.
    assert!(
        !sig_in_mask(pid, "SigIgn", Signal::SIGTERM),
        "SIGTERM ignored"
    );
    assert!(
        !sig_in_mask(pid, "SigIgn", Signal::SIGUSR1),
        "SIGUSR1 ignored"
    );
    assert!(
        !sig_in_mask(pid, "SigBlk", Signal::SIGUSR2),
        "SIGUSR2 blocked"
    );
    assert!(
        sig_in_mask(pid, "SigIgn", Signal::SIGPIPE),
        "SIGPIPE ignored"
    );
    // And the inherited "ignore SIGTERM" does not make it unstoppable.
    d.signal(Signal::SIGTERM);
    assert!(d.wait_gone(Duration::from_secs(10)), "SIGTERM stops it");
    drop(marker_file);
}

#[test]
fn port_in_use_fails_the_launcher_with_the_bind_error() {
    let s = Setup::new("");
    let _holder = TcpListener::bind(("127.0.0.1", s.port)).expect("occupy the port");
    let l = s.daemon().launch();
    assert_eq!(l.code, Some(1), "stderr: {:?}", l.stderr);
    assert!(
        l.stderr
            .contains(&format!("cannot listen on tcp 127.0.0.1:{}", s.port))
            && l.stderr.contains("in use"),
        "the daemon's own bind error: {:?}",
        l.stderr
    );
    assert!(l.daemon.is_none(), "no daemon left running");
    assert!(
        eventually(Duration::from_secs(5), || procs_with_config(&s.config)
            .is_empty()),
        "a hostinfod process is still running: {:?}",
        procs_with_config(&s.config)
    );
    assert!(!exists(&s.sock), "no socket file left");
    assert!(
        !exists(&s.pid_file),
        "no stale pidfile left by a failed start"
    );
}

#[test]
fn second_instance_is_refused_with_the_first_ones_pid() {
    let s = Setup::new("");
    let first = s.daemon().launch();
    let d = first.launched();
    let l = s.daemon().launch();
    assert_eq!(l.code, Some(1), "stderr: {:?}", l.stderr);
    assert!(
        l.stderr
            .contains(&format!("already running (pid {})", d.pid)),
        "{:?}",
        l.stderr
    );
    // The same in the foreground.
    let (code, _, err) = s.run_bounded(&["-f"]);
    assert_eq!(code, Some(1), "-f: {err:?}");
    assert!(
        err.contains(&format!("already running (pid {})", d.pid)),
        "{err:?}"
    );
    // The first one is undisturbed.
    assert!(d.alive());
    assert_eq!(
        std::fs::read_to_string(&s.pid_file).expect("pidfile"),
        format!("{}\n", d.pid)
    );
    try_session_unix(&s.sock, "help").expect("first instance still serves");
    // Only the first daemon remains (its session child exits after quit).
    assert!(
        eventually(Duration::from_secs(5), || procs_with_config(&s.config)
            == vec![d.pid]),
        "{:?}",
        procs_with_config(&s.config)
    );
}

#[test]
fn bad_config_exits_78() {
    let s = Setup::new("bogus_key = 1\n");
    let l = s.daemon().launch();
    assert_eq!(l.code, Some(78), "stderr: {:?}", l.stderr);
    let prefix = format!("{}:", s.config.display());
    assert!(
        l.stderr.starts_with(&prefix) && l.stderr.contains("bogus_key"),
        "FILE:LINE:COL: message naming the key: {:?}",
        l.stderr
    );
    assert!(l.daemon.is_none() && !exists(&s.pid_file) && !exists(&s.sock));
}

#[test]
fn unknown_user_exits_1() {
    require_root("daemon.user is resolved only when the daemon starts as root");
    let s = Setup::new("user = \"no-such-user-hid\"\n");
    let l = s.daemon().launch();
    assert_eq!(l.code, Some(1), "stderr: {:?}", l.stderr);
    assert!(
        l.stderr.contains("unknown user \"no-such-user-hid\""),
        "{:?}",
        l.stderr
    );
    assert!(l.daemon.is_none() && !exists(&s.pid_file) && !exists(&s.sock));
}

#[test]
fn sigterm_with_live_sessions_ends_them_and_cleans_up() {
    let s = Setup::new("");
    let l = s.daemon().launch();
    let d = l.launched();
    let mut tcp = Client::new(std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("tcp"));
    tcp.greeting();
    let mut unix = Client::new(std::os::unix::net::UnixStream::connect(&s.sock).expect("unix"));
    unix.greeting();
    assert!(
        eventually(Duration::from_secs(5), || children_of(d.pid).len() == 2),
        "two session children: {:?}",
        children_of(d.pid)
    );
    let kids = children_of(d.pid);
    let status_file = s.pid_file.with_extension("status");
    assert!(exists(&status_file));

    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(tcp.read_to_end(), b"Server shutting down.\r\n");
    assert_eq!(unix.read_to_end(), b"Server shutting down.\n");
    assert!(d.wait_gone(Duration::from_secs(10)), "daemon exited");
    // The children ended on SIGTERM, not on the SIGKILL after the 5 s grace.
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert!(!exists(&s.pid_file), "pidfile removed");
    assert!(!exists(&s.sock), "socket file removed");
    assert!(!exists(&status_file), "status file removed");
    for k in kids {
        assert!(!running(k), "child {k} left behind");
    }
    assert!(procs_with_config(&s.config).is_empty());
}

#[test]
fn control_stop_and_status() {
    let s = Setup::new("");
    // A stale pidfile naming a live process that is not hostinfod (the test
    // itself): nobody holds its lock, so nothing may be signalled.
    std::fs::write(&s.pid_file, format!("{}\n", std::process::id())).expect("stale");
    let (code, _, err) = s.run_bounded(&["-s", "stop"]);
    assert_eq!(code, Some(1), "stale pidfile: {err:?}");
    assert!(err.contains("not running"), "{err:?}");
    std::fs::remove_file(&s.pid_file).expect("rm stale");

    let l = s.daemon().launch();
    let d = l.launched();
    let mut c = Client::new(std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("tcp"));
    c.greeting();
    single_child(d.pid);
    let (code, out, err) = s.run_bounded(&["-s", "status"]);
    assert_eq!(code, Some(0), "{err:?}");
    assert!(out.contains(&format!("pid={}\n", d.pid)), "{out:?}");
    assert!(out.contains("generation=0\n"), "{out:?}");
    assert!(out.contains("sessions=1\n"), "{out:?}");
    assert!(
        out.contains(&format!("tcp 127.0.0.1:{}", s.port))
            && out.contains(&format!("unix {}", s.sock.display())),
        "listeners: {out:?}"
    );

    let (code, out, err) = s.run_bounded(&["-s", "stop"]);
    assert_eq!(code, Some(0), "{err:?}");
    assert!(out.contains(&format!("stopped (pid {})", d.pid)), "{out:?}");
    // -s stop returns only once the daemon is gone: no waiting here.
    assert!(!d.alive(), "daemon still running after -s stop returned");
    assert_eq!(c.read_to_end(), b"Server shutting down.\r\n");
    assert!(!exists(&s.pid_file) && !exists(&s.sock));

    let (code, _, err) = s.run_bounded(&["-s", "stop"]);
    assert_eq!(code, Some(1), "{err:?}");
    assert!(
        err.contains("not running") && err.contains(&*s.pid_file.to_string_lossy()),
        "clear message naming the pidfile: {err:?}"
    );
    let (code, out, _) = s.run_bounded(&["-s", "status"]);
    assert_eq!(code, Some(3), "LSB: 3 when not running");
    assert!(out.contains("not running"), "{out:?}");
}

#[test]
fn privilege_drop_to_nobody() {
    require_root("only root can drop privileges");
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("getpwnam")
        .expect("user nobody");
    let mut s = Setup::new("");
    // A run directory the daemon creates (as root) and hands to the user, in
    // a parent others may traverse but not write, like /run.
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    s.pid_file = s.path("run/h.pid");
    s.sock = s.path("run/h.sock");
    s.write_config("user = \"nobody\"\n");
    let l = s.daemon().launch();
    let d = l.launched();
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    let mut c = Client::new(std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("tcp"));
    c.greeting();
    let child = single_child(d.pid);
    for pid in [d.pid, child] {
        let ids = |k| proc_status(pid, k).unwrap_or_default();
        assert_eq!(
            ids("Uid"),
            format!("{uid}\t{uid}\t{uid}\t{uid}"),
            "pid {pid}"
        );
        assert_eq!(
            ids("Gid"),
            format!("{gid}\t{gid}\t{gid}\t{gid}"),
            "pid {pid}"
        );
        assert!(
            !ids("Groups").split_whitespace().any(|g| g == "0"),
            "pid {pid} kept group root: {:?}",
            ids("Groups")
        );
        assert_eq!(ids("CapEff"), "0000000000000000", "pid {pid}");
        assert_eq!(ids("CapPrm"), "0000000000000000", "pid {pid}");
    }
    assert_eq!(
        c.cmd("help"),
        "Commands: quit date who cookie motd help\r\n"
    );
    for f in [&s.pid_file, &s.sock] {
        assert_eq!(
            std::fs::metadata(f).expect("meta").uid(),
            uid,
            "{} owned by nobody",
            f.display()
        );
    }
    // The unprivileged daemon can still reload (re-exec, adopt its pidfile
    // and listeners) and stays unprivileged.
    s.write_config("user = \"nobody\"\n\n[protocol]\ngreeting = \"Reloaded as nobody.\"\n");
    let (code, out, err) = s.run_bounded(&["-s", "reload"]);
    assert_eq!(code, Some(0), "reload as nobody: {out:?} {err:?}");
    let (g, _) = try_session_tcp(s.port, "help").expect("served after reload");
    assert_eq!(g, "Reloaded as nobody.\r\n");
    assert_eq!(
        proc_status(d.pid, "Uid").unwrap_or_default(),
        format!("{uid}\t{uid}\t{uid}\t{uid}")
    );
    assert_eq!(
        c.cmd("help"),
        "Commands: quit date who cookie motd help\r\n"
    );
    let (code, _, err) = s.run_bounded(&["-s", "stop"]);
    assert_eq!(code, Some(0), "{err:?}");
    assert_eq!(c.read_to_end(), b"Server shutting down.\r\n");
    // The unprivileged daemon could remove its own files.
    assert!(!exists(&s.pid_file), "pidfile removed by nobody");
    assert!(!exists(&s.sock), "socket removed by nobody");
    assert!(!exists(&s.pid_file.with_extension("status")));
}

#[test]
fn syslog_records_start_and_exit() {
    let s = Setup::new("\n[log]\ndestination = \"syslog\"\nfacility = \"local3\"\n");
    let log_path = s.path("syslog.sock");
    let log = UnixDatagram::bind(&log_path).expect("bind syslog socket");
    let l = s
        .daemon()
        .env("HOSTINFOD_SYSLOG_SOCKET", &log_path)
        .launch();
    let d = l.launched();

    let mut c = Client::new(std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("tcp"));
    c.greeting();
    let tcp_child = single_child(d.pid);
    c.send(b"quit\n");
    c.read_to_end();
    assert!(eventually(Duration::from_secs(5), || children_of(d.pid).is_empty()));
    let mut u = Client::new(std::os::unix::net::UnixStream::connect(&s.sock).expect("unix"));
    u.greeting();
    let unix_child = single_child(d.pid);
    u.send(b"quit\n");
    u.read_to_end();
    let (code, _, err) = s.run_bounded(&["-s", "stop"]);
    assert_eq!(code, Some(0), "{err:?}");

    let exit_tcp = format!("EXIT: pid={tcp_child} ");
    let exit_unix = format!("EXIT: pid={unix_child} ");
    let recs = recv_datagrams(&log, Duration::from_secs(10), |r| {
        [&exit_tcp, &exit_unix, &"stopped".to_string()]
            .iter()
            .all(|n| r.iter().any(|x| x.contains(n.as_str())))
    });
    let all = recs.join("\n");
    let find = |needle: &str| {
        recs.iter()
            .find(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no record with {needle:?} in:\n{all}"))
            .clone()
    };
    // local3.info = 19 * 8 + 6; ident hostinfod with the daemon's pid.
    let tag = format!("hostinfod[{}]: ", d.pid);
    let started = find(&format!("started (pid {})", d.pid));
    assert!(
        started.starts_with("<158>") && started.contains(&tag),
        "{started:?}"
    );
    let start_tcp = find(&format!("pid={tcp_child} via tcp"));
    assert!(
        start_tcp.starts_with("<158>") && start_tcp.contains("START: 127.0.0.1:"),
        "{start_tcp:?}"
    );
    // The child's record carries the child's pid in its tag, and an RFC 3164
    // timestamp (`Mmm dd hh:mm:ss `) after the priority.
    assert!(
        start_tcp.contains(&format!(" hostinfod[{tcp_child}]: START")),
        "{start_tcp:?}"
    );
    let stamp = &start_tcp.as_bytes()["<158>".len()..];
    assert!(
        stamp.len() > 16
            && stamp[3] == b' '
            && stamp[9] == b':'
            && stamp[12] == b':'
            && stamp[15] == b' ',
        "{start_tcp:?}"
    );
    let e = find(&exit_tcp);
    assert!(
        e.contains("status=0") && e.contains("duration=") && e.contains("from 127.0.0.1"),
        "{e:?}"
    );
    let start_unix = find(&format!("pid={unix_child} peer_pid={}", std::process::id()));
    assert!(
        start_unix.contains(&format!(
            "START: unix peer uid={}",
            nix::unistd::getuid().as_raw()
        )),
        "{start_unix:?}"
    );
    assert!(find(&exit_unix).contains("status=0"));
    find("stopped");
}

#[test]
fn foreground_logs_to_stderr_and_level_filters() {
    let s = Setup::new("");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    let child = single_child(d.pid());
    c.send(b"quit\n");
    c.read_to_end();
    let exit = format!(
        "hostinfod[{}]: EXIT: pid={child} how=quit status=0",
        d.pid()
    );
    assert!(
        d.wait_log(&exit, Duration::from_secs(5)),
        "{exit:?} in {:?}",
        d.log_text()
    );
    let log = d.log_text();
    assert!(
        log.contains("START: 127.0.0.1:")
            && log.contains(&format!("pid={child} via tcp 127.0.0.1:{}", s.port)),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("hostinfod[{}]: hostinfod ", d.pid())) && log.contains("started"),
        "{log:?}"
    );
    drop(d);

    // level = "warn": no per-session records.
    let s = Setup::new("\n[log]\nlevel = \"warn\"\n");
    let d = s.start();
    one_shot_tcp(s.port, "help");
    assert!(eventually(Duration::from_secs(5), || children_of(d.pid()).is_empty()));
    let log = d.log_text();
    assert!(!log.contains("START:") && !log.contains("EXIT:"), "{log:?}");
}

#[test]
fn sigint_stops_like_sigterm() {
    let s = Setup::new("");
    let mut d = s.start();
    let mut c = d.unix();
    c.greeting();
    d.signal(Signal::SIGINT);
    assert_eq!(c.read_to_end(), b"Server shutting down.\n");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!exists(&s.pid_file) && !exists(&s.sock));
    assert!(d.log_text().contains("stopped"), "{}", d.log_text());
}

#[test]
fn sigterm_reaches_a_child_that_waits_for_its_client_to_read() {
    // A child whose client does not read waits in ppoll for room to write,
    // not in a read that a stop would wake (see crate::session::stop): it
    // must hear SIGTERM there too, and end at once, not at the SIGKILL.
    let s = Setup::new("");
    let mut d = s.start();
    let mut c = d.tcp();
    c.greeting();
    let kid = single_child(d.pid());
    send_until_blocked(
        &mut c,
        &b"help\n".repeat(200),
        usize::MAX,
        Duration::from_millis(500),
    );
    let in_ppoll = || {
        std::fs::read_to_string(format!("/proc/{kid}/syscall"))
            .is_ok_and(|t| t.split(' ').next() == Some(&libc::SYS_ppoll.to_string()))
    };
    assert!(
        eventually(Duration::from_secs(5), in_ppoll),
        "the child waits for room to write"
    );
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    let took = t0.elapsed();
    let log = d.log_text();
    assert!(took < Duration::from_secs(3), "{took:?}\n{log}");
    assert!(!log.contains("SIGKILL"), "{log}");
    assert!(
        log.contains(&format!("EXIT: pid={kid} how=shutdown status=4 ")),
        "ended as shutdown: {log}"
    );
}

#[test]
fn a_child_that_ignores_the_stop_is_killed_after_the_grace_period() {
    let s = Setup::new("\n[limits]\nshutdown_grace_secs = 1\n");
    let mut d = s.start();
    let mut c = d.tcp();
    c.greeting();
    let kid = single_child(d.pid());
    // A stopped child cannot act on SIGTERM; only the SIGKILL ends it.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(kid), Signal::SIGSTOP).expect("stop");
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    let took = t0.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&took),
        "exit after the 1 s grace, not before and not much after: {took:?}"
    );
    assert!(!running(kid), "child {kid} left behind");
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "pid {kid} still running after the grace period: SIGKILL"
        )),
        "{log}"
    );
    assert!(c.read_to_end().is_empty(), "a killed child says nothing");
    assert!(!exists(&s.pid_file) && !exists(&s.sock));
}
