//! The logind session-file reader and the who(1) lines made from it, on
//! hostile session files.
//!
//! Input: the bytes of one file in /run/systemd/sessions/. The pty guess is
//! fed from the same bytes (the last byte picks whether a pty is "found"),
//! so both branches of a `tty` session without TTY are reached.
//!
//! Checked besides "no panic": at most two entries (seat and TTY), each a
//! named USER_PROCESS of a `user*` class with a line; the `who` line built
//! from them (as the `who` command does) holds no control characters.
#![no_main]

use hostinfod::commands::date;
use hostinfod::logind;
use hostinfod::text;
use hostinfod::utmp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let found = data.last().is_some_and(|b| b & 1 == 1);
    let session = logind::parse_session(data);
    let is_user = session
        .class
        .as_deref()
        .is_some_and(|c| c.starts_with(b"user"));
    let entries = logind::entries(&session, |uid, at| {
        // The guess over a directory of one pty owned by the session's user.
        let ctime = i128::from(at) * 1000;
        logind::guess_pty([(&b"7"[..], uid, ctime)], if found { uid } else { uid ^ 1 }, at)
    });
    assert!(entries.len() <= 2);
    assert!(entries.is_empty() || is_user);
    let mut out = Vec::new();
    for e in &entries {
        assert_eq!(e.kind, utmp::USER_PROCESS);
        assert!(!e.user.is_empty());
        assert!(!e.line.is_empty());
        let mut when = Vec::new();
        date::push_formatted("%Y-%m-%d %H:%M", e.tv_sec, &mut when);
        let mut line = Vec::new();
        utmp::format_who_line(e, std::str::from_utf8(&when).unwrap_or("?"), &mut line);
        text::push_clean(&mut out, &line);
        out.extend_from_slice(b"\n");
    }
    let s = String::from_utf8(out).expect("push_clean gives UTF-8");
    assert!(
        s.chars().all(|c| c == '\t' || c == '\n' || !c.is_control()),
        "control character in {s:?}"
    );
});
