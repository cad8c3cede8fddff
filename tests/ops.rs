//! What operators see, against the real binary: the counters of a scripted
//! day in `-s status --json` and the metrics file (checked by promtool),
//! across reloads; `-s stop` and `-s status` with a broken configuration
//! file; `-t` on everything a start would reject; logs that never vanish
//! when syslog is missing or restarts.

mod common;

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

/// The `counters` object of a `-s status --json` line, as name → value.
fn json_counters(json: &str) -> BTreeMap<String, u64> {
    let at = json.find("\"counters\":{").expect("counters in the JSON") + 12;
    let body = &json[at..json[at..].find('}').expect("end of counters") + at];
    body.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once(':').expect("k:v");
            (
                k.trim_matches('"').to_string(),
                v.parse().expect("a number"),
            )
        })
        .collect()
}

/// A top-level field's raw JSON text (numbers, null, a string with quotes).
fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat).unwrap_or_else(|| panic!("{key} in {json}")) + pat.len();
    let rest = &json[at..];
    let end = if let Some(inner) = rest.strip_prefix('"') {
        1 + inner.find('"').expect("closing quote") + 1
    } else if rest.starts_with('[') {
        rest.find(']').expect("]") + 1
    } else {
        rest.find([',', '}']).expect("end")
    };
    &rest[..end]
}

fn status_json(s: &Setup) -> String {
    let (code, out, err) = s.run(&["-s", "status", "--json"]);
    assert_eq!(code, 0, "-s status --json: {err}");
    assert_eq!(out.lines().count(), 1, "one line of JSON: {out:?}");
    out.trim().to_string()
}

/// Waits (bounded) until the published counters equal `want` — the status
/// file is rewritten from the poll loop at most once a second — and
/// returns the JSON that showed them.
fn expect_counters(s: &Setup, want: &BTreeMap<String, u64>) -> String {
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(5), || {
        last = status_json(s);
        &json_counters(&last) == want
    });
    assert!(
        ok,
        "counters:\n want {want:?}\n have {:?}\n in {last}",
        json_counters(&last)
    );
    last
}

fn tcp(port: u16) -> Client<TcpStream> {
    Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
}

/// The first line a fresh TCP client gets: a greeting or a refusal.
fn first_line(c: &mut Client<TcpStream>) -> String {
    String::from_utf8_lossy(&c.read_until(b"\n")).into_owned()
}

