//! Readers for fortune cookie files: the strfile(8) `.dat` random-access
//! index and plain `%`-separated text files that have no index.
//!
//! The `cookie` command picks one cookie at random from whatever fortune
//! files the administrator configured. When a file comes with the `.dat`
//! index that strfile(8) writes, one cookie can be located without scanning
//! the text; otherwise the text itself is split on its separator lines. Both
//! inputs are files that any user may have written, so everything here is
//! pure and total: it takes bytes, returns values, and never panics, however
//! malformed the input is.
//!
//! The index format is fortune-mod's (and the BSDs'): a 24-byte header of
//! five big-endian `u32`s (`str_version`, `str_numstr`, `str_longlen`,
//! `str_shortlen`, `str_flags`) followed by four bytes whose first is the
//! delimiter character, then `numstr + 1` big-endian `u32` byte offsets into
//! the text file. The first `numstr` offsets are where the cookies start;
//! the last one is the end of the text. strfile itself never modifies the
//! text, not even for `-x` (rot13), which only sets a flag telling readers
//! to rotate what they display.

/// Header flag: the offset table was shuffled (`strfile -r`).
pub const STR_RANDOM: u32 = 0x1;
/// Header flag: the offset table was sorted alphabetically (`strfile -o`).
pub const STR_ORDERED: u32 = 0x2;
/// Header flag: the text is rot13-encoded and must be rotated for display (`strfile -x`).
pub const STR_ROTATED: u32 = 0x4;
/// Size in bytes of the fixed header that precedes the offset table.
pub const HEADER_LEN: usize = 24;

/// The separator of plain fortune files, and the default of indexed ones.
const PLAIN_DELIM: u8 = b'%';

/// The decoded header of a strfile `.dat` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version; 1 (historical BSD) and 2 (fortune-mod and current BSD) share this layout.
    pub version: u32,
    /// Number of cookies in the text file.
    pub numstr: u32,
    /// Length in bytes of the longest cookie, as recorded by strfile.
    pub longlen: u32,
    /// Length in bytes of the shortest cookie, as recorded by strfile.
    pub shortlen: u32,
    /// Bit set of `STR_RANDOM`, `STR_ORDERED` and `STR_ROTATED`.
    pub flags: u32,
    /// The byte that, alone on a line, separates cookies (usually `%`).
    pub delim: u8,
}

/// Why a `.dat` index cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatError {
    /// The data is shorter than the fixed header.
    #[error("index too short: {len} bytes, the header alone is 24")]
    TooShort {
        /// Length of the data that was given.
        len: usize,
    },
    /// The version field holds a value no known strfile writes.
    #[error("unsupported strfile index version {0}")]
    UnsupportedVersion(u32),
    /// The header announces more offsets than the data holds.
    #[error("offset table truncated: {numstr} cookies need {need} bytes, index has {len}")]
    TableTruncated {
        /// Number of cookies announced by the header.
        numstr: u32,
        /// Bytes needed for the header and its `numstr + 1` offsets.
        need: u64,
        /// Bytes actually present.
        len: usize,
    },
}

/// Reads the big-endian `u32` at byte `pos` of `bytes`, or `None` when it
/// does not lie entirely inside.
fn be_u32_at(bytes: &[u8], pos: usize) -> Option<u32> {
    let end = pos.checked_add(4)?;
    let raw: [u8; 4] = bytes.get(pos..end)?.try_into().ok()?;
    Some(u32::from_be_bytes(raw))
}

/// Parses the 24-byte big-endian header and checks that the table of
/// numstr+1 u32 offsets fits in `dat`.
///
/// Extra bytes after the table are tolerated, as fortune itself does.
pub fn parse_header(dat: &[u8]) -> Result<Header, DatError> {
    parse_header_of(dat, dat.len())
}

