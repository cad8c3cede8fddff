//! The line framer and the command parser: arbitrary client bytes, split
//! across reads at arbitrary points.
//!
//! Input layout: two bytes of `max_line_bytes` (1..=2048), one byte seeding
//! the read sizes, then the client's bytes. Checked besides "no panic": the
//! events do not depend on how the bytes were split across reads, nor on
//! where the feeding stopped and resumed (as the session does while replies
//! wait); a line holds no CR or LF and is never longer than the limit;
//! nothing follows `TooLong`; only WILL and DO are answered, each with one
//! refusal (or WILL TIMING-MARK); the reply to an unknown word carries no
//! control characters.
#![no_main]

use std::ops::ControlFlow;

use hostinfod::config::Commands;
use hostinfod::framing::{self, Event, Framer};
use hostinfod::protocol::{self, Command};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Line(Vec<u8>),
    TooLong,
    Neg(u8, u8),
}

fn ev(e: Event<'_>) -> Ev {
    match e {
        Event::Line(l) => Ev::Line(l.to_vec()),
        Event::TooLong => Ev::TooLong,
        Event::Negotiation { verb, option } => Ev::Neg(verb, option),
    }
}

/// Feeds each chunk; after every `stop_every`-th event the feeding stops
/// and the unused rest of the chunk is fed again (0: never stops).
fn run(max: usize, chunks: &[&[u8]], stop_every: usize) -> Vec<Ev> {
    let mut f = Framer::new(max);
    let mut out = Vec::new();
    for c in chunks {
        let mut rest: &[u8] = c;
        loop {
            let (used, _) = f.feed(rest, |e| {
                out.push(ev(e));
                if stop_every > 0 && out.len() % stop_every == 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert!(used <= rest.len());
            rest = &rest[used..];
            if rest.is_empty() {
                break;
            }
        }
        assert!(f.pending() <= max, "held {} > max {max}", f.pending());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [a, b, seed, input @ ..] = data else {
        return;
    };
    let max = usize::from(u16::from_le_bytes([*a, *b]) % 2048) + 1;

    let whole = run(max, &[input], 0);

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
    let split = run(max, &chunks, 0);
    assert_eq!(whole, split, "events depend on the read boundaries");
    let paused = run(max, &chunks, usize::from(*seed % 4) + 1);
    assert_eq!(whole, paused, "events depend on where feeding stopped");

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
        if let Ev::Neg(verb, option) = *e {
            match framing::answer(verb, option) {
                Some([framing::IAC, reply, o]) => {
                    assert_eq!(o, option);
                    assert!(matches!(
                        (verb, reply),
                        (framing::DO, framing::WONT) | (framing::WILL, framing::DONT)
                    ) || (verb, reply, option)
                        == (framing::DO, framing::WILL, framing::TIMING_MARK));
                }
                Some(other) => panic!("answer {other:?}"),
                None => assert!(verb == framing::WONT || verb == framing::DONT),
            }
            continue;
        }
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