/// The PID of the session serving the client whose local port is `port`,
/// from the child's START record.
fn session_pid(d: &Daemon, client_port: u16) -> i32 {
    let needle = format!("START: 127.0.0.1:{client_port} pid=");
    assert!(
        d.wait_log(&needle, Duration::from_secs(5)),
        "{}",
        d.log_text()
    );
    let log = d.log_text();
    let at = log.find(&needle).expect("START") + needle.len();
    log[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a pid")
}

fn bump(m: &mut BTreeMap<String, u64>, k: &str, by: u64) {
    *m.get_mut(k).unwrap_or_else(|| panic!("no counter {k}")) += by;
}

/// A config with the metrics file in `[daemon]` and `extra` after.
fn config_with_metrics(s: &Setup, extra: &str) -> String {
    let metrics = s.path("hostinfod.prom");
    format!(
        "{}{extra}",
        s.base().replace(
            "[daemon]\n",
            &format!("[daemon]\nmetrics_file = {metrics:?}\n")
        )
    )
}

#[test]
fn a_scripted_day_is_counted_exactly_across_reloads() {
    let s = Setup::new("");
    let limits = "[limits]\nidle_timeout_secs = 1\nmax_line_bytes = 64\nmax_per_source = 2\n\n\
                  [access]\nunix_users = [4242]\n";
    s.write_raw(&config_with_metrics(&s, limits));
    let d = s.start();
    // Nothing has happened yet: every counter is 0 (the harness knows the
    // daemon is ready from its READY=1, not from a session).
    let mut want = BTreeMap::new();
    assert!(eventually(Duration::from_secs(5), || {
        want = json_counters(&status_json(&s));
        want.values().all(|v| *v == 0)
            && want["sessions"]
                == want
                    .iter()
                    .filter(|(k, _)| k.starts_with("ended_"))
                    .map(|(_, v)| v)
                    .sum::<u64>()
    }));

    // N = 3 quit.
    for _ in 0..3 {
        let mut c = tcp(s.port);
        c.greeting();
        c.send(b"quit\n");
        assert!(String::from_utf8_lossy(&c.read_to_end()).contains("Goodbye."));
    }
    bump(&mut want, "sessions", 3);
    bump(&mut want, "ended_quit", 3);
    // M = 2 EOF.
    for _ in 0..2 {
        let mut c = tcp(s.port);
        c.greeting();
        c.s.shutdown(Shutdown::Write).expect("shutdown");
        c.read_to_end();
    }
    bump(&mut want, "sessions", 2);
    bump(&mut want, "ended_eof", 2);
    // One over-long line.
    let mut c = tcp(s.port);
    c.greeting();
    c.send(&[b'x'; 100]);
    c.send(b"\n");
    assert!(String::from_utf8_lossy(&c.read_to_end()).contains("line too long"));
    bump(&mut want, "sessions", 1);
    bump(&mut want, "ended_too_long", 1);
    // Access: the Unix socket serves uid 4242 only.
    let mut u = Client::new(UnixStream::connect(&s.sock).expect("unix"));
    assert_eq!(u.read_to_end(), b"Access denied.\n");
    bump(&mut want, "refused_access", 1);
    // Busy: two sessions held, a third from the same address refused; the
    // two then end by the idle timeout (K = 2 so far).
    let mut held: Vec<_> = (0..2)
        .map(|_| {
            let mut c = tcp(s.port);
            c.greeting();
            c
        })
        .collect();
    let mut third = tcp(s.port);
    assert_eq!(
        String::from_utf8_lossy(&third.read_to_end()),
        "Server busy: too many sessions from 127.0.0.1.\r\n"
    );
    bump(&mut want, "refused_busy", 1);
    for c in &mut held {
        assert!(String::from_utf8_lossy(&c.read_to_end()).contains("Timeout, goodbye."));
    }
    bump(&mut want, "sessions", 2);
    bump(&mut want, "ended_idle", 2);
    // One crashed child.
    let stream = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    let local = stream.local_addr().expect("local").port();
    let mut c = Client::new(stream);
    c.greeting();
    let pid = session_pid(&d, local);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
    c.read_to_end();
    assert!(d.wait_log(
        &format!("EXIT: pid={pid} how=error signal=SIGKILL"),
        Duration::from_secs(5)
    ));
    bump(&mut want, "sessions", 1);
    bump(&mut want, "ended_error", 1);

    let before = expect_counters(&s, &want);
    assert_eq!(json_field(&before, "generation"), "0");
    assert_eq!(json_field(&before, "last_reload"), "null");
    assert_eq!(json_field(&before, "last_reload_result"), "null");
    assert_eq!(json_field(&before, "pid"), d.pid().to_string());
    assert_eq!(json_field(&before, "sessions"), "0");
    println!("before the reloads: {before}");

    // Two reloads and one rejected, the last one bringing a rate limit.
    let (code, _, err) = s.run(&["-s", "reload"]);
    assert_eq!(code, 0, "{err}");
    // Broken after [daemon]: -s status still finds the pidfile (leniently).
    std::fs::write(&s.config, format!("{}[limits\n", s.base())).expect("break");
    let (code, _, err) = s.run(&["-s", "reload"]);
    assert_eq!(code, 78, "-s reload checks first: {err}");
    // The daemon itself rejects a file broken behind -s reload's back.
    d.signal(Signal::SIGHUP);
    assert!(eventually(Duration::from_secs(10), || {
        s.status().get("reload_seq").map(String::as_str) == Some("2")
    }));
    bump(&mut want, "reloads", 1);
    bump(&mut want, "reloads_rejected", 1);
    let rejected = expect_counters(&s, &want);
    assert!(
        json_field(&rejected, "last_reload_result").starts_with("\"rejected: "),
        "{rejected}"
    );
    s.write_raw(&config_with_metrics(
        &s,
        &limits.replace("[limits]\n", "[limits]\nmax_rate_per_source = 1\n"),
    ));
    let (code, _, err) = s.run(&["-s", "reload"]);
    assert_eq!(code, 0, "{err}");
    bump(&mut want, "reloads", 1);
    // After the reloads: what came before is still counted, and more.
    let after = expect_counters(&s, &want);
    assert_eq!(json_field(&after, "generation"), "2");
    assert_eq!(json_field(&after, "last_reload_result"), "\"ok\"");
    assert!(
        json_field(&after, "last_reload").starts_with("\"20"),
        "{after}"
    );
    assert_eq!(
        json_field(&after, "listeners"),
        format!(
            "[\"tcp 127.0.0.1:{}\",\"unix {}\"]",
            s.port,
            s.sock.display()
        )
    );
    // Rate: connections one after the other, each told apart by its first
    // line (a burst of two is let through, then one a second).
    let (mut admitted, mut refused) = (0, 0);
    for _ in 0..6 {
        let mut c = tcp(s.port);
        let line = first_line(&mut c);
        if line.starts_with("Server busy: 127.0.0.1 is connecting too fast.") {
            refused += 1;
            c.read_to_end();
        } else {
            assert!(line.starts_with("Welcome"), "{line:?}");
            admitted += 1;
            c.send(b"quit\n");
            c.read_to_end();
        }
    }
    assert!(
        refused >= 1 && admitted >= 1,
        "{admitted} admitted, {refused} refused"
    );
    bump(&mut want, "sessions", admitted);
    bump(&mut want, "ended_quit", admitted);
    bump(&mut want, "refused_rate", refused);
    // K = 3: one more idle timeout, once the rate allows a session.
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = tcp(s.port);
    c.greeting();
    assert!(String::from_utf8_lossy(&c.read_to_end()).contains("Timeout, goodbye."));
    bump(&mut want, "sessions", 1);
    bump(&mut want, "ended_idle", 1);
    let day = expect_counters(&s, &want);
    println!("the scripted day: {day}");

    // Plain -s status shows the counters too.
    let (code, out, _) = s.run(&["-s", "status"]);
    assert_eq!(code, 0);
    for (k, v) in &want {
        assert!(
            out.contains(&format!("\ncounters.{k}={v}\n")),
            "{k} in {out}"
        );
    }

    // The metrics file, written at stop at the latest.
    drop(d);
    let metrics = s.path("hostinfod.prom");
    let text = std::fs::read_to_string(&metrics).expect("metrics file");
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics).expect("open"))
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {out:?}\n{text}"
    );
    let sample = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
            .parse()
            .expect("a number")
    };
    assert_eq!(sample("hostinfod_sessions_total"), want["sessions"]);
    assert_eq!(sample("hostinfod_sessions_live"), 0);
    for (reason, k) in [
        ("busy", "refused_busy"),
        ("rate", "refused_rate"),
        ("access", "refused_access"),
    ] {
        assert_eq!(
            sample(&format!("hostinfod_refused_total{{reason=\"{reason}\"}}")),
            want[k]
        );
    }
    for how in [
        "quit",
        "eof",
        "idle",
        "session_timeout",
        "too_long",
        "shutdown",
        "error",
    ] {
        assert_eq!(
            sample(&format!("hostinfod_session_ends_total{{how=\"{how}\"}}")),
            want[&format!("ended_{how}")],
            "{how}"
        );
    }
    assert_eq!(
        sample("hostinfod_fork_failures_total"),
        want["fork_failures"]
    );
    assert_eq!(sample("hostinfod_reloads_total{result=\"ok\"}"), 2);
    assert_eq!(sample("hostinfod_reloads_total{result=\"rejected\"}"), 1);
    assert_eq!(sample("hostinfod_generation"), 2);
    let started: u64 = s
        .status()
        .get("started")
        .map_or(0, |v| v.parse().unwrap_or(0));
    let start_time = sample("hostinfod_start_time_seconds");
    assert!(start_time > 1_700_000_000 && (started == 0 || started == start_time));
}

