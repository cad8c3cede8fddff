//! The utmp reader and the who(1) line, on hostile utmp files.
//!
//! Checked besides "no panic": one entry per whole 384-byte record; the
//! logged-in ones are USER_PROCESS records with a name; the `who` line built
//! from them (as the `who` command does) holds no control characters.
#![no_main]

use hostinfod::commands::date;
use hostinfod::text;
use hostinfod::utmp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all = utmp::parse(data);
    assert_eq!(all.len(), data.len() / utmp::RECORD_SIZE);
    let users = utmp::logged_in(data);
    assert!(users.len() <= all.len());
    let mut out = Vec::new();
    for e in &users {
        assert_eq!(e.kind, utmp::USER_PROCESS);
        assert!(!e.user.is_empty());
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
