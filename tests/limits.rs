//! Hostile input and overload against the real binary (issue 5): the
//! session limits, timeouts, Telnet and garbage input, fd exhaustion, crashed
//! children, many idle sessions and a connection flood. Loopback only; every
//! loop is bounded in count and in time.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Generous slack for timing assertions on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(1500);

fn live_children(d: &Daemon) -> usize {
    children_of(d.pid()).len()
}

// ---- max_children and max_per_source ----

#[test]
fn extra_client_waits_at_max_children_and_is_served_when_a_slot_frees() {
    let s = Setup::new("[limits]\nmax_children = 2\n");
    let d = s.start();
    let mut a = d.tcp();
    a.greeting();
    let mut b = d.unix();
    b.greeting();
    assert!(eventually(Duration::from_secs(5), || live_children(&d) == 2));

    // The third connects (the kernel completes the handshake into the
    // backlog) but is neither refused nor greeted while both slots are taken.
    let mut c = d.tcp();
    assert!(
        c.silent_for(Duration::from_millis(800)),
        "third client was answered at max_children"
    );
    assert_eq!(live_children(&d), 2, "the parent forked past max_children");

    // A slot frees: the waiting client is served, not refused.
    let t0 = Instant::now();
    a.send(b"quit\n");
    assert_eq!(a.read_to_end(), b"Goodbye.\r\n");
    let g = c.greeting();
    assert!(g.starts_with("Welcome to hostinfod"), "{g:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(c.cmd("date").trim_end().len(), 24);
    // The other sessions were not disturbed.
    assert_eq!(b.cmd("help"), "Commands: quit date who cookie motd help\n");
    assert!(!d.log_text().contains("REFUSED"), "{}", d.log_text());
}

#[test]
fn clients_reconnecting_within_max_per_source_are_never_refused() {
    // As many clients as the limit, each starting its next session as soon
    // as the last one said Goodbye: a session whose child has ended but is
    // not yet reaped must not count against its address.
    const CLIENTS: usize = 4;
    let s = Setup::new(&format!("[limits]\nmax_per_source = {CLIENTS}\n"));
    let d = s.start();
    let port = s.port;
    let refused: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                scope.spawn(move || {
                    let mut refused = 0;
                    for _ in 0..150 {
                        let mut c = Client::new(
                            std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"),
                        );
                        c.send(b"quit\n");
                        let got = c.read_to_end();
                        if got.starts_with(b"Server busy") {
                            refused += 1;
                        }
                    }
                    refused
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    assert_eq!(refused, 0, "false refusals: {refused} of {}", CLIENTS * 150);
    assert!(!d.log_text().contains("REFUSED"), "{}", d.log_text());
}

#[test]
fn over_max_per_source_tcp_gets_the_busy_line_without_a_fork() {
    let s = Setup::new("[limits]\nmax_per_source = 2\n");
    let d = s.start();
    let mut a = d.tcp();
    a.greeting();
    let mut b = d.tcp();
    b.greeting();
    assert!(eventually(Duration::from_secs(5), || live_children(&d) == 2));

    let mut c = d.tcp();
    assert_eq!(
        c.read_to_end(),
        b"Server busy: too many sessions from 127.0.0.1.\r\n"
    );
    assert_eq!(live_children(&d), 2, "a refused client must not be forked");

    // The count goes down when the session's child is reaped, so the next
    // client from the same address is served again.
    a.send(b"quit\n");
    a.read_to_end();
    let served = eventually(Duration::from_secs(5), || {
        let mut n = d.tcp();
        let mut first = [0u8; 7];
        n.s.read_exact(&mut first).is_ok() && &first == b"Welcome"
    });
    assert!(served, "not served again after a session ended");
    assert_eq!(b.cmd("date").trim_end().len(), 24);
}

#[test]
fn over_max_per_source_unix_is_counted_per_uid() {
    let s = Setup::new("[limits]\nmax_per_source = 1\n");
    let d = s.start();
    let mut a = d.unix();
    a.greeting();
    let uid = nix::unistd::geteuid().as_raw();
    let mut b = d.unix();
    assert_eq!(
        String::from_utf8_lossy(&b.read_to_end()),
        format!("Server busy: too many sessions from uid {uid}.\n")
    );
    // The uid's sessions do not count against 127.0.0.1.
    let mut t = d.tcp();
    t.greeting();
    assert_eq!(live_children(&d), 2);
    assert_eq!(a.cmd("date").trim_end().len(), 24);
}

// ---- timeouts ----

#[test]
fn idle_timeout_fires_on_time_and_input_resets_it() {
    let s = Setup::new("[limits]\nidle_timeout_secs = 1\n");
    let d = s.start();

    // Silent from the start.
    let mut a = d.tcp();
    let t0 = Instant::now();
    a.greeting();
    assert_eq!(a.read_to_end(), b"Timeout, goodbye.\r\n");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(1) + SLACK,
        "idle timeout after {took:?}"
    );

    // Input restarts the idle clock: a line at 0.6 s moves the timeout to 1.6 s.
    let mut b = d.unix();
    let t0 = Instant::now();
    b.greeting();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(b.cmd("help"), "Commands: quit date who cookie motd help\n");
    let at_input = t0.elapsed();
    assert_eq!(b.read_to_end(), b"Timeout, goodbye.\n");
    let took = t0.elapsed();
    assert!(
        took >= at_input + Duration::from_millis(950),
        "idle timeout at {took:?}, input was at {at_input:?}"
    );
    assert!(took < at_input + Duration::from_secs(1) + SLACK, "{took:?}");
}

#[test]
fn session_timeout_fires_on_time_for_a_busy_client() {
    let s = Setup::new("[limits]\nidle_timeout_secs = 30\nsession_timeout_secs = 2\n");
    let d = s.start();
    let mut c = d.tcp();
    let t0 = Instant::now();
    c.greeting();
    // Never idle: a command every 300 ms, until the session deadline.
    let mut out = Vec::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        if c.s.write_all(b"date\r\n").is_err() {
            break;
        }
        let mut chunk = [0u8; 4096];
        match c.s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
        if out.ends_with(b"Timeout, goodbye.\r\n") {
            break;
        }
    }
    out.extend_from_slice(&c.read_to_end());
    let took = t0.elapsed();
    assert!(out.ends_with(b"Timeout, goodbye.\r\n"), "{out:?}");
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_secs(2) + SLACK,
        "session timeout after {took:?}"
    );
}

