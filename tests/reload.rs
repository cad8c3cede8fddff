//! The in-place reload against the real binary: SIGHUP and `-s reload`
//! re-execute the daemon with the same PID, hand over listeners, sessions and
//! children, and tell the operator (status file, exit code, sd_notify) how it
//! went.
//!
//! Daemons run in the foreground (`-f`) as children of the test, so the
//! harness's [`Daemon`] stops them on drop. Config files are replaced by
//! rename, so a reload never reads a half-written file.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

/// Replaces the config file atomically with the base sections plus `extra`.
fn put(s: &Setup, extra: &str) {
    put_raw(s, &format!("{}{extra}", s.base()));
}

/// Replaces the config file atomically with `text`.
fn put_raw(s: &Setup, text: &str) {
    let tmp = s.path("config.tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, &s.config).expect("rename config");
}

/// A `[protocol]` section with a greeting and no `{hostname}`.
fn greeting(g: &str) -> String {
    format!("\n[protocol]\ngreeting = {g:?}\n")
}

/// The greeting line a new TCP session gets (without the line end).
fn greeting_now(port: u16) -> String {
    match try_session_tcp(port, "help") {
        Ok((g, _)) => g.trim_end().to_string(),
        Err(e) => format!("<{e}>"),
    }
}

/// Waits (bounded) until new sessions are greeted with `want`.
fn wait_greeting(port: u16, want: &str) {
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(10), || {
        last = greeting_now(port);
        last == want
    });
    assert!(ok, "greeting {want:?} never served; last {last:?}");
}

fn exe_of(pid: i32) -> (PathBuf, u64) {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    let ino = std::fs::metadata(format!("/proc/{pid}/exe"))
        .expect("exe")
        .ino();
    (link, ino)
}

fn ctl(s: &Setup, cmd: &str) -> (Option<i32>, String, String) {
    s.run_bounded(&["-s", cmd])
}

#[test]
fn reload_keeps_pid_and_exe_and_serves_the_new_config() {
    let s = Setup::new("");
    let (motd1, motd2) = (s.path("motd1"), s.path("motd2"));
    std::fs::write(&motd1, "first motd\n").expect("motd1");
    std::fs::write(&motd2, "second motd\n").expect("motd2");
    let conf = |g: &str, m: &Path| format!("{}\n[commands]\nmotd_files = [{m:?}]\n", greeting(g));
    put(&s, &conf("Generation one.", &motd1));
    let mut d = s.start();
    let pid = d.pid();
    let exe0 = exe_of(pid);
    let (g, motd) = try_session_tcp(s.port, "motd").expect("session");
    assert_eq!(
        (g.as_str(), motd.as_str()),
        ("Generation one.\r\n", "first motd\r\n")
    );

    put(&s, &conf("Generation two.", &motd2));
    d.signal(Signal::SIGHUP);
    wait_greeting(s.port, "Generation two.");
    let (_, motd) = try_session_unix(&s.sock, "motd").expect("unix session");
    assert_eq!(motd, "second motd\n");

    assert!(d.still_running(), "the test's child (same pid) still runs");
    assert_eq!(exe_of(pid), exe0, "same /proc/PID/exe target");
    assert!(
        d.wait_log("reloaded (generation 1)", Duration::from_secs(5)),
        "{}",
        d.log_text()
    );
    // It really was an exec: the new image's environment names the hand-over.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(
        environ
            .split(|&b| b == 0)
            .any(|v| v.starts_with(b"HOSTINFOD_HANDOVER_FD=")),
        "new image environment"
    );
    let st = s.status();
    assert_eq!(st.get("pid"), Some(&pid.to_string()));
    assert_eq!(st.get("generation").map(String::as_str), Some("1"));
    assert_eq!(st.get("last_reload_result").map(String::as_str), Some("ok"));
}

