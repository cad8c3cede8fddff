//! `who`: the users logged in, read natively from `commands.utmp_file`.
//!
//! Nothing is executed: the file is read and parsed by [`crate::utmp`]. As
//! who(1) does when reading the system utmp, records whose process is gone
//! are skipped (a crashed login manager leaves them behind). A missing file
//! means nobody is logged in: Debian 13 systems have no utmp at all.

use std::path::Path;

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
    let mut when = Vec::with_capacity(16);
    for e in utmp::logged_in(&bytes) {
        if e.pid > 0 && kill(Pid::from_raw(e.pid), None) == Err(Errno::ESRCH) {
            continue;
        }
        when.clear();
        super::date::push_formatted("%Y-%m-%d %H:%M", e.tv_sec, &mut when);
        line.clear();
        utmp::format_who_line(&e, std::str::from_utf8(&when).unwrap_or("?"), &mut line);
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
