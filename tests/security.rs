//! The attacks of a hostile local user on hostinfod's runtime files, each
//! scripted against the real binary: a foreign, world-writable or symlinked
//! `/tmp/hostinfod-$UID`; symlinks planted at the status file, its temporary
//! name, the pidfile and the socket path; a foreign locked pidfile naming
//! another process; a socket directory others can write while a process
//! swaps symlinks in it during start-up. In every case the test lists the
//! files at stake (type, mode, owner, size, content hash) before and after,
//! prints both (`--nocapture` shows them), and asserts that nothing outside
//! the daemon's own files changed, that no foreign process was signalled,
//! and that the refusal is one line naming the path, exit status 1.
//!
//! The tests create throwaway Unix users (useradd) and run the daemon as
//! them with setpriv, so they need root, as CI has; without root they fail
//! with that reason rather than pass untested. Users, processes and
//! directories they create are removed by guards, also when an assertion
//! fails.

mod common;

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, TestUser};

fn need_root(test: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{test} needs root (it creates Unix users and runs hostinfod as them); run it as root, as CI does"
    );
}

// ---- throwaway users ----

/// Running things as a throwaway user ([`common::TestUser`]).
trait RunAs {
    /// `setpriv` as this user, HOME and XDG_RUNTIME_DIR unset (so the
    /// daemon's runtime directory is /tmp/hostinfod-$UID), `umask` applied.
    fn cmd(&self, prog: &str, umask: u32) -> Command;
    /// The daemon's runtime directory for this user.
    fn run_dir(&self) -> PathBuf;
}

impl RunAs for TestUser {
    fn cmd(&self, prog: &str, umask: u32) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.gid.to_string(),
            "--clear-groups",
            "--",
            prog,
        ])
        .env_remove("HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
        // SAFETY: umask is async-signal-safe; nothing else runs here.
        unsafe {
            c.pre_exec(move || {
                nix::libc::umask(umask as nix::libc::mode_t);
                Ok(())
            });
        }
        c
    }

    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/hostinfod-{}", self.uid))
    }
}

/// Removes a path (a directory with its contents, or a symlink) on drop.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.0) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(&self.0);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&self.0);
            }
            Err(_) => {}
        }
    }
}

/// A process the test started, killed by its PID on drop.
struct Proc(Option<Child>);