#[test]
fn session_from_before_a_reload_keeps_working_and_is_reaped_after() {
    let s = Setup::new(&greeting("Old greeting."));
    let d = s.start();
    let pid = d.pid();
    let mut c = d.tcp();
    assert_eq!(c.greeting(), format!("Old greeting.\r\n{PROMPT}"));
    let kid = single_child(pid);

    put(&s, &greeting("New greeting."));
    let (code, out, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "-s reload: {out:?} {err:?}");
    assert!(
        out.contains(&format!("reloaded (pid {pid}, generation 1)")),
        "{out:?}"
    );
    assert_eq!(greeting_now(s.port), "New greeting.");

    // The old session is undisturbed and is still the daemon's child.
    assert_eq!(
        c.cmd("help"),
        "Commands: quit date who cookie motd help\r\n"
    );
    assert!(children_of(pid).contains(&kid));
    c.send(b"quit\n");
    assert_eq!(c.read_to_end(), b"Goodbye.\r\n");
    // The new image reaps it, knowing it as a session (the table was
    // handed over): no zombie, and an EXIT record with its source.
    assert!(
        eventually(Duration::from_secs(5), || !children_of(pid).contains(&kid)),
        "child {kid} not reaped: state {:?}",
        proc_state(kid)
    );
    // Other children (greeting_now's session) may be exiting right now:
    // each is reaped promptly, none is left a zombie.
    assert!(
        eventually(Duration::from_secs(5), || zombies_of(pid).is_empty()),
        "zombies: {:?}",
        zombies_of(pid)
    );
    let exit = format!("EXIT: pid={kid} how=quit status=0");
    assert!(
        d.wait_log(&exit, Duration::from_secs(5)),
        "{}",
        d.log_text()
    );
    let line = d
        .log_text()
        .lines()
        .find(|l| l.contains(&exit))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.contains("from 127.0.0.1"), "{line:?}");
}

#[test]
fn per_source_limit_carries_over_a_reload() {
    let s = Setup::new("\n[limits]\nmax_per_source = 1\n");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    single_child(d.pid());
    put(
        &s,
        &format!("\n[limits]\nmax_per_source = 1\n{}", greeting("Reloaded.")),
    );
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "{err:?}");
    // The new image counts the session it inherited.
    let mut busy = Client::new(TcpStream::connect(("127.0.0.1", s.port)).expect("connect"));
    assert_eq!(
        busy.read_to_end(),
        b"Server busy: too many sessions from 127.0.0.1.\r\n"
    );
    c.send(b"quit\n");
    c.read_to_end();
    // Once the inherited session ends, the slot is free again.
    wait_greeting(s.port, "Reloaded.");
}

#[test]
fn ten_reloads_under_load_fail_no_session() {
    let s = Setup::new(&greeting("Greeting A."));
    let d = s.start();
    let pid = d.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let (port, sock) = (s.port, s.sock.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = if i == 2 {
                        try_session_unix(&sock, "date")
                    } else {
                        try_session_tcp(port, "date")
                    };
                    let r = r.and_then(|(g, date)| {
                        let g = g.trim_end();
                        if (g == "Greeting A." || g == "Greeting B.") && date.trim_end().len() == 24
                        {
                            Ok(())
                        } else {
                            Err(format!("bad session: {g:?} {date:?}"))
                        }
                    });
                    match r {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            failed
                                .lock()
                                .expect("lock")
                                .push(format!("worker {i}: {e}"));
                            0
                        }
                    };
                }
            })
        })
        .collect();
    let mut reloads = Vec::new();
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(40));
        put(
            &s,
            &greeting(if i % 2 == 0 {
                "Greeting B."
            } else {
                "Greeting A."
            }),
        );
        reloads.push(ctl(&s, "reload"));
    }
    std::thread::sleep(Duration::from_millis(40));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let elapsed = t0.elapsed();
    for (i, (code, out, err)) in reloads.iter().enumerate() {
        assert_eq!(*code, Some(0), "reload {i}: {out:?} {err:?}");
    }
    let failed = failed.lock().expect("lock");
    let ok = ok.load(Ordering::Relaxed);
    eprintln!(
        "10 reloads under load: {ok} sessions ok, {} failed, {elapsed:?}",
        failed.len()
    );
    assert!(failed.is_empty(), "failed sessions: {failed:#?}");
    assert!(ok >= 30, "load too thin to mean anything: {ok} sessions");
    assert!(elapsed < Duration::from_secs(40), "{elapsed:?}");
    assert_eq!(s.status().get("generation").map(String::as_str), Some("10"));
    assert!(
        eventually(Duration::from_secs(5), || children_of(pid).is_empty()),
        "children left: {:?}",
        children_of(pid)
    );
    assert!(zombies_of(pid).is_empty());
}

