//! Hostile clients against the real binary (issue 14), the session's side:
//! tricklers, clients that send and never read, busy shedding, Telnet
//! answered (by a real telnet client too), the last line at EOF, and how
//! each session ended as the parent reads it from the exit status.
//! Loopback only; every loop is bounded in count and in time. Run with
//! `--no-capture` to see the figures each test measures.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Generous slack for timing assertions on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(1500);

fn live_children(d: &Daemon) -> usize {
    children_of(d.pid()).len()
}

/// The EXIT records logged so far.
fn exits(d: &Daemon) -> Vec<String> {
    d.log_text()
        .lines()
        .filter(|l| l.contains("EXIT: pid="))
        .map(str::to_string)
        .collect()
}

/// Waits (bounded) for the EXIT record after the first `before` and returns
/// its `status=N` or `signal=X` word.
fn next_exit(d: &Daemon, before: usize) -> String {
    let mut all = Vec::new();
    let ok = eventually(Duration::from_secs(10), || {
        all = exits(d);
        all.len() > before
    });
    assert!(ok, "no new EXIT record: {}", d.log_text());
    all[before]
        .split_whitespace()
        .find(|w| w.starts_with("status=") || w.starts_with("signal="))
        .unwrap_or("")
        .to_string()
}

// ---- only a command ends a silence ----