#[test]
fn a_client_that_stops_reading_is_bounded_by_the_idle_deadline() {
    // A 16 MB motd is far more than the loopback socket buffers hold, so the
    // child blocks writing to a client that never reads.
    let s = Setup::new("");
    let motd = s.path("big.motd");
    std::fs::write(&motd, "0123456789abcdef".repeat(1 << 20)).expect("motd");
    s.write_config(&format!(
        "[limits]\nidle_timeout_secs = 1\n\n[commands]\nmotd_files = [{motd:?}]\n"
    ));
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    assert!(eventually(Duration::from_secs(5), || live_children(&d) == 1));
    let t0 = Instant::now();
    c.send(b"motd\r\n");
    // We keep the connection open and never read: the child must give up.
    assert!(
        eventually(Duration::from_secs(1) + SLACK * 2, || live_children(&d)
            == 0),
        "child still writing after {:?}",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert!(zombies_of(d.pid()).is_empty());
    // Ended as a timeout (exit status 2 in the parent's EXIT record).
    assert!(
        d.wait_log("status=2", Duration::from_secs(2)),
        "{}",
        d.log_text()
    );
    drop(c);
    assert_eq!(one_shot_tcp(d.port, "date").trim_end().len(), 24);
}

// ---- hostile input ----

#[test]
fn twenty_kilobytes_without_newline_get_the_error_line_and_close() {
    let s = Setup::new("");
    let d = s.start();
    for unix in [false, true] {
        let t0 = Instant::now();
        let rest = if unix {
            let mut c = d.unix();
            c.greeting();
            c.send(&[b'A'; 20_000]);
            c.read_to_end()
        } else {
            let mut c = d.tcp();
            c.greeting();
            c.send(&[b'A'; 20_000]);
            c.read_to_end()
        };
        let eol = if unix { "\n" } else { "\r\n" };
        assert_eq!(
            String::from_utf8_lossy(&rest),
            format!("Error: line too long (max 1024 bytes).{eol}")
        );
        // Closed at once, not after some timeout.
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }
    assert!(eventually(Duration::from_secs(5), || live_children(&d) == 0));
}

/// A deterministic xorshift byte stream.
struct Garbage(u64);

impl Garbage {
    fn byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }
}