/// [`parse_header`] from the first bytes of a `.dat` file (at least
/// [`HEADER_LEN`]) and its length `len`, so that a reader can check the
/// table is complete without reading it.
pub fn parse_header_of(dat: &[u8], len: usize) -> Result<Header, DatError> {
    let too_short = DatError::TooShort { len };
    if dat.len() < HEADER_LEN {
        return Err(too_short);
    }
    let field = |n: usize| be_u32_at(dat, n * 4).ok_or_else(|| too_short.clone());
    let version = field(0)?;
    let numstr = field(1)?;
    let longlen = field(2)?;
    let shortlen = field(3)?;
    let flags = field(4)?;
    let delim = dat.get(20).copied().ok_or_else(|| too_short.clone())?;
    if !(1..=2).contains(&version) {
        return Err(DatError::UnsupportedVersion(version));
    }
    // Computed in u64 so that a hostile numstr of u32::MAX cannot overflow
    // the multiplication, whatever the width of usize.
    let need = (u64::from(numstr) + 1) * 4 + HEADER_LEN as u64;
    // usize never exceeds 64 bits on supported targets; saturating keeps
    // the comparison total anyway.
    if u64::try_from(len).unwrap_or(u64::MAX) < need {
        return Err(DatError::TableTruncated { numstr, need, len });
    }
    Ok(Header {
        version,
        numstr,
        longlen,
        shortlen,
        flags,
        delim,
    })
}

/// Reads offset `i` of the table straight from `dat`, without building the
/// whole table: a fortune file can hold thousands of cookies and only one
/// is wanted.
fn offset_at(dat: &[u8], i: usize) -> Option<usize> {
    let pos = offset_pos(i)?;
    usize::try_from(be_u32_at(dat, pos)?).ok()
}

/// Where in a `.dat` file the 4-byte offset of cookie `i` sits.
pub fn offset_pos(i: usize) -> Option<usize> {
    i.checked_mul(4)?.checked_add(HEADER_LEN)
}

/// An offset as stored in the table: 4 bytes, big-endian.
pub fn offset_from(bytes: &[u8]) -> Option<usize> {
    usize::try_from(be_u32_at(bytes, 0)?).ok()
}

/// Whether `line` (without its `\n`) is a separator line: the delimiter
/// alone, optionally followed by a carriage return so that files edited on
/// other systems still split where their author meant.
fn is_delim_line(line: &[u8], delim: u8) -> bool {
    matches!(line, [d] | [d, b'\r'] if *d == delim)
}

/// Finds the end of the cookie that starts at `start`: returns the position
/// of the first separator line at or after `start` (or the end of `text`)
/// and the position where the next cookie starts (just after that separator
/// line, or the end of `text`).
fn cookie_end(text: &[u8], start: usize, delim: u8) -> (usize, usize) {
    let mut pos = start;
    while let Some(rest) = text.get(pos..) {
        if rest.is_empty() {
            break;
        }
        let (line_len, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => (nl, pos.saturating_add(nl).saturating_add(1)),
            None => (rest.len(), text.len()),
        };
        if is_delim_line(rest.get(..line_len).unwrap_or_default(), delim) {
            return (pos, next);
        }
        pos = next;
    }
    (text.len(), text.len())
}

/// Applies rot13 to the ASCII letters of `bytes`, leaving everything else
/// (including non-ASCII bytes) alone, which is what fortune does for
/// `STR_ROTATED` files.
pub fn rot13(bytes: &mut [u8]) {
    for b in bytes {
        *b = match *b {
            b'a'..=b'm' | b'A'..=b'M' => *b + 13,
            b'n'..=b'z' | b'N'..=b'Z' => *b - 13,
            other => other,
        };
    }
}

