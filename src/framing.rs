//! Line framing of client input: bytes in, lines out, Telnet removed.
//!
//! A client may send anything, in any split across reads: lines ending in LF,
//! CRLF, CR NUL or a bare CR; Telnet option negotiation (IAC WILL/WONT/DO/DONT
//! opt, IAC SB … IAC SE, and the two-byte commands such as IAC NOP) which we
//! drop without answering; `IAC IAC` standing for one literal 0xFF byte; NUL
//! and invalid UTF-8, which are just bytes here. The framer keeps its state
//! between calls so a sequence split over two reads is handled the same as one
//! read, and it never holds more than `max_line_bytes` of a line: the byte
//! after that yields [`Event::TooLong`] at once, without waiting for a line end
//! that may never come.
//!
//! [`Event::TooLong`]: crate::framing::Event::TooLong

use std::ops::ControlFlow;

const IAC: u8 = 255;
const DONT: u8 = 254;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;

/// What the framer found in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete line, without its line end and without Telnet commands.
    Line(&'a [u8]),
    /// The current line grew past the limit; the session should end.
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    /// Ordinary data.
    Data,
    /// After IAC.
    Iac,
    /// After IAC WILL/WONT/DO/DONT: the next byte is the option.
    Option,
    /// Inside IAC SB …: everything is dropped until IAC SE.
    Sub,
    /// After IAC inside a subnegotiation.
    SubIac,
}

/// The per-session framing state.
#[derive(Debug)]
pub struct Framer {
    line: Vec<u8>,
    max: usize,
    telnet: Telnet,
    /// The previous data byte was a CR that ended a line, so a following LF
    /// or NUL belongs to that line end.
    after_cr: bool,
    /// TooLong was reported; everything after is ignored.
    overflowed: bool,
}

impl Framer {
    /// A framer that accepts lines of at most `max_line_bytes` bytes.
    pub fn new(max_line_bytes: usize) -> Self {
        Self::with_buffer(max_line_bytes, Vec::with_capacity(max_line_bytes.min(128)))
    }

    /// A framer that keeps its line in `buf` (cleared first): the server
    /// allocates it once in the parent, so a child does not call malloc to
    /// start a session.
    pub fn with_buffer(max_line_bytes: usize, mut buf: Vec<u8>) -> Self {
        buf.clear();
        Framer {
            line: buf,
            max: max_line_bytes,
            telnet: Telnet::Data,
            after_cr: false,
            overflowed: false,
        }
    }

