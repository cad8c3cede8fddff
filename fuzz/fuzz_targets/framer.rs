//! The line framer and the command parser: arbitrary client bytes, split
//! across reads at arbitrary points.
//!
//! Input layout: two bytes of `max_line_bytes` (1..=2048), one byte seeding
//! the read sizes, then the client's bytes. Checked besides "no panic": the
//! events do not depend on how the bytes were split across reads; a line
//! holds no CR or LF and is never longer than the limit; nothing follows
//! `TooLong`; the reply to an unknown word carries no control characters.
#![no_main]

use std::ops::ControlFlow;

use hostinfod::config::Commands;
use hostinfod::framing::{Event, Framer};
use hostinfod::protocol::{self, Command};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Line(Vec<u8>),
    TooLong,
}

fn run(max: usize, chunks: &[&[u8]]) -> Vec<Ev> {
    let mut f = Framer::new(max);
    let mut out = Vec::new();
    for c in chunks {
        let _ = f.feed::<()>(c, |e| {
            out.push(match e {
                Event::Line(l) => Ev::Line(l.to_vec()),
                Event::TooLong => Ev::TooLong,
            });
            ControlFlow::Continue(())
        });
        assert!(f.pending() <= max, "held {} > max {max}", f.pending());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [a, b, seed, input @ ..] = data else {
        return;
    };
    let max = usize::from(u16::from_le_bytes([*a, *b]) % 2048) + 1;

    let whole = run(max, &[input]);

    // The same bytes in reads of 1..=16 bytes chosen by the seed.
    let mut chunks = Vec::new();
    let mut rest = input;
    let mut s = u32::from(*seed) | 1;
    while !rest.is_empty() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        let n = (s as usize % 16 + 1).min(rest.len());
        let (c, r) = rest.split_at(n);
        chunks.push(c);
        rest = r;
    }
    let split = run(max, &chunks);
    assert_eq!(whole, split, "events depend on the read boundaries");

    if let Some(i) = whole.iter().position(|e| *e == Ev::TooLong) {
        assert_eq!(i, whole.len() - 1, "events after TooLong");
    }

    let cfg = Commands {
        date_format: "%Y".into(),
        utmp_file: "/nonexistent/utmp".into(),
        who_source: hostinfod::config::WhoSource::Utmp,
        motd_files: vec![],
        fortune_paths: vec![],
    };
    for e in &whole {
        let Ev::Line(line) = e else { continue };
        assert!(line.len() <= max);
        assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
        let cmd = protocol::parse(line);
        // Only the replies that read no files and no clock: those that echo
        // or depend on the client's bytes.
        if matches!(
            cmd,
            Command::Unknown(_) | Command::Help | Command::Blank | Command::Quit
        ) {
            let mut out = Vec::new();
            protocol::respond(cmd, &cfg, b"\r\n", &mut out);
            let body = out.strip_suffix(b"\r\n").unwrap_or(&out);
            let text = String::from_utf8(body.to_vec()).expect("replies are UTF-8");
            assert!(
                text.split("\r\n")
                    .all(|l| l.chars().all(|c| c == '\t' || !c.is_control())),
                "control character in reply {text:?}"
            );
        }
        if let Command::Unknown(w) = cmd {
            assert!(!w.is_empty());
        }
    }
});
