//! Reader for systemd-logind's user sessions, for `who` on systems without
//! utmp (Debian 13, openSUSE), and the utmp-shaped entries who(1) makes of
//! them.
//!
//! logind keeps one file per session in `/run/systemd/sessions/`, named by
//! the session id and replaced atomically (written aside, then renamed) on
//! every change. sd-login, the library coreutils' who(1) calls, answers each
//! `sd_session_get_*` by reading that file; so does this module, in one
//! read per session, with the same parsing rules (systemd's `parse_env_file`:
//! `KEY=VALUE` lines, `#` and `;` comments, single and double quotes,
//! backslash escapes, trailing blanks dropped; a file with a NUL byte or
//! invalid UTF-8 in any assignment is refused as a whole).
//!
//! [`parse_session`] is pure and total: it
//! takes the file's bytes and returns what each getter would return.
//! [`entries`] then builds who(1)'s lines the
//! way gnulib's `read_utmp_from_systemd` does: one entry for the session's
//! seat and one for its TTY; a `tty` session without a TTY (an SSH login:
//! sshd registers the session before it opens the pty) gets `SERVICE pts/N`,
//! the pty guessed from the `/dev/pts` entry the user got within five
//! seconds of the login; a `web` session gets its service. The guess needs
//! the file system, so it is a function the caller passes in.

use crate::utmp::{Entry, USER_PROCESS};

/// Where logind keeps its session files.
pub const SESSIONS_DIR: &str = "/run/systemd/sessions";

/// At most this many session files are read for one reply. logind's own
/// default cap (`SessionsMax=`) is 8192; a host with more than a thousand
/// interactive logins is not one `who` over a line protocol serves.
pub const MAX_SESSIONS: usize = 1024;

/// At most this many directory entries are looked at (session files and
/// anything else a hostile or broken directory holds).
pub const MAX_DIR_ENTRIES: usize = 4 * MAX_SESSIONS;

/// A session file larger than this is not read. logind writes a few hundred
/// bytes; the cap bounds a corrupt or hostile file.
pub const MAX_SESSION_FILE: usize = 64 * 1024;

/// How long after the login a pty's change time may be and still be the
/// login's pty (gnulib's `guess_pty_name`), in microseconds.
pub const PTY_GUESS_WINDOW_USEC: u64 = 5_000_000;

/// What sd-login's getters return for one session file: `None` where the
/// getter fails (the key is missing or empty, or its value does not parse).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Session {
    /// `USER`: the login name.
    pub user: Option<Vec<u8>>,
    /// `UID`.
    pub uid: Option<u32>,
    /// `CLASS`: `user`, `user-early`, `greeter`, `manager`, `background`, ...
    pub class: Option<Vec<u8>>,
    /// `TYPE`: `tty`, `x11`, `wayland`, `mir`, `web`, `unspecified`.
    pub kind: Option<Vec<u8>>,
    /// `SEAT`: `seat0` for a local console or display.
    pub seat: Option<Vec<u8>>,
    /// `TTY`: `tty1`, `pts/3`, ...
    pub tty: Option<Vec<u8>>,
    /// `SERVICE`: the PAM service, e.g. `sshd`, `login`.
    pub service: Option<Vec<u8>>,
    /// `REMOTE_HOST`.
    pub remote_host: Option<Vec<u8>>,
    /// `REMOTE_USER`.
    pub remote_user: Option<Vec<u8>>,
    /// `DISPLAY`: the X11 display of an `x11` session.
    pub display: Option<Vec<u8>>,
    /// `LEADER`: the session's leader process.
    pub leader: Option<i32>,
    /// `REALTIME`: when the session started, in microseconds since the epoch.
    pub realtime_usec: Option<u64>,
}

/// True for a name logind can give a session (systemd's `session_id_valid`:
/// letters and digits, at least one). Other names in the directory are
/// logind's temporary files, or something that is not a session.
pub fn is_session_id(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(u8::is_ascii_alphanumeric)
}

