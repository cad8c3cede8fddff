//! `-s reload|stop|status`: talking to the running daemon through its
//! pidfile, signals and status file.
//!
//! The pidfile's lock, not its existence, says whether a daemon runs. `reload`
//! validates the configuration here first (a broken file is reported with
//! exit 78 and the daemon is not disturbed), then sends SIGHUP and watches
//! the status file until the daemon has acted on it: exit 0 when the new
//! generation serves, 1 with the daemon's own reason when it rejected the
//! reload, 1 after 10 s without an answer.
//!
//! `stop` and `status` work with a broken configuration file: they need
//! only `daemon.pid_file` (and `daemon.user`, whose files are trusted, and
//! `limits.shutdown_grace_secs`, how long to wait), which they then read
//! leniently, or fall back to the built-in default pidfile,
//! and they say on stderr which they used.
//!
//! Nothing is signalled on the word of a pidfile that could have been
//! planted: [`pidfile::find_daemon`] accepts it only in a directory that
//! passes the runtime checks, owned by root or the daemon's user, and only
//! when the pid it names holds its lock.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::{Config, Env};
use crate::error::{EXIT_NOT_RUNNING, Error, Result};
use crate::{pidfile, status};

const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// Runs one control command; `json`: `status` as one JSON object.
pub fn run(cmd: &str, config: Option<&Path>, env: &Env, json: bool) -> Result<()> {
    match cmd {
        "reload" => reload(&Target::of(&Config::load(config, env)?, env)),
        "stop" => stop(&Target::lenient(config, env)),
        "status" => show_status(&Target::lenient(config, env), json),
        other => Err(Error::Usage(format!("unknown control command {other:?}"))),
    }
}

/// What a control command needs of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    pid_file: PathBuf,
    status_file: PathBuf,
    /// `daemon.user`, whose files are trusted besides root's.
    user: String,
    shutdown_grace_secs: u64,
}

impl Target {
    fn of(cfg: &Config, env: &Env) -> Self {
        Target {
            pid_file: cfg.daemon.pid_file.clone(),
            status_file: cfg.status_file(env),
            user: cfg.daemon.user.clone(),
            shutdown_grace_secs: cfg.limits.shutdown_grace_secs,
        }
    }

    /// The configuration's target when it loads; else the keys read
    /// leniently from the file, or the defaults, with a word on stderr
    /// about which.
    fn lenient(config: Option<&Path>, env: &Env) -> Self {
        let err = match Config::load(config, env) {
            Ok(cfg) => return Self::of(&cfg, env),
            Err(e) => e,
        };
        eprintln!("hostinfod: warning: {err}");
        let mut cfg = Config::defaults(env);
        let path = config.map_or_else(
            || PathBuf::from(crate::config::DEFAULT_PATH),
            Path::to_path_buf,
        );
        let keys = std::fs::read(&path)
            .map(|b| lenient(&String::from_utf8_lossy(&b)))
            .unwrap_or_default();
        match keys.pid_file {
            Some(p) => {
                eprintln!(
                    "hostinfod: using daemon.pid_file = {:?} read leniently from {}",
                    p,
                    path.display()
                );
                cfg.daemon.pid_file = PathBuf::from(p);
            }
            None => eprintln!(
                "hostinfod: no readable daemon.pid_file in {}; using the default pidfile {}",
                path.display(),
                cfg.daemon.pid_file.display()
            ),
        }
        if let Some(u) = keys.user {
            cfg.daemon.user = u;
        }
        if let Some(g) = keys.grace {
            cfg.limits.shutdown_grace_secs = g;
        }
        Self::of(&cfg, env)
    }
}

/// The keys a control command needs, as far as they can be read from a
/// file that does not load.
#[derive(Debug, Default, PartialEq, Eq)]
struct Lenient {
    pid_file: Option<String>,
    user: Option<String>,
    grace: Option<u64>,
}

/// Reads `daemon.pid_file`, `daemon.user` and `limits.shutdown_grace_secs`
/// from `text`: as TOML when it parses (a file that is only invalid for
/// the daemon, e.g. an unknown key elsewhere), else line by line (`[daemon]`
/// then `pid_file = "..."`), so that a syntax error elsewhere in the file
/// does not hide them.
fn lenient(text: &str) -> Lenient {
    if let Ok(t) = text.parse::<toml::Table>() {
        let get = |sec: &str, key: &str| t.get(sec).and_then(|s| s.get(key)).cloned();
        return Lenient {
            pid_file: get("daemon", "pid_file").and_then(|v| v.as_str().map(str::to_string)),
            user: get("daemon", "user").and_then(|v| v.as_str().map(str::to_string)),
            grace: get("limits", "shutdown_grace_secs")
                .and_then(|v| v.as_integer())
                .and_then(|v| u64::try_from(v).ok()),
        };
    }
    let mut out = Lenient::default();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(h) = line.strip_prefix('[') {
            section = h.split(']').next().unwrap_or("").trim().to_string();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        // A one-line value: a basic string without escapes, a literal
        // string, or an integer; anything else is not read.
        let v = v.trim();
        let string = || {
            let q = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let rest = &v[1..];
            let end = rest.find(q)?;
            let s = &rest[..end];
            (q == '\'' || !s.contains('\\')).then(|| s.to_string())
        };
        match (section.as_str(), k.trim()) {
            ("daemon", "pid_file") => out.pid_file = string().or(out.pid_file),
            ("daemon", "user") => out.user = string().or(out.user),
            ("limits", "shutdown_grace_secs") => {
                let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
                out.grace = digits.parse().ok().or(out.grace);
            }
            _ => {}
        }
    }
    out
}