#[test]
fn garbage_and_telnet_negotiation_then_date_is_answered() {
    let s = Setup::new("");
    let d = s.start();
    for seed in [0x9e37_79b9_7f4a_7c15u64, 42, 0xdead_beef] {
        let mut g = Garbage(seed);
        let mut c = d.tcp();
        c.greeting();
        let mut sent = Vec::new();
        // 16 kB of random bytes in lines of at most 200 bytes. 0xFF (IAC) is
        // left out of the random part: a random IAC SB would, correctly,
        // swallow everything up to an IAC SE that never comes.
        for _ in 0..80 {
            let len = usize::from(g.byte()) % 200;
            for _ in 0..len {
                let b = g.byte();
                sent.push(if b == 0xff { 0 } else { b });
            }
            sent.extend_from_slice(match g.byte() % 3 {
                0 => b"\n".as_slice(),
                1 => b"\r\n",
                _ => b"\r\0",
            });
        }
        // Telnet: what a real telnet client opens with, a subnegotiation with
        // an escaped IAC inside, a NOP in the middle of a word, WILL/WONT/DO/
        // DONT of unknown options, and an escaped 0xFF as data.
        sent.extend_from_slice(b"\xff\xfd\x03\xff\xfb\x18\xff\xfb\x1f\xff\xfb\x20\xff\xfb\x21");
        sent.extend_from_slice(b"\xff\xfa\x18\x00XTERM\xff\xff\xff\xf0");
        sent.extend_from_slice(b"\xff\xfe\xc8\xff\xfc\x07\xff\xffyes\r\n");
        sent.extend_from_slice(b"da\xff\xf1te\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0\r\n");
        sent.extend_from_slice(b"quit\r\n");
        // Written in uneven pieces so sequences straddle reads.
        for piece in sent.chunks(997) {
            c.send(piece);
        }
        let mut out = c.read_to_end();
        // The Telnet answers, in order, once each, and nothing else of
        // Telnet: WONT to the DO, DONT to each WILL, nothing to the DONT and
        // the WONT (RFC 1143). Removed before the text checks below.
        let answers: &[u8] = b"\xff\xfc\x03\xff\xfe\x18\xff\xfe\x1f\xff\xfe\x20\xff\xfe\x21";
        let at = out
            .windows(answers.len())
            .position(|w| w == answers)
            .unwrap_or_else(|| panic!("seed {seed:#x}: no Telnet answers in {out:?}"));
        out.drain(at..at + answers.len());
        let text = String::from_utf8_lossy(&out);
        // The last two replies: the date, then Goodbye.
        let parts: Vec<&str> = text.split(PROMPT).collect();
        let n = parts.len();
        assert!(n >= 3, "seed {seed:#x}: {text:?}");
        assert_eq!(parts[n - 1], "Goodbye.\r\n", "seed {seed:#x}");
        let date = parts[n - 2];
        assert!(
            date.ends_with("\r\n") && date.trim_end().len() == 24,
            "seed {seed:#x}: date reply {date:?}"
        );
        assert!(
            parts[n - 3].starts_with("Unknown command \""),
            "{:?}",
            parts[n - 3]
        );
        // No other Telnet and no control bytes: no IAC, nothing below 0x20
        // but CR/LF/TAB.
        assert!(
            !out.iter()
                .any(|&b| b == 0xff || (b < 0x20 && !b"\r\n\t".contains(&b)) || b == 0x7f),
            "seed {seed:#x}: control bytes in {text:?}"
        );
    }
}

// ---- fd exhaustion ----