    /// Feeds `input`, calling `on` for every event in order. Stops early and
    /// returns `Break` when `on` does; input after that point is discarded.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn feed<B>(
        &mut self,
        input: &[u8],
        mut on: impl FnMut(Event<'_>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        if self.overflowed {
            return ControlFlow::Continue(());
        }
        for &b in input {
            let data = match self.telnet {
                Telnet::Data if b == IAC => {
                    self.telnet = Telnet::Iac;
                    None
                }
                Telnet::Data => Some(b),
                Telnet::Iac => {
                    self.telnet = match b {
                        IAC => Telnet::Data,
                        WILL..=DONT => Telnet::Option,
                        SB => Telnet::Sub,
                        _ => Telnet::Data,
                    };
                    (b == IAC).then_some(IAC)
                }
                Telnet::Option => {
                    self.telnet = Telnet::Data;
                    None
                }
                Telnet::Sub => {
                    if b == IAC {
                        self.telnet = Telnet::SubIac;
                    }
                    None
                }
                Telnet::SubIac => {
                    self.telnet = if b == SE { Telnet::Data } else { Telnet::Sub };
                    None
                }
            };
            let Some(b) = data else { continue };
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match b {
                b'\n' | 0 if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let flow = on(Event::Line(&self.line));
                    self.line.clear();
                    flow?;
                }
                _ if self.line.len() >= self.max => {
                    self.overflowed = true;
                    self.line.clear();
                    return on(Event::TooLong);
                }
                _ => self.line.push(b),
            }
        }
        ControlFlow::Continue(())
    }

    /// Bytes of an unfinished line held right now.
    pub fn pending(&self) -> usize {
        self.line.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after the other and returns what came out.
    fn frame(max: usize, chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, ()>> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            let _ = f.feed::<()>(c, |e| {
                out.push(match e {
                    Event::Line(l) => Ok(l.to_vec()),
                    Event::TooLong => Err(()),
                });
                ControlFlow::Continue(())
            });
        }
        out
    }

    fn lines(v: &[&str]) -> Vec<Result<Vec<u8>, ()>> {
        v.iter().map(|s| Ok(s.as_bytes().to_vec())).collect()
    }

    #[test]
    fn line_ends() {
        assert_eq!(
            frame(100, &[b"a\nb\r\nc\r\0d\re\n"]),
            lines(&["a", "b", "c", "d", "e"])
        );
    }

    #[test]
    fn crlf_split_across_reads_is_one_line_end() {
        assert_eq!(
            frame(100, &[b"date\r", b"\nwho\r", b"\0"]),
            lines(&["date", "who"])
        );
    }

    #[test]
    fn blank_lines_are_lines() {
        assert_eq!(frame(100, &[b"\n\r\n\n"]), lines(&["", "", ""]));
    }

    #[test]
    fn unfinished_line_is_held() {
        let mut f = Framer::new(10);
        let mut n = 0;
        let _ = f.feed::<()>(b"dat", |_| {
            n += 1;
            ControlFlow::Continue(())
        });
        assert_eq!((n, f.pending()), (0, 3));
    }

    #[test]
    fn telnet_negotiation_is_removed() {
        // IAC DO ECHO, IAC WILL SGA, IAC SB TTYPE … IAC SE, IAC NOP inside a word.
        let input: &[u8] = b"\xff\xfd\x01\xff\xfb\x03da\xff\xfa\x18\x00xterm\xff\xf0t\xff\xf1e\r\n";
        assert_eq!(frame(100, &[input]), lines(&["date"]));
    }

    #[test]
    fn telnet_split_across_reads() {
        assert_eq!(
            frame(
                100,
                &[b"d\xff", b"\xfb", b"\x01ate\xff\xfa", b"zz\xff", b"\xf0\n"]
            ),
            lines(&["date"])
        );
    }

    #[test]
    fn iac_iac_is_literal_ff() {
        assert_eq!(
            frame(100, &[b"a\xff\xffb\n"]),
            vec![Ok(vec![b'a', 0xff, b'b'])]
        );
        // Inside a subnegotiation IAC IAC stays data of the subnegotiation.
        assert_eq!(
            frame(100, &[b"\xff\xfax\xff\xffy\xff\xf0ok\n"]),
            lines(&["ok"])
        );
    }

    #[test]
    fn too_long_fires_without_line_end() {
        let big = vec![b'x'; 20_000];
        assert_eq!(frame(1024, &[&big]), vec![Err(())]);
        // Exactly max bytes is fine.
        assert_eq!(frame(4, &[b"abcd\n"]), lines(&["abcd"]));
        assert_eq!(frame(4, &[b"abcde\n"]), vec![Err(())]);
    }

    #[test]
    fn nothing_after_too_long() {
        assert_eq!(frame(2, &[b"abc", b"\nd\n"]), vec![Err(())]);
    }

    #[test]
    fn break_stops_processing() {
        let mut f = Framer::new(10);
        let mut seen = Vec::new();
        let flow = f.feed(b"a\nquit\nb\n", |e| {
            if let Event::Line(l) = e {
                seen.push(l.to_vec());
                if l == b"quit" {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(seen, vec![b"a".to_vec(), b"quit".to_vec()]);
    }

    #[test]
    fn undoubled_iac_in_a_subnegotiation_does_not_end_it() {
        // IAC SB, then IAC IAC (a literal 255 of the subnegotiation), then a
        // bare SE: still inside it, so "date" is swallowed until IAC SE.
        assert_eq!(
            frame(100, &[b"\xff\xfa\xff\xff\xf0date\n\xff\xf0ok\n"]),
            lines(&["ok"])
        );
    }

    #[test]
    fn nul_and_binary_are_data() {
        assert_eq!(
            frame(100, &[b"\0a\x80\xfe\n"]),
            vec![Ok(vec![0, b'a', 0x80, 0xfe])]
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Line(Vec<u8>),
        TooLong,
    }

    /// Feeds `chunks` in order and returns every event; also checks that the
    /// framer never holds more than `max` bytes between reads.
    fn run<'a>(max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Ev> {
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
            assert!(f.pending() <= max);
        }
        out
    }

    /// `input` cut at the given points (taken modulo its length).
    fn split<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        at.sort_unstable();
        let mut pieces = Vec::new();
        let mut prev = 0;
        for c in at.into_iter().chain([input.len()]) {
            pieces.push(&input[prev..c]);
            prev = c;
        }
        pieces
    }

    /// Bytes that stress the framer: line ends, NUL and every Telnet
    /// command byte are much more likely than in uniform noise.
    fn wild_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => any::<u8>(),
            4 => prop::sample::select(b"date who\t?".to_vec()),
            3 => prop::sample::select(vec![b'\r', b'\n', 0]),
            3 => prop::sample::select(vec![IAC, SB, SE, WILL, 252, 253, DONT, 241, 244]),
        ]
    }

    /// A byte of ordinary line content: no CR, LF or IAC.
    fn plain_byte() -> impl Strategy<Value = u8> {
        any::<u8>().prop_filter("no line end or IAC", |b| !matches!(*b, b'\r' | b'\n' | IAC))
    }

    /// A Telnet command that carries no data: option negotiation, a
    /// two-byte command, or a subnegotiation (whose body may hold IAC IAC).
    fn telnet_command() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (WILL..=DONT, any::<u8>()).prop_map(|(v, o)| vec![IAC, v, o]),
            (241u8..=249).prop_map(|c| vec![IAC, c]),
            (
                // An option byte of 255 would itself have to be sent doubled
                // (RFC 855: every IAC inside a subnegotiation is doubled);
                // undoubled it does not end the subnegotiation.
                0u8..IAC,
                prop::collection::vec(prop_oneof![plain_byte(), Just(b'\r'), Just(b'\n')], 0..20),
                any::<bool>()
            )
                .prop_map(|(opt, body, escaped)| {
                    let mut v = vec![IAC, SB, opt];
                    v.extend_from_slice(&body);
                    if escaped {
                        v.extend_from_slice(&[IAC, IAC]);
                    }
                    v.extend_from_slice(&[IAC, SE]);
                    v
                }),
        ]
    }

    fn line_end() -> impl Strategy<Value = &'static [u8]> {
        prop::sample::select(vec![b"\n".as_slice(), b"\r\n", b"\r\0"])
    }

    proptest! {
        #[test]
        fn read_boundaries_do_not_matter(
            input in prop::collection::vec(wild_byte(), 0..400),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
            max in 1usize..64,
        ) {
            let whole = run(max, [input.as_slice()]);
            let pieces = run(max, split(&input, &cuts));
            let bytewise = run(max, input.chunks(1));
            prop_assert_eq!(&whole, &pieces);
            prop_assert_eq!(&whole, &bytewise);
        }

        #[test]
        fn lines_hold_no_line_end_and_respect_the_limit(
            input in prop::collection::vec(wild_byte(), 0..400),
            max in 1usize..64,
        ) {
            let events = run(max, [input.as_slice()]);
            for (i, e) in events.iter().enumerate() {
                match e {
                    Ev::Line(l) => {
                        prop_assert!(!l.contains(&b'\n') && !l.contains(&b'\r'), "{:?}", l);
                        prop_assert!(l.len() <= max);
                    }
                    // TooLong is the last thing the framer ever says.
                    Ev::TooLong => prop_assert_eq!(i, events.len() - 1),
                }
            }
        }

        #[test]
        fn plain_lines_come_through_unchanged(
            lines in prop::collection::vec(
                (prop::collection::vec(plain_byte(), 0..40), line_end()), 0..12),
        ) {
            let mut input = Vec::new();
            for (l, end) in &lines {
                input.extend_from_slice(l);
                input.extend_from_slice(end);
            }
            let want: Vec<Ev> = lines.iter().map(|(l, _)| Ev::Line(l.clone())).collect();
            prop_assert_eq!(run(40, [input.as_slice()]), want);
        }

        #[test]
        fn iac_iac_round_trips_a_literal_ff(
            line in prop::collection::vec(
                any::<u8>().prop_filter("no line end", |b| *b != b'\r' && *b != b'\n'), 0..60),
        ) {
            // Telnet escaping: every 0xFF of the data is sent doubled.
            let mut input = Vec::new();
            for &b in &line {
                input.push(b);
                if b == IAC {
                    input.push(IAC);
                }
            }
            input.extend_from_slice(b"\r\n");
            prop_assert_eq!(run(60, [input.as_slice()]), vec![Ev::Line(line)]);
        }

        #[test]
        fn telnet_commands_anywhere_are_removed(
            lines in prop::collection::vec(
                (prop::collection::vec(plain_byte(), 0..30), line_end()), 1..8),
            inserts in prop::collection::vec((any::<usize>(), telnet_command()), 0..8),
            cuts in prop::collection::vec(any::<usize>(), 0..10),
        ) {
            let mut clean = Vec::new();
            for (l, end) in &lines {
                clean.extend_from_slice(l);
                clean.extend_from_slice(end);
            }
            // Insert commands at arbitrary byte positions, even between the
            // CR and LF of a line end.
            let mut at: Vec<(usize, Vec<u8>)> = inserts
                .into_iter()
                .map(|(p, c)| (p % (clean.len() + 1), c))
                .collect();
            at.sort_by_key(|(p, _)| *p);
            let mut noisy = Vec::new();
            let mut prev = 0;
            for (p, cmd) in &at {
                noisy.extend_from_slice(&clean[prev..*p]);
                noisy.extend_from_slice(cmd);
                prev = *p;
            }
            noisy.extend_from_slice(&clean[prev..]);
            let want = run(30, [clean.as_slice()]);
            prop_assert_eq!(run(30, split(&noisy, &cuts)), want);
        }

        #[test]
        fn a_line_over_the_limit_is_too_long_once(
            prefix in prop::collection::vec(
                (prop::collection::vec(plain_byte(), 0..16), line_end()), 0..4),
            extra in 1usize..100,
            max in 1usize..16,
            tail in prop::collection::vec(wild_byte(), 0..50),
        ) {
            // Lines before the long one fit the limit.
            let prefix: Vec<_> = prefix
                .into_iter()
                .map(|(l, end)| (l[..l.len().min(max)].to_vec(), end))
                .collect();
            let mut input = Vec::new();
            for (l, end) in &prefix {
                input.extend_from_slice(l);
                input.extend_from_slice(end);
            }
            input.extend(std::iter::repeat_n(b'x', max + extra));
            input.extend_from_slice(&tail);
            let events = run(max, [input.as_slice()]);
            let mut want: Vec<Ev> = prefix.iter().map(|(l, _)| Ev::Line(l.clone())).collect();
            want.push(Ev::TooLong);
            prop_assert_eq!(events, want);
        }
    }
}
