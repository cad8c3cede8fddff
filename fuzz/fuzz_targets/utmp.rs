//! Hostile utmp files read the way the `who` command reads them:
//! `commands::who::reply` on a real file (the capped read, the records,
//! the dead-session check, the login time and the who(1) line), and the
//! record parser it rests on.
//!
//! Checked besides "no panic": one entry per whole 384-byte record; the
//! logged-in ones are USER_PROCESS records with a name; the reply has at
//! most one line per logged-in entry, and holds no control characters but
//! its line ends (and TAB).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hostinfod::commands::who;
use hostinfod::utmp;
use libfuzzer_sys::fuzz_target;

/// A file of this fuzzing process.
fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("hostinfod-fuzz-utmp-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let all = utmp::parse(data);
    assert_eq!(all.len(), data.len() / utmp::RECORD_SIZE);
    let users = utmp::logged_in(data);
    assert!(users.len() <= all.len());
    for e in &users {
        assert_eq!(e.kind, utmp::USER_PROCESS);
        assert!(!e.user.is_empty());
    }

    std::fs::write(file(), data).expect("write the utmp file");
    let mut out = Vec::new();
    who::reply(file(), b"\n", &mut out);
    let s = String::from_utf8(out).expect("the who reply is UTF-8");
    assert!(
        s.lines().count() <= users.len(),
        "{} lines for {} logged-in entries",
        s.lines().count(),
        users.len()
    );
    assert!(s.is_empty() || s.ends_with('\n'));
    assert!(
        s.chars().all(|c| c == '\t' || c == '\n' || !c.is_control()),
        "control character in {s:?}"
    );
});
