//! The line protocol over TCP and Unix sockets, against the real binary.

mod common;

use common::*;
use hostinfod::commands::cookie::BUILT_IN;

#[test]
fn every_command_over_tcp_with_crlf() {
    // Every command reads files the test controls, so each reply is known.
    let s = Setup::new("");
    let fortunes = s.path("fortunes");
    std::fs::write(&fortunes, "one\n%\ntwo\nlines\n%\n").expect("write fortunes");
    let motd = s.path("motd");
    std::fs::write(&motd, "Test motd.\nSecond line.\n").expect("write motd");
    let utmp = s.path("utmp");
    std::fs::write(
        &utmp,
        utmp_record(
            7,
            std::process::id() as i32,
            "pts/3",
            "alice",
            "192.0.2.7",
            1_700_000_000,
        ),
    )
    .expect("write utmp");
    s.write_config(&format!(
        "[commands]\nfortune_paths = [{fortunes:?}]\nmotd_files = [{:?}, {motd:?}]\nutmp_file = {utmp:?}\n",
        s.path("no-motd.dynamic")
    ));
    let d = s.daemon().env("TZ", "UTC").start();
    let mut c = d.tcp();
    let g = c.greeting();
    assert!(g.starts_with("Welcome to hostinfod on "), "{g:?}");
    assert!(
        g.ends_with("; type help for command list.\r\nCommand? "),
        "{g:?}"
    );
    let date = c.cmd("date");
    assert!(
        date.ends_with("\r\n") && !date.ends_with("\r\n\r\n"),
        "{date:?}"
    );
    assert_eq!(date.trim_end().len(), 24, "ctime-like width: {date:?}");
    assert_eq!(c.cmd("time").trim_end().len(), 24);
    assert_eq!(
        c.cmd("help"),
        "Commands: quit date who cookie motd help\r\n"
    );
    assert_eq!(c.cmd("?"), "Commands: quit date who cookie motd help\r\n");
    // cookie and fortune: one of the file's cookies, LF turned into CRLF.
    for word in ["cookie", "fortune"] {
        let r = c.cmd(word);
        assert!(r == "one\r\n" || r == "two\r\nlines\r\n", "{word}: {r:?}");
    }
    // motd: the missing file skipped, the existing one in full.
    assert_eq!(c.cmd("motd"), "Test motd.\r\nSecond line.\r\n");
    assert_eq!(
        c.cmd("who"),
        "alice    pts/3        2023-11-14 22:13 (192.0.2.7)\r\n"
    );
    c.send(b"quit\r\n");
    assert_eq!(c.read_to_end(), b"Goodbye.\r\n");
}

#[test]
fn unix_socket_uses_lf() {
    let s = Setup::new("");
    let d = s.start();
    let mut c = d.unix();
    let g = c.greeting();
    assert!(
        g.ends_with("list.\nCommand? ") && !g.contains('\r'),
        "{g:?}"
    );
    let date = c.cmd("date");
    assert!(date.ends_with('\n') && !date.contains('\r'), "{date:?}");
    assert_eq!(c.cmd("help"), "Commands: quit date who cookie motd help\n");
    c.send(b"exit\n");
    assert_eq!(c.read_to_end(), b"Goodbye.\n");
}

#[test]
fn line_ends_cr_nul_crlf_and_case() {
    let s = Setup::new("");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    c.send(b"HeLp\r\0");
    let r = c.read_until(PROMPT.as_bytes());
    assert_eq!(r, b"Commands: quit date who cookie motd help\r\nCommand? ");
    c.send(b"   QUIT   now\r\n");
    assert_eq!(c.read_to_end(), b"Goodbye.\r\n");
}

#[test]
fn unknown_words_and_blank_lines() {
    let s = Setup::new("");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    assert_eq!(
        c.cmd("frobnicate the thing"),
        "Unknown command \"frobnicate\".\r\nCommands: quit date who cookie motd help\r\n"
    );
    // A blank line gets only a new prompt.
    assert_eq!(c.cmd(""), "");
    assert_eq!(c.cmd("   \t "), "");
}