impl Proc {
    fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Exit status within `within`, or None if still running.
    fn wait_for(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        let c = self.0.as_mut()?;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let pid = self.pid();
        if pid > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let st = self.wait_for(Duration::from_secs(10));
        if st.is_none()
            && let Some(c) = self.0.as_mut()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        st
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// True while `pid` runs and has no signal pending or taken (not a zombie).
fn untouched(pid: i32) -> bool {
    let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    !field("State:").starts_with('Z')
        && field("SigPnd:").trim_start_matches('0').is_empty()
        && field("ShdPnd:").trim_start_matches('0').is_empty()
}

// ---- listings ----

fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a: enough to see that content changed.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn entry(p: &Path) -> String {
    match std::fs::symlink_metadata(p) {
        Err(_) => format!("(absent)                       {}", p.display()),
        Ok(m) => {
            let ft = m.file_type();
            let kind = if ft.is_symlink() {
                'l'
            } else if ft.is_dir() {
                'd'
            } else if ft.is_file() {
                '-'
            } else {
                use std::os::unix::fs::FileTypeExt;
                if ft.is_socket() { 's' } else { '?' }
            };
            let extra = if ft.is_symlink() {
                format!(
                    " -> {}",
                    std::fs::read_link(p).map_or("?".into(), |t| t.display().to_string())
                )
            } else if ft.is_file() {
                format!(" #{:016x}", hash(&std::fs::read(p).unwrap_or_default()))
            } else {
                String::new()
            };
            format!(
                "{kind}{:04o} {:>6}:{:<6} {:>5} {}{extra}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.len(),
                p.display()
            )
        }
    }
}

/// Each path and, for a real directory, what it holds (two levels).
fn listing(paths: &[&Path]) -> Vec<String> {
    fn walk(p: &Path, depth: u32, out: &mut Vec<String>) {
        out.push(entry(p));
        if depth == 0 {
            return;
        }
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
            && let Ok(rd) = std::fs::read_dir(p)
        {
            let mut names: Vec<PathBuf> = rd.filter_map(|e| Some(e.ok()?.path())).collect();
            names.sort();
            for n in names {
                walk(&n, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, 2, &mut out);
    }
    out
}

fn show(title: &str, before: &[String], after: &[String], outcome: &str) {
    println!("=== {title}");
    println!("--- before");
    for l in before {
        println!("    {l}");
    }
    println!("--- after");
    for l in after {
        println!("    {l}");
    }
    println!("--- outcome: {outcome}");
}

/// A refusal: exit 1, one line on stderr that names `path`.
fn assert_refused(status: Option<std::process::ExitStatus>, stderr: &str, path: &Path) -> String {
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "refused with status 1: {stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(
        lines[0].contains(&*path.to_string_lossy()),
        "the message names {}: {stderr:?}",
        path.display()
    );
    lines[0].to_string()
}

/// A directory for one test's files: root-owned, mode `mode`.
fn workdir(mode: u32) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("hidsec")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
    d
}

fn chown(p: &Path, u: &TestUser) {
    std::os::unix::fs::lchown(p, Some(u.uid), Some(u.gid)).expect("chown");
}

fn write_file(p: &Path, text: &str, mode: u32, owner: Option<&TestUser>) {
    std::fs::write(p, text).expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if let Some(u) = owner {
        chown(p, u);
    }
}

/// Runs `hostinfod -f -c CONFIG` as `u` until it exits (a refusal) or
/// `within` passes (then it is stopped and None returned with its stderr).
fn daemon_as(
    u: &TestUser,
    config: &Path,
    umask: u32,
    within: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    let mut c = u.cmd(BIN, umask);
    c.arg("-f")
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut p = Proc(Some(c.spawn().expect("spawn daemon")));
    let st = p.wait_for(within);
    if st.is_none() {
        p.stop();
    }
    let mut err = String::new();
    if let Some(c) = p.0.as_mut()
        && let Some(mut e) = c.stderr.take()
    {
        let _ = e.read_to_string(&mut err);
    }
    (st, err)
}

/// A config readable by the test users: no TCP (no port to share), the
/// rest as given.
fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("hostinfod.toml");
    write_file(&p, &format!("[listen]\ntcp = []\n{text}"), 0o644, None);
    p
}

// ---- 1. another user's /tmp/hostinfod-$UID ----

#[test]
fn foreign_world_writable_or_symlinked_fallback_dir_is_refused() {
    need_root("foreign_world_writable_or_symlinked_fallback_dir_is_refused");
    let victim = TestUser::new("v");
    let mallory = TestUser::new("m");
    let work = workdir(0o755);
    let cfg = config(work.path(), "");
    // A file of the daemon's user that the attacker wants overwritten.
    let vhome = work.path().join("vhome");
    std::fs::create_dir(&vhome).expect("mkdir");
    std::fs::set_permissions(&vhome, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    chown(&vhome, &victim);
    let secret = vhome.join("secret");
    write_file(&secret, "the victim's secret\n", 0o600, Some(&victim));
    // The attacker's own directory, for the symlink case.
    let mdir = work.path().join("mallory");
    std::fs::create_dir(&mdir).expect("mkdir");
    std::fs::set_permissions(&mdir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    chown(&mdir, &mallory);

    let run = victim.run_dir();
    let _cleanup = RemoveOnDrop(run.clone());
    // (who owns it, mode, symlink?) and the words the refusal must use.
    let cases: [(&str, Option<&TestUser>, u32, bool, &str); 4] = [
        (
            "owned by another user, 0755",
            Some(&mallory),
            0o755,
            false,
            "is owned by",
        ),
        (
            "owned by another user, 0777",
            Some(&mallory),
            0o777,
            false,
            "is owned by",
        ),
        (
            "the daemon user's own, but 0777",
            Some(&victim),
            0o777,
            false,
            "writable by others",
        ),
        (
            "a symlink to the attacker's directory",
            None,
            0,
            true,
            "symbolic link",
        ),
    ];
    for (what, owner, mode, symlink, words) in cases {
        let _ = std::fs::remove_dir_all(&run);
        let _ = std::fs::remove_file(&run);
        let inside = if symlink {
            std::os::unix::fs::symlink(&mdir, &run).expect("symlink");
            chown(&run, &mallory);
            mdir.clone()
        } else {
            std::fs::create_dir(&run).expect("mkdir");
            std::fs::set_permissions(&run, std::fs::Permissions::from_mode(mode)).expect("chmod");
            chown(&run, owner.expect("owner"));
            run.clone()
        };
        // What the attacker plants inside: a symlink at the status file's
        // temporary name and at the pidfile, both to the victim's secret.
        for n in ["hostinfod.status.tmp", "hostinfod.status", "hostinfod.pid"] {
            let p = inside.join(n);
            let _ = std::fs::remove_file(&p);
            std::os::unix::fs::symlink(&secret, &p).expect("plant");
            chown(&p, &mallory);
        }
        let paths = [run.as_path(), mdir.as_path(), secret.as_path()];
        let before = listing(&paths);
        let (st, err) = daemon_as(&victim, &cfg, 0o022, Duration::from_secs(10));
        let after = listing(&paths);
        let line = assert_refused(st, &err, &run);
        assert!(line.contains(words), "{what}: {line:?}");
        show(
            &format!("/tmp/hostinfod-$UID {what}"),
            &before,
            &after,
            &format!("refused, exit 1: {line}"),
        );
        assert_eq!(before, after, "{what}: nothing changed");
        for n in ["hostinfod.status.tmp", "hostinfod.status", "hostinfod.pid"] {
            let _ = std::fs::remove_file(inside.join(n));
        }
    }
}

// ---- 2. symlinks planted in the daemon's own directory (root daemon) ----

/// /run/hostinfod as the packaging makes it: owned by the service user,
/// who (compromised) plants symlinks to a root-owned 0600 file.
struct ServiceLayout {
    work: tempfile::TempDir,
    svc: TestUser,
    run: PathBuf,
    secret: PathBuf,
    cfg: PathBuf,
}

impl ServiceLayout {
    fn new() -> ServiceLayout {
        let svc = TestUser::new("s");
        let work = workdir(0o755);
        let run = work.path().join("run");
        std::fs::create_dir(&run).expect("mkdir");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        chown(&run, &svc);
        let etc = work.path().join("etc");
        std::fs::create_dir(&etc).expect("mkdir");
        let secret = etc.join("shadow");
        write_file(&secret, "root:secret:1::::::\n", 0o600, None);
        let cfg = config(
            work.path(),
            &format!(
                "unix = [{:?}]\n[daemon]\npid_file = {:?}\nuser = {:?}\n",
                run.join("hostinfod.sock"),
                run.join("hostinfod.pid"),
                svc.name
            ),
        );
        ServiceLayout {
            work,
            svc,
            run,
            secret,
            cfg,
        }
    }

    fn plant(&self, name: &str) {
        let p = self.run.join(name);
        std::os::unix::fs::symlink(&self.secret, &p).expect("plant");
        chown(&p, &self.svc);
    }

    /// Runs the daemon as root in the foreground; returns exit status (None:
    /// it served and was stopped) and stderr.
    fn start(&self) -> (Option<std::process::ExitStatus>, String) {
        let log = self.work.path().join("stderr.log");
        let mut p = Proc(Some(
            Command::new(BIN)
                .arg("-f")
                .arg("-c")
                .arg(&self.cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("spawn"),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut st = None;
        while Instant::now() < deadline {
            if let Some(s) = p.wait_for(Duration::from_millis(10)) {
                st = Some(s);
                break;
            }
            if std::fs::read_to_string(&log).is_ok_and(|t| t.contains("listening on")) {
                break;
            }
        }
        if st.is_none() {
            assert!(
                std::os::unix::net::UnixStream::connect(self.run.join("hostinfod.sock")).is_ok(),
                "serving"
            );
            p.stop();
        }
        (st, std::fs::read_to_string(&log).unwrap_or_default())
    }
}

#[test]
fn symlink_at_status_file_and_its_temporary_name_is_not_followed() {
    need_root("symlink_at_status_file_and_its_temporary_name_is_not_followed");
    let l = ServiceLayout::new();
    l.plant("hostinfod.status.tmp");
    l.plant("hostinfod.status");
    let paths = [l.secret.as_path()];
    let before = listing(&paths);
    let before_run = listing(&[l.run.as_path()]);
    let (st, err) = l.start();
    let after = listing(&paths);
    show(
        "symlinks at hostinfod.status.tmp and hostinfod.status (root daemon, user = service user)",
        &[before.clone(), before_run].concat(),
        &[after.clone(), listing(&[l.run.as_path()])].concat(),
        "served; neither symlink followed (a fresh O_EXCL temporary name, renamed over the link)",
    );
    assert!(st.is_none(), "the daemon serves: {err}");
    assert_eq!(before, after, "the root-owned file is unchanged");
    // The planted temporary-name link is left alone, not followed.
    assert!(
        std::fs::symlink_metadata(l.run.join("hostinfod.status.tmp"))
            .expect("planted link")
            .file_type()
            .is_symlink()
    );
}

#[test]
fn symlink_at_pidfile_or_socket_path_is_refused() {
    need_root("symlink_at_pidfile_or_socket_path_is_refused");
    for name in ["hostinfod.pid", "hostinfod.sock"] {
        let l = ServiceLayout::new();
        l.plant(name);
        let paths = [l.secret.as_path(), l.run.as_path()];
        let before = listing(&paths);
        let (st, err) = l.start();
        let after = listing(&paths);
        let line = assert_refused(st, &err, &l.run.join(name));
        assert!(line.contains("symbolic link"), "{line:?}");
        show(
            &format!("symlink at {name} (root daemon, user = service user)"),
            &before,
            &after,
            &format!("refused, exit 1: {line}"),
        );
        assert_eq!(before, after, "nothing changed");
    }
}

// ---- 3. a foreign locked pidfile naming another process ----

/// Runs `sh -c SCRIPT` as `u`, waits for it to print "ready".
fn sh_as(u: &TestUser, script: &str, args: &[&str]) -> Proc {
    let mut c = u.cmd("/bin/sh", 0o022);
    c.arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .stdout(Stdio::piped());
    let mut p = Proc(Some(c.spawn().expect("spawn sh")));
    let mut out = p.0.as_mut().and_then(|c| c.stdout.take()).expect("stdout");
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).expect("ready");
    assert_eq!(&buf, b"ready\n");
    p
}

/// A process of `u` that holds an exclusive flock on `file` itself (taken
/// between fork and exec, kept across the exec of `sleep`), as a daemon
/// holds its pidfile's.
fn lock_as(u: &TestUser, file: &Path) -> Proc {
    let path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).expect("path");
    let mut c = Command::new("sleep");
    c.arg("60").uid(u.uid).gid(u.gid).stdin(Stdio::null());
    // SAFETY: open and flock are async-signal-safe system calls; the
    // CString was allocated before the fork.
    unsafe {
        c.pre_exec(move || {
            let fd = nix::libc::open(path.as_ptr(), nix::libc::O_RDONLY);
            if fd < 0 || nix::libc::flock(fd, nix::libc::LOCK_EX | nix::libc::LOCK_NB) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let p = Proc(Some(c.spawn().expect("spawn lock holder")));
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    assert!(
        locks
            .lines()
            .any(|l| l.split_whitespace().nth(4) == Some(&*p.pid().to_string())),
        "pid {} holds the lock: {locks}",
        p.pid()
    );
    p
}

#[test]
fn foreign_locked_pidfile_is_not_trusted_and_nothing_is_signalled() {
    need_root("foreign_locked_pidfile_is_not_trusted_and_nothing_is_signalled");
    let victim = TestUser::new("v");
    let mallory = TestUser::new("m");
    let work = workdir(0o755);
    let cfg = config(work.path(), "");
    let run = victim.run_dir();
    let _cleanup = RemoveOnDrop(run.clone());
    let pidfile = run.join("hostinfod.pid");
    // The attacker's process that the pidfile names, and the one that holds
    // the pidfile's lock (flock on fd 9, kept across the exec of sleep).
    let named = sh_as(&mallory, "echo ready; exec sleep 60", &[]);
    let made = sh_as(
        &mallory,
        "mkdir -m 0777 \"$1\" && printf '%s\\n' \"$3\" > \"$2\" && echo ready",
        &[
            &run.to_string_lossy(),
            &pidfile.to_string_lossy(),
            &named.pid().to_string(),
        ],
    );
    drop(made);
    let holder = lock_as(&mallory, &pidfile);
    let paths = [run.as_path()];
    for cmd in ["stop", "reload", "status"] {
        let before = listing(&paths);
        let out = victim
            .cmd(BIN, 0o022)
            .args(["-c", &cfg.to_string_lossy(), "-s", cmd])
            .output()
            .expect("run -s");
        let after = listing(&paths);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let line = assert_refused(Some(out.status), &err, &run);
        show(
            &format!(
                "-s {cmd} by the daemon's user; /tmp/hostinfod-$UID is the attacker's (0777), its \
                 pidfile names pid {} (locked by pid {})",
                named.pid(),
                holder.pid()
            ),
            &before,
            &after,
            &format!("refused, exit 1: {line}"),
        );
        assert_eq!(before, after);
        assert!(untouched(named.pid()), "pid {} not signalled", named.pid());
        assert!(
            untouched(holder.pid()),
            "pid {} not signalled",
            holder.pid()
        );
    }

    // Root asked to stop a daemon whose pidfile sits in a directory of the
    // attacker's that no one else can write, naming a process that does not
    // hold the lock: one of the attacker's, or one of root's.
    let mdir = work.path().join("mallory");
    std::fs::create_dir(&mdir).expect("mkdir");
    chown(&mdir, &mallory);
    let mpid = mdir.join("h.pid");
    let root_proc = Proc(Some(
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep"),
    ));
    write_file(
        &mpid,
        &format!("{}\n", root_proc.pid()),
        0o644,
        Some(&mallory),
    );
    let holder2 = lock_as(&mallory, &mpid);
    let rcfg = work.path().join("root.toml");
    write_file(
        &rcfg,
        &format!("[listen]\ntcp = []\n[daemon]\npid_file = {mpid:?}\n"),
        0o644,
        None,
    );
    let paths = [mdir.as_path()];
    let before = listing(&paths);
    let out = Command::new(BIN)
        .args(["-c", &rcfg.to_string_lossy(), "-s", "stop"])
        .stdin(Stdio::null())
        .output()
        .expect("run -s stop");
    let after = listing(&paths);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = assert_refused(Some(out.status), &err, &mpid);
    assert!(
        line.contains(&format!("held by pid {}", holder2.pid())),
        "{line:?}"
    );
    show(
        &format!(
            "-s stop by root; the pidfile names root's pid {}, its lock is held by the attacker's pid {}",
            root_proc.pid(),
            holder2.pid()
        ),
        &before,
        &after,
        &format!("refused, exit 1: {line}"),
    );
    assert_eq!(before, after);
    assert!(untouched(root_proc.pid()), "root's process not signalled");
    assert!(untouched(holder2.pid()), "attacker's process not signalled");
}

// ---- 4. a socket directory others can write, symlinks swapped meanwhile ----

const STARTS: usize = 200;

/// The attacker's loop: a symlink to `target` renamed over `name` in `dir`
/// again and again (bounded, and ended by the test through `stop`).
fn swapper(u: &TestUser, dir: &Path, names: &[&str], target: &Path, stop: &Path) -> Proc {
    let mut script = String::from(
        "echo ready; i=0; while [ $i -lt 200000 ] && [ ! -e \"$3\" ]; do i=$((i+1)); ",
    );
    for n in names {
        script.push_str(&format!(
            "ln -sfn \"$2\" \"$1/.{n}.x\" 2>/dev/null; mv -fT \"$1/.{n}.x\" \"$1/{n}\" 2>/dev/null; "
        ));
    }
    script.push_str("done");
    sh_as(
        u,
        &script,
        &[
            &dir.to_string_lossy(),
            &target.to_string_lossy(),
            &stop.to_string_lossy(),
        ],
    )
}

#[test]
fn writable_socket_directory_with_symlink_swapping_is_refused_every_start() {
    need_root("writable_socket_directory_with_symlink_swapping_is_refused_every_start");
    let mallory = TestUser::new("m");
    let svc = TestUser::new("s");
    let work = workdir(0o755);
    let shared = work.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    // Root's, but anyone may write in it (and it is not sticky).
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let secret = work.path().join("secret");
    write_file(&secret, "root only\n", 0o600, None);
    let piddir = work.path().join("piddir");
    std::fs::create_dir(&piddir).expect("mkdir");
    let sock = shared.join("hostinfod.sock");
    let stop = work.path().join("stop");
    let sw = swapper(&mallory, &shared, &["hostinfod.sock"], &secret, &stop);
    let _stop_swapper = scopeguard(&stop, sw);
    let before = listing(&[secret.as_path()]);
    let mut first_line = String::new();
    for i in 0..STARTS {
        // Half as root alone, half with daemon.user (where the socket used
        // to be chowned by path after bind).
        let user = if i % 2 == 0 {
            String::new()
        } else {
            format!("user = {:?}\n", svc.name)
        };
        let cfg = config(
            work.path(),
            &format!(
                "unix = [{sock:?}]\n[daemon]\npid_file = {:?}\n{user}",
                piddir.join("h.pid")
            ),
        );
        let out = Command::new(BIN)
            .args(["-f", "-c", &cfg.to_string_lossy()])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let line = assert_refused(Some(out.status), &err, &shared);
        assert!(line.contains("writable by others"), "{line:?}");
        if i == 0 {
            first_line = line;
        }
    }
    let after = listing(&[secret.as_path()]);
    show(
        &format!(
            "socket directory writable by the attacker (root's, mode 0777), symlinks to a root 0600 file swapped at the \
             socket path: {STARTS} starts"
        ),
        &before,
        &after,
        &format!("{STARTS}/{STARTS} refused, exit 1: {first_line}"),
    );
    assert_eq!(before, after, "the root-owned file is unchanged");
}

/// Stops the swapper (stop file, then by PID) when the test ends.
struct SwapperGuard(PathBuf, Proc);

fn scopeguard(stop: &Path, p: Proc) -> SwapperGuard {
    SwapperGuard(stop.to_path_buf(), p)
}

impl Drop for SwapperGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
        if self.1.wait_for(Duration::from_secs(5)).is_none() {
            self.1.stop();
        }
    }
}

#[test]
fn sticky_shared_directory_race_never_touches_a_foreign_file() {
    // The one shared directory the checks accept: sticky and root-owned,
    // like /tmp. Others can create names in it but not replace ours; the
    // attacker races symlinks onto the socket path and the status file
    // while the daemon starts, 200 times. (A symlink at the pidfile is
    // refused before anything else: see the tests above.)
    need_root("sticky_shared_directory_race_never_touches_a_foreign_file");
    let mallory = TestUser::new("m");
    let svc = TestUser::new("s");
    let work = workdir(0o755);
    let shared = work.path().join("tmp");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let secret = work.path().join("secret");
    write_file(&secret, "root only\n", 0o600, None);
    let sock = shared.join("h.sock");
    let pid = shared.join("h.pid");
    let stop = work.path().join("stop");
    let cfg = config(
        work.path(),
        &format!(
            "unix = [{sock:?}]\nunix_mode = \"0660\"\n[daemon]\npid_file = {pid:?}\nuser = {:?}\n",
            svc.name
        ),
    );
    let sw = swapper(&mallory, &shared, &["h.sock", "h.status"], &secret, &stop);
    let guard = scopeguard(&stop, sw);
    let before = listing(&[secret.as_path()]);
    let (mut served, mut refused) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    let log = work.path().join("stderr.log");
    for _ in 0..STARTS {
        let mut p = Proc(Some(
            Command::new(BIN)
                .args(["-f", "-c", &cfg.to_string_lossy()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("spawn"),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut st = None;
        while Instant::now() < deadline {
            if let Some(s) = p.wait_for(Duration::from_millis(2)) {
                st = Some(s);
                break;
            }
            if std::fs::read_to_string(&log).is_ok_and(|t| t.contains("listening on")) {
                break;
            }
        }
        // The error, without the log records before it ("running as
        // user ...": the status file is first written after the drop).
        let err: String = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("hostinfod["))
            .map(|l| format!("{l}\n"))
            .collect();
        match st {
            Some(s) => {
                // Refused: the one line names what was in the way.
                // (The status file too: one that cannot be replaced fails
                // the start.)
                let status = pid.with_extension("status");
                let named = [&sock, &pid, &status]
                    .into_iter()
                    .find(|q| err.contains(&*q.to_string_lossy()));
                let path = named.unwrap_or_else(|| panic!("refusal names a path: {err:?}"));
                let line = assert_refused(Some(s), &err, path);
                seen.insert(line.replace(&*shared.to_string_lossy(), "DIR"));
                refused += 1;
            }
            None => {
                // Served: the socket file is ours, with its mode from the start.
                let m = std::fs::symlink_metadata(&sock).expect("socket");
                assert!(std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
                assert_eq!(m.mode() & 0o777, 0o660, "socket mode");
                assert_eq!(m.gid(), svc.gid, "socket group");
                assert!(p.stop().is_some(), "stopped");
                served += 1;
            }
        }
        assert_eq!(
            listing(&[secret.as_path()]),
            before,
            "the root-owned file is unchanged"
        );
    }
    drop(guard);
    let after = listing(&[secret.as_path()]);
    show(
        &format!(
            "sticky root-owned shared directory, symlinks to a root 0600 file raced at h.sock and h.status: {STARTS} starts"
        ),
        &before,
        &after,
        &format!(
            "{served} served (no symlink followed), {refused} refused, exit 1, with: {}",
            seen.into_iter().collect::<Vec<_>>().join(" | ")
        ),
    );
    assert_eq!(before, after);
    assert_eq!(served + refused, STARTS);
}

// ---- umask and reload ----

#[test]
fn umask_000_in_the_foreground_still_gives_private_files() {
    need_root("umask_000_in_the_foreground_still_gives_private_files");
    let victim = TestUser::new("v");
    let work = workdir(0o755);
    let cfg = config(work.path(), "");
    let run = victim.run_dir();
    let _cleanup = RemoveOnDrop(run.clone());
    let _ = std::fs::remove_dir_all(&run);
    let mut c = victim.cmd(BIN, 0o000);
    c.arg("-f")
        .arg("-c")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut p = Proc(Some(c.spawn().expect("spawn")));
    let status = run.join("hostinfod.status");
    assert!(
        common::eventually(Duration::from_secs(10), || status.exists()),
        "serving"
    );
    let listed = listing(&[run.as_path()]);
    let mode = |q: &Path| std::fs::symlink_metadata(q).expect("meta").mode() & 0o7777;
    assert_eq!(mode(&run), 0o700, "runtime directory");
    assert_eq!(std::fs::metadata(&run).expect("meta").uid(), victim.uid);
    assert_eq!(mode(&run.join("hostinfod.pid")), 0o644, "pidfile");
    assert_eq!(mode(&status) & !0o644, 0, "status file 0644 or stricter");
    assert_eq!(
        mode(&run.join("hostinfod.sock")),
        0o666,
        "socket: listen.unix_mode"
    );
    show(
        "umask 000, -f, as an unprivileged user (HOME and XDG_RUNTIME_DIR unset)",
        &[],
        &listed,
        "directory 0700, files 0644 or stricter",
    );
    assert!(p.stop().is_some_and(|s| s.success()), "stopped cleanly");
}

#[test]
fn reload_into_an_untrusted_runtime_directory_is_rejected() {
    let s = common::Setup::new("");
    let d = s.start();
    let open = s.path("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let extra = open.join("extra.sock");
    s.write_raw(&s.base().replace(
        &format!("unix = [{:?}]", s.sock),
        &format!("unix = [{:?}, {extra:?}]", s.sock),
    ));
    let (code, _, err) = s.run(&["-s", "reload"]);
    assert_eq!(code, 1, "{err:?}");
    assert!(
        err.contains("reload rejected")
            && err.contains(&*open.to_string_lossy())
            && err.contains("writable by others"),
        "{err:?}"
    );
    assert!(!extra.exists(), "nothing bound there");
    // Still serving, the old generation.
    let st = s.run(&["-s", "status"]);
    assert_eq!(st.0, 0, "{st:?}");
    assert!(
        st.1.contains("generation=0") && st.1.contains("last_reload_result=rejected"),
        "{st:?}"
    );
    drop(d);
}

#[test]
fn reload_changes_the_socket_mode_through_a_descriptor() {
    let s = common::Setup::new("");
    let d = s.start();
    let mode = |p: &Path| std::fs::symlink_metadata(p).expect("socket").mode() & 0o7777;
    assert_eq!(mode(&s.sock), 0o666, "unix_mode at bind");
    s.write_raw(
        &s.base()
            .replace("\n\n[daemon]", "\nunix_mode = \"0600\"\n\n[daemon]"),
    );
    let (code, out, err) = s.run(&["-s", "reload"]);
    assert_eq!(code, 0, "{out:?} {err:?}");
    assert_eq!(mode(&s.sock), 0o600, "unix_mode after the reload");
    drop(d);
}