#[test]
fn invalid_config_keeps_the_old_one_serving() {
    let s = Setup::new(&greeting("Old."));
    let mut d = s.start();
    put(&s, &format!("{}bogus_key = 1\n", greeting("New.")));
    d.signal(Signal::SIGHUP);
    assert!(
        d.wait_log("reload rejected", Duration::from_secs(10)),
        "{}",
        d.log_text()
    );
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("reload rejected"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("{}:", s.config.display())) && line.contains("bogus_key"),
        "logged with file, line and key: {line:?}"
    );
    assert!(d.still_running());
    assert_eq!(greeting_now(s.port), "Old.");
    let st = s.status();
    assert_eq!(
        st.get("last_reload_result").map(String::as_str),
        Some("rejected")
    );
    let why = st.get("last_reload_error").cloned().unwrap_or_default();
    assert!(
        why.contains(&*s.config.to_string_lossy()) && why.contains("bogus_key"),
        "{why:?}"
    );
    assert_eq!(st.get("generation").map(String::as_str), Some("0"));

    // A rejected reload does not spoil the next one.
    put(&s, &greeting("Fixed."));
    d.signal(Signal::SIGHUP);
    wait_greeting(s.port, "Fixed.");
    assert_eq!(s.status().get("generation").map(String::as_str), Some("1"));
}

#[test]
fn sighup_burst_leaves_the_daemon_alive_and_the_last_config_serving() {
    let s = Setup::new(&greeting("Before."));
    let mut d = s.start();
    let pid = d.pid();
    let t0 = Instant::now();
    // 5 SIGHUPs about 8 ms apart (~35 ms in all), each after a new config.
    for i in 0..5 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(8));
        }
        put(&s, &greeting(&format!("Burst {i}.")));
        d.signal(Signal::SIGHUP);
    }
    let burst = t0.elapsed();
    wait_greeting(s.port, "Burst 4.");
    assert!(d.still_running(), "the burst killed it: {}", d.log_text());
    assert_eq!(
        exe_of(pid).0,
        PathBuf::from(BIN).canonicalize().expect("bin")
    );
    // A later reload still works.
    put(&s, &greeting("After."));
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "{err:?}");
    assert_eq!(greeting_now(s.port), "After.");
    assert!(d.still_running());
    let log = d.log_text();
    assert!(!log.contains("rejected"), "{log}");
    eprintln!(
        "5 SIGHUPs in {burst:?}; {} reload(s) done",
        s.status().get("generation").cloned().unwrap_or_default()
    );
    // Generous: a loaded machine may oversleep; the point is a burst that
    // lands during reloads in flight.
    assert!(burst < Duration::from_millis(200), "burst took {burst:?}");
}

