//! hostinfod-bench: a load generator for hostinfod and anything that speaks
//! its line protocol (the C floor server, tcpserver or xinetd handlers).
//!
//! See `hostinfod-bench --help` and bench/README.md.

mod session;

use session::{Conn, Outcome, Script, Target};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage:
  hostinfod-bench [run] TARGET [-c N] [-d SECS] [--warmup SECS] [--idle K]
                  [--timeout MS] [--prompt STR] [--command WORD] [--json|--kv]
                  [--errors N]
  hostinfod-bench probe TARGET --expect STR [--hup PID] [--max-wait SECS]
                  [--interval-us US] [--timeout MS]
  hostinfod-bench hold TARGET [-n K] [-d SECS]
  hostinfod-bench free-port [-n N]

TARGET is --tcp HOST:PORT or --unix PATH.

run     N clients (default 8), each doing whole sessions for SECS seconds
        (default 3) after a warm-up (default 0.3 s, not counted): connect,
        read the greeting and the prompt, send the command (default date),
        read the reply and the prompt, send quit, read Goodbye. and EOF.
        The reply must be one line (one with a digit for date/time), or
        one or more lines for who, cookie, fortune and motd.
        Reports sessions/s, p50/p99/max latency (connect to EOF) and the
        sessions refused (connect error), busy (the server's `Server busy`
        refusal line), failed (I/O error, timeout, unexpected EOF) and bad
        (wrong reply). --idle K first opens K sessions, reads their greeting
        and holds them silent for the whole run (idle_alive says how many
        were still open at the end). --errors N prints the first N error
        details to stderr. --kv prints one key=value line, --json one JSON
        object. Exits 0 even when sessions failed; 2 on usage errors.
probe   Sends SIGHUP to PID (when given), then connects again and again until
        a greeting contains STR; prints the time from the signal (or the
        start) to that greeting as probe_ms=. Exits 1 on timeout
        (default 5 s).
hold    Opens K (default 1) sessions, reads their greeting, prints held=K and
        holds them silent for SECS (default 30) seconds or until killed.
free-port  Binds N (default 1) free ports on 127.0.0.1 at once, prints them
        one per line and closes them.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Human,
    Kv,
    Json,
}