#[test]
fn fd_exhaustion_does_not_spin_and_service_resumes() {
    // A forking parent holds no descriptor per session (it closes the client
    // fd after fork), so the way to exhaust its table from outside is to lower
    // its RLIMIT_NOFILE (prlimit(2)) to exactly the descriptors it has open:
    // every accept then fails with EMFILE until the limit is raised again.
    let s = Setup::new("[limits]\nmax_per_source = 1000\nmax_children = 1000\n");
    let d = s.start();
    let pid = d.pid();
    // The daemon reports ready just before its start-up self-test session,
    // whose descriptors are still open then: one session served and reaped
    // first puts the parent in its loop, with nothing in flight.
    assert_eq!(one_shot_tcp(d.port, "date").trim_end().len(), 24);
    assert!(eventually(Duration::from_secs(5), || live_children(&d) == 0));
    let at_rest = fds_of(pid);
    // Sessions established before the exhaustion keep working through it.
    let mut held: Vec<_> = (0..3).map(|_| d.tcp()).collect();
    for c in &mut held {
        c.greeting();
    }
    // A child can greet before the parent has closed its copy of the client
    // fd: wait until the parent is back to its descriptors at rest.
    assert!(
        eventually(Duration::from_secs(5), || fds_of(pid) == at_rest),
        "parent fds {:?}, at rest {at_rest:?}",
        fds_of(pid)
    );
    let fds = at_rest;
    let lowest_free = (0..).find(|n| !fds.contains(n)).unwrap_or(0) as u64;
    let (old_soft, _) = set_nofile_of(pid, lowest_free);

    // More clients than the parent has descriptors.
    let clients: Vec<TcpStream> = (0..3 * lowest_free + 16)
        .map(|_| TcpStream::connect(("127.0.0.1", d.port)).expect("connect"))
        .collect();
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let cpu = cpu_time(pid) - cpu0;
    let wall = t0.elapsed();
    eprintln!(
        "EMFILE: parent used {:.3} s CPU in {:.2} s wall with {} clients pending (fd limit {})",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        clients.len(),
        lowest_free
    );
    assert!(
        cpu < Duration::from_millis(500),
        "parent spun on EMFILE: {cpu:?} CPU in {wall:?}"
    );
    let log = d.log_text();
    assert_eq!(
        log.matches("shedding pending connections").count(),
        1,
        "EMFILE should be logged once per burst: {log}"
    );
    assert_eq!(live_children(&d), 3, "forked during fd exhaustion");
    // The backlog drains: pending clients are accepted and closed (EOF, no
    // greeting) instead of waiting for ever.
    let mut shed = 0;
    for mut c in clients.iter().take(8) {
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut b = [0u8; 64];
        if let Ok(0) = c.read(&mut b) {
            shed += 1;
        }
    }
    assert!(shed > 0, "no pending connection was shed in 5 s");
    for c in &mut held {
        assert_eq!(c.cmd("date").trim_end().len(), 24);
    }

    // Descriptors free up: service resumes.
    drop(clients);
    set_nofile_of(pid, old_soft);
    let resumed = eventually(Duration::from_secs(20), || {
        let Ok(mut c) = TcpStream::connect(("127.0.0.1", d.port)) else {
            return false;
        };
        c.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let mut first = [0u8; 7];
        c.read_exact(&mut first).is_ok() && &first == b"Welcome"
    });
    assert!(resumed, "service did not resume: {}", d.log_text());
    assert_eq!(one_shot_tcp(d.port, "date").trim_end().len(), 24);
}

// ---- fork failure ----