#[test]
fn listen_addresses_added_and_removed() {
    let s = Setup::new("");
    let d = s.start();
    let (p1, s1) = (s.port, s.sock.clone());
    let (p2, s2) = (free_port(), s.path("second.sock"));
    let listen = |tcp: &[u16], unix: &[&Path]| {
        let tcp: Vec<String> = tcp.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let unix: Vec<String> = unix.iter().map(|p| format!("{p:?}")).collect();
        put_raw(
            &s,
            &format!(
                "[listen]\ntcp = [{}]\nunix = [{}]\n\n[daemon]\npid_file = {:?}\n",
                tcp.join(", "),
                unix.join(", "),
                s.pid_file
            ),
        );
    };
    let refused = |p: u16| {
        TcpStream::connect(("127.0.0.1", p))
            .err()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    };

    listen(&[p2], &[&s2]);
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "{err:?}");
    try_session_tcp(p2, "help").expect("new TCP port answers");
    try_session_unix(&s2, "help").expect("new Unix socket answers");
    assert!(refused(p1), "removed TCP port still answers");
    assert!(
        !exists(&s1),
        "removed socket file {} still there",
        s1.display()
    );
    assert_eq!(
        s.status().get("listeners").cloned().unwrap_or_default(),
        format!("tcp 127.0.0.1:{p2}, unix {}", s2.display())
    );

    listen(&[p1, p2], &[]);
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "{err:?}");
    try_session_tcp(p1, "help").expect("re-added port answers");
    try_session_tcp(p2, "help").expect("kept port answers");
    assert!(
        !exists(&s2),
        "removed socket file {} still there",
        s2.display()
    );

    // A reload that cannot bind its second new socket is rejected whole:
    // the first new socket file does not linger, and the old set serves.
    let (s3, bad) = (s.path("third.sock"), s.path("not-a-dir/x.sock"));
    std::fs::write(s.path("not-a-dir"), "").expect("file");
    listen(&[p1, p2], &[&s3, &bad]);
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(1), "{err:?}");
    assert!(err.contains("reload rejected"), "{err:?}");
    assert!(!exists(&s3), "stray socket file from a rejected reload");
    try_session_tcp(p1, "help").expect("old set still serves");
    try_session_tcp(p2, "help").expect("old set still serves");
    assert_eq!(s.status().get("generation").map(String::as_str), Some("2"));
    drop(d);
}

/// Copies the binary under test to `dst` with `suffix` appended (trailing
/// bytes after an ELF image do not change what runs, but make the file
/// recognisably different).
fn copy_binary(dst: &Path, suffix: &[u8]) {
    let mut bytes = std::fs::read(BIN).expect("read binary");
    bytes.extend_from_slice(suffix);
    let tmp = dst.with_extension("tmp");
    std::fs::write(&tmp, &bytes).expect("write binary");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, dst).expect("rename binary");
}

fn ends_with_file(path: &str, suffix: &[u8]) -> bool {
    let mut f = std::fs::File::open(path).expect("open");
    let mut tail = vec![0u8; suffix.len()];
    f.seek(SeekFrom::End(-(suffix.len() as i64))).expect("seek");
    f.read_exact(&mut tail).expect("read");
    tail == suffix
}

#[test]
fn replaced_binary_runs_after_a_reload() {
    let s = Setup::new(&greeting("Old binary."));
    let exe = s.path("hostinfod");
    copy_binary(&exe, b"");
    let mut d = s.daemon().exe(&exe).start();
    let pid = d.pid();
    let (link0, ino0) = exe_of(pid);
    assert_eq!(link0, exe);

    // A package upgrade: a new file renamed over the old path.
    let marker = b"\0hostinfod upgrade marker\0";
    copy_binary(&exe, marker);
    let (link, _) = exe_of(pid);
    assert!(
        link.to_string_lossy().ends_with(" (deleted)"),
        "old image still mapped: {link:?}"
    );
    put(&s, &greeting("New binary."));
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "{err:?}");
    assert!(d.still_running(), "same pid");
    let (link1, ino1) = exe_of(pid);
    assert_eq!(link1, exe, "runs the file now at the path");
    assert_ne!(ino1, ino0, "a different file");
    assert_eq!(ino1, std::fs::metadata(&exe).expect("exe").ino());
    assert!(ends_with_file(&format!("/proc/{pid}/exe"), marker));
    assert_eq!(greeting_now(s.port), "New binary.");
}

