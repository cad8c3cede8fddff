//! `who`: the users logged in, read natively from `commands.utmp_file` or
//! from systemd-logind's session files, per `commands.who_source`.
//!
//! Nothing is executed: utmp is parsed by [`crate::utmp`], logind's session
//! files by [`crate::logind`]. As who(1) does, entries whose process is gone
//! are skipped (a crashed login manager leaves them behind). A missing
//! source means nobody is logged in, and so does one that cannot be read or
//! is not a regular file (a directory for logind).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::config::{Commands, WhoSource};
use crate::logind;
use crate::text::Fixed;
use crate::utmp;

/// utmp files are small (one 384-byte record per terminal); this bounds a
/// hostile or corrupt one.
const MAX_UTMP: usize = 4 << 20;

/// Where the ptys are, for the line of an SSH login that logind knows
/// without its TTY.
const PTS_DIR: &str = "/dev/pts";

/// At most this many entries of `/dev/pts` are looked at per guess.
const MAX_PTYS: usize = 4096;

/// The login time's format, who(1)'s default. It does not show the zone,
/// which [`super::date::write_local`] needs to know.
const WHEN_FORMAT: &str = "%Y-%m-%d %H:%M";
const WHEN_SHOWS_ZONE: bool = false;

/// Appends one line per logged-in user.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn reply(cfg: &Commands, eol: &[u8], out: &mut Vec<u8>) {
    let use_utmp = match cfg.who_source {
        WhoSource::Utmp => true,
        WhoSource::Logind => false,
        // who(1) built with systemd support reads logind only; where utmp
        // exists, who(1) reads it, and so does `who` here.
        WhoSource::Auto => cfg.utmp_file.exists(),
    };
    if use_utmp {
        reply_utmp(&cfg.utmp_file, eol, out);
    } else {
        reply_logind(
            Path::new(logind::SESSIONS_DIR),
            Path::new(PTS_DIR),
            eol,
            out,
        );
    }
}

/// The lines of the utmp file at `utmp_file` (at most [`MAX_UTMP`] bytes of
/// it; a partial record at the end, being appended, is left out).
///
/// Read a few records at a time into a stack buffer left uninitialised
/// ([`crate::fdio`]) and decoded in place: the session's child allocates
/// nothing for it (see crate::template).
#[unsafe(link_section = ".text.hot.hostinfod")]
fn reply_utmp(utmp_file: &Path, eol: &[u8], out: &mut Vec<u8>) {
    use std::os::fd::AsRawFd as _;
    let Ok((file, _)) = super::open_regular(utmp_file) else {
        return;
    };
    let mut buf = std::mem::MaybeUninit::<[u8; 8 * utmp::RECORD_SIZE]>::uninit();
    let mut total = 0;
    while total < MAX_UTMP {
        let Ok(bytes) = crate::fdio::read_full(file.as_raw_fd(), &mut buf) else {
            break;
        };
        for e in utmp::logged_in(bytes) {
            push_entry(&e, eol, out);
        }
        total += bytes.len();
        if bytes.len() < 8 * utmp::RECORD_SIZE {
            break;
        }
    }
}

/// The lines of logind's session files in `sessions`, in the directory's
/// order (sd-login's `sd_get_sessions` does not sort either, so the order is
/// who(1)'s), guessing ptys from `pts`.
fn reply_logind(sessions: &Path, pts: &Path, eol: &[u8], out: &mut Vec<u8>) {
    let Ok(dir) = std::fs::read_dir(sessions) else {
        return;
    };
    let mut read = 0;
    for dirent in dir.take(logind::MAX_DIR_ENTRIES) {
        let Ok(dirent) = dirent else {
            break;
        };
        let name = dirent.file_name();
        if !logind::is_session_id(name.as_bytes()) {
            continue;
        }
        if read == logind::MAX_SESSIONS {
            break;
        }
        read += 1;
        // A file replaced or removed since the listing is a session that
        // changed or ended: what is read now is right, or nothing is.
        let Ok(bytes) = super::read_capped(&dirent.path(), logind::MAX_SESSION_FILE + 1) else {
            continue;
        };
        if bytes.len() > logind::MAX_SESSION_FILE {
            continue;
        }
        let session = logind::parse_session(&bytes);
        for e in logind::entries(&session, |uid, at| guess_pty(pts, uid, at)) {
            push_entry(&e, eol, out);
        }
    }
}

