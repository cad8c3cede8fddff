//! `who`: the users logged in, read natively from `commands.utmp_file`.
//!
//! Nothing is executed: the file is read and parsed by [`crate::utmp`]. As
//! who(1) does when reading the system utmp, records whose process is gone
//! are skipped (a crashed login manager leaves them behind). A missing file
//! means nobody is logged in (Debian 13 systems have no utmp at all), and so
//! does one that cannot be read or is not a regular file.

use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::text::Fixed;
use crate::utmp;

/// utmp files are small (one 384-byte record per terminal); this bounds a
/// hostile or corrupt one.
const MAX_UTMP: usize = 4 << 20;

/// The login time's format, who(1)'s default. It does not show the zone,
/// which [`super::date::write_local`] needs to know.
const WHEN_FORMAT: &str = "%Y-%m-%d %H:%M";
const WHEN_SHOWS_ZONE: bool = false;

/// Appends one line per logged-in user.
pub fn reply(utmp_file: &Path, eol: &[u8], out: &mut Vec<u8>) {
    let Ok(bytes) = super::read_capped(utmp_file, MAX_UTMP) else {
        return;
    };
    for e in utmp::logged_in(&bytes) {
        if e.pid > 0 && kill(Pid::from_raw(e.pid), None) == Err(Errno::ESRCH) {
            continue;
        }
        // 16 bytes until the year 10000; format_who_line cleans it.
        let mut buf = [0u8; 32];
        let mut when = Fixed::new(&mut buf);
        super::date::write_local(WHEN_FORMAT, WHEN_SHOWS_ZONE, e.tv_sec, &mut when);
        utmp::format_who_line(&e, when.as_bytes(), out);
        out.extend_from_slice(eol);
    }
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
        let mut out = Vec::new();
        reply(&p, b"\r\n", &mut out);
        let mut when = Vec::new();
        super::super::date::push_formatted(WHEN_FORMAT, 1_700_000_000, &mut when);
        let mut epoch = Vec::new();
        super::super::date::push_formatted(WHEN_FORMAT, 0, &mut epoch);
        let want = format!(
            "alice   pts/0        {} (192.0.2.7)\r\nroot     tty1         {}\r\n",
            String::from_utf8_lossy(&when),
            String::from_utf8_lossy(&epoch)
        );
        assert_eq!(String::from_utf8_lossy(&out), want);
    }

    #[test]
    fn a_fifo_or_missing_file_means_nobody() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let mut out = Vec::new();
        reply(&p, b"\n", &mut out);
        reply(&dir.path().join("missing"), b"\n", &mut out);
        assert!(out.is_empty());
    }
}