#[test]
fn failed_exec_keeps_the_old_image_serving() {
    let s = Setup::new(&greeting("Still here."));
    let exe = s.path("hostinfod");
    copy_binary(&exe, b"");
    let mut d = s.daemon().exe(&exe).start();
    std::fs::remove_file(&exe).expect("delete the binary");
    // The new config adds a Unix socket, bound before the exec is tried.
    let extra = s.path("extra.sock");
    put_raw(
        &s,
        &format!(
            "[listen]\ntcp = [\"127.0.0.1:{}\"]\nunix = [{:?}, {extra:?}]\n\n[daemon]\npid_file = {:?}\n{}",
            s.port,
            s.sock,
            s.pid_file,
            greeting("Never served.")
        ),
    );
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(1), "{err:?}");
    assert!(
        err.contains("reload rejected") && err.contains(&format!("cannot run {}", exe.display())),
        "{err:?}"
    );
    assert!(d.still_running());
    assert_eq!(greeting_now(s.port), "Still here.");
    try_session_unix(&s.sock, "help").expect("unix listener intact");
    assert!(exists(&s.sock));
    assert!(
        !exists(&extra),
        "socket file of the abandoned reload removed"
    );
    // Everything was put back: once the binary is there again, reload works.
    copy_binary(&exe, b"");
    put(&s, &greeting("Back."));
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "{err:?}");
    assert_eq!(greeting_now(s.port), "Back.");
    try_session_unix(&s.sock, "help").expect("unix listener after");
    assert!(d.still_running());
}

#[test]
fn control_reload_exit_codes() {
    let s = Setup::new(&greeting("One."));
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(1), "no daemon: {err:?}");
    assert!(err.contains("not running"), "{err:?}");

    let mut d = s.start();
    put(&s, &greeting("Two."));
    let (code, out, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "{out:?} {err:?}");
    assert_eq!(greeting_now(s.port), "Two.");

    // Invalid locally: 78, FILE:LINE:COL, and the daemon is not signalled.
    put_raw(&s, &format!("{}[protocol\n", s.base()));
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(78), "{err:?}");
    assert!(
        err.starts_with(&format!("{}:", s.config.display())),
        "{err:?}"
    );
    assert_eq!(s.status().get("reload_seq").map(String::as_str), Some("1"));

    // Valid here, refused by the daemon: a new address it cannot bind.
    let holder = TcpListener::bind("127.0.0.1:0").expect("occupy a port");
    let q = holder.local_addr().expect("addr").port();
    put_raw(
        &s,
        &format!(
            "[listen]\ntcp = [\"127.0.0.1:{}\", \"127.0.0.1:{q}\"]\nunix = [{:?}]\n\n[daemon]\npid_file = {:?}\n{}",
            s.port,
            s.sock,
            s.pid_file,
            greeting("Three.")
        ),
    );
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(1), "{err:?}");
    assert!(
        err.contains("reload rejected")
            && err.contains(&format!("cannot listen on tcp 127.0.0.1:{q}")),
        "the daemon's reason: {err:?}"
    );
    assert_eq!(greeting_now(s.port), "Two.");
    let (code, out, _) = ctl(&s, "status");
    assert_eq!(code, Some(0));
    assert!(
        out.contains("generation=1\n")
            && out.contains("last_reload_result=rejected\n")
            && out.contains(&format!("127.0.0.1:{q}")),
        "{out:?}"
    );
    assert!(d.still_running());

    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(1), "stopped daemon: {err:?}");
    assert!(err.contains("not running"), "{err:?}");
}

/// CLOCK_MONOTONIC in microseconds, read by the test itself: the bounds the
/// daemon's MONOTONIC_USEC is checked against must not come from the
/// daemon's own `hostinfod::children::monotonic_us`, or a wrong clock (or
/// its 0 on error) there would agree with itself.
fn monotonic_us() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000
}

/// Receives datagrams until one satisfies `want` (bounded, 10 s); returns
/// all of them, the matching one last.
fn recv_until(sock: &UnixDatagram, want: impl Fn(&str) -> bool) -> Vec<String> {
    let got = recv_datagrams(sock, Duration::from_secs(10), |g| {
        g.last().is_some_and(|m| want(m))
    });
    assert!(
        got.last().is_some_and(|m| want(m)),
        "no matching datagram within 10 s; got {got:?}"
    );
    got
}

