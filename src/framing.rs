//! Line framing of client input: bytes in, lines out, Telnet removed.
//!
//! A client may send anything, in any split across reads: lines ending in LF,
//! CRLF, CR NUL or a bare CR; Telnet option negotiation (IAC WILL/WONT/DO/DONT
//! opt, IAC SB … IAC SE, and the two-byte commands such as IAC NOP), which is
//! removed from the lines and reported as [`Event::Negotiation`] so that the
//! session can answer it ([`answer`]); `IAC IAC` standing for one literal 0xFF
//! byte; NUL and invalid UTF-8, which are just bytes here. The framer keeps its
//! state between calls so a sequence split over two reads is handled the same
//! as one read, and it never holds more than `max_line_bytes` of a line: the
//! byte after that yields [`Event::TooLong`] at once, without waiting for a
//! line end that may never come. [`Framer::feed`] says how much of its input
//! it used, so that a session can stop after any line (while its replies wait
//! for the client) and feed the rest later; [`Framer::finish`] gives the
//! unfinished last line at end of file.

use std::ops::ControlFlow;

/// Interpret As Command: starts every Telnet command.
pub const IAC: u8 = 255;
/// Asks the other side not to use an option.
pub const DONT: u8 = 254;
/// Asks the other side to use an option.
pub const DO: u8 = 253;
/// Refuses (or stops) an option on the sender's side.
pub const WONT: u8 = 252;
/// Offers (or confirms) an option on the sender's side.
pub const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
/// The TIMING-MARK option (RFC 860).
pub const TIMING_MARK: u8 = 6;

/// The answer owed to a client's `IAC verb option`, as a server that
/// supports no option (RFC 1143, "the Q method" with every option refused):
/// DO is answered WONT and WILL is answered DONT; WONT and DONT, which only
/// confirm the state both sides are already in, get nothing, so two refusing
/// sides can never loop. The exception is DO TIMING-MARK, answered WILL
/// TIMING-MARK (RFC 860): a telnet client sends it after the user's
/// interrupt (Ctrl-C) and hides all output until the answer comes; the
/// answer means "everything before this has been processed", which is true
/// once the framer has reached it.
pub fn answer(verb: u8, option: u8) -> Option<[u8; 3]> {
    match verb {
        DO if option == TIMING_MARK => Some([IAC, WILL, option]),
        DO => Some([IAC, WONT, option]),
        WILL => Some([IAC, DONT, option]),
        _ => None,
    }
}