#[test]
fn pipelined_lines_are_answered_in_order() {
    let s = Setup::new("[commands]\nmotd_files = []\n");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    c.send(b"help\nmotd\n\nnope\nquit\ndate\n");
    let all = String::from_utf8(c.read_to_end()).expect("utf8");
    assert_eq!(
        all,
        "Commands: quit date who cookie motd help\r\nCommand? \
         No message of the day.\r\nCommand? \
         Command? \
         Unknown command \"nope\".\r\nCommands: quit date who cookie motd help\r\nCommand? \
         Goodbye.\r\n"
    );
}

#[test]
fn eof_ends_the_session() {
    let s = Setup::new("");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    c.s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert_eq!(c.read_to_end(), b"");
}

#[test]
fn motd_present_absent_and_escaped() {
    let s = Setup::new("");
    let a = s.path("motd-a");
    let b = s.path("motd-b");
    std::fs::write(&a, "Hello \x1b[2J\x1b]0;pwned\x07world\n\tindented\n").expect("write");
    std::fs::write(&b, "second file\r\nno final newline").expect("write");
    s.write_config(&format!(
        "[commands]\nmotd_files = [{:?}, {:?}, {:?}]\n",
        a,
        s.path("missing"),
        b
    ));
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    let m = c.cmd("motd");
    assert_eq!(
        m,
        "Hello [2J]0;pwnedworld\r\n\tindented\r\nsecond file\r\nno final newline\r\n"
    );
    assert!(!m.contains('\x1b') && !m.contains('\x07'));
    drop(c);
    drop(d);

    s.write_config(&format!(
        "[commands]\nmotd_files = [{:?}]\n",
        s.path("none")
    ));
    let d = s.start();
    let mut c = d.unix();
    c.greeting();
    assert_eq!(c.cmd("motd"), "No message of the day.\n");
}

/// Builds a strfile index by hand (big-endian header, numstr+1 offsets).
fn strfile_index(text: &[u8], flags: u32) -> Vec<u8> {
    let mut offsets = vec![0u32];
    let mut pos = 0;
    for line in text.split_inclusive(|&b| b == b'\n') {
        pos += line.len();
        if line == b"%\n" {
            offsets.push(pos as u32);
        }
    }
    if *offsets.last().expect("one") != text.len() as u32 {
        offsets.push(text.len() as u32);
    }
    let numstr = offsets.len() as u32 - 1;
    let mut dat = Vec::new();
    for v in [2u32, numstr, 100, 1, flags] {
        dat.extend_from_slice(&v.to_be_bytes());
    }
    dat.extend_from_slice(&[b'%', 0, 0, 0]);
    for o in offsets {
        dat.extend_from_slice(&o.to_be_bytes());
    }
    dat
}

