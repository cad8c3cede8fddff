//! Making text safe to send: file contents become clean lines.
//!
//! A motd, a fortune cookie or a utmp field is written by someone else and may
//! hold escape sequences that would act on the client's terminal (clear the
//! screen, retitle the window, set the answer-back). Everything read from a
//! file passes through [`push_text`] or [`push_clean`], which keep TAB, turn
//! every line end (LF, CRLF, CR) into the session's own line end, replace
//! invalid UTF-8 with U+FFFD (so a lone 0x9B cannot act as a C1 CSI on a
//! Latin-1 terminal) and drop every other control character, C0, DEL and C1.
//!
//! [`push_text`]: crate::text::push_text
//! [`push_clean`]: crate::text::push_clean

/// Appends `text` as lines, each ended with `eol`. A last line without a line
/// end still gets one; empty input appends nothing.
pub fn push_text(out: &mut Vec<u8>, text: &[u8], eol: &[u8]) {
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        push_clean(out, &rest[..end]);
        out.extend_from_slice(eol);
        let mut skip = end;
        if rest.get(end) == Some(&b'\r') && rest.get(end + 1) == Some(&b'\n') {
            skip += 2;
        } else if end < rest.len() {
            skip += 1;
        }
        rest = &rest[skip..];
    }
}

/// Appends `bytes` with control characters removed and invalid UTF-8
/// replaced; no line end is added. TAB is kept.
///
/// The output is that of `String::from_utf8_lossy` with the controls
/// filtered out, without its allocation: each maximal invalid sequence
/// becomes one U+FFFD, as there, and valid text is copied in runs.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn push_clean(out: &mut Vec<u8>, bytes: &[u8]) {
    // The common case, plain printable ASCII, is copied as is.
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
    {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut run = 0;
        for (i, c) in valid.char_indices() {
            if c != '\t' && c.is_control() {
                out.extend_from_slice(valid.as_bytes().get(run..i).unwrap_or_default());
                run = i + c.len_utf8();
            }
        }
        out.extend_from_slice(valid.as_bytes().get(run..).unwrap_or_default());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

/// A `fmt::Write` into a fixed buffer: formatting without an allocation,
/// for code that runs in a session's child (where every page malloc touches
/// is a copy-on-write fault). What does not fit is cut off.
#[derive(Debug)]
pub struct Fixed<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Fixed<'a> {
    /// An empty writer over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Fixed { buf, len: 0 }
    }

    /// What was written (and fitted).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for Fixed<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Appends one line of trusted text (our own words) and `eol`.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn push_line(out: &mut Vec<u8>, line: &[u8], eol: &[u8]) {
    out.extend_from_slice(line);
    out.extend_from_slice(eol);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &[u8], eol: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_text(&mut out, t, eol);
        out
    }

    #[test]
    fn fixed_writer_cuts_what_does_not_fit() {
        use std::fmt::Write as _;
        let mut buf = [0u8; 8];
        let mut w = Fixed::new(&mut buf);
        let word = "abcdef";
        let _ = write!(w, "{}-{word}", 1234);
        assert_eq!(w.as_bytes(), b"1234-abc");
    }

    #[test]
    fn line_ends_are_normalised() {
        assert_eq!(text(b"a\nb\r\nc\rd", b"\r\n"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(text(b"a\r\n", b"\n"), b"a\n");
        assert_eq!(text(b"\n\n", b"\n"), b"\n\n");
        assert_eq!(text(b"", b"\n"), b"");
    }

    #[test]
    fn escapes_are_removed_tab_kept() {
        assert_eq!(
            text(b"\x1b[2J\x1b]0;owned\x07hi\tthere\x7f\0\n", b"\n"),
            b"[2J]0;ownedhi\tthere\n"
        );
    }

    #[test]
    fn c1_and_invalid_utf8_are_neutralised() {
        // U+009B (CSI) encoded as UTF-8 is dropped; a raw 0x9B byte becomes U+FFFD.
        let out = text(b"a\xc2\x9bb\x9bc\n", b"\n");
        assert_eq!(out, "ab\u{fffd}c\n".as_bytes());
    }

    /// push_clean as it was written before, through from_utf8_lossy.
    fn lossy_clean(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4];
        for c in String::from_utf8_lossy(bytes).chars() {
            if c == '\t' || !c.is_control() {
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        out
    }

    fn clean(bytes: &[u8]) -> Vec<u8> {
        let mut out = b"x".to_vec();
        push_clean(&mut out, bytes);
        out.remove(0);
        out
    }

    #[test]
    fn clean_matches_from_utf8_lossy() {
        let cases: &[&[u8]] = &[
            // Valid.
            b"",
            b"plain ascii\tTAB",
            "h\u{e9}llo w\u{f6}rld \u{2603} \u{1f600}".as_bytes(),
            "a\u{85}b\u{9b}c\u{7f}d\u{200b}e".as_bytes(),
            b"\x1b[2J\x00\x07\r\n",
            // Invalid.
            b"\xff",
            b"\x80\x80\x80",
            b"\xc3",
            b"\xe2\x98",
            b"\xf0\x9f\x98",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
            b"\xfe\xfe\xff\xff",
            // Mixed.
            b"caf\xe9 cr\xe8me",
            b"a\xc2\x9bb\x9bc",
            b"\xe2\x98\x83\xe2\x98x\xc3\xa9\x1b\xc3",
            b"\x9b[31mred\x1b[0m \xe9t\xe9\t\xf0\x9f\x98\x80!",
        ];
        for &case in cases {
            assert_eq!(clean(case), lossy_clean(case), "{case:?}");
        }
        assert_eq!(clean(b"caf\xe9"), "caf\u{fffd}".as_bytes());
        assert_eq!(clean(b"\xe2\x98x"), "\u{fffd}x".as_bytes());
        assert_eq!(clean("a\u{85}b\tc".as_bytes()), b"ab\tc");
    }

    #[test]
    fn clean_matches_from_utf8_lossy_on_all_byte_pairs_and_chosen_quads() {
        let interesting = [
            0x00, 0x09, 0x1b, 0x20, 0x41, 0x7f, 0x80, 0x85, 0x9b, 0xa9, 0xbf, 0xc0, 0xc2, 0xc3,
            0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
        ];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(clean(&[a, b]), lossy_clean(&[a, b]), "{a:#x} {b:#x}");
            }
        }
        for &a in &interesting {
            for &b in &interesting {
                for &c in &interesting {
                    for &d in &interesting {
                        let s = [a, b, c, d];
                        assert_eq!(clean(&s), lossy_clean(&s), "{s:x?}");
                    }
                }
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn clean_matches_from_utf8_lossy_on_any_bytes(
                bytes in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                prop_assert_eq!(clean(&bytes), lossy_clean(&bytes));
            }

            #[test]
            fn clean_matches_from_utf8_lossy_on_mostly_valid_text(
                text in "(?s).{0,24}",
                cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
            ) {
                // Valid text with bytes knocked out: cut sequences mid-character.
                let mut bytes = text.into_bytes();
                for cut in cuts {
                    if !bytes.is_empty() {
                        bytes.remove(cut.index(bytes.len()));
                    }
                }
                prop_assert_eq!(clean(&bytes), lossy_clean(&bytes));
            }
        }
    }

    #[test]
    fn utf8_text_survives() {
        assert_eq!(
            text("héllo wörld ☃\n".as_bytes(), b"\n"),
            "héllo wörld ☃\n".as_bytes()
        );
    }
}