/// The running daemon's pid, or why there is none.
fn running_pid(t: &Target) -> Result<i32> {
    let path = &t.pid_file;
    if path.as_os_str().is_empty() {
        return Err(Error::NotRunning {
            detail: Some("daemon.pid_file is \"\", so the daemon cannot be found".into()),
        });
    }
    // The configured daemon.user owns the daemon's files when root starts
    // it; numeric or unknown names add nobody to those trusted.
    let user = Some(t.user.as_str())
        .filter(|u| !u.is_empty())
        .and_then(|u| crate::runtime::passwd_uid(u).or_else(|| u.parse().ok()));
    pidfile::find_daemon(path, user)?.map_err(|detail| Error::NotRunning {
        detail: Some(detail),
    })
}

fn signal(pid: i32, sig: Signal) -> Result<()> {
    kill(Pid::from_raw(pid), sig).map_err(|e| Error::sys(format!("kill {} {pid}", sig.as_str()), e))
}

/// True while the process exists and is not a zombie. kill(pid, 0) is the
/// test of existence; /proc only refines it (a zombie still "exists"), and
/// an unreadable /proc entry (hidepid, ProtectProc=, the instant of an exec)
/// never counts as an exit.
fn alive(pid: i32) -> bool {
    match kill(Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => false,
        _ => match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_none_or(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
            Err(_) => true,
        },
    }
}

fn stop(t: &Target) -> Result<()> {
    let pid = running_pid(t)?;
    signal(pid, Signal::SIGTERM)?;
    let limit = Duration::from_secs(t.shutdown_grace_secs.saturating_add(10));
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "pid {pid} still running {} s after SIGTERM",
                limit.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
    println!("hostinfod stopped (pid {pid})");
    Ok(())
}

fn field(map: &std::collections::BTreeMap<String, String>, k: &str) -> u64 {
    map.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn reload(t: &Target) -> Result<()> {
    let pid = running_pid(t)?;
    let path = &t.status_file;
    let before = status::read(path).unwrap_or_default();
    let (seq0, gen0) = (field(&before, "reload_seq"), field(&before, "generation"));
    signal(pid, Signal::SIGHUP)?;
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        if let Some(now) = status::read(path)
            && field(&now, "pid") == pid as u64
            && field(&now, "reload_seq") > seq0
        {
            let generation = field(&now, "generation");
            match now.get("last_reload_result").map(String::as_str) {
                Some("ok") if generation > gen0 => {
                    println!("hostinfod reloaded (pid {pid}, generation {generation})");
                    return Ok(());
                }
                Some("rejected") => {
                    let why = now.get("last_reload_error").cloned().unwrap_or_default();
                    return Err(Error::ReloadRejected(why));
                }
                _ => {}
            }
        }
        if !alive(pid) {
            return Err(Error::NotRunning {
                detail: Some(format!("pid {pid} exited during the reload")),
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "no answer from pid {pid} within {} s of SIGHUP",
                RELOAD_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// Live sessions: the daemon's children.
fn sessions(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().count())
        .unwrap_or(0)
}

fn show_status(t: &Target, json: bool) -> Result<()> {
    let pid = match running_pid(t) {
        Ok(pid) => pid,
        Err(e) => {
            // The reason too (which pidfile is missing, or pid_file = "").
            match e {
                Error::NotRunning { detail: Some(d) } => {
                    println!("hostinfod is not running ({d})")
                }
                Error::NotRunning { detail: None } => println!("hostinfod is not running"),
                // A pidfile that cannot be trusted: refused, status 1.
                e => return Err(e),
            }
            return Err(Error::Exit(EXIT_NOT_RUNNING));
        }
    };
    let path = &t.status_file;
    // The FIFO writers are children too, but not sessions.
    let writers = status::read(path)
        .and_then(|m| m.get("listeners").cloned())
        .map_or(0, |l| {
            l.split(", ").filter(|l| l.starts_with("fifo ")).count()
        });
    let live = sessions(pid).saturating_sub(writers);
    if json {
        let mut map = status::read(path).unwrap_or_default();
        if map.is_empty() {
            eprintln!("hostinfod: status file {} unreadable", path.display());
        }
        map.insert("pid".into(), pid.to_string());
        println!("{}", status::to_json(&map, live));
        return Ok(());
    }
    match status::read_text(path) {
        // The file's sessions= is up to a second old: the live count
        // replaces it.
        Ok(text) => text
            .lines()
            .filter(|l| !l.starts_with("sessions="))
            .for_each(|l| println!("{l}")),
        Err(e) => println!("pid={pid}\n# status file {}: {e}", path.display()),
    }
    println!("sessions={live}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_reads_through_syntax_errors() {
        let broken = "[listen]\ntcp = [\"x\"\n[daemon]\nuser = 'nobody'\npid_file = \"/run/a/h.pid\"  # c\n\
                      [limits]\nshutdown_grace_secs = 7\n";
        assert_eq!(
            lenient(broken),
            Lenient {
                pid_file: Some("/run/a/h.pid".into()),
                user: Some("nobody".into()),
                grace: Some(7),
            }
        );
        // Valid TOML that the daemon rejects: read as TOML.
        let invalid = "[daemon]\npid_file = \"/x/h.pid\"\nbogus = 1\n";
        assert_eq!(lenient(invalid).pid_file.as_deref(), Some("/x/h.pid"));
        // pid_file elsewhere than [daemon] is not it.
        assert_eq!(lenient("[limits]\npid_file = \"/y\"\n[x\n").pid_file, None);
        assert_eq!(lenient("\u{fffd}\u{fffd}").pid_file, None);
    }
}