#[test]
fn sd_notify_reloading_then_ready() {
    let s = Setup::new("");
    let path = s.path("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    let mut d = s.daemon().env("NOTIFY_SOCKET", &path).start();
    recv_until(&sock, |m| m.lines().any(|l| l == "READY=1"));

    let before = monotonic_us();
    put(&s, &greeting("Notified."));
    d.signal(Signal::SIGHUP);
    let msgs = recv_until(&sock, |m| m.lines().any(|l| l == "READY=1"));
    let after = monotonic_us();
    let reloading = msgs
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 before READY=1: {msgs:?}"));
    assert!(reloading < msgs.len() - 1, "RELOADING=1 first: {msgs:?}");
    let usec: u64 = msgs[reloading]
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("MONOTONIC_USEC= beside RELOADING=1: {msgs:?}"))
        .parse()
        .expect("MONOTONIC_USEC is a number");
    assert!(
        (before..=after).contains(&usec),
        "MONOTONIC_USEC={usec} not within [{before}, {after}]"
    );
    assert_eq!(greeting_now(s.port), "Notified.");

    // A rejected reload: READY=1 again, with a STATUS= that says why.
    put(&s, "bogus_key = 1\n");
    d.signal(Signal::SIGHUP);
    let msgs = recv_until(&sock, |m| m.lines().any(|l| l == "READY=1"));
    let last = msgs.last().cloned().unwrap_or_default();
    assert!(
        last.contains("STATUS=reload rejected") && last.contains("bogus_key"),
        "{msgs:?}"
    );
    assert!(
        !msgs.iter().any(|m| m.contains("RELOADING=1")),
        "an invalid config is refused before any RELOADING=1: {msgs:?}"
    );

    d.signal(Signal::SIGTERM);
    recv_until(&sock, |m| m.lines().any(|l| l == "STOPPING=1"));
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn control_reload_times_out_and_the_sighup_is_kept() {
    let s = Setup::new(&greeting("Before."));
    let mut d = s.start();
    put(&s, &greeting("After."));
    // A daemon that cannot answer (stopped): -s reload gives up after 10 s.
    d.signal(Signal::SIGSTOP);
    let t0 = Instant::now();
    let (code, _, err) = ctl(&s, "reload");
    let waited = t0.elapsed();
    d.signal(Signal::SIGCONT);
    assert_eq!(code, Some(1), "{err:?}");
    assert!(err.contains("no answer") && err.contains("10 s"), "{err:?}");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(20)).contains(&waited),
        "{waited:?}"
    );
    // The SIGHUP stayed pending and is acted on once the daemon runs again.
    wait_greeting(s.port, "After.");
    assert!(d.still_running());
}

#[test]
fn sigterm_right_after_sighup_stops_cleanly() {
    for round in 0..3 {
        let s = Setup::new("");
        let mut d = s.start();
        put(&s, &greeting("Never mind."));
        d.signal(Signal::SIGHUP);
        if round > 0 {
            std::thread::sleep(Duration::from_millis(2 * round));
        }
        d.signal(Signal::SIGTERM);
        // Whether it lands before, during or after the exec, the SIGTERM is
        // a clean stop (exit 0), never the default action of a signal.
        assert_eq!(
            d.wait_exit(Duration::from_secs(10)),
            Some(0),
            "round {round}: {}",
            d.log_text()
        );
        assert!(!exists(&s.pid_file) && !exists(&s.sock), "round {round}");
    }
}

