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
//! Nothing is signalled on the word of a pidfile that could have been
//! planted: [`pidfile::find_daemon`] accepts it only in a directory that
//! passes the runtime checks, owned by root or the daemon's user, and only
//! when the pid it names holds its lock.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::{Config, Env};
use crate::error::{EXIT_NOT_RUNNING, Error, Result};
use crate::{pidfile, status};

const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// Runs one control command.
pub fn run(cmd: &str, config: Option<&Path>, env: &Env) -> Result<()> {
    let cfg = Config::load(config, env)?;
    match cmd {
        "reload" => reload(&cfg, env),
        "stop" => stop(&cfg),
        "status" => show_status(&cfg, env),
        other => Err(Error::Usage(format!("unknown control command {other:?}"))),
    }
}

/// The running daemon's pid, or why there is none.
fn running_pid(cfg: &Config) -> Result<i32> {
    let path = &cfg.daemon.pid_file;
    if path.as_os_str().is_empty() {
        return Err(Error::NotRunning {
            detail: Some("daemon.pid_file is \"\", so the daemon cannot be found".into()),
        });
    }
    // The configured daemon.user owns the daemon's files when root starts
    // it; numeric or unknown names add nobody to those trusted.
    let user = Some(cfg.daemon.user.as_str())
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

fn stop(cfg: &Config) -> Result<()> {
    let pid = running_pid(cfg)?;
    signal(pid, Signal::SIGTERM)?;
    let limit = Duration::from_secs(cfg.limits.shutdown_grace_secs + 10);
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

fn reload(cfg: &Config, env: &Env) -> Result<()> {
    let pid = running_pid(cfg)?;
    let path = cfg.status_file(env);
    let before = status::read(&path).unwrap_or_default();
    let (seq0, gen0) = (field(&before, "reload_seq"), field(&before, "generation"));
    signal(pid, Signal::SIGHUP)?;
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        if let Some(now) = status::read(&path)
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

fn show_status(cfg: &Config, env: &Env) -> Result<()> {
    let pid = match running_pid(cfg) {
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
    let path = cfg.status_file(env);
    // The FIFO writers are children too, but not sessions.
    let mut writers = 0;
    match status::read_text(&path) {
        Ok(text) => {
            print!("{text}");
            writers = text
                .lines()
                .filter_map(|l| l.strip_prefix("listeners="))
                .flat_map(|l| l.split(", "))
                .filter(|l| l.starts_with("fifo "))
                .count();
        }
        Err(e) => println!("pid={pid}\n# status file {}: {e}", path.display()),
    }
    println!("sessions={}", sessions(pid).saturating_sub(writers));
    Ok(())
}