/// What the framer found in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete line, without its line end and without Telnet commands.
    Line(&'a [u8]),
    /// The current line grew past the limit; the session should end.
    TooLong,
    /// `IAC verb option` with verb one of WILL, WONT, DO, DONT: removed from
    /// the line, reported for [`answer`].
    Negotiation {
        /// WILL, WONT, DO or DONT.
        verb: u8,
        /// The option code.
        option: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    /// Ordinary data.
    Data,
    /// After IAC.
    Iac,
    /// After IAC WILL/WONT/DO/DONT (the verb): the next byte is the option.
    Option(u8),
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

    /// Feeds `input`, calling `on` for every event in order. Stops early when
    /// `on` returns `Break`, and returns how many bytes of `input` it used
    /// with the flow: the bytes after that point have not been looked at and
    /// may be fed again (a session that stops reading while replies wait
    /// does). After [`Event::TooLong`] all input is used and ignored.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn feed<B>(
        &mut self,
        input: &[u8],
        mut on: impl FnMut(Event<'_>) -> ControlFlow<B>,
    ) -> (usize, ControlFlow<B>) {
        if self.overflowed {
            return (input.len(), ControlFlow::Continue(()));
        }
        for (i, &b) in input.iter().enumerate() {
            let used = i + 1;
            let data = match self.telnet {
                Telnet::Data if b == IAC => {
                    self.telnet = Telnet::Iac;
                    None
                }
                Telnet::Data => Some(b),
                Telnet::Iac => {
                    self.telnet = match b {
                        IAC => Telnet::Data,
                        WILL..=DONT => Telnet::Option(b),
                        SB => Telnet::Sub,
                        _ => Telnet::Data,
                    };
                    (b == IAC).then_some(IAC)
                }
                Telnet::Option(verb) => {
                    self.telnet = Telnet::Data;
                    if let ControlFlow::Break(b) = on(Event::Negotiation { verb, option: b }) {
                        return (used, ControlFlow::Break(b));
                    }
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
                    if flow.is_break() {
                        return (used, flow);
                    }
                }
                _ if self.line.len() >= self.max => {
                    self.overflowed = true;
                    self.line.clear();
                    return (input.len(), on(Event::TooLong));
                }
                _ => self.line.push(b),
            }
        }
        (input.len(), ControlFlow::Continue(()))
    }

    /// At end of file: the unfinished last line, if it holds any byte, as a
    /// line (`printf date | nc -N host 2345` is answered). The framer takes
    /// no more input afterwards.
    pub fn finish(&mut self) -> Option<&[u8]> {
        if self.overflowed || self.line.is_empty() {
            return None;
        }
        self.overflowed = true;
        Some(&self.line)
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
                match e {
                    Event::Line(l) => out.push(Ok(l.to_vec())),
                    Event::TooLong => out.push(Err(())),
                    Event::Negotiation { .. } => {}
                }
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
        let (used, flow) = f.feed(b"a\nquit\nb\n", |e| {
            if let Event::Line(l) = e {
                seen.push(l.to_vec());
                if l == b"quit" {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(used, 7, "up to and including the LF of quit");
        assert_eq!(seen, vec![b"a".to_vec(), b"quit".to_vec()]);
    }

    /// Every negotiation in `input`, in order.
    fn negotiations(input: &[u8]) -> Vec<(u8, u8)> {
        let mut f = Framer::new(100);
        let mut out = Vec::new();
        let _ = f.feed::<()>(input, |e| {
            if let Event::Negotiation { verb, option } = e {
                out.push((verb, option));
            }
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn negotiation_is_reported_and_answered_as_rfc_1143_says() {
        // IAC DO ECHO, IAC WILL TTYPE, IAC DO TIMING-MARK, IAC WONT 7,
        // IAC DONT 8, and IAC IP (no option: not a negotiation).
        let input = b"\xff\xfd\x01\xff\xfb\x18\xff\xfd\x06\xff\xfc\x07\xff\xfe\x08\xff\xf4";
        let got = negotiations(input);
        assert_eq!(
            got,
            vec![
                (DO, 1),
                (WILL, 0x18),
                (DO, TIMING_MARK),
                (WONT, 7),
                (DONT, 8)
            ]
        );
        let answers: Vec<_> = got.iter().filter_map(|&(v, o)| answer(v, o)).collect();
        assert_eq!(
            answers,
            vec![[IAC, WONT, 1], [IAC, DONT, 0x18], [IAC, WILL, TIMING_MARK]]
        );
        // A client's WILL TIMING-MARK is refused like any other option.
        assert_eq!(answer(WILL, TIMING_MARK), Some([IAC, DONT, TIMING_MARK]));
    }

    #[test]
    fn refusals_are_never_answered() {
        for option in 0..=255u8 {
            assert_eq!(answer(WONT, option), None);
            assert_eq!(answer(DONT, option), None);
            // And no answer is itself something that would be answered.
            for verb in [DO, WILL] {
                let [iac, v, o] = answer(verb, option).expect("answered");
                assert_eq!((iac, o), (IAC, option));
                assert!(v == WONT || v == DONT || (verb, v, o) == (DO, WILL, TIMING_MARK));
            }
        }
    }

    #[test]
    fn feed_resumes_where_it_stopped() {
        // Stop after every line and feed the rest: the same lines, and the
        // CR LF split by the stop is still one line end.
        let input = b"date\r\nwho\r\n\xff\xfd\x06help\n";
        let mut f = Framer::new(100);
        let mut seen = Vec::new();
        let mut rest: &[u8] = input;
        while !rest.is_empty() {
            let (used, _) = f.feed(rest, |e| {
                seen.push(format!("{e:?}"));
                ControlFlow::Break(())
            });
            assert!(used > 0);
            rest = &rest[used..];
        }
        assert_eq!(
            seen,
            vec![
                "Line([100, 97, 116, 101])",
                "Line([119, 104, 111])",
                "Negotiation { verb: 253, option: 6 }",
                "Line([104, 101, 108, 112])"
            ]
        );
    }

    #[test]
    fn the_last_line_at_eof_is_finished() {
        let mut f = Framer::new(10);
        let _ = f.feed::<()>(b"who\ndate", |_| ControlFlow::Continue(()));
        assert_eq!(f.finish(), Some(&b"date"[..]));
        assert_eq!(f.finish(), None, "only once");
        // Nothing pending: nothing to finish.
        let mut f = Framer::new(10);
        let _ = f.feed::<()>(b"who\n\xff\xf1", |_| ControlFlow::Continue(()));
        assert_eq!(f.finish(), None);
        // An over-long line is not a line at EOF either.
        let mut f = Framer::new(2);
        let _ = f.feed::<()>(b"abc", |_| ControlFlow::Continue(()));
        assert_eq!(f.finish(), None);
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
        Neg(u8, u8),
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
                    Event::Negotiation { verb, option } => Ev::Neg(verb, option),
                });
                ControlFlow::Continue(())
            });
            assert!(f.pending() <= max);
        }
        out
    }

    /// Like [`run`], but stopping after every `stop_every`-th event and
    /// feeding the unused rest again, as a session that waits for its
    /// replies to drain does.
    fn run_pausing(max: usize, input: &[u8], stop_every: usize) -> Vec<Ev> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        let mut rest = input;
        loop {
            let (used, _) = f.feed(rest, |e| {
                out.push(match e {
                    Event::Line(l) => Ev::Line(l.to_vec()),
                    Event::TooLong => Ev::TooLong,
                    Event::Negotiation { verb, option } => Ev::Neg(verb, option),
                });
                if out.len() % stop_every == 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert!(used <= rest.len());
            rest = &rest[used..];
            if rest.is_empty() {
                return out;
            }
        }
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
        fn stopping_and_resuming_does_not_matter(
            input in prop::collection::vec(wild_byte(), 0..400),
            max in 1usize..64,
            stop_every in 1usize..4,
        ) {
            prop_assert_eq!(run(max, [input.as_slice()]), run_pausing(max, &input, stop_every));
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
                    Ev::Neg(verb, _) => prop_assert!((WILL..=DONT).contains(verb)),
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
            let mut got = run(30, split(&noisy, &cuts));
            let negotiations = at.iter().filter(|(_, c)| (WILL..=DONT).contains(&c[1])).count();
            let before = got.len();
            got.retain(|e| !matches!(e, Ev::Neg(..)));
            prop_assert_eq!(before - got.len(), negotiations);
            prop_assert_eq!(got, want);
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