/// Parses one session file as sd-login does.
///
/// A file with a NUL byte, or with invalid UTF-8 in any assignment, makes
/// every getter fail, so it yields an empty [`Session`] (which makes no
/// entry).
pub fn parse_session(bytes: &[u8]) -> Session {
    let mut s = Session::default();
    if bytes.contains(&0) {
        return s;
    }
    let ok = parse_env(bytes, |key, value| {
        if std::str::from_utf8(key).is_err() || std::str::from_utf8(value).is_err() {
            return false;
        }
        // A key that appears twice: the last one counts.
        let text = || (!value.is_empty()).then(|| value.to_vec());
        match key {
            b"USER" => s.user = text(),
            b"UID" => s.uid = parse_uid(value),
            b"CLASS" => s.class = text(),
            b"TYPE" => s.kind = text(),
            b"SEAT" => s.seat = text(),
            b"TTY" => s.tty = text(),
            b"SERVICE" => s.service = text(),
            b"REMOTE_HOST" => s.remote_host = text(),
            b"REMOTE_USER" => s.remote_user = text(),
            b"DISPLAY" => s.display = text(),
            b"LEADER" => s.leader = parse_pid(value),
            b"REALTIME" => s.realtime_usec = parse_u64(value),
            _ => {}
        }
        true
    });
    if ok { s } else { Session::default() }
}

/// systemd's `parse_env_file` state machine over `bytes` (no NUL in it):
/// calls `push(key, value)` for every assignment, in order, and stops with
/// `false` as soon as `push` does.
fn parse_env(bytes: &[u8], mut push: impl FnMut(&[u8], &[u8]) -> bool) -> bool {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum St {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        SingleQuote,
        DoubleQuote,
        DoubleQuoteEscape,
        Comment,
        CommentEscape,
    }
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let mut st = St::PreKey;
    let mut key: Vec<u8> = Vec::new();
    let mut value: Vec<u8> = Vec::new();
    // Where trailing blanks of the key and of an unquoted value start.
    let mut key_blank: Option<usize> = None;
    let mut value_blank: Option<usize> = None;

    let mut emit = |key: &mut Vec<u8>,
                    value: &mut Vec<u8>,
                    key_blank: Option<usize>,
                    value_blank: Option<usize>| {
        if let Some(at) = value_blank {
            value.truncate(at);
        }
        if let Some(at) = key_blank {
            key.truncate(at);
        }
        let go_on = push(key, value);
        key.clear();
        value.clear();
        go_on
    };

    for &c in bytes {
        match st {
            St::PreKey => {
                if c == b'#' || c == b';' {
                    st = St::Comment;
                } else if !blank(c) {
                    st = St::Key;
                    key_blank = None;
                    key.push(c);
                }
            }
            St::Key => {
                if newline(c) {
                    st = St::PreKey;
                    key.clear();
                } else if c == b'=' {
                    st = St::PreValue;
                    value_blank = None;
                } else {
                    if !blank(c) {
                        key_blank = None;
                    } else if key_blank.is_none() {
                        key_blank = Some(key.len());
                    }
                    key.push(c);
                }
            }
            St::PreValue => {
                if newline(c) {
                    st = St::PreKey;
                    if !emit(&mut key, &mut value, key_blank, None) {
                        return false;
                    }
                } else if c == b'\'' {
                    st = St::SingleQuote;
                } else if c == b'"' {
                    st = St::DoubleQuote;
                } else if c == b'\\' {
                    st = St::ValueEscape;
                } else if !blank(c) {
                    st = St::Value;
                    value.push(c);
                }
            }
            St::Value => {
                if newline(c) {
                    st = St::PreKey;
                    if !emit(&mut key, &mut value, key_blank, value_blank) {
                        return false;
                    }
                } else if c == b'\\' {
                    st = St::ValueEscape;
                    value_blank = None;
                } else {
                    if !blank(c) {
                        value_blank = None;
                    } else if value_blank.is_none() {
                        value_blank = Some(value.len());
                    }
                    value.push(c);
                }
            }
            St::ValueEscape => {
                st = St::Value;
                // An escaped line end joins the lines.
                if !newline(c) {
                    value.push(c);
                }
            }
            St::SingleQuote => {
                if c == b'\'' {
                    st = St::PreValue;
                } else {
                    value.push(c);
                }
            }
            St::DoubleQuote => {
                if c == b'"' {
                    st = St::PreValue;
                } else if c == b'\\' {
                    st = St::DoubleQuoteEscape;
                } else {
                    value.push(c);
                }
            }
            St::DoubleQuoteEscape => {
                st = St::DoubleQuote;
                if b"\"\\`$".contains(&c) {
                    value.push(c);
                } else if c != b'\n' {
                    // As the shell does: the backslash stays.
                    value.push(b'\\');
                    value.push(c);
                }
            }
            St::Comment => {
                if c == b'\\' {
                    st = St::CommentEscape;
                } else if newline(c) {
                    st = St::PreKey;
                }
            }
            St::CommentEscape => {
                st = if newline(c) { St::PreKey } else { St::Comment };
            }
        }
    }
    match st {
        St::Value => emit(&mut key, &mut value, key_blank, value_blank),
        St::PreValue
        | St::ValueEscape
        | St::SingleQuote
        | St::DoubleQuote
        | St::DoubleQuoteEscape => emit(&mut key, &mut value, key_blank, None),
        St::PreKey | St::Key | St::Comment | St::CommentEscape => true,
    }
}