/// [`logind::guess_pty`] over the entries of the directory `pts`.
fn guess_pty(pts: &Path, uid: u32, start_usec: u64) -> Option<Vec<u8>> {
    let dir = std::fs::read_dir(pts).ok()?;
    let found: Vec<(std::ffi::OsString, u32, i128)> = dir
        .take(MAX_PTYS)
        .map_while(Result::ok)
        .filter_map(|d| {
            let name = d.file_name();
            // Only names that can be ptys are stat'ed (gnulib's test).
            if name.is_empty() || name.as_bytes().first() == Some(&b'.') || name.len() > 10 {
                return None;
            }
            // stat(2), following links, as gnulib does.
            let st = std::fs::metadata(d.path()).ok()?;
            let ctime = i128::from(st.ctime()) * 1_000_000_000 + i128::from(st.ctime_nsec());
            Some((name, st.uid(), ctime))
        })
        .collect();
    logind::guess_pty(
        found.iter().map(|(n, u, c)| (OsStr::as_bytes(n), *u, *c)),
        uid,
        start_usec,
    )
}

/// One who(1) line for `e`, unless its process is gone.
#[unsafe(link_section = ".text.hot.hostinfod")]
fn push_entry(e: &utmp::Entry, eol: &[u8], out: &mut Vec<u8>) {
    if e.pid > 0 && kill(Pid::from_raw(e.pid), None) == Err(Errno::ESRCH) {
        return;
    }
    // 16 bytes until the year 10000; format_who_line cleans it.
    let mut buf = [0u8; 32];
    let mut when = Fixed::new(&mut buf);
    super::date::write_local(WHEN_FORMAT, WHEN_SHOWS_ZONE, e.tv_sec, &mut when);
    utmp::format_who_line(e, when.as_bytes(), out);
    out.extend_from_slice(eol);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: i32, line: &[u8], user: &[u8], host: &[u8], sec: u32) -> Vec<u8> {
        let mut rec = vec![0u8; utmp::RECORD_SIZE];
        rec[..2].copy_from_slice(&utmp::USER_PROCESS.to_ne_bytes());
        rec[4..8].copy_from_slice(&pid.to_ne_bytes());
        rec[8..8 + line.len()].copy_from_slice(line);
        rec[44..44 + user.len()].copy_from_slice(user);
        rec[76..76 + host.len()].copy_from_slice(host);
        rec[340..344].copy_from_slice(&sec.to_ne_bytes());
        rec
    }

    fn when(t: i64) -> String {
        let mut w = Vec::new();
        super::super::date::push_formatted(WHEN_FORMAT, t, &mut w);
        String::from_utf8_lossy(&w).into_owned()
    }

    fn commands(utmp_file: &Path, who_source: WhoSource) -> Commands {
        Commands {
            date_format: "%Y".into(),
            utmp_file: utmp_file.to_path_buf(),
            who_source,
            motd_files: vec![],
            fortune_paths: vec![],
        }
    }

    #[test]
    fn the_time_format_does_not_show_the_zone() {
        assert_eq!(
            super::super::date::DateFormat::new(WHEN_FORMAT).uses_zone(),
            WHEN_SHOWS_ZONE
        );
    }

    #[test]
    fn lines_are_cleaned_and_timed() {
        super::super::date::warm_up();
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("utmp");
        let mut bytes = record(0, b"pts/0", b"al\x1bice", b"192.0.2.7", 1_700_000_000);
        bytes.extend(record(0, b"tty1", b"root", b"", 0));
        std::fs::write(&p, &bytes).expect("write");
        let want = format!(
            "alice   pts/0        {} (192.0.2.7)\r\nroot     tty1         {}\r\n",
            when(1_700_000_000),
            when(0)
        );
        for source in [WhoSource::Auto, WhoSource::Utmp] {
            let mut out = Vec::new();
            reply(&commands(&p, source), b"\r\n", &mut out);
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
    }

    #[test]
    fn a_fifo_or_missing_file_means_nobody() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let mut out = Vec::new();
        reply(&commands(&p, WhoSource::Utmp), b"\n", &mut out);
        reply(
            &commands(&dir.path().join("missing"), WhoSource::Utmp),
            b"\n",
            &mut out,
        );
        assert!(out.is_empty());
    }

    /// A sessions directory and a pts directory of our own.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir(dir.path().join("sessions")).expect("mkdir");
            std::fs::create_dir(dir.path().join("pts")).expect("mkdir");
            Fixture { dir }
        }
        fn sessions(&self) -> std::path::PathBuf {
            self.dir.path().join("sessions")
        }
        fn pts(&self) -> std::path::PathBuf {
            self.dir.path().join("pts")
        }
        fn session(&self, id: &str, text: &str) {
            std::fs::write(self.sessions().join(id), text).expect("write session");
        }
        fn reply(&self) -> String {
            let mut out = Vec::new();
            reply_logind(&self.sessions(), &self.pts(), b"\n", &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
    }

    #[test]
    fn logind_ssh_login_gets_service_and_pty() {
        super::super::date::warm_up();
        let f = Fixture::new();
        let me = nix::unistd::getuid().as_raw();
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros();
        // The pty the login got, just after the session began.
        std::fs::write(f.pts().join("3"), b"").expect("pty");
        f.session(
            "4",
            &format!(
                "# This is private data. Do not parse.\nUID={me}\nUSER=alice\nTYPE=tty\nCLASS=user\n\
                 REMOTE_HOST=127.0.0.1\nSERVICE=sshd\nREALTIME={}\n",
                start - 100_000
            ),
        );
        let sec = i64::try_from(start / 1_000_000).expect("time");
        let got = f.reply();
        // The session began 100 ms before the pty changed, maybe in the
        // previous minute.
        let a = format!("alice    sshd pts/3   {} (127.0.0.1)\n", when(sec));
        let b = format!(
            "alice    sshd pts/3   {} (127.0.0.1)\n",
            when(i64::try_from((start - 100_000) / 1_000_000).expect("time"))
        );
        assert!(got == a || got == b, "{got:?}");
    }

    #[test]
    fn logind_pty_of_another_user_or_too_late_is_not_guessed() {
        let f = Fixture::new();
        let me = nix::unistd::getuid().as_raw();
        std::fs::write(f.pts().join("3"), b"").expect("pty");
        // A login ten seconds before the pty changed: not its pty.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros()
            - 10_000_000;
        f.session(
            "4",
            &format!(
                "UID={me}\nUSER=alice\nTYPE=tty\nCLASS=user\nSERVICE=sshd\nREALTIME={start}\n"
            ),
        );
        f.session(
            "5",
            &format!(
                "UID={}\nUSER=bob\nTYPE=tty\nCLASS=user\nREALTIME={start}\n",
                me + 1
            ),
        );
        let got = f.reply();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 1, "{got:?}");
        assert!(
            lines.iter().all(|l| l.starts_with("alice    sshd ")),
            "{got:?}"
        );
    }

    #[test]
    fn logind_skips_what_is_not_a_session_and_gone_leaders() {
        let f = Fixture::new();
        f.session("1", "USER=root\nCLASS=user\nTTY=tty1\nREALTIME=0\n");
        f.session(".#1xyz", "USER=temp\nCLASS=user\nTTY=tty2\n");
        f.session("2.ref", "USER=ref\nCLASS=user\nTTY=tty3\n");
        f.session("3", "USER=mgr\nCLASS=manager\nTTY=tty4\n");
        // The leader is gone: a stale file.
        let _children = crate::children_lock();
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let gone = child.id();
        child.wait().expect("wait");
        f.session(
            "4",
            &format!("USER=stale\nCLASS=user\nTTY=tty5\nLEADER={gone}\n"),
        );
        // Our own pid is alive.
        f.session(
            "5",
            &format!(
                "USER=live\nCLASS=user\nTTY=tty6\nLEADER={}\n",
                std::process::id()
            ),
        );
        std::fs::create_dir(f.sessions().join("6")).expect("mkdir");
        nix::unistd::mkfifo(
            &f.sessions().join("7"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        let got = f.reply();
        let mut lines: Vec<&str> = got.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines.len(), 2, "{got:?}");
        assert!(lines[0].starts_with("live     tty6 "), "{got:?}");
        assert!(lines[1].starts_with("root     tty1 "), "{got:?}");
    }

    #[test]
    fn logind_caps_file_size_and_session_count() {
        let f = Fixture::new();
        let mut big = "USER=big\nCLASS=user\nTTY=tty1\n".to_string();
        big.push_str(&"#".repeat(logind::MAX_SESSION_FILE));
        f.session("1", &big);
        let exact = format!(
            "USER=fits\nCLASS=user\nTTY=tty2\n#{}",
            "x".repeat(logind::MAX_SESSION_FILE - 31)
        );
        assert_eq!(exact.len(), logind::MAX_SESSION_FILE);
        f.session("2", &exact);
        let got = f.reply();
        assert_eq!(got.lines().count(), 1, "{got:?}");
        assert!(got.starts_with("fits "), "{got:?}");

        let f = Fixture::new();
        for i in 0..logind::MAX_SESSIONS + 10 {
            f.session(&format!("c{i}"), "USER=u\nCLASS=user\nTTY=tty9\n");
        }
        assert_eq!(f.reply().lines().count(), logind::MAX_SESSIONS);
    }

    #[test]
    fn logind_source_missing_means_nobody() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = Vec::new();
        reply_logind(
            &dir.path().join("nope"),
            &dir.path().join("nope"),
            b"\n",
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn auto_reads_utmp_only_when_it_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let utmp_file = dir.path().join("utmp");
        std::fs::write(&utmp_file, record(0, b"pts/9", b"fromutmp", b"", 5)).expect("write");
        let mut out = Vec::new();
        reply(&commands(&utmp_file, WhoSource::Auto), b"\n", &mut out);
        assert!(
            out.starts_with(b"fromutmp "),
            "{}",
            String::from_utf8_lossy(&out)
        );
        // With logind forced, the utmp file is not read (what logind says
        // on this machine is whatever it is, but never this record).
        let mut out = Vec::new();
        reply(&commands(&utmp_file, WhoSource::Logind), b"\n", &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("fromutmp"));
    }
}