#[test]
fn daemon_started_with_a_relative_config_path_reloads() {
    // `cd DIR && hostinfod -c hostinfod.toml`: the daemon chdirs to /, so
    // the relative path must have been resolved at start for every reload
    // (and the re-executed image) to find the same file.
    let s = Setup::new(&greeting("Relative one."));
    let rel = Path::new(s.config.file_name().expect("name")).to_path_buf();
    let l = s
        .daemon()
        .current_dir(s.dir.path())
        .config_arg(&rel)
        .launch();
    let d = l.launched();
    for (i, g) in ["Relative two.", "Relative three."].iter().enumerate() {
        put(&s, &greeting(g));
        let (code, out, err) = ctl(&s, "reload");
        assert_eq!(code, Some(0), "reload {i}: {out:?} {err:?}");
        assert_eq!(greeting_now(s.port), *g);
        assert!(d.alive(), "reload {i} killed it");
    }
}

#[test]
fn pidfile_moves_when_a_reload_changes_its_path() {
    let s = Setup::new("");
    let mut d = s.start();
    let pid = d.pid();
    let moved = s.path("moved/h2.pid");
    put_raw(
        &s,
        &format!(
            "[listen]\ntcp = [\"127.0.0.1:{}\"]\nunix = [{:?}]\n\n[daemon]\npid_file = {moved:?}\n",
            s.port, s.sock
        ),
    );
    d.signal(Signal::SIGHUP);
    // The new image logs its reload before it publishes it: wait for the
    // status file, at its new place, to say it serves.
    let new_status = moved.with_extension("status");
    assert!(
        eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&new_status)
                .unwrap_or_default()
                .contains("generation=1\n")
        }),
        "no status file of generation 1 at {}: {}",
        new_status.display(),
        d.log_text()
    );
    assert!(
        d.log_text().contains("reloaded (generation 1)"),
        "{}",
        d.log_text()
    );
    assert_eq!(
        std::fs::read_to_string(&moved).unwrap_or_default(),
        format!("{pid}\n"),
        "pidfile at the new path"
    );
    assert!(!exists(&s.pid_file), "old pidfile left behind");
    assert!(
        !exists(&s.pid_file.with_extension("status")),
        "old status file left behind"
    );
    // The control commands, reading the new config, find the daemon; a
    // second instance is refused on the new path.
    let (code, out, err) = ctl(&s, "status");
    assert_eq!(code, Some(0), "{out:?} {err:?}");
    assert!(out.contains(&format!("pid={pid}\n")), "{out:?}");
    let (code, _, err) = s.run_bounded(&["-f"]);
    assert_eq!(code, Some(1), "{err:?}");
    assert!(
        err.contains(&format!("already running (pid {pid})")),
        "{err:?}"
    );
    let (code, _, err) = ctl(&s, "stop");
    assert_eq!(code, Some(0), "{err:?}");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!exists(&moved) && !exists(&moved.with_extension("status")));
}

#[test]
fn pidfile_set_to_none_by_a_reload_is_removed_and_released() {
    let s = Setup::new("");
    let mut d = s.start();
    let pid = d.pid();
    let old_status = s.pid_file.with_extension("status");
    // The harness's readiness is the first TCP accept, which the kernel
    // gives as soon as the listener is bound, before the status file is
    // published (start-up prepares the session template in between).
    assert!(eventually(Duration::from_secs(5), || exists(&s.pid_file)
        && exists(&old_status)));
    put_raw(
        &s,
        &format!(
            "[listen]\ntcp = [\"127.0.0.1:{}\"]\nunix = [{:?}]\n\n[daemon]\npid_file = \"\"\n{}",
            s.port,
            s.sock,
            greeting("No pidfile.")
        ),
    );
    d.signal(Signal::SIGHUP);
    wait_greeting(s.port, "No pidfile.");
    assert!(d.still_running());
    // No pidfile to read the pid from any more: the session a new client
    // gets is forked by that same process, so it is what serves.
    let mut c = d.unix();
    assert_eq!(c.greeting(), "No pidfile.\nCommand? ");
    single_child(pid);
    drop(c);
    assert!(
        eventually(Duration::from_secs(5), || !exists(&s.pid_file)),
        "old pidfile left behind"
    );
    assert!(!exists(&old_status), "old status file left behind");
    // The lock went with the pidfile: another daemon may take that path now.
    let other = Setup::new("");
    put_raw(
        &other,
        &format!(
            "[listen]\ntcp = [\"127.0.0.1:{}\"]\nunix = []\n\n[daemon]\npid_file = {:?}\n",
            other.port, s.pid_file
        ),
    );
    let second = other.start();
    assert_eq!(
        std::fs::read_to_string(&s.pid_file).unwrap_or_default(),
        format!("{}\n", second.pid())
    );
    drop(second);
    try_session_unix(&s.sock, "help").expect("first daemon still serves");
}