/// systemd's `safe_atollu_full` with base 0 (what `safe_atou64` and
/// `parse_pid` use): blanks, then `0b`/`0o` prefixes of its own, then
/// strtoull(3) with base 0 (sign, `0x` hex, leading-zero octal); the whole
/// rest must be digits, and a negative number other than zero is refused.
fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = trim_start(s, b" \t\n\r");
    let (s, base) = match s {
        [b'0', b'b' | b'B', rest @ ..] => (rest, 2),
        [b'0', b'o' | b'O', rest @ ..] => (rest, 8),
        _ => (s, 0),
    };
    let negative_first = s.first() == Some(&b'-');
    let v = strtoull(s, base)?;
    if v != 0 && negative_first {
        return None;
    }
    Some(v)
}

/// `parse_uid`: decimal only, and neither of the two invalid uids.
fn parse_uid(s: &[u8]) -> Option<u32> {
    let s = trim_start(s, b" \t\n\r");
    let negative_first = s.first() == Some(&b'-');
    let v = strtoull(s, 10)?;
    if v != 0 && negative_first {
        return None;
    }
    let uid = u32::try_from(v).ok()?;
    (uid != u32::MAX && uid != 0xFFFF).then_some(uid)
}

/// `parse_pid`: base 0 as [`parse_u64`], a positive `pid_t`.
fn parse_pid(s: &[u8]) -> Option<i32> {
    let v = parse_u64(s)?;
    i32::try_from(v).ok().filter(|&p| p > 0)
}

fn trim_start<'a>(s: &'a [u8], set: &[u8]) -> &'a [u8] {
    let start = s.iter().position(|c| !set.contains(c)).unwrap_or(s.len());
    s.get(start..).unwrap_or_default()
}

