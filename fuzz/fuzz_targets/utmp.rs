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

use std::sync::OnceLock;

use hostinfod::commands::who;
use hostinfod::config::{Commands, WhoSource};
use hostinfod::utmp;
use libfuzzer_sys::fuzz_target;

/// The `[commands]` of a daemon whose `who` reads a utmp file of this
/// fuzzing process.
fn commands() -> &'static Commands {
    static CFG: OnceLock<Commands> = OnceLock::new();
    CFG.get_or_init(|| Commands {
        date_format: "%Y".into(),
        utmp_file: std::env::temp_dir().join(format!("hostinfod-fuzz-utmp-{}", std::process::id())),
        who_source: WhoSource::Utmp,
        motd_files: vec![],
        fortune_paths: vec![],
    })
}

fuzz_target!(|data: &[u8]| {
    let all = utmp::parse(data);
    assert_eq!(all.len(), data.len() / utmp::RECORD_SIZE);
    let users: Vec<_> = utmp::logged_in(data).collect();
    assert!(users.len() <= all.len());
    for e in &users {
        assert_eq!(e.kind, utmp::USER_PROCESS);
        assert!(!e.user.is_empty());
    }

    let cfg = commands();
    std::fs::write(&cfg.utmp_file, data).expect("write the utmp file");
    let mut out = Vec::new();
    who::reply(cfg, b"\n", &mut out);
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