fn cookies_seen(port: u16, n: usize) -> std::collections::BTreeSet<String> {
    let mut c = Client::new(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    c.greeting();
    (0..n).map(|_| c.cmd("cookie")).collect()
}

#[test]
fn fortune_from_dat_index_with_rot13() {
    let s = Setup::new("");
    let dir = s.path("fortunes");
    std::fs::create_dir(&dir).expect("mkdir");
    // rot13 of "alpha", "beta": the index says STR_ROTATED.
    let text = b"nycun\n%\norgn\n%\n";
    std::fs::write(dir.join("rot"), text).expect("write");
    std::fs::write(dir.join("rot.dat"), strfile_index(text, 0x4)).expect("write");
    s.write_config(&format!("[commands]\nfortune_paths = [{dir:?}]\n"));
    let d = s.start();
    let seen = cookies_seen(d.port, 60);
    let want: std::collections::BTreeSet<String> = ["alpha\r\n", "beta\r\n"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn fortune_from_plain_file_and_uniform_over_files() {
    let s = Setup::new("");
    let f1 = s.path("plain");
    std::fs::write(&f1, "one\n%\ntwo\nlines\n%\n").expect("write");
    let f2 = s.path("other");
    std::fs::write(&f2, "three\n").expect("write");
    s.write_config(&format!("[commands]\nfortune_paths = [{f1:?}, {f2:?}]\n"));
    let d = s.start();
    let seen = cookies_seen(d.port, 120);
    let want: std::collections::BTreeSet<String> = ["one\r\n", "two\r\nlines\r\n", "three\r\n"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn fortune_with_real_strfile() {
    require_program("/usr/bin/strfile", "fortune-mod");
    let s = Setup::new("");
    let f = s.path("real");
    std::fs::write(&f, "first cookie\n%\nsecond\ncookie\n%\nthird\n").expect("write");
    let st = std::process::Command::new("/usr/bin/strfile")
        .arg("-s")
        .arg(&f)
        .status()
        .expect("strfile");
    assert!(st.success());
    s.write_config(&format!("[commands]\nfortune_paths = [{f:?}]\n"));
    let d = s.start();
    let seen = cookies_seen(d.port, 90);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.contains("second\r\ncookie\r\n"), "{seen:?}");
}

#[test]
fn builtin_cookie_when_no_fortunes() {
    let s = Setup::new("[commands]\nfortune_paths = [\"/nonexistent/fortunes\"]\n");
    let d = s.start();
    // One of the built-in cookies, whole, with the TCP line end.
    for _ in 0..5 {
        let r = one_shot_tcp(d.port, "cookie");
        assert!(
            BUILT_IN.iter().any(|b| r == format!("{b}\r\n")),
            "not a built-in cookie: {r:?}"
        );
    }
}

/// A glibc x86-64 utmp record.
fn utmp_record(kind: i16, pid: i32, line: &str, user: &str, host: &str, t: i32) -> Vec<u8> {
    let mut r = vec![0u8; 384];
    r[0..2].copy_from_slice(&kind.to_le_bytes());
    r[4..8].copy_from_slice(&pid.to_le_bytes());
    r[8..8 + line.len()].copy_from_slice(line.as_bytes());
    r[44..44 + user.len()].copy_from_slice(user.as_bytes());
    r[76..76 + host.len()].copy_from_slice(host.as_bytes());
    r[340..344].copy_from_slice(&t.to_le_bytes());
    r
}

#[test]
fn who_reads_utmp_natively() {
    let s = Setup::new("");
    let utmp = s.path("utmp");
    let live = std::process::id() as i32;
    let mut bytes = Vec::new();
    bytes.extend(utmp_record(2, 0, "~", "reboot", "", 1_700_000_000)); // BOOT_TIME
    bytes.extend(utmp_record(
        7,
        live,
        "pts/3",
        "alice",
        "192.0.2.7",
        1_700_000_000,
    ));
    bytes.extend(utmp_record(7, live, "tty1", "bob", "", 1_700_000_060));
    bytes.extend(utmp_record(
        7,
        999_999_999,
        "pts/9",
        "ghost",
        "gone",
        1_700_000_000,
    )); // dead pid
    bytes.extend(utmp_record(
        7,
        live,
        "pts/4",
        "eve\x1b[2J",
        "h",
        1_700_000_000,
    ));
    std::fs::write(&utmp, &bytes).expect("write utmp");
    s.write_config(&format!("[commands]\nutmp_file = {utmp:?}\n"));
    let d = s.daemon().env("TZ", "UTC").start();
    let r = one_shot_tcp(d.port, "who");
    assert_eq!(
        r,
        "alice    pts/3        2023-11-14 22:13 (192.0.2.7)\r\n\
         bob      tty1         2023-11-14 22:14\r\n\
         eve[2J  pts/4        2023-11-14 22:13 (h)\r\n"
    );
}

#[test]
fn who_without_utmp_is_empty() {
    // who_source = "utmp": with "auto", a missing utmp file means logind's
    // sessions, which are the test machine's.
    let s = Setup::new("[commands]\nutmp_file = \"/nonexistent/utmp\"\nwho_source = \"utmp\"\n");
    let d = s.start();
    assert_eq!(one_shot_tcp(d.port, "who"), "");
}

#[test]
fn custom_greeting_prompt_and_date_format() {
    let s = Setup::new(
        "[protocol]\ngreeting = \"hi from {hostname}!\"\nprompt = \"Command? \"\n\n[commands]\ndate_format = \"%Y-%m-%d\"\n",
    );
    let d = s.start();
    let mut c = d.unix();
    let g = c.greeting();
    let host = nix::unistd::gethostname().expect("hostname");
    assert_eq!(g, format!("hi from {}!\nCommand? ", host.to_string_lossy()));
    let date = c.cmd("date");
    assert_eq!(date.len(), 11, "{date:?}");
    assert_eq!(&date[4..5], "-");
}

#[test]
fn no_prompt_when_empty() {
    let s = Setup::new("[protocol]\nprompt = \"\"\n");
    let d = s.start();
    let mut c = d.tcp();
    c.read_until(b"list.\r\n");
    c.send(b"help\nquit\n");
    assert_eq!(
        c.read_to_end(),
        b"Commands: quit date who cookie motd help\r\nGoodbye.\r\n"
    );
}

#[test]
fn hostile_bytes_do_not_break_the_session() {
    let s = Setup::new("");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    c.send(b"\0\0\xff\xfe\xfd\xc3\x28 garbage\x80\n");
    let r = c.read_until(PROMPT.as_bytes());
    let r = String::from_utf8_lossy(&r);
    assert!(r.starts_with("Unknown command \""), "{r:?}");
    assert_eq!(c.cmd("date").trim_end().len(), 24);
}

#[test]
fn over_long_line_gets_error_and_close() {
    let s = Setup::new("[limits]\nmax_line_bytes = 64\n");
    let d = s.start();
    let mut c = d.tcp();
    c.greeting();
    c.send(&[b'x'; 20_000]);
    let rest = c.read_to_end();
    assert_eq!(rest, b"Error: line too long (max 64 bytes).\r\n");
}

/// The daemon reads fortune indexes and the motd once per start or reload;
/// a file edited, replaced or added after that is still served as it is
/// now, without a reload.
#[test]
fn fortunes_and_motd_edited_after_start_are_served_as_they_are_now() {
    let s = Setup::new("");
    let dir = s.path("fortunes");
    std::fs::create_dir(&dir).expect("mkdir");
    let text = b"nycun\n%\norgn\n%\n";
    std::fs::write(dir.join("rot"), text).expect("write");
    std::fs::write(dir.join("rot.dat"), strfile_index(text, 0x4)).expect("write");
    let motd = s.path("motd");
    std::fs::write(&motd, "before\n").expect("write");
    s.write_config(&format!(
        "[commands]\nfortune_paths = [{dir:?}]\nmotd_files = [{motd:?}]\n"
    ));
    let d = s.start();
    let set = |items: &[&str]| -> std::collections::BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    };
    assert_eq!(cookies_seen(d.port, 40), set(&["alpha\r\n", "beta\r\n"]));
    let mut c = d.tcp();
    c.greeting();
    assert_eq!(c.cmd("motd"), "before\r\n");
    drop(c);
    // File times advance with the kernel's clock tick: wait one out, so
    // that an edit keeping the size cannot share the stamp of the original.
    std::thread::sleep(std::time::Duration::from_millis(30));

    // Edited in place, same size: new text under the old index.
    std::fs::write(dir.join("rot"), b"tnzzn\n%\nqrygn\n%\n").expect("write");
    std::fs::write(&motd, "after!\n").expect("write");
    assert_eq!(cookies_seen(d.port, 40), set(&["gamma\r\n", "delta\r\n"]));
    let mut c = d.tcp();
    c.greeting();
    assert_eq!(c.cmd("motd"), "after!\r\n");
    drop(c);

    // A file added to the directory is picked too.
    std::fs::write(dir.join("new"), "epsilon\n").expect("write");
    let seen = cookies_seen(d.port, 90);
    assert!(seen.contains("epsilon\r\n"), "{seen:?}");
}