/// strtoull(3) over all of `s` (None when anything follows the number, when
/// there is no number, or on overflow): C-locale blanks, a sign (a minus
/// negates modulo 2^64), then digits in `base`, or with base 0, `0x` for
/// hex, a leading `0` for octal, else decimal.
fn strtoull(s: &[u8], base: u32) -> Option<u64> {
    let mut s = trim_start(s, b" \t\n\r\x0b\x0c");
    let mut negative = false;
    if let [sign @ (b'+' | b'-'), rest @ ..] = s {
        negative = *sign == b'-';
        s = rest;
    }
    let mut base = base;
    let hex_prefix = matches!(s, [b'0', b'x' | b'X', d, ..] if (*d as char).is_ascii_hexdigit());
    if (base == 0 || base == 16) && hex_prefix {
        s = s.get(2..).unwrap_or_default();
        base = 16;
    } else if base == 0 {
        base = if s.first() == Some(&b'0') { 8 } else { 10 };
    }
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        let d = (c as char).to_digit(base)?;
        v = v.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// The entries who(1) shows for one session: gnulib's
/// `read_utmp_from_systemd`, keeping only what `who` without options prints
/// (user processes with a name).
///
/// Only sessions of a `user` class (`user`, `user-early`,
/// `user-incomplete`, `user-light`, ...) are users; `manager` (the user's
/// service manager), `greeter` (a display manager's login screen),
/// `lock-screen` and `background` (cron) sessions are not, as gnulib decides
/// since 2026. coreutils 9.7's who(1) also lists greeter sessions, as a line
/// for the display manager's user on `seat0`.
///
/// `guess_pty(uid, start_usec)` names the pty (`pts/N`) the user got
/// within [`PTY_GUESS_WINDOW_USEC`] after the login, if any; it is asked
/// only for a `tty` session without a TTY.
pub fn entries(
    s: &Session,
    mut guess_pty: impl FnMut(u32, u64) -> Option<Vec<u8>>,
) -> Vec<Entry<'static>> {
    let user = s.user.clone().unwrap_or_default();
    let is_user = s.class.as_deref().is_some_and(|c| c.starts_with(b"user"));
    // who(1) would make entries it does not print: skip them, and the pty
    // guess they would cost.
    if !is_user || user.is_empty() {
        return Vec::new();
    }
    let start_usec = s.realtime_usec.unwrap_or(0);
    let kind = s.kind.as_deref().unwrap_or_default();
    let tty: Option<Vec<u8>> = match &s.tty {
        Some(tty) => Some(tty.clone()),
        None if kind == b"tty" => {
            let pty = s.uid.and_then(|uid| guess_pty(uid, start_usec));
            match (&s.service, pty) {
                (Some(service), Some(pty)) => {
                    let mut line = service.clone();
                    line.push(b' ');
                    line.extend_from_slice(&pty);
                    Some(line)
                }
                (Some(service), None) => Some(service.clone()),
                (None, pty) => pty,
            }
        }
        None if kind == b"web" => s.service.clone(),
        None => None,
    };
    if s.seat.is_none() && tty.is_none() {
        return Vec::new();
    }
    let host = match (&s.remote_host, &s.remote_user) {
        (Some(host), Some(ruser)) => {
            let mut h = ruser.clone();
            h.push(b'@');
            h.extend_from_slice(host);
            h
        }
        (Some(host), None) => host.clone(),
        // For backward compatibility, an X11 session's display is its host.
        (None, _) if kind == b"x11" => s.display.clone().unwrap_or_default(),
        (None, _) => Vec::new(),
    };
    let entry = |line: &[u8]| Entry {
        kind: USER_PROCESS,
        pid: s.leader.unwrap_or(0),
        line: line.to_vec().into(),
        user: user.clone().into(),
        host: host.clone().into(),
        // At most 1.8e13: no overflow.
        tv_sec: i64::try_from(start_usec / 1_000_000).unwrap_or(i64::MAX),
    };
    s.seat
        .iter()
        .chain(tty.iter())
        .map(|line| entry(line))
        .collect()
}