#[derive(Debug)]
struct Opts {
    mode: String,
    target: Option<Target>,
    clients: usize,
    secs: f64,
    warmup: f64,
    idle: usize,
    timeout: Duration,
    prompt: String,
    command: String,
    format: Format,
    errors: usize,
    expect: Option<String>,
    hup: Option<i32>,
    max_wait: f64,
    interval_us: u64,
    count: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1).peekable();
    let mut o = Opts {
        mode: "run".into(),
        target: None,
        clients: 8,
        secs: 3.0,
        warmup: 0.3,
        idle: 0,
        timeout: Duration::from_secs(5),
        prompt: "Command? ".into(),
        command: "date".into(),
        format: Format::Human,
        errors: 0,
        expect: None,
        hup: None,
        max_wait: 5.0,
        interval_us: 500,
        count: 1,
    };
    let mut secs_given = false;
    if let Some(m) = args.peek()
        && !m.starts_with('-')
    {
        o.mode = args.next().unwrap_or_default();
    }
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag}: bad value {v:?}"))
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--tcp" => {
                let v = args.next().ok_or("--tcp needs HOST:PORT")?;
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&v)
                    .map_err(|e| format!("--tcp {v}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("--tcp {v}: no address"))?;
                o.target = Some(Target::Tcp(addr));
            }
            "--unix" => {
                let v = args.next().ok_or("--unix needs PATH")?;
                o.target = Some(Target::Unix(PathBuf::from(v)));
            }
            "-c" | "--clients" => o.clients = num(&a, args.next())?,
            "-n" | "--count" => o.count = num(&a, args.next())?,
            "-d" | "--duration" => {
                o.secs = num(&a, args.next())?;
                secs_given = true;
            }
            "--warmup" => o.warmup = num(&a, args.next())?,
            "--idle" => o.idle = num(&a, args.next())?,
            "--timeout" => o.timeout = Duration::from_millis(num(&a, args.next())?),
            "--prompt" => o.prompt = args.next().ok_or("--prompt needs a value")?,
            "--command" => o.command = args.next().ok_or("--command needs a value")?,
            "--json" => o.format = Format::Json,
            "--kv" => o.format = Format::Kv,
            "--errors" => o.errors = num(&a, args.next())?,
            "--expect" => o.expect = Some(args.next().ok_or("--expect needs a value")?),
            "--hup" => o.hup = Some(num(&a, args.next())?),
            "--max-wait" => o.max_wait = num(&a, args.next())?,
            "--interval-us" => o.interval_us = num(&a, args.next())?,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    if o.mode == "hold" && !secs_given {
        o.secs = 30.0;
    }
    if !(o.secs.is_finite() && o.secs > 0.0 && o.warmup.is_finite() && o.warmup >= 0.0) {
        return Err("-d and --warmup must be positive numbers".into());
    }
    if !(o.max_wait.is_finite() && o.max_wait > 0.0) {
        return Err("--max-wait must be a positive number".into());
    }
    if o.clients == 0 || o.clients > 4096 {
        return Err("-c must be 1..4096".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hostinfod-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if o.mode == "free-port" {
        return free_ports(o.count);
    }
    let Some(target) = o.target.clone() else {
        eprintln!("hostinfod-bench: need --tcp HOST:PORT or --unix PATH\n{USAGE}");
        return ExitCode::from(2);
    };
    let script = Script {
        prompt: o.prompt.clone().into_bytes(),
        command: format!("{}\n", o.command).into_bytes(),
        want_digit: o.command.eq_ignore_ascii_case("date")
            || o.command.eq_ignore_ascii_case("time"),
        multi_line: ["who", "cookie", "fortune", "motd"]
            .iter()
            .any(|c| o.command.eq_ignore_ascii_case(c)),
        timeout: o.timeout,
    };
    match o.mode.as_str() {
        "run" => run(&o, &target, &script),
        "probe" => probe(&o, &target, &script),
        "hold" => hold(&o, &target, &script),
        m => {
            eprintln!("hostinfod-bench: unknown mode {m:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn free_ports(n: usize) -> ExitCode {
    let mut ls = Vec::new();
    for _ in 0..n.max(1) {
        match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| {
            let p = l.local_addr()?.port();
            Ok((l, p))
        }) {
            Ok((l, p)) => {
                println!("{p}");
                ls.push(l);
            }
            Err(e) => {
                eprintln!("hostinfod-bench: bind 127.0.0.1:0: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

#[derive(Debug, Default)]
struct Tally {
    lat_us: Vec<u32>,
    /// Completed sessions, warm-up included.
    ok_all: u64,
    refused: u64,
    busy: u64,
    failed: u64,
    bad: u64,
    errors: Vec<String>,
    end: Option<Instant>,
}

impl Tally {
    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Refused => self.refused += 1,
            Outcome::Busy => self.busy += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Bad => self.bad += 1,
        }
    }
}

/// Opens `k` greeted sessions, silently. Returns them and the first error.
fn open_idle(
    k: usize,
    target: &Target,
    script: &Script,
    give_up: Instant,
) -> (Vec<Conn>, Option<String>) {
    let mut held = Vec::with_capacity(k);
    let mut buf = Vec::with_capacity(4096);
    let mut err = None;
    let mut misses = 0;
    while held.len() < k && Instant::now() < give_up && misses < 50 {
        match session::greet(target, script, &mut buf) {
            Ok(c) => held.push(c),
            Err((o, m)) => {
                misses += 1;
                err.get_or_insert(format!("{o:?}: {m}"));
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    (held, err)
}

fn run(o: &Opts, target: &Target, script: &Script) -> ExitCode {
    let (mut idle, idle_err) = open_idle(
        o.idle,
        target,
        script,
        Instant::now() + Duration::from_secs(60),
    );
    if let Some(e) = &idle_err {
        eprintln!("hostinfod-bench: idle sessions: {e}");
    }

    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(o.warmup);
    let deadline = warm_end + Duration::from_secs_f64(o.secs);
    let (tx, rx) = mpsc::channel::<Tally>();
    for _ in 0..o.clients {
        let tx = tx.clone();
        let target = target.clone();
        let script = script.clone();
        let keep_errors = o.errors;
        let spawned = thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut t = Tally {
                    lat_us: Vec::with_capacity(16384),
                    ..Tally::default()
                };
                let mut buf = Vec::with_capacity(4096);
                loop {
                    let t0 = Instant::now();
                    if t0 >= deadline {
                        break;
                    }
                    match session::session(&target, &script, &mut buf) {
                        Ok(()) => {
                            t.ok_all += 1;
                            let t1 = Instant::now();
                            if t1 >= warm_end {
                                let us = (t1 - t0).as_micros().min(u32::MAX as u128) as u32;
                                t.lat_us.push(us);
                            }
                        }
                        Err((out, msg)) => {
                            t.count(out);
                            if t.errors.len() < keep_errors.max(1) {
                                t.errors.push(format!("{out:?}: {msg}"));
                            }
                            // Do not spin on a server that is down.
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
                t.end = Some(Instant::now());
                let _ = tx.send(t);
            });
        if let Err(e) = spawned {
            eprintln!("hostinfod-bench: spawn: {e}");
            return ExitCode::FAILURE;
        }
    }
    drop(tx);

    // Watchdog: a client stuck (say in a Unix connect to a full backlog) is
    // counted as failed and left behind; the process exits anyway.
    let give_up = deadline + o.timeout + Duration::from_secs(1);
    let mut all = Tally::default();
    let mut got = 0usize;
    let mut last_end = warm_end;
    while got < o.clients {
        let now = Instant::now();
        if now >= give_up {
            break;
        }
        match rx.recv_timeout(give_up - now) {
            Ok(t) => {
                got += 1;
                all.lat_us.extend_from_slice(&t.lat_us);
                all.ok_all += t.ok_all;
                all.refused += t.refused;
                all.busy += t.busy;
                all.failed += t.failed;
                all.bad += t.bad;
                all.errors.extend(t.errors);
                if let Some(e) = t.end {
                    last_end = last_end.max(e);
                }
            }
            Err(_) => break,
        }
    }
    let hung = (o.clients - got) as u64;
    if hung > 0 {
        last_end = Instant::now();
    }
    all.failed += hung;

    let idle_held = idle.len();
    let idle_alive = idle
        .iter_mut()
        .map(session::still_open)
        .filter(|&b| b)
        .count();

    let secs = (last_end - warm_end).as_secs_f64().max(1e-9);
    let mut lat = all.lat_us;
    lat.sort_unstable();
    let n = lat.len();
    let pct = |p: f64| -> u32 {
        if n == 0 {
            return 0;
        }
        let idx = ((p / 100.0) * n as f64).ceil() as usize;
        lat[idx.clamp(1, n) - 1]
    };
    let (p50, p99, max) = (pct(50.0), pct(99.0), lat.last().copied().unwrap_or(0));
    let rate = n as f64 / secs;
    for e in all.errors.iter().take(o.errors) {
        eprintln!("hostinfod-bench: {e}");
    }
    let first_error = all.errors.first().cloned().unwrap_or_default();

    match o.format {
        Format::Human => {
            println!(
                "{target} c={} idle={idle_held}/{}: {rate:.1} sessions/s ({n} in {secs:.2} s); \
                 latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
                 refused {} busy {} failed {} bad {} (hung {hung})",
                o.clients,
                o.idle,
                p50 as f64 / 1000.0,
                p99 as f64 / 1000.0,
                max as f64 / 1000.0,
                all.refused,
                all.busy,
                all.failed,
                all.bad,
            );
            if o.idle > 0 {
                println!("idle sessions still open at the end: {idle_alive}/{idle_held}");
            }
            if !first_error.is_empty() {
                println!("first error: {first_error}");
            }
        }
        Format::Kv => println!(
            "target={target} clients={} idle={} idle_held={idle_held} idle_alive={idle_alive} \
             secs={secs:.3} sessions={n} all_sessions={} rate={rate:.1} p50_us={p50} p99_us={p99} max_us={max} \
             refused={} busy={} failed={} bad={} hung={hung} first_error={:?}",
            o.clients, o.idle, all.ok_all, all.refused, all.busy, all.failed, all.bad, first_error,
        ),
        Format::Json => println!(
            "{{\"target\":{:?},\"clients\":{},\"idle\":{},\"idle_held\":{idle_held},\
             \"idle_alive\":{idle_alive},\"secs\":{secs:.3},\"sessions\":{n},\"all_sessions\":{},\"rate\":{rate:.1},\
             \"p50_us\":{p50},\"p99_us\":{p99},\"max_us\":{max},\"refused\":{},\"busy\":{},\
             \"failed\":{},\"bad\":{},\"hung\":{hung},\"first_error\":{}}}",
            target.to_string(),
            o.clients,
            o.idle,
            all.ok_all,
            all.refused,
            all.busy,
            all.failed,
            all.bad,
            json_str(&first_error),
        ),
    }
    // Do not wait for hung client threads.
    std::process::exit(0)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGHUP: i32 = 1;

fn probe(o: &Opts, target: &Target, script: &Script) -> ExitCode {
    let Some(expect) = o.expect.as_deref() else {
        eprintln!("hostinfod-bench: probe needs --expect STR");
        return ExitCode::from(2);
    };
    let expect = expect.as_bytes();
    let t0 = Instant::now();
    if let Some(pid) = o.hup {
        if pid <= 0 {
            eprintln!("hostinfod-bench: --hup needs a positive pid");
            return ExitCode::from(2);
        }
        // SAFETY: kill(2) takes plain integers and has no memory effects.
        if unsafe { kill(pid, SIGHUP) } != 0 {
            eprintln!(
                "hostinfod-bench: kill -HUP {pid}: {}",
                std::io::Error::last_os_error()
            );
            return ExitCode::FAILURE;
        }
    }
    let give_up = t0 + Duration::from_secs_f64(o.max_wait);
    let (mut attempts, mut refused, mut failed) = (0u64, 0u64, 0u64);
    let mut buf = Vec::with_capacity(4096);
    let mut last = String::new();
    while Instant::now() < give_up {
        attempts += 1;
        match session::greet(target, script, &mut buf) {
            Ok(_conn) => {
                if buf.windows(expect.len()).any(|w| w == expect) {
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    println!(
                        "probe_ms={ms:.3} attempts={attempts} refused={refused} failed={failed}"
                    );
                    return ExitCode::SUCCESS;
                }
                last = session::lossy(&buf);
            }
            Err((Outcome::Refused, m)) => {
                refused += 1;
                last = m;
            }
            Err((_, m)) => {
                failed += 1;
                last = m;
            }
        }
        thread::sleep(Duration::from_micros(o.interval_us));
    }
    println!(
        "probe_ms=timeout attempts={attempts} refused={refused} failed={failed} last={last:?}"
    );
    ExitCode::FAILURE
}

fn hold(o: &Opts, target: &Target, script: &Script) -> ExitCode {
    let (mut held, err) = open_idle(
        o.count,
        target,
        script,
        Instant::now() + Duration::from_secs(60),
    );
    if let Some(e) = err {
        eprintln!("hostinfod-bench: {e}");
    }
    println!("held={}", held.len());
    thread::sleep(Duration::from_secs_f64(o.secs));
    let alive = held
        .iter_mut()
        .map(session::still_open)
        .filter(|&b| b)
        .count();
    println!("alive={alive}");
    ExitCode::SUCCESS
}
