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
        Framer {
            // Small initial capacity: most command lines are a few bytes, and a
            // child should not touch more memory than it needs.
            line: Vec::with_capacity(max_line_bytes.min(128)),
            max: max_line_bytes,
            telnet: Telnet::Data,
            after_cr: false,
            overflowed: false,
        }
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
    fn nul_and_binary_are_data() {
        assert_eq!(
            frame(100, &[b"\0a\x80\xfe\n"]),
            vec![Ok(vec![0, b'a', 0x80, 0xfe])]
        );
    }
}