#[test]
fn stop_and_status_work_with_a_broken_file() {
    let s = Setup::new("");
    let good = s.base();
    let d = s.daemon().launch();
    let pid = d.daemon.as_ref().expect("daemon running").pid;
    // A syntax error after the [daemon] section: the pidfile is still read.
    std::fs::write(&s.config, format!("{good}[limits\nmax_children = \n")).expect("break");
    let (code, _, err) = s.run(&["-t"]);
    assert_eq!(code, 78, "{err}");
    let (code, out, err) = s.run(&["-s", "status", "--json"]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(json_field(&out, "pid"), pid.to_string());
    assert!(
        err.contains("warning: ")
            && err.contains(&format!(
                "using daemon.pid_file = {:?} read leniently from {}",
                s.pid_file.display().to_string(),
                s.config.display()
            )),
        "{err}"
    );
    let (code, out, err) = s.run(&["-s", "stop"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("hostinfod stopped (pid {pid})")),
        "{out}"
    );
    assert!(!running(pid));
    // Nothing readable at all: the default pidfile, and it says so.
    std::fs::write(&s.config, b"\xff\xfe garbage [[[\n").expect("garbage");
    let (code, _, err) = s.run(&["-s", "stop"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no readable daemon.pid_file in") && err.contains("using the default pidfile"),
        "{err}"
    );
}

/// `-t` on `text`: exit 78 and the one line on stderr.
fn check(s: &Setup, text: &[u8]) -> String {
    std::fs::write(&s.config, text).expect("write");
    let (code, out, err) = s.run(&["-t"]);
    assert_eq!(code, 78, "{out} {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err.trim().to_string()
}

#[test]
fn check_config_finds_what_a_start_would_reject() {
    let s = Setup::new("");
    let f = s.config.display().to_string();
    let open = s.path("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            b"[daemon]\nuser = \"hostinfod-no-such-user\"\n".to_vec(),
            format!("{f}:2:1: daemon.user: unknown user \"hostinfod-no-such-user\""),
        ),
        (
            b"[daemon]\nuser = \"root\"\ngroup = \"hostinfod-no-such-group\"\n".to_vec(),
            format!("{f}:3:1: daemon.group: unknown group \"hostinfod-no-such-group\""),
        ),
        (
            b"[listen]\ntcp = [\"127.0.0.1:2345\", \"127.0.0.1:2345\"]\n".to_vec(),
            format!("{f}:2:1: listen.tcp: 127.0.0.1:2345 is listed twice"),
        ),
        (
            b"[listen]\ntcp = []\nunix = [\"/tmp/x.sock\", \"/tmp/x.sock\"]\n".to_vec(),
            format!("{f}:3:1: listen.unix: /tmp/x.sock is listed twice"),
        ),
        (
            b"[access]\nallow = [\"10.0.0.0/33\"]\n".to_vec(),
            format!("{f}:2:1: access.allow: "),
        ),
        (
            b"[commands]\ndate_format = \"%c %c %c %c %c %c %c %c %c %c %c %c %c\"\n".to_vec(),
            format!("{f}:2:15: commands.date_format: "),
        ),
        (
            format!("[daemon]\npid_file = \"{}/h.pid\"\n", open.display()).into_bytes(),
            format!(
                "{f}:2:1: daemon.pid_file: {}: is writable by others",
                open.display()
            ),
        ),
        (
            format!("[daemon]\nmetrics_file = \"{}/m.prom\"\n", open.display()).into_bytes(),
            format!(
                "{f}:2:1: daemon.metrics_file: {}: is writable by others",
                open.display()
            ),
        ),
        (
            b"[daemon]\numask = \"0022\"\numask = \"0077\"\n".to_vec(),
            format!("{f}:3:1: daemon.umask: duplicate key"),
        ),
        (
            b"[protocol]\ngreeting = \"caf\xe9\"\n".to_vec(),
            format!("{f}:2:16: protocol.greeting: not valid UTF-8"),
        ),
    ];
    for (text, want) in cases {
        let got = check(&s, &text);
        println!("{got}");
        assert!(got.starts_with(&want), "want {want:?}\n got {got:?}");
    }
}

#[test]
fn logs_never_vanish_when_syslog_is_missing_or_restarts() {
    let s = Setup::new("");
    let log = s.path("log.sock");
    let env = [("HOSTINFOD_SYSLOG_SOCKET", log.to_str().expect("utf-8"))];
    let l = s.daemon().env(env[0].0, env[0].1).launch();
    assert_eq!(l.code, Some(0), "{l:?}");
    assert!(
        l.stderr.contains(&format!(
            "warning: cannot reach the syslog socket {}",
            log.display()
        )),
        "the launcher warns before detaching: {:?}",
        l.stderr
    );
    assert!(l.daemon.is_some(), "{l:?}");
    // The syslog daemon comes up: the next record reaches it.
    for round in 0..2 {
        let sock = UnixDatagram::bind(&log).expect("bind syslog socket");
        let mut c = tcp(s.port);
        c.greeting();
        c.send(b"quit\n");
        c.read_to_end();
        let got = recv_datagrams(&sock, Duration::from_secs(5), |g| {
            g.iter()
                .any(|r| r.contains("EXIT: ") && r.contains("how=quit"))
        });
        assert!(
            got.iter()
                .any(|r| r.starts_with("<30>") && r.contains("START: 127.0.0.1:")),
            "round {round}: {got:?}"
        );
        assert!(
            got.iter().any(|r| r.contains("how=quit")),
            "round {round}: {got:?}"
        );
        // The syslog daemon restarts: a new socket at the same path.
        drop(sock);
        std::fs::remove_file(&log).expect("rm");
    }
}

#[test]
fn a_status_file_daemon_user_cannot_write_fails_the_start_naming_it() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root, to start with daemon.user (CI runs as root)"
    );
    // The pidfile's directory is root's, 0755: nobody could not rewrite the
    // status file there after dropping root.
    let s = Setup::new("");
    std::fs::set_permissions(
        s.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    s.write_raw(
        &s.base()
            .replace("[daemon]\n", "[daemon]\nuser = \"nobody\"\n"),
    );
    let status = s.pid_file.with_extension("status");
    let dir = s.dir.path().display().to_string();
    let (code, _, err) = s.run(&["-t"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.starts_with(&format!(
            "{}:7:1: daemon.pid_file: {dir}: not writable by daemon.user \"nobody\"",
            s.config.display()
        )),
        "{err}"
    );
    println!("{}", err.trim());
    let (code, _, err) = s.run(&["-f"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot write the status file {}: {dir}: not writable",
            status.display()
        )),
        "{err}"
    );
    println!("{}", err.trim());
    assert!(
        !exists(&s.pid_file) && !exists(&s.sock),
        "nothing left behind"
    );
}

#[test]
fn stderr_is_prefixed_for_journald_only_when_it_is_the_journal_stream() {
    use std::os::unix::fs::MetadataExt as _;
    let s = Setup::new("");
    for journal in [true, false] {
        let log = s.path(&format!("stderr-{journal}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let m = file.metadata().expect("stat");
        // JOURNAL_STREAM names stderr itself, or another file.
        let stream = if journal {
            format!("{}:{}", m.dev(), m.ino())
        } else {
            format!("{}:{}", m.dev(), m.ino() + 1)
        };
        let mut child = std::process::Command::new(BIN)
            .args(["-f", "-c", &s.config.to_string_lossy()])
            .env("JOURNAL_STREAM", &stream)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn");
        let read = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(eventually(Duration::from_secs(10), || read()
            .contains("listening on unix")));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            Signal::SIGTERM,
        )
        .expect("kill");
        let _ = child.wait();
        let text = read();
        let first = text.lines().next().unwrap_or_default();
        if journal {
            assert!(first.starts_with("<6>hostinfod "), "{text}");
            assert!(text.lines().all(|l| l.starts_with('<')), "{text}");
        } else {
            assert!(first.starts_with("hostinfod["), "{text}");
        }
    }
}