#[test]
fn fork_failure_sends_the_busy_line_backs_off_and_recovers() {
    // RLIMIT_NPROC makes fork fail with EAGAIN once the daemon's real uid
    // runs that many tasks. Root is exempt from it, so the test needs root to
    // let the daemon drop to a user of its own (daemon.user), whose tasks it
    // can count: the limit is set so that the daemon and one session fit,
    // and the second concurrent session's fork fails. The user is made for
    // the test, so that no other process of that uid (another test's daemon
    // run as nobody, a zombie the system reaps late) comes or goes while it
    // runs and moves the limit by one.
    require_root("RLIMIT_NPROC binds only a daemon that dropped root to another user");
    let user = TestUser::new("np");
    let mut s = Setup::new("");
    // The status file is rewritten as that user: in a run directory the
    // daemon creates and hands to it, under a parent it may traverse.
    std::fs::set_permissions(
        s.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod");
    s.pid_file = s.path("run/h.pid");
    s.write_raw(
        &s.base()
            .replace("[daemon]\n", &format!("[daemon]\nuser = {:?}\n", user.name)),
    );
    let nproc = tasks_of_uid(user.uid) + 2;
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
        .expect("getrlimit");
    // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
    let d = unsafe {
        s.daemon().pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, nproc, hard)
                .map_err(std::io::Error::from)
        })
    }
    .start();
    let pid = d.pid();
    let mut held = d.unix();
    held.greeting();

    let mut c = d.tcp();
    assert_eq!(c.read_to_end(), b"Server busy, try again later.\r\n");
    assert!(
        d.wait_log("fork for 127.0.0.1", Duration::from_secs(2)),
        "{}",
        d.log_text()
    );
    // A burst of clients: each is told, none is left hanging, and the
    // parent backs off (100 ms) after each failed fork instead of trying
    // the next one at once.
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    let mut burst: Vec<_> = (0..20).map(|_| d.tcp()).collect();
    for c in &mut burst {
        assert_eq!(c.read_to_end(), b"Server busy, try again later.\r\n");
    }
    let took = t0.elapsed();
    let cpu = cpu_time(pid) - cpu0;
    assert!(
        cpu < Duration::from_millis(500),
        "{cpu:?} CPU on fork failures"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "20 failed forks in {took:?}: no back-off between them"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(live_children(&d), 1);
    assert_eq!(held.cmd("date").trim_end().len(), 24);
    // 21 failed forks, each counted (the status file is rewritten within
    // a second).
    assert!(
        eventually(Duration::from_secs(5), || {
            s.run(&["-s", "status", "--json"])
                .1
                .contains("\"fork_failures\":21,")
        }),
        "{:?}",
        s.run(&["-s", "status", "--json"])
    );

    // The session ends, a process is free again: served.
    held.send(b"quit\n");
    held.read_to_end();
    let served = eventually(Duration::from_secs(5), || {
        let mut n = d.tcp();
        let mut first = [0u8; 7];
        n.s.read_exact(&mut first).is_ok() && &first == b"Welcome"
    });
    assert!(
        served,
        "not served after fork works again: {}",
        d.log_text()
    );
    assert!(
        running(pid),
        "daemon {pid} died after the fork failures: {}",
        d.log_text()
    );
    // Every session has ended (held quit, the clients that checked service
    // above closed): the daemon reaps them all, leaving no child, zombie or
    // not. (A session that has just exited is a zombie until the reaper's
    // next pass, so this is waited for, bounded.)
    assert!(
        eventually(Duration::from_secs(5), || children_of(pid).is_empty()),
        "children left: {:?}, zombies among them: {:?}",
        children_of(pid),
        zombies_of(pid)
    );
}

// ---- crashed children ----

#[test]
fn a_sigkilled_child_is_reaped_and_its_slot_freed() {
    let s = Setup::new("[limits]\nmax_per_source = 1\n");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    let kids = children_of(d.pid());
    assert_eq!(kids.len(), 1);
    let child = kids[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill child");
    assert_eq!(c.read_to_end(), b"", "a killed child says nothing");
    assert!(
        eventually(Duration::from_secs(5), || !children_of(d.pid())
            .contains(&child)),
        "child {child} not reaped; zombies: {:?}",
        zombies_of(d.pid())
    );
    assert!(zombies_of(d.pid()).is_empty());
    assert!(
        d.wait_log(
            &format!("EXIT: pid={child} how=error signal=SIGKILL"),
            IO_TIMEOUT
        ),
        "{}",
        d.log_text()
    );
    // With max_per_source = 1, being served again proves the count for
    // 127.0.0.1 went back to zero.
    assert_eq!(one_shot_tcp(d.port, "date").trim_end().len(), 24);
}

// ---- scale ----

#[test]
fn five_hundred_idle_sessions_while_new_ones_are_served() {
    const N: usize = 500;
    let soft = raise_own_nofile(4096);
    assert!(
        soft as usize > N + 200,
        "cannot open {N} sockets: RLIMIT_NOFILE {soft}"
    );
    let s = Setup::new("");
    // The backlog is a [listen] key: put it into the base config.
    let base = s.base().replace("[listen]\n", "[listen]\nbacklog = 1024\n");
    s.write_raw(&format!(
        "{base}[limits]\nmax_children = 1000\nmax_per_source = 1000\n"
    ));
    let d = s.start();
    let t0 = Instant::now();
    let mut sessions = Vec::with_capacity(N);
    for i in 0..N {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "only {i} sessions in 40 s"
        );
        let mut c = d.tcp();
        c.greeting();
        sessions.push(c);
    }
    let opened = t0.elapsed();
    assert!(eventually(Duration::from_secs(10), || live_children(&d) == N));
    // New sessions are served while all of them are held.
    let t1 = Instant::now();
    for _ in 0..5 {
        assert_eq!(one_shot_tcp(d.port, "date").trim_end().len(), 24);
    }
    let new_took = t1.elapsed();
    assert!(new_took < Duration::from_secs(5), "{new_took:?}");
    // And the held ones are all still alive and answering.
    for c in sessions.iter_mut().step_by(25) {
        assert_eq!(
            c.cmd("help"),
            "Commands: quit date who cookie motd help\r\n"
        );
    }
    eprintln!(
        "{N} sessions opened in {:.2} s; 5 new sessions meanwhile in {:.3} s",
        opened.as_secs_f64(),
        new_took.as_secs_f64()
    );
    drop(sessions);
    assert!(eventually(Duration::from_secs(20), || live_children(&d) == 0));
    assert!(zombies_of(d.pid()).is_empty());
}