/// Sends `unit` every 250 ms from the greeting on, reading whatever comes
/// back, until the server closes; returns the seconds that took and all
/// that was received. Bounded at 15 s.
fn trickle(port: u16, unit: &'static [u8]) -> (f64, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .expect("timeout");
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut writing = true;
    while t0.elapsed() < Duration::from_secs(15) {
        // From the greeting on; a write to a closed connection fails.
        if writing && !got.is_empty() {
            writing = s.write_all(unit).is_ok();
        }
        match s.read(&mut chunk) {
            Ok(0) => return (t0.elapsed().as_secs_f64(), got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (t0.elapsed().as_secs_f64(), got),
        }
    }
    panic!("still open after 15 s: {:?}", String::from_utf8_lossy(&got));
}

#[test]
fn tricklers_are_closed_at_the_idle_timeout() {
    let s = Setup::new("[limits]\nidle_timeout_secs = 2\n");
    let d = s.start();
    // A byte of a line that never ends, a blank line, a Telnet NOP, a
    // Telnet WONT (which is not answered): none is a command.
    let units: [&'static [u8]; 4] = [b"x", b"\r\n", b"\xff\xf1", b"\xff\xfc\x01"];
    let port = d.port;
    let runs: Vec<_> = units
        .iter()
        .map(|&u| std::thread::spawn(move || (u, trickle(port, u))))
        .collect();
    for r in runs {
        let (unit, (secs, got)) = r.join().expect("trickler thread");
        println!("trickler {unit:?}: closed after {secs:.2} s");
        assert!(
            got.ends_with(b"Timeout, goodbye.\r\n"),
            "{unit:?}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            (1.9..2.0 + SLACK.as_secs_f64()).contains(&secs),
            "{unit:?}: closed after {secs:.2} s, idle_timeout_secs = 2"
        );
    }
    // A command does move the deadline: `date` at 1.5 s, closed at 3.5 s.
    let mut c = d.tcp();
    let t0 = Instant::now();
    c.greeting();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(c.cmd("date").trim_end().len(), 24);
    assert_eq!(c.read_to_end(), b"Timeout, goodbye.\r\n");
    let secs = t0.elapsed().as_secs_f64();
    println!("a command at 1.5 s: closed after {secs:.2} s");
    assert!(
        (3.4..3.5 + SLACK.as_secs_f64()).contains(&secs),
        "{secs:.2}"
    );
}

// ---- bounded replies ----

#[test]
fn a_client_that_sends_and_never_reads_holds_a_bounded_child() {
    let s = Setup::new("");
    // 64 KiB, the most `motd` sends of one file.
    let motd = s.path("motd");
    std::fs::write(&motd, format!("{}\n", "m".repeat(63)).repeat(1024)).expect("motd");
    s.write_config(&format!(
        "[limits]\nidle_timeout_secs = 60\n\n[commands]\nmotd_files = [{motd:?}]\n"
    ));
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    let child = single_child(d.pid());
    // One motd first, read, so the baseline has the reply path's pages.
    let one = c.cmd("motd");
    assert_eq!(one.len(), 65 * 1024, "CRLF line ends");
    let before = rss_kb(child);

    // Then `motd` as fast as the socket takes it, never reading: 64 MiB of
    // commands at most, until writes have blocked for a second.
    let sent = send_until_blocked(
        &mut c,
        &b"motd\n".repeat(200),
        64 << 20,
        Duration::from_secs(1),
    );
    // What the child does with all that, it has done within a second.
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kb(child);
    println!(
        "sent {} motd commands ({sent} bytes) unread; child RSS {before} kB -> {after} kB (+{} kB)",
        sent / 5,
        after.saturating_sub(before)
    );
    assert!(running(child), "the child is still serving");
    assert!(sent >= 100_000, "the client could only send {sent} bytes");
    assert!(
        after < before + 1024,
        "child RSS grew from {before} kB to {after} kB"
    );

    // It was only waiting: read, and the replies come, in order and whole.
    c.s.set_nonblocking(false).expect("blocking");
    let mut got = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    let want = 10 * (65 * 1024 + PROMPT.len());
    while got < want {
        let n = c.s.read(&mut chunk).expect("read replies");
        assert!(n > 0, "EOF after {got} bytes");
        assert!(chunk[..n].iter().all(|b| b"m\r\nCommand? ".contains(b)));
        got += n;
    }
}

#[test]
fn pipelined_motds_are_all_answered_to_a_client_that_reads() {
    let s = Setup::new("");
    let motd = s.path("motd");
    std::fs::write(&motd, format!("{}\n", "m".repeat(63)).repeat(1024)).expect("motd");
    s.write_config(&format!("[commands]\nmotd_files = [{motd:?}]\n"));
    let d = s.start();
    let mut c = d.unix();
    c.greeting();
    c.send(&b"motd\n".repeat(100));
    c.send(b"date\nquit\n");
    let out = c.read_to_end();
    let text = String::from_utf8_lossy(&out);
    let parts: Vec<&str> = text.split(PROMPT).collect();
    assert_eq!(parts.len(), 102, "100 motds, the date, Goodbye");
    assert!(parts[..100].iter().all(|p| p.len() == 64 * 1024));
    assert_eq!(parts[100].trim_end().len(), 24);
    assert_eq!(parts[101], "Goodbye.\n");
}

// ---- the last line at EOF ----

#[test]
fn the_last_line_at_eof_is_answered() {
    let s = Setup::new("");
    let d = s.start();
    // As `printf date | nc -N`: the line, no line end, then EOF.
    let mut t = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    t.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    t.write_all(b"who\r\ndate").expect("write");
    t.shutdown(Shutdown::Write).expect("shutdown");
    let mut out = String::new();
    t.read_to_string(&mut out).expect("read");
    let parts: Vec<&str> = out.split(PROMPT).collect();
    assert_eq!(parts.len(), 4, "{out:?}");
    assert_eq!(parts[2].trim_end().len(), 24, "the date: {out:?}");
    assert_eq!(parts[3], "", "{out:?}");

    let mut u = UnixStream::connect(&d.sock).expect("connect");
    u.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    u.write_all(b"  QUIT ").expect("write");
    u.shutdown(Shutdown::Write).expect("shutdown");
    let mut out = String::new();
    u.read_to_string(&mut out).expect("read");
    assert!(out.ends_with("Command? Goodbye.\n"), "{out:?}");

    // With the real nc(1) of Debian (netcat-openbsd).
    let nc = Command::new("sh")
        .arg("-c")
        .arg(format!("printf date | nc -N 127.0.0.1 {}", d.port))
        .output()
        .expect("sh");
    let out = String::from_utf8_lossy(&nc.stdout);
    assert!(nc.status.success(), "nc: {nc:?}");
    let parts: Vec<&str> = out.split(PROMPT).collect();
    assert_eq!(parts.len(), 3, "{out:?}");
    assert_eq!(parts[1].trim_end().len(), 24, "the date: {out:?}");
    println!("printf date | nc -N: {:?}", parts[1].trim_end());
}

// ---- Telnet ----

#[test]
fn telnet_negotiation_is_answered_on_tcp_and_not_on_unix() {
    let s = Setup::new("");
    let d = s.start();
    // DO ECHO, DO SGA, WILL TTYPE, DO TIMING-MARK, WONT 5, DONT 7: refused,
    // refused, refused, agreed (RFC 860), and nothing to the two refusals.
    let asks: &[u8] = b"\xff\xfd\x01\xff\xfd\x03\xff\xfb\x18\xff\xfd\x06\xff\xfc\x05\xff\xfe\x07";
    let answers: &[u8] = b"\xff\xfc\x01\xff\xfc\x03\xff\xfe\x18\xff\xfb\x06";

    let mut c = d.tcp();
    c.greeting();
    c.send(asks);
    c.send(b"date\r\n");
    let r = c.read_until(PROMPT.as_bytes());
    assert!(r.starts_with(answers), "{r:?}");
    assert_eq!(r.len(), answers.len() + 26 + PROMPT.len(), "{r:?}");
    // The client's confirmations (WONT, DONT) are not answered: no loop.
    c.send(b"\xff\xfc\x01\xff\xfc\x03\xff\xfe\x18help\r\n");
    assert_eq!(
        c.read_until(PROMPT.as_bytes()),
        b"Commands: quit date who cookie motd help\r\nCommand? "
    );
    // Asked again, answered again.
    c.send(b"\xff\xfd\x06");
    c.send(b"quit\r\n");
    assert_eq!(c.read_to_end(), b"\xff\xfb\x06Goodbye.\r\n");

    // A Unix-socket client is sent no Telnet, whatever it sends.
    let mut u = d.unix();
    u.greeting();
    u.send(asks);
    u.send(b"date\nquit\n");
    let out = u.read_to_end();
    assert!(!out.contains(&0xff), "{out:?}");
    assert!(out.ends_with(b"Goodbye.\n"));

    // Nor a TCP client that does not negotiate.
    let mut t = d.tcp();
    let mut all = t.greeting().into_bytes();
    t.send(b"date\r\nhelp\r\nnope\r\n\r\nquit\r\n");
    all.extend(t.read_to_end());
    assert!(!all.contains(&0xff), "{all:?}");
}

/// A tmux server of our own (its own socket), killed by name when dropped.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("tmux (install the tmux package)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    fn wait_screen(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut screen = String::new();
        let ok = eventually(Duration::from_secs(10), || {
            screen = self.screen();
            f(&screen)
        });
        assert!(ok, "{what}; the screen:\n{screen}");
        screen
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn a_real_telnet_client_gets_date_after_ctrl_c() {
    let s = Setup::new("");
    let d = s.start();
    let telnet = Command::new("sh")
        .args(["-c", "command -v telnet"])
        .output()
        .expect("sh");
    assert!(
        telnet.status.success(),
        "telnet is not installed (Debian: apt-get install telnet)"
    );
    let tmux = Tmux(format!("hostinfod-test-{}", std::process::id()));
    let st = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "120",
        "-y",
        "30",
        &format!("telnet 127.0.0.1 {}", d.port),
    ]);
    assert!(st.status.success(), "tmux new-session: {st:?}");
    // (capture-pane drops the prompt's trailing blank)
    tmux.wait_screen("no greeting", |s| s.contains("Command?"));
    // Ctrl-C: telnet sends IAC IP, IAC DO TIMING-MARK and shows nothing
    // until the answer comes.
    tmux.run(&["send-keys", "-t", "t", "C-c"]);
    let t0 = Instant::now();
    tmux.run(&["send-keys", "-t", "t", "date", "Enter"]);
    let year = chrono_year();
    let screen = tmux.wait_screen("no date after Ctrl-C", |s| {
        s.lines()
            .any(|l| l.trim_end().len() == 24 && l.trim_end().ends_with(&year))
    });
    println!(
        "telnet: date visible {:.2} s after Ctrl-C:\n{}",
        t0.elapsed().as_secs_f64(),
        screen.trim_end()
    );
    // And the session goes on.
    tmux.run(&["send-keys", "-t", "t", "help", "Enter"]);
    tmux.wait_screen("no help reply", |s| s.contains("Commands: quit date"));
    // In character mode telnet asks the server to echo (DO ECHO) and to
    // suppress go-ahead (DO SGA); refused, it echoes what the user types
    // itself, so the word shows before Enter is pressed.
    tmux.run(&["send-keys", "-t", "t", "C-]"]);
    tmux.wait_screen("no telnet> prompt", |s| s.contains("telnet>"));
    tmux.run(&["send-keys", "-t", "t", "mode character", "Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.run(&["send-keys", "-t", "t", "nope"]);
    tmux.wait_screen("typing not echoed in character mode", |s| {
        s.lines()
            .any(|l| l.trim_end() == "nope" || l.ends_with("? nope"))
    });
    tmux.run(&["send-keys", "-t", "t", "Enter"]);
    tmux.wait_screen("no reply in character mode", |s| {
        s.contains("Unknown command \"nope\".")
    });
}

/// This year, as the date reply ends (the local time, as the daemon's).
fn chrono_year() -> String {
    let out = Command::new("date").arg("+%Y").output().expect("date(1)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---- busy shedding ----

#[test]
fn when_full_idle_sessions_are_shed_for_new_clients() {
    let s = Setup::new("[limits]\nmax_children = 4\nbusy_idle_secs = 2\nidle_timeout_secs = 300\n");
    let d = s.start();

    // Not full: idle sessions are left alone past busy_idle_secs.
    let mut idle: Vec<_> = (0..3).map(|_| d.tcp()).collect();
    for c in &mut idle {
        c.greeting();
    }
    for c in &mut idle {
        assert!(
            c.silent_for(Duration::from_millis(1000)),
            "shed while not full"
        );
    }
    // Full: sessions idle for 3 s now are shed at once, until the server is
    // no longer full (shedding one is enough; which ones go is a race); the
    // fourth, fresh, is kept.
    let mut fourth = d.tcp();
    fourth.greeting();
    let t0 = Instant::now();
    assert!(
        eventually(SLACK, || live_children(&d) < 4),
        "nothing shed while full"
    );
    let shed_after = t0.elapsed().as_secs_f64();
    let mut shed = 0;
    for c in &mut idle {
        if !c.silent_for(Duration::from_millis(200)) {
            assert_eq!(c.read_to_end(), b"Timeout, goodbye.\r\n");
            shed += 1;
        }
    }
    println!("full: {shed} of 3 idle sessions shed {shed_after:.2} s after the 4th came");
    assert!(shed >= 1);
    drop(idle);
    assert!(eventually(Duration::from_secs(5), || live_children(&d) == 1));
    assert!(
        fourth.silent_for(Duration::from_millis(2500)),
        "not full: kept"
    );
    // The fourth sends a command every 500 ms from now on (the first one
    // answered before the others come: idle for 5 s until then, it would
    // rightly be shed when the server fills).
    let (first, answered_first) = std::sync::mpsc::channel();
    let active = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut answered = 0;
        while t0.elapsed() < Duration::from_secs(7) {
            assert_eq!(fourth.cmd("date").trim_end().len(), 24);
            answered += 1;
            let _ = first.send(());
            std::thread::sleep(Duration::from_millis(500));
        }
        fourth.send(b"quit\r\n");
        assert_eq!(fourth.read_to_end(), b"Goodbye.\r\n");
        answered
    });
    answered_first
        .recv_timeout(IO_TIMEOUT)
        .expect("the active client's first reply");

    // Three idle clients fill it again; a fifth waits in the backlog and
    // is greeted once they have been idle busy_idle_secs.
    let mut idle: Vec<_> = (0..3).map(|_| d.tcp()).collect();
    for c in &mut idle {
        c.greeting();
    }
    assert!(
        eventually(Duration::from_secs(5), || live_children(&d) == 4),
        "{}",
        d.log_text()
    );
    let t0 = Instant::now();
    let mut fifth = d.tcp();
    fifth.greeting();
    let waited = t0.elapsed();
    println!(
        "5th client with 4 sessions live (3 idle, 1 active): greeted after {:.2} s",
        waited.as_secs_f64()
    );
    assert!(
        waited < Duration::from_secs(2 + 2),
        "waited {waited:?}, busy_idle_secs = 2"
    );
    // At least one idle session made room; the active one never.
    let mut shed_now = 0;
    for c in &mut idle {
        if !c.silent_for(Duration::from_millis(100)) {
            assert_eq!(c.read_to_end(), b"Timeout, goodbye.\r\n");
            shed_now += 1;
        }
    }
    assert!(shed_now >= 1);
    assert_eq!(fifth.cmd("date").trim_end().len(), 24);
    // The active session was never shed.
    let answered = active.join().expect("active client");
    assert!(answered >= 10, "{answered}");
    // Shed sessions end with status 7 (idle while full).
    let sheds = exits(&d)
        .iter()
        .filter(|l| l.contains(" status=7 "))
        .count();
    assert_eq!(sheds, shed + shed_now, "{}", d.log_text());
}

#[test]
fn no_busy_shedding_with_busy_idle_secs_zero() {
    let s = Setup::new("[limits]\nmax_children = 2\nbusy_idle_secs = 0\n");
    let d = s.start();
    let mut a = d.tcp();
    let mut b = d.tcp();
    a.greeting();
    b.greeting();
    assert!(a.silent_for(Duration::from_millis(1500)));
    assert!(b.silent_for(Duration::from_millis(10)));
}

// ---- how sessions end ----

#[test]
fn each_end_is_told_by_the_exit_status() {
    let s = Setup::new(
        "[limits]\nidle_timeout_secs = 1\nsession_timeout_secs = 3\nmax_line_bytes = 16\n",
    );
    let d = s.start();
    let mut seen = Vec::new();

    let n = exits(&d).len();
    let mut c = d.tcp();
    c.greeting();
    c.send(b"quit\r\n");
    c.read_to_end();
    seen.push(("quit", next_exit(&d, n), "status=0"));

    let n = exits(&d).len();
    let mut c = d.unix();
    c.greeting();
    c.s.shutdown(Shutdown::Write).expect("shutdown");
    c.read_to_end();
    seen.push(("eof", next_exit(&d, n), "status=5"));

    let n = exits(&d).len();
    let mut c = d.tcp();
    c.greeting();
    assert_eq!(c.read_to_end(), b"Timeout, goodbye.\r\n");
    seen.push(("idle", next_exit(&d, n), "status=2"));

    let n = exits(&d).len();
    let mut c = d.tcp();
    c.greeting();
    c.send(&[b'x'; 17]);
    c.read_to_end();
    seen.push(("too long", next_exit(&d, n), "status=3"));

    let n = exits(&d).len();
    let mut c = d.tcp();
    c.greeting();
    // A command every 300 ms: never idle for 1 s, ended at 3 s.
    c.s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while t0.elapsed() < Duration::from_secs(6) {
        let _ = c.s.write_all(b"date\r\n");
        match c.s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    assert!(got.ends_with(b"Timeout, goodbye.\r\n"), "{got:?}");
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        (2.9..3.0 + SLACK.as_secs_f64()).contains(&secs),
        "{secs:.2}"
    );
    seen.push(("session timeout", next_exit(&d, n), "status=6"));

    let n = exits(&d).len();
    let mut c = d.tcp();
    c.greeting();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(c.read_to_end(), b"Server shutting down.\r\n");
    seen.push(("shutdown", next_exit(&d, n), "status=4"));

    for (what, got, want) in &seen {
        println!("{what}: {got}");
        assert_eq!(got, want, "{what}");
    }
}

// ---- slowloris with the default limits ----

/// A non-blocking TCP connection from `src` (any 127.0.0.0/8 address) to
/// 127.0.0.1:`port`, the connect still in progress.
fn connect_from(src: [u8; 4], port: u16) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(src[0], src[1], src[2], src[3], 0),
    )
    .expect("bind the source address");
    match connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, port),
    ) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => panic!("connect from {src:?}: {e}"),
    }
    TcpStream::from(fd)
}