/// The i-th cookie (0-based, i < numstr) of `text` located through the index
/// `dat`, with rot13 applied when `STR_ROTATED` is set. None if i is out of
/// range or the offsets point outside `text`.
///
/// The cookie runs from `offset[i]` up to, not including, the next line that
/// holds the delimiter alone, or to the end of `text`. This is how fortune
/// reads a cookie; `offset[i + 1]` is deliberately not used as the end,
/// because after `strfile -r` or `-o` the table is shuffled or sorted and
/// the next entry is not the next cookie. Two leniencies go beyond fortune:
/// a separator line may end in `\r\n`, and a delimiter alone on the last
/// line without a newline also ends the cookie instead of being shown.
/// An offset at or past the end of `text` (an index older than its text)
/// gives `None`, since no cookie can start there.
pub fn indexed_cookie(text: &[u8], dat: &[u8], header: &Header, i: usize) -> Option<Vec<u8>> {
    if i >= usize::try_from(header.numstr).ok()? {
        return None;
    }
    let start = offset_at(dat, i)?;
    cookie_at_start(text.get(start..)?, header)
}

/// The cookie at the start of `text`, which is the text file read from the
/// cookie's offset (all of it, or a window at least as long as the cookie):
/// up to the next line that holds the delimiter alone, rot13'd when
/// `STR_ROTATED` is set. None if `text` is empty (an offset at or past the
/// end of the file: an index older than its text).
pub fn cookie_at_start(text: &[u8], header: &Header) -> Option<Vec<u8>> {
    if text.is_empty() {
        return None;
    }
    let end = cookie_len(text, header.delim);
    let mut cookie = text.get(..end)?.to_vec();
    if header.flags & STR_ROTATED != 0 {
        rot13(&mut cookie);
    }
    Some(cookie)
}

/// The length of the cookie at the start of `text`: the bytes before the
/// first line that holds `delim` alone (or all of `text`). Allocates nothing,
/// for the session's child, which reads a window of the text file from the
/// cookie's offset and sends this much of it.
pub fn cookie_len(text: &[u8], delim: u8) -> usize {
    cookie_end(text, 0, delim).0
}

/// Where the non-blank cookies of a plain `%`-separated file lie: the byte
/// range of each, by the splitting rule of [`plain_count`], for an index
/// built once and read many times.
pub fn plain_spans(text: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut cookies = PlainCookies { text, pos: 0 };
    std::iter::from_fn(move || cookies.next_span())
}

/// Iterates over the non-blank cookies of a plain `%`-separated file.
struct PlainCookies<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PlainCookies<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let span = self.next_span()?;
        self.text.get(span)
    }
}

impl PlainCookies<'_> {
    fn next_span(&mut self) -> Option<std::ops::Range<usize>> {
        while self.pos < self.text.len() {
            let start = self.pos;
            let (end, next) = cookie_end(self.text, start, PLAIN_DELIM);
            // The cursor always advances, because a separator line or the
            // rest of the text is at least one byte long.
            self.pos = next.max(start.saturating_add(1));
            let cookie = self.text.get(start..end).unwrap_or_default();
            // Empty cookies come from doubled separators or a separator on
            // the first line, and strfile does not count them either.
            // Whitespace-only ones are skipped too, although strfile would
            // index them, because a blank reply is of no use to anyone.
            if !cookie.iter().all(u8::is_ascii_whitespace) {
                return Some(start..end);
            }
        }
        None
    }
}

/// Number of cookies in a plain file with no index: cookies are separated
/// by lines holding only `%` ("%\n", "%\r\n", or a final "%" without
/// newline); empty/whitespace-only cookies are not counted.
pub fn plain_count(text: &[u8]) -> usize {
    PlainCookies { text, pos: 0 }.count()
}