/// gnulib's `guess_pty_name` over `(name, uid, ctime)` triples of the
/// entries of `/dev/pts` (`ctime` in nanoseconds since the epoch): the
/// entry of `uid` changed first at or after `start_usec`, if that is at most
/// [`PTY_GUESS_WINDOW_USEC`] after it, as `pts/NAME`. Names starting with a
/// dot or longer than 10 bytes are not looked at.
pub fn guess_pty<'a>(
    ptys: impl IntoIterator<Item = (&'a [u8], u32, i128)>,
    uid: u32,
    start_usec: u64,
) -> Option<Vec<u8>> {
    let at = i128::from(start_usec) * 1000;
    let mut best: Option<(&[u8], i128)> = None;
    for (name, owner, ctime) in ptys {
        if name.is_empty() || name.first() == Some(&b'.') || name.len() > 10 {
            continue;
        }
        if owner != uid || ctime < at {
            continue;
        }
        // gnulib takes a best time of zero for "none yet", and a strictly
        // earlier time replaces the best.
        if best.is_none_or(|(_, t)| t == 0 || ctime < t) {
            best = Some((name, ctime));
        }
    }
    let (name, ctime) = best?;
    if ctime == 0 || ctime > at + i128::from(PTY_GUESS_WINDOW_USEC) * 1000 {
        return None;
    }
    let mut line = b"pts/".to_vec();
    line.extend_from_slice(name);
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from logind 257.13 (Debian 13) during an SSH login with a
    /// pty: no TTY (sshd opens the PAM session before the pty).
    const SSH_257: &[u8] = b"# This is private data. Do not parse.
UID=1000
USER=alice
ACTIVE=1
IS_DISPLAY=1
STATE=active
REMOTE=1
LEADER_FD_SAVED=1
TYPE=tty
ORIGINAL_TYPE=tty
CLASS=user
SCOPE=session-c1.scope
FIFO=/run/systemd/sessions/c1.ref
REMOTE_HOST=127.0.0.1
SERVICE=sshd
POSITION=0
LEADER=80
REALTIME=1795981894267928
MONOTONIC=994736784
";

    /// Recorded with it: the user's service manager, not a user.
    const MANAGER_257: &[u8] = b"# This is private data. Do not parse.
UID=1000
USER=alice
ACTIVE=1
IS_DISPLAY=0
STATE=active
REMOTE=0
LEADER_FD_SAVED=1
TYPE=unspecified
ORIGINAL_TYPE=unspecified
CLASS=manager
FIFO=/run/systemd/sessions/c2.ref
SERVICE=systemd-user
POSITION=0
LEADER=85
REALTIME=1795981894314419
MONOTONIC=994783274
";

    /// Recorded from logind 252.39 (Debian 12) during an SSH login.
    const SSH_252: &[u8] = b"# This is private data. Do not parse.
UID=1000
USER=alice
ACTIVE=1
IS_DISPLAY=1
STATE=active
REMOTE=1
TYPE=tty
ORIGINAL_TYPE=tty
CLASS=user
SCOPE=session-11.scope
FIFO=/run/systemd/sessions/11.ref
REMOTE_HOST=127.0.0.1
SERVICE=sshd
POSITION=0
LEADER=55
AUDIT=11
REALTIME=1795981971309127
MONOTONIC=1071777983
";

    /// A console login, as logind 252 writes one (the keys of SSH_252, with
    /// a seat, a TTY and a VT).
    const CONSOLE_252: &[u8] = b"# This is private data. Do not parse.
UID=0
USER=root
ACTIVE=1
IS_DISPLAY=1
STATE=active
REMOTE=0
TYPE=tty
ORIGINAL_TYPE=tty
CLASS=user
SCOPE=session-1.scope
FIFO=/run/systemd/sessions/1.ref
SEAT=seat0
TTY=tty1
TTY_VALIDITY=from-pam
SERVICE=login
VTNR=1
LEADER=480
AUDIT=1
REALTIME=1700000000000000
MONOTONIC=9123456
";

    fn no_pty(_: u32, _: u64) -> Option<Vec<u8>> {
        None
    }

    fn lines(s: &Session, pty: Option<&str>) -> Vec<(String, String, String, i64, i32)> {
        entries(s, |_, _| pty.map(|p| p.as_bytes().to_vec()))
            .into_iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.user).into_owned(),
                    String::from_utf8_lossy(&e.line).into_owned(),
                    String::from_utf8_lossy(&e.host).into_owned(),
                    e.tv_sec,
                    e.pid,
                )
            })
            .collect()
    }

    fn t(
        user: &str,
        line: &str,
        host: &str,
        sec: i64,
        pid: i32,
    ) -> (String, String, String, i64, i32) {
        (user.into(), line.into(), host.into(), sec, pid)
    }

    #[test]
    fn ssh_session_of_logind_257() {
        let s = parse_session(SSH_257);
        assert_eq!(s.user.as_deref(), Some(&b"alice"[..]));
        assert_eq!(s.uid, Some(1000));
        assert_eq!(s.leader, Some(80));
        assert_eq!(s.realtime_usec, Some(1_795_981_894_267_928));
        assert_eq!(s.tty, None);
        assert_eq!(s.seat, None);
        let mut asked = None;
        let got = entries(&s, |uid, at| {
            asked = Some((uid, at));
            Some(b"pts/2".to_vec())
        });
        assert_eq!(asked, Some((1000, 1_795_981_894_267_928)));
        assert_eq!(got.len(), 1);
        assert_eq!(
            lines(&s, Some("pts/2")),
            vec![t("alice", "sshd pts/2", "127.0.0.1", 1_795_981_894, 80)]
        );
        // No pty found: the service alone, as who(1) shows it.
        assert_eq!(
            lines(&s, None),
            vec![t("alice", "sshd", "127.0.0.1", 1_795_981_894, 80)]
        );
    }

    #[test]
    fn ssh_session_of_logind_252() {
        // Debian 12's who(1) reads utmp, but logind's file has the same
        // shape, so who_source = "logind" gives the same kind of line.
        assert_eq!(
            lines(&parse_session(SSH_252), Some("pts/0")),
            vec![t("alice", "sshd pts/0", "127.0.0.1", 1_795_981_971, 55)]
        );
    }

    #[test]
    fn console_session_of_logind_252_has_seat_and_tty() {
        let s = parse_session(CONSOLE_252);
        let mut asked = false;
        let got = entries(&s, |_, _| {
            asked = true;
            None
        });
        assert!(!asked, "a session with a TTY needs no guess");
        assert_eq!(got.len(), 2);
        assert_eq!(
            lines(&s, None),
            vec![
                t("root", "seat0", "", 1_700_000_000, 480),
                t("root", "tty1", "", 1_700_000_000, 480)
            ]
        );
        assert!(got.iter().all(|e| e.kind == USER_PROCESS));
    }

    #[test]
    fn only_user_classes_are_users() {
        assert!(entries(&parse_session(MANAGER_257), no_pty).is_empty());
        for class in [
            "greeter",
            "lock-screen",
            "background",
            "manager-early",
            "none",
            "",
        ] {
            let file = String::from_utf8_lossy(CONSOLE_252)
                .replace("CLASS=user", &format!("CLASS={class}"));
            assert!(
                entries(&parse_session(file.as_bytes()), no_pty).is_empty(),
                "{class}"
            );
        }
        for class in ["user-early", "user-incomplete", "user-light"] {
            let file = String::from_utf8_lossy(CONSOLE_252)
                .replace("CLASS=user", &format!("CLASS={class}"));
            assert_eq!(
                entries(&parse_session(file.as_bytes()), no_pty).len(),
                2,
                "{class}"
            );
        }
        let file = String::from_utf8_lossy(CONSOLE_252).replace("CLASS=user\n", "");
        assert!(entries(&parse_session(file.as_bytes()), no_pty).is_empty());
    }

    #[test]
    fn remote_user_x11_display_and_web() {
        let s = parse_session(b"USER=bob\nCLASS=user\nTYPE=tty\nTTY=pts/7\nREMOTE_HOST=h.example\nREMOTE_USER=rb\nREALTIME=2000000\n");
        assert_eq!(
            lines(&s, None),
            vec![t("bob", "pts/7", "rb@h.example", 2, 0)]
        );
        let s = parse_session(b"USER=bob\nCLASS=user\nTYPE=x11\nSEAT=seat0\nDISPLAY=:0\n");
        assert_eq!(lines(&s, None), vec![t("bob", "seat0", ":0", 0, 0)]);
        let s = parse_session(b"USER=bob\nCLASS=user\nTYPE=wayland\nSEAT=seat0\nDISPLAY=:0\n");
        assert_eq!(lines(&s, None), vec![t("bob", "seat0", "", 0, 0)]);
        let s = parse_session(b"USER=bob\nCLASS=user\nTYPE=web\nSERVICE=cockpit\n");
        assert_eq!(
            lines(&s, Some("pts/1")),
            vec![t("bob", "cockpit", "", 0, 0)]
        );
        let s = parse_session(b"USER=bob\nCLASS=user\nTYPE=web\n");
        assert!(lines(&s, None).is_empty());
        // A tty session without TTY and SERVICE: the pty alone.
        let s = parse_session(b"USER=bob\nUID=5\nCLASS=user\nTYPE=tty\n");
        assert_eq!(lines(&s, Some("pts/4")), vec![t("bob", "pts/4", "", 0, 0)]);
        // Without a UID there is nothing to guess with.
        let s = parse_session(b"USER=bob\nCLASS=user\nTYPE=tty\nSERVICE=sshd\n");
        let mut asked = false;
        let got = entries(&s, |_, _| {
            asked = true;
            None
        });
        assert!(!asked);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn nameless_or_lineless_sessions_make_nothing() {
        // No USER: who(1) skips nameless user processes.
        let s = parse_session(b"CLASS=user\nTYPE=tty\nTTY=tty2\n");
        assert!(entries(&s, no_pty).is_empty());
        let s = parse_session(b"USER=\nCLASS=user\nTYPE=tty\nTTY=tty2\n");
        assert!(entries(&s, no_pty).is_empty());
        // Neither seat nor TTY, and not a tty or web session.
        let s = parse_session(b"USER=carol\nCLASS=user\nTYPE=unspecified\n");
        assert!(entries(&s, no_pty).is_empty());
    }

    #[test]
    fn env_file_quoting_as_systemd_parses_it() {
        let s = parse_session(
            b"  USER = 'al ice'  \n\
              REMOTE_HOST=\"a\\\"b\\\\c\\x\"\n\
              SERVICE=s\\ v\\\\c  \n\
              TTY=pts/\\\n1\n\
              ;comment\n\
              # comment with escape \\\n\
              SEAT=x\"y\" z\n\
              DISPLAY=\"a\" 'b' c\n",
        );
        assert_eq!(s.user.as_deref(), Some(&b"al ice"[..]));
        assert_eq!(s.remote_host.as_deref(), Some(&b"a\"b\\c\\x"[..]));
        assert_eq!(s.service.as_deref(), Some(&b"s v\\c"[..]));
        assert_eq!(s.tty.as_deref(), Some(&b"pts/1"[..]));
        assert_eq!(s.seat.as_deref(), Some(&b"x\"y\" z"[..]));
        assert_eq!(s.display.as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn last_assignment_wins_and_empty_is_missing() {
        let s = parse_session(b"USER=a\nUSER=b\nTTY=tty1\nTTY=\n");
        assert_eq!(s.user.as_deref(), Some(&b"b"[..]));
        assert_eq!(s.tty, None);
        let s = parse_session(b"TTY=''\nSEAT=\"\"\n");
        assert_eq!((s.tty, s.seat), (None, None));
    }

    #[test]
    fn numbers_parse_as_systemd_parses_them() {
        assert_eq!(parse_u64(b"1700000000000000"), Some(1_700_000_000_000_000));
        assert_eq!(parse_u64(b" +12"), Some(12));
        assert_eq!(parse_u64(b"0x10"), Some(16));
        assert_eq!(parse_u64(b"010"), Some(8));
        assert_eq!(parse_u64(b"0b101"), Some(5));
        assert_eq!(parse_u64(b"0o17"), Some(15));
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"-0"), Some(0));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        for bad in [&b""[..], b" ", b"12x", b"x", b"0x", b"09", b"1 2", b"+"] {
            assert_eq!(parse_u64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_uid(b"1000"), Some(1000));
        assert_eq!(parse_uid(b"010"), Some(10), "uids are decimal");
        assert_eq!(parse_uid(b"65535"), None);
        assert_eq!(parse_uid(b"4294967295"), None);
        assert_eq!(parse_uid(b"4294967296"), None);
        assert_eq!(parse_pid(b"612"), Some(612));
        assert_eq!(parse_pid(b"0"), None);
        assert_eq!(parse_pid(b"2147483648"), None);
    }

    #[test]
    fn bad_numbers_leave_the_line_with_time_zero() {
        let s = parse_session(b"USER=dave\nCLASS=user\nTTY=tty3\nREALTIME=soon\nLEADER=-4\n");
        assert_eq!(lines(&s, None), vec![t("dave", "tty3", "", 0, 0)]);
        let s = parse_session(b"USER=dave\nCLASS=user\nTTY=tty3\nREALTIME=18446744073709551615\n");
        assert_eq!(
            lines(&s, None),
            vec![t("dave", "tty3", "", 18_446_744_073_709, 0)]
        );
    }

    #[test]
    fn nul_or_invalid_utf8_refuses_the_whole_file() {
        let mut with_nul = CONSOLE_252.to_vec();
        with_nul.extend_from_slice(b"X=\0\n");
        assert_eq!(parse_session(&with_nul), Session::default());
        let mut bad_utf8 = CONSOLE_252.to_vec();
        bad_utf8.extend_from_slice(b"DESKTOP=\xff\n");
        assert_eq!(parse_session(&bad_utf8), Session::default());
        let mut bad_key = b"K\xc3=1\n".to_vec();
        bad_key.extend_from_slice(CONSOLE_252);
        assert_eq!(parse_session(&bad_key), Session::default());
        // In a comment it does not matter.
        let mut in_comment = b"# \xff\xfe\n".to_vec();
        in_comment.extend_from_slice(CONSOLE_252);
        assert_eq!(parse_session(&in_comment), parse_session(CONSOLE_252));
        // Valid UTF-8 is kept as it is; the who line cleans it.
        let s = parse_session("USER=jos\u{e9}\nCLASS=user\nTTY=tty1\n".as_bytes());
        assert_eq!(s.user.as_deref(), Some("jos\u{e9}".as_bytes()));
    }

    #[test]
    fn truncated_files_give_what_was_whole() {
        // Every prefix of a real file parses without panic; a value cut
        // short is what the prefix says (as sd-login reads it), and the
        // last line needs no line end.
        for n in 0..=SSH_257.len() {
            let s = parse_session(&SSH_257[..n]);
            let _ = entries(&s, no_pty);
        }
        let cut = b"USER=alice\nCLASS=user\nTTY=pts/1";
        assert_eq!(
            lines(&parse_session(cut), None),
            vec![t("alice", "pts/1", "", 0, 0)]
        );
        let cut = b"USER=alice\nCLASS=user\nTTY=pts/1\nREALTIME=17";
        assert_eq!(parse_session(cut).realtime_usec, Some(17));
        let cut = b"USER=alice\nCLASS=user\nTTY=\"pts/1";
        assert_eq!(parse_session(cut).tty.as_deref(), Some(&b"pts/1"[..]));
        let cut = b"USER=alice\nCLASS=user\nTT";
        assert_eq!(parse_session(cut).tty, None);
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut seed: u32 = 12345;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        const ALPHABET: &[u8] = b"=\n\r \t'\"\\#;USERTYCLAS0x1-\xc3\xa9\xff";
        for len in [0usize, 1, 7, 64, 500, 4000] {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = next();
                        ALPHABET
                            .get(usize::from(r) % ALPHABET.len())
                            .copied()
                            .unwrap_or(r)
                    })
                    .collect();
                let s = parse_session(&bytes);
                for e in entries(&s, |_, _| Some(b"pts/0".to_vec())) {
                    assert!(!e.user.is_empty());
                    assert_eq!(e.kind, USER_PROCESS);
                }
            }
        }
    }

    #[test]
    fn session_ids() {
        assert!(is_session_id(b"1"));
        assert!(is_session_id(b"c12"));
        assert!(!is_session_id(b""));
        assert!(!is_session_id(b".#1abc"));
        assert!(!is_session_id(b"1.ref"));
        assert!(!is_session_id(b"1~"));
    }

    #[test]
    fn pty_guess_takes_the_first_pty_of_the_user_after_the_login() {
        let at = 1_000_000_000u64;
        let ns = |usec: u64| i128::from(usec) * 1000;
        let ptys: Vec<(&[u8], u32, i128)> = vec![
            (b"ptmx", 0, 5),
            (b"0", 1001, ns(at) - 1),         // before the login
            (b"1", 1000, ns(at + 10)),        // someone else's
            (b"3", 1001, ns(at + 2_000_000)), // later than 2
            (b"2", 1001, ns(at + 300)),
            (b".x", 1001, ns(at + 1)),
            (b"12345678901", 1001, ns(at + 1)),
        ];
        assert_eq!(
            guess_pty(ptys.iter().copied(), 1001, at),
            Some(b"pts/2".to_vec())
        );
        // More than five seconds after the login, by one nanosecond.
        let late: Vec<(&[u8], u32, i128)> = vec![(b"4", 1001, ns(at + 5_000_000) + 1)];
        assert_eq!(guess_pty(late.iter().copied(), 1001, at), None);
        let edge: Vec<(&[u8], u32, i128)> = vec![(b"4", 1001, ns(at + 5_000_000))];
        assert_eq!(
            guess_pty(edge.iter().copied(), 1001, at),
            Some(b"pts/4".to_vec())
        );
        assert_eq!(guess_pty(std::iter::empty(), 1001, at), None);
        // Exactly at the login counts.
        let same: Vec<(&[u8], u32, i128)> = vec![(b"9", 7, ns(at))];
        assert_eq!(
            guess_pty(same.iter().copied(), 7, at),
            Some(b"pts/9".to_vec())
        );
        // A change time of zero is "none" to gnulib.
        let zero: Vec<(&[u8], u32, i128)> = vec![(b"5", 7, 0)];
        assert_eq!(guess_pty(zero.iter().copied(), 7, 0), None);
    }
}