/// True once the server has closed `s` (or it failed); reads and drops
/// whatever it sent.
fn closed(s: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 512];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::NotConnected => return false,
            Err(_) => return true,
        }
    }
}

/// One legitimate session from 127.0.0.9: seconds until the greeting,
/// then `date` and `quit` answered.
fn legit(port: u16) -> f64 {
    let s = connect_from([127, 0, 0, 9], port);
    s.set_nonblocking(false).expect("blocking");
    let t0 = Instant::now();
    let mut c = Client::new(s);
    c.s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    c.greeting();
    let waited = t0.elapsed().as_secs_f64();
    assert_eq!(c.cmd("date").trim_end().len(), 24);
    c.send(b"quit\r\n");
    assert_eq!(c.read_to_end(), b"Goodbye.\r\n");
    waited
}

#[test]
fn slowloris_with_the_default_limits_cannot_lock_clients_out() {
    // The defaults: max_children 256, max_per_source 32, busy_idle_secs 10.
    let s = Setup::new("");
    let d = s.start();
    raise_own_nofile(4096);
    let port = d.port;
    // 8 source addresses x 32 idle connections: every slot taken.
    let sources: Vec<[u8; 4]> = (1..=8).map(|i| [127, 0, 0, i]).collect();
    let mut attackers: Vec<([u8; 4], TcpStream)> = sources
        .iter()
        .flat_map(|&src| (0..32).map(move |_| (src, connect_from(src, port))))
        .collect();
    assert!(
        eventually(Duration::from_secs(20), || live_children(&d) == 256),
        "{} sessions live",
        live_children(&d)
    );

    // Attackers that reconnect as soon as they are closed, for the whole
    // test, in their own thread.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let attack = std::thread::spawn(move || {
        let mut reconnects = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            for (src, sock) in attackers.iter_mut() {
                if closed(sock) {
                    *sock = connect_from(*src, port);
                    reconnects += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        reconnects
    });

    // A legitimate client, once every slot has been taken by an idle one.
    let first = legit(port);
    println!(
        "slowloris (8 sources x 32 idle, reconnecting): first legitimate client greeted after {first:.2} s"
    );
    assert!(
        first < 12.0,
        "greeted after {first:.2} s; busy_idle_secs = 10"
    );

    // Then one every 3 s for a minute, each in its own thread.
    let clients: Vec<_> = (0..20)
        .map(|i| {
            std::thread::sleep(Duration::from_secs(if i == 0 { 0 } else { 3 }));
            std::thread::spawn(move || legit(port))
        })
        .collect();
    let waits: Vec<f64> = clients
        .into_iter()
        .map(|c| c.join().expect("legitimate client"))
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reconnects = attack.join().expect("attackers");
    let worst = waits.iter().cloned().fold(0.0, f64::max);
    let mut sorted = waits.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{} of 20 legitimate sessions served while attackers reconnected {reconnects} times; waits: median {:.2} s, worst {worst:.2} s",
        waits.len(),
        sorted[10]
    );
    assert!(worst < 12.0, "a client waited {worst:.2} s");
    assert!(reconnects > 0, "the attackers were never shed");
}