/// The i-th cookie of a plain file, same splitting rule as `plain_count`,
/// without the separator line. The cookie keeps the line end of its last
/// line, exactly as it is in the file.
pub fn plain_cookie(text: &[u8], i: usize) -> Option<&[u8]> {
    PlainCookies { text, pos: 0 }.nth(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_alone_with_the_file_length_is_enough() {
        let d = dat(2, 0, b'%', &[0, 4, 8]);
        let h = parse_header(&d).expect("whole index");
        assert_eq!(parse_header_of(&d[..HEADER_LEN], d.len()), Ok(h));
        assert!(matches!(
            parse_header_of(&d[..HEADER_LEN], d.len() - 1),
            Err(DatError::TableTruncated { .. })
        ));
        assert_eq!(offset_pos(1), Some(HEADER_LEN + 4));
        assert_eq!(offset_from(&d[HEADER_LEN + 4..]), Some(4));
    }

    #[test]
    fn cookie_at_start_reads_a_window() {
        let h = parse_header(&dat(2, STR_ROTATED, b'%', &[0, 4])).expect("index");
        // A window cut before the next separator still gives the cookie's
        // text up to where it was cut; the separator line ends it.
        assert_eq!(
            cookie_at_start(b"uryyb\n%\nzber", &h),
            Some(b"hello\n".to_vec())
        );
        assert_eq!(cookie_at_start(b"uryy", &h), Some(b"hell".to_vec()));
        assert_eq!(cookie_at_start(b"", &h), None);
    }

    /// Builds a `.dat` index by hand, the way strfile lays it out.
    fn dat(version: u32, flags: u32, delim: u8, offsets: &[u32]) -> Vec<u8> {
        let numstr = u32::try_from(offsets.len().saturating_sub(1)).unwrap_or(0);
        let mut out = Vec::new();
        for v in [version, numstr, 0, 0, flags] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[delim, 0, 0, 0]);
        for o in offsets {
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    fn cookie(text: &[u8], dat: &[u8], i: usize) -> Option<Vec<u8>> {
        let header = parse_header(dat).ok()?;
        indexed_cookie(text, dat, &header, i)
    }

    #[test]
    fn header_fields_are_big_endian() {
        let mut d = dat(2, STR_ROTATED, b'%', &[0, 6, 10]);
        d.splice(8..16, [0, 0, 0, 9, 0, 0, 0, 3]);
        assert_eq!(
            parse_header(&d),
            Ok(Header {
                version: 2,
                numstr: 2,
                longlen: 9,
                shortlen: 3,
                flags: STR_ROTATED,
                delim: b'%',
            })
        );
    }

    #[test]
    fn header_version_one_is_accepted() {
        assert_eq!(
            parse_header(&dat(1, 0, b'%', &[0, 2])).map(|h| h.numstr),
            Ok(1)
        );
    }

    #[test]
    fn header_too_short() {
        assert_eq!(parse_header(&[]), Err(DatError::TooShort { len: 0 }));
        assert_eq!(parse_header(&[0; 23]), Err(DatError::TooShort { len: 23 }));
    }

    #[test]
    fn header_unsupported_version() {
        assert_eq!(
            parse_header(&dat(3, 0, b'%', &[0])),
            Err(DatError::UnsupportedVersion(3))
        );
        assert_eq!(
            parse_header(&dat(0, 0, b'%', &[0])),
            Err(DatError::UnsupportedVersion(0))
        );
        // A little-endian header (written by a broken tool) reads as a huge version.
        let mut d = dat(2, 0, b'%', &[0]);
        d.splice(0..4, [2, 0, 0, 0]);
        assert_eq!(
            parse_header(&d),
            Err(DatError::UnsupportedVersion(0x0200_0000))
        );
    }

    #[test]
    fn header_truncated_table() {
        let mut d = dat(2, 0, b'%', &[0, 6, 10]);
        d.pop();
        assert_eq!(
            parse_header(&d),
            Err(DatError::TableTruncated {
                numstr: 2,
                need: 36,
                len: 35
            })
        );
        // The header alone, claiming the largest possible count.
        let mut d = dat(2, 0, b'%', &[]);
        d.splice(4..8, u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_header(&d),
            Err(DatError::TableTruncated {
                numstr: u32::MAX,
                ..
            })
        ));
        // numstr = 0 still needs its single end offset.
        assert!(parse_header(&dat(2, 0, b'%', &[])).is_err());
        assert!(parse_header(&dat(2, 0, b'%', &[0])).is_ok());
    }

    #[test]
    fn error_messages_are_lowercase() {
        for e in [
            DatError::TooShort { len: 3 },
            DatError::UnsupportedVersion(9),
            DatError::TableTruncated {
                numstr: 1,
                need: 32,
                len: 24,
            },
        ] {
            let msg = e.to_string();
            assert!(msg.starts_with(|c: char| c.is_ascii_lowercase()), "{msg}");
        }
    }

    #[test]
    fn trailing_bytes_after_table_are_tolerated() {
        let mut d = dat(2, 0, b'%', &[0, 2]);
        d.extend_from_slice(b"junk");
        assert_eq!(cookie(b"A\n", &d, 0), Some(b"A\n".to_vec()));
    }

    #[test]
    fn indexed_cookies_as_strfile_writes_them() {
        // What fortune-mod 1.99's strfile writes for this text: empty
        // cookies are skipped and the offset points past them.
        let text = b"A\n%\n%\nB\n%\n";
        let d = dat(2, 0, b'%', &[0, 6, 10]);
        assert_eq!(cookie(text, &d, 0), Some(b"A\n".to_vec()));
        assert_eq!(cookie(text, &d, 1), Some(b"B\n".to_vec()));
        assert_eq!(cookie(text, &d, 2), None);
        assert_eq!(cookie(text, &d, usize::MAX), None);
    }

    #[test]
    fn indexed_leading_separator_and_no_final_newline() {
        // strfile output for "%\nA\n%\nB".
        let text = b"%\nA\n%\nB";
        let d = dat(2, 0, b'%', &[2, 6, 7]);
        assert_eq!(cookie(text, &d, 0), Some(b"A\n".to_vec()));
        assert_eq!(cookie(text, &d, 1), Some(b"B".to_vec()));
    }

    #[test]
    fn indexed_final_delimiter_without_newline_is_not_shown() {
        // strfile output for "A\nb\n%\nC\n%": the last cookie ends at the
        // bare "%" rather than displaying it.
        let text = b"A\nb\n%\nC\n%";
        let d = dat(2, 0, b'%', &[0, 6, 9]);
        assert_eq!(cookie(text, &d, 0), Some(b"A\nb\n".to_vec()));
        assert_eq!(cookie(text, &d, 1), Some(b"C\n".to_vec()));
    }

    #[test]
    fn indexed_shuffled_table_ends_at_delimiter_not_next_offset() {
        // After strfile -r the table is in random order; each cookie must
        // still end at its own separator line.
        let text = b"one\n%\ntwo\n%\nthree\n";
        let d = dat(2, STR_RANDOM, b'%', &[12, 0, 6, 18]);
        assert_eq!(cookie(text, &d, 0), Some(b"three\n".to_vec()));
        assert_eq!(cookie(text, &d, 1), Some(b"one\n".to_vec()));
        assert_eq!(cookie(text, &d, 2), Some(b"two\n".to_vec()));
    }

    #[test]
    fn indexed_custom_delimiter() {
        let text = b"a\n%\nb\n#\nc\n";
        let d = dat(2, 0, b'#', &[0, 8, 10]);
        assert_eq!(cookie(text, &d, 0), Some(b"a\n%\nb\n".to_vec()));
        assert_eq!(cookie(text, &d, 1), Some(b"c\n".to_vec()));
    }

    #[test]
    fn indexed_delimiter_must_be_alone_on_its_line() {
        let text = b"50%\n%%\n %\n%x\nend\n%\n";
        let d = dat(2, 0, b'%', &[0, 20]);
        assert_eq!(
            cookie(text, &d, 0),
            Some(b"50%\n%%\n %\n%x\nend\n".to_vec())
        );
    }

    #[test]
    fn indexed_crlf_separator_is_accepted() {
        // strfile does not split on "%\r\n" and writes a single cookie; the
        // reader stops at it anyway rather than showing a "%" line.
        let text = b"A\r\n%\r\nB\r\n";
        let d = dat(2, 0, b'%', &[0, 9]);
        assert_eq!(cookie(text, &d, 0), Some(b"A\r\n".to_vec()));
    }

    #[test]
    fn indexed_rot13() {
        // strfile -x only sets the flag; the text file stays encoded.
        let text = b"Uryyb, Jbeyq! 123 \xc3\xa9\n%\nNOP nop\n%\n";
        let d = dat(2, STR_ROTATED, b'%', &[0, 23, 33]);
        assert_eq!(
            cookie(text, &d, 0),
            Some(b"Hello, World! 123 \xc3\xa9\n".to_vec())
        );
        assert_eq!(cookie(text, &d, 1), Some(b"ABC abc\n".to_vec()));
        // Without the flag the bytes come back untouched.
        let d = dat(2, 0, b'%', &[0, 23, 33]);
        assert_eq!(cookie(text, &d, 1), Some(b"NOP nop\n".to_vec()));
    }

    #[test]
    fn rot13_full_alphabet_round_trips() {
        let plain = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@[`{";
        let mut b = plain.to_vec();
        rot13(&mut b);
        assert_eq!(
            &b,
            b"nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM@[`{"
        );
        rot13(&mut b);
        assert_eq!(&b, plain);
    }

    #[test]
    fn indexed_offsets_outside_text() {
        let text = b"short\n";
        let d = dat(2, 0, b'%', &[6, 1_000_000, u32::MAX, 7]);
        assert_eq!(cookie(text, &d, 0), None);
        assert_eq!(cookie(text, &d, 1), None);
        assert_eq!(cookie(text, &d, 2), None);
        assert_eq!(cookie(b"", &d, 0), None);
    }

    #[test]
    fn indexed_header_lying_about_the_table() {
        // A caller-made header whose count exceeds the real table must not
        // read past the data.
        let d = dat(2, 0, b'%', &[0, 2]);
        let header = Header {
            version: 2,
            numstr: 100,
            longlen: 0,
            shortlen: 0,
            flags: 0,
            delim: b'%',
        };
        assert_eq!(
            indexed_cookie(b"A\n", &d, &header, 0),
            Some(b"A\n".to_vec())
        );
        assert_eq!(indexed_cookie(b"A\n", &d, &header, 50), None);
        assert_eq!(indexed_cookie(b"A\n", &[], &header, 0), None);
    }

    #[test]
    fn indexed_blank_cookie_is_returned_as_indexed() {
        // strfile output for "a\n%\n  \n%\nb\n": it indexes the blank
        // cookie, and the reader hands it back unchanged.
        let text = b"a\n%\n  \n%\nb\n";
        let d = dat(2, 0, b'%', &[0, 4, 9, 11]);
        assert_eq!(cookie(text, &d, 1), Some(b"  \n".to_vec()));
        assert_eq!(cookie(text, &d, 2), Some(b"b\n".to_vec()));
    }

    #[test]
    fn indexed_empty_file() {
        // strfile on an empty file writes numstr = 0 and one offset.
        let d = dat(2, 0, b'%', &[0]);
        assert_eq!(parse_header(&d).map(|h| h.numstr), Ok(0));
        assert_eq!(cookie(b"", &d, 0), None);
    }

    #[test]
    fn plain_basic_split() {
        let text = b"one\n%\ntwo\nlines\n%\nthree\n";
        assert_eq!(plain_count(text), 3);
        assert_eq!(plain_cookie(text, 0), Some(&b"one\n"[..]));
        assert_eq!(plain_cookie(text, 1), Some(&b"two\nlines\n"[..]));
        assert_eq!(plain_cookie(text, 2), Some(&b"three\n"[..]));
        assert_eq!(plain_cookie(text, 3), None);
        assert_eq!(plain_cookie(text, usize::MAX), None);
    }

    #[test]
    fn plain_crlf() {
        let text = b"one\r\n%\r\ntwo\r\n%\r\n";
        assert_eq!(plain_count(text), 2);
        assert_eq!(plain_cookie(text, 0), Some(&b"one\r\n"[..]));
        assert_eq!(plain_cookie(text, 1), Some(&b"two\r\n"[..]));
    }

    #[test]
    fn plain_leading_and_trailing_separators() {
        let text = b"%\none\n%\ntwo\n%";
        assert_eq!(plain_count(text), 2);
        assert_eq!(plain_cookie(text, 0), Some(&b"one\n"[..]));
        assert_eq!(plain_cookie(text, 1), Some(&b"two\n"[..]));
        let text = b"%\r\none\n%\r";
        assert_eq!(plain_count(text), 1);
        assert_eq!(plain_cookie(text, 0), Some(&b"one\n"[..]));
    }

    #[test]
    fn plain_empty_and_blank_cookies_are_skipped() {
        let text = b"%\n%\n  \n\t\n%\none\n%\n%\n\n%\ntwo\n\n\n";
        assert_eq!(plain_count(text), 2);
        assert_eq!(plain_cookie(text, 0), Some(&b"one\n"[..]));
        assert_eq!(plain_cookie(text, 1), Some(&b"two\n\n\n"[..]));
        assert_eq!(plain_cookie(text, 2), None);
    }

    #[test]
    fn plain_degenerate_files() {
        for text in [
            &b""[..],
            b"%",
            b"%\n",
            b"%\r\n",
            b"\n\n",
            b"%\n%\n%",
            b" \r\n%\n",
        ] {
            assert_eq!(plain_count(text), 0, "{text:?}");
            assert_eq!(plain_cookie(text, 0), None, "{text:?}");
        }
    }

    #[test]
    fn plain_no_separator_is_one_cookie() {
        let text = b"just one\nfortune";
        assert_eq!(plain_count(text), 1);
        assert_eq!(plain_cookie(text, 0), Some(&text[..]));
    }

    #[test]
    fn plain_percent_inside_lines_is_text() {
        let text = b"100%\n%%\n % \n%\nnext\n";
        assert_eq!(plain_count(text), 2);
        assert_eq!(plain_cookie(text, 0), Some(&b"100%\n%%\n % \n"[..]));
    }

    #[test]
    fn plain_binary_garbage_does_not_panic() {
        let text: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let n = plain_count(&text);
        for i in 0..=n {
            assert_eq!(plain_cookie(&text, i).is_some(), i < n);
        }
    }

    #[test]
    fn random_dat_bytes_do_not_panic() {
        // A small deterministic generator stands in for a fuzzer here.
        let mut state: u32 = 0x1234_5678;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let text = b"a\n%\nb\n%\nc\n";
        for _ in 0..2000 {
            let len = (next() % 48) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| (next() % 16) as u8).collect();
            if let Some(v) = d.get_mut(3) {
                *v = 2;
            }
            if let Ok(h) = parse_header(&d) {
                for i in 0..4 {
                    let _ = indexed_cookie(text, &d, &h, i);
                }
            }
        }
    }

    /// Cross-checks against the real strfile(8) when fortune-mod is
    /// installed; silently passes otherwise so the suite runs anywhere.
    #[test]
    fn matches_real_strfile_when_installed() {
        let strfile = std::path::Path::new("/usr/bin/strfile");
        if !strfile.exists() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("strfile-test-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        // No whitespace-only cookie here: strfile indexes those, while the
        // plain splitter skips them.
        let text = b"%\nfirst\n%\n%\nsecond\ntwo lines\n%\nthird\n%\n\tindented\n%";
        let src = dir.join("cookies");
        let out = dir.join("cookies.dat");
        let _children = crate::children_lock();
        let ok = std::fs::write(&src, text).is_ok()
            && std::process::Command::new(strfile)
                .arg("-s")
                .arg(&src)
                .arg(&out)
                .status()
                .is_ok_and(|s| s.success());
        let d = std::fs::read(&out).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        if !ok {
            return;
        }
        let Ok(header) = parse_header(&d) else {
            panic!("strfile output does not parse: {d:?}");
        };
        assert_eq!(header.numstr as usize, plain_count(text));
        for i in 0..plain_count(text) {
            assert_eq!(
                indexed_cookie(text, &d, &header, i).as_deref(),
                plain_cookie(text, i),
                "cookie {i}"
            );
        }
    }
}
