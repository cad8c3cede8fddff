//! What /proc says about a process (its children, state, fds, ids, masks,
//! CPU time and memory), and resource limits set from outside.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::eventually;

/// Number of open fds of `pid`.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The open fd numbers of `pid`.
pub fn fds_of(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Where `/proc/PID/fd/N` points.
pub fn fd_target(pid: i32, fd: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// Children of `pid` (from /proc/PID/task/PID/children).
pub fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Children of `pid` that are zombies.
pub fn zombies_of(pid: i32) -> Vec<i32> {
    children_of(pid)
        .into_iter()
        .filter(|c| proc_state(*c) == Some('Z'))
        .collect()
}

/// Waits (bounded) until `pid` has exactly one child and returns it: the
/// session of the client just greeted.
pub fn single_child(pid: i32) -> i32 {
    let mut kids = Vec::new();
    let ok = eventually(Duration::from_secs(5), || {
        kids = children_of(pid);
        kids.len() == 1
    });
    assert!(ok, "expected one child of {pid}, have {kids:?}");
    kids[0]
}

/// The one-letter state of a process.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// True unless the process is gone or a zombie (a zombie has ended; one
/// reparented to a slow subreaper may linger as such, and a child of the test
/// stays one until the test waits for it).
pub fn running(pid: i32) -> bool {
    !matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// `/proc/PID/stat` fields after the command name: [0] state, [1] ppid,
/// [2] pgrp, [3] session, [4] tty_nr, …
pub fn proc_stat(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.to_string()))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The value of a `/proc/PID/status` line (`Umask`, `Uid`, …), trimmed.
pub fn proc_status(pid: i32, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
}

/// A bit of a `/proc/PID/status` signal mask line (SigIgn, SigBlk, …).
pub fn sig_in_mask(pid: i32, key: &str, sig: nix::sys::signal::Signal) -> bool {
    let mask = proc_status(pid, key)
        .and_then(|m| u64::from_str_radix(&m, 16).ok())
        .unwrap_or_else(|| panic!("no {key} for pid {pid}"));
    mask & (1u64 << (sig as i32 - 1)) != 0
}

/// True while `pid` runs (not a zombie) with `config` among its arguments:
/// a recycled pid is never taken for our daemon.
pub fn runs_with_config(pid: i32, config: &Path) -> bool {
    let want = config.as_os_str().as_encoded_bytes();
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == want))
        && running(pid)
}

/// Live (non-zombie) processes whose command line names `config`.
pub fn procs_with_config(config: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&pid| runs_with_config(pid, config))
                .collect()
        })
        .unwrap_or_default()
}

/// CPU time (user + system) `pid` has used so far, from /proc/PID/stat.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after "(comm) ": state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Resident set size of `pid` in kB (VmRSS).
pub fn rss_kb(pid: i32) -> u64 {
    proc_status(pid, "VmRSS")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Tasks (threads of all processes) whose real uid is `uid`: what
/// RLIMIT_NPROC counts.
pub fn tasks_of_uid(uid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
                == Some(uid)
        })
        .map(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1)
        })
        .sum()
}

/// Sets the soft limit `res` of another process (prlimit(2)), keeping its
/// hard limit; returns the previous (soft, hard) pair.
pub fn set_rlimit_of(pid: i32, res: nix::sys::resource::Resource, soft: u64) -> (u64, u64) {
    use nix::libc;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer; a null new-limit only reads.
    let r = unsafe { libc::prlimit(pid, res as _, std::ptr::null(), &mut old) };
    assert_eq!(r, 0, "prlimit get: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: valid pointers for the call.
    let r = unsafe { libc::prlimit(pid, res as _, &new, std::ptr::null_mut()) };
    assert_eq!(r, 0, "prlimit set: {}", std::io::Error::last_os_error());
    (old.rlim_cur, old.rlim_max)
}

/// Sets the soft RLIMIT_NOFILE of another process; returns the previous
/// (soft, hard) pair.
pub fn set_nofile_of(pid: i32, soft: u64) -> (u64, u64) {
    set_rlimit_of(pid, nix::sys::resource::Resource::RLIMIT_NOFILE, soft)
}

/// Raises this test process's soft RLIMIT_NOFILE to at least `want` (up to
/// the hard limit); returns the soft limit now in force.
pub fn raise_own_nofile(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= want {
        return soft;
    }
    let new = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, new, hard).expect("setrlimit");
    new
}