#[test]
fn failed_exec_keeps_the_socket_file_of_a_listener_it_would_drop() {
    let extra = "extra.sock";
    let s = Setup::new("");
    let extra = s.path(extra);
    let two = |greet: &str| {
        format!(
            "[listen]\ntcp = [\"127.0.0.1:{}\"]\nunix = [{:?}, {extra:?}]\n\n[daemon]\npid_file = {:?}\n{}",
            s.port,
            s.sock,
            s.pid_file,
            greeting(greet)
        )
    };
    put_raw(&s, &two("Two sockets."));
    let exe = s.path("hostinfod");
    copy_binary(&exe, b"");
    let mut d = s.daemon().exe(&exe).start();
    try_session_unix(&extra, "help").expect("extra socket serves");
    std::fs::remove_file(&exe).expect("delete the binary");
    // The new configuration drops the extra socket; the exec then fails.
    put(&s, &greeting("One socket."));
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(1), "{err:?}");
    assert!(err.contains("cannot run"), "{err:?}");
    assert!(d.still_running());
    assert!(exists(&extra), "the old image still serves on it");
    try_session_unix(&extra, "help").expect("extra socket still serves");
    // With the binary back, the reload goes through and the file goes.
    copy_binary(&exe, b"");
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(0), "{err:?}");
    assert_eq!(greeting_now(s.port), "One socket.");
    assert!(
        eventually(Duration::from_secs(5), || !exists(&extra)),
        "dropped socket file removed by the new image"
    );
    try_session_unix(&s.sock, "help").expect("kept socket serves");
}

#[test]
fn a_binary_replaced_by_another_program_is_not_executed() {
    let s = Setup::new(&greeting("The real one."));
    let exe = s.path("hostinfod");
    copy_binary(&exe, b"");
    let mut d = s.daemon().exe(&exe).start();
    let pid = d.pid();
    // Something that is not hostinfod, and exits 0, takes the path.
    let tmp = s.path("true.tmp");
    std::fs::copy("/bin/true", &tmp).expect("copy /bin/true");
    std::fs::rename(&tmp, &exe).expect("replace the binary");
    put(&s, &greeting("Never served."));
    let (code, _, err) = ctl(&s, "reload");
    assert_eq!(code, Some(1), "{err:?}");
    assert!(
        err.contains("reload rejected") && err.contains("failed its check"),
        "{err:?}"
    );
    assert!(d.still_running());
    assert_eq!(d.pid(), pid);
    assert_eq!(greeting_now(s.port), "The real one.");
    let st = s.status();
    assert_eq!(st.get("generation").map(String::as_str), Some("0"));
    assert_eq!(
        st.get("last_reload_result").map(String::as_str),
        Some("rejected")
    );
}

#[test]
fn a_vanished_configuration_file_rejects_the_reload() {
    let s = Setup::new(&greeting("From the file."));
    let mut d = s.start();
    std::fs::remove_file(&s.config).expect("remove config");
    d.signal(Signal::SIGHUP);
    assert!(
        d.wait_log("reload rejected", Duration::from_secs(10)),
        "{}",
        d.log_text()
    );
    assert!(
        d.log_text().contains("cannot read configuration"),
        "{}",
        d.log_text()
    );
    assert!(d.still_running());
    assert_eq!(greeting_now(s.port), "From the file.");
}