#[test]
fn a_flood_from_one_source_leaves_fd_count_and_memory_flat() {
    let s = Setup::new("[limits]\nmax_per_source = 4\n");
    let d = s.start();
    let pid = d.pid();

    fn refused(port: u16, read: bool) {
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        if read {
            c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
            let mut v = Vec::new();
            let _ = c.read_to_end(&mut v);
            assert_eq!(v, b"Server busy: too many sessions from 127.0.0.1.\r\n");
        }
        // Otherwise: closed at once, maybe before the parent even accepts.
    }

    // Fill the per-source quota, so every flood connection is refused by the
    // parent itself (the path a flood exercises).
    let mut held: Vec<_> = (0..4).map(|_| d.tcp()).collect();
    for c in &mut held {
        c.greeting();
    }
    // Warm-up so allocator pools and the log path are in their steady state.
    for i in 0..100 {
        refused(d.port, i % 2 == 0);
    }
    // Long enough for the status file's once-a-second rewrite of the
    // counters to have run once too.
    std::thread::sleep(Duration::from_millis(1200));
    let fd0 = fd_count(pid);
    let rss0 = rss_kb(pid);

    let t0 = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let port = d.port;
            std::thread::spawn(move || {
                for i in 0..500 {
                    refused(port, (i + t) % 2 == 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("flood thread");
    }
    let flood = t0.elapsed();
    // Let the parent drain what the non-reading clients left in the backlog.
    // Refusals are logged one line per burst: the first itself, the rest as
    // "REFUSED: N more client(s)" at most every 5 s.
    let logged = |text: &str| -> usize {
        text.lines()
            .filter(|l| l.contains("REFUSED"))
            .map(|l| {
                l.split("REFUSED: ")
                    .nth(1)
                    .and_then(|r| r.strip_suffix(" s").and(r.split(" more ").next()))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1)
            })
            .sum()
    };
    assert!(
        eventually(Duration::from_secs(20), || logged(&d.log_text()) >= 2100),
        "refusals logged: {}",
        logged(&d.log_text())
    );
    assert!(
        d.log_text().matches("REFUSED").count() < 100,
        "refusals flood the log: {} lines",
        d.log_text().matches("REFUSED").count()
    );
    // Any fd left open by the flood would keep the count above fd0 for good.
    eventually(Duration::from_secs(2), || fd_count(pid) == fd0);
    let fd1 = fd_count(pid);
    let rss1 = rss_kb(pid);
    eprintln!(
        "flood of 2000 in {:.2} s: parent fds {fd0} -> {fd1}, RSS {rss0} kB -> {rss1} kB",
        flood.as_secs_f64()
    );
    assert_eq!(fd1, fd0, "parent fd count changed");
    assert!(
        rss1 <= rss0 + 256,
        "parent RSS grew from {rss0} kB to {rss1} kB"
    );
    assert_eq!(live_children(&d), 4, "a refused client was forked");
    for c in &mut held {
        assert_eq!(c.cmd("date").trim_end().len(), 24);
    }
    drop(held);
    // The quota is freed as the held sessions end: served again.
    assert!(eventually(Duration::from_secs(5), || live_children(&d) == 0));
    assert_eq!(one_shot_tcp(d.port, "date").trim_end().len(), 24);
    assert!(eventually(Duration::from_secs(2), || fd_count(pid) == fd0));
}
