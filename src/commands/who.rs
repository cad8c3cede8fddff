//! `who`: the users logged in, read natively from `commands.utmp_file`.
//!
//! Nothing is executed: the file is read and parsed by [`crate::utmp`]. As
//! who(1) does when reading the system utmp, records whose process is gone
//! are skipped (a crashed login manager leaves them behind). A missing file
//! means nobody is logged in: Debian 13 systems have no utmp at all.

use std::path::Path;

use chrono::{Local, TimeZone};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::utmp;

/// utmp files are small (one 384-byte record per terminal); this bounds a
/// hostile or corrupt one.
const MAX_UTMP: u64 = 4 << 20;

/// Appends one line per logged-in user.
pub fn reply(utmp_file: &Path, eol: &[u8], out: &mut Vec<u8>) {
    let Some(bytes) = read_capped(utmp_file) else {
        return;
    };
    let mut line = Vec::with_capacity(80);
    for e in utmp::logged_in(&bytes) {
        if e.pid > 0 && kill(Pid::from_raw(e.pid), None) == Err(Errno::ESRCH) {
            continue;
        }
        let when = Local
            .timestamp_opt(e.tv_sec, 0)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "????-??-?? ??:??".into());
        line.clear();
        utmp::format_who_line(&e, &when, &mut line);
        crate::text::push_clean(out, &line);
        out.extend_from_slice(eol);
    }
}

fn read_capped(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_UTMP).read_to_end(&mut buf).ok()?;
    Some(buf)
}
