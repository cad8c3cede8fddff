//! Reader for the utmp(5) login records that glibc keeps in `/var/run/utmp`,
//! and the who(1)-style line the `who` command replies with.
//!
//! The daemon answers `who` natively, without running who(1), so it decodes
//! the records itself. The layout is glibc's `struct utmp` on x86-64 (and
//! the other bi-arch 64-bit targets, where `ut_session` and `ut_tv` are kept
//! 32-bit so that 32- and 64-bit programs can share the file): 384 bytes in
//! host byte order, with fixed-size, NUL-padded strings that are not
//! NUL-terminated when they fill their field. The file can be rewritten by
//! other programs while it is read and may hold garbage, so this module is
//! pure and total: it takes bytes, returns values (and the cleaned who
//! line), and never panics.

use std::borrow::Cow;

/// Size in bytes of one glibc `struct utmp` record.
pub const RECORD_SIZE: usize = 384;
/// `ut_type` of a record describing a logged-in user.
pub const USER_PROCESS: i16 = 7;

/// Byte offsets and sizes of the fields that are decoded, from glibc's
/// `bits/utmp.h` for the layout described in the module documentation.
const TYPE_AT: usize = 0;
const PID_AT: usize = 4;
const LINE_AT: usize = 8;
const LINE_LEN: usize = 32;
const USER_AT: usize = 44;
const USER_LEN: usize = 32;
const HOST_AT: usize = 76;
const HOST_LEN: usize = 256;
const TV_SEC_AT: usize = 340;

/// One decoded utmp record. String fields are the bytes before the first
/// NUL (the whole field when it has none), not otherwise cleaned; decoded
/// from a file they borrow the record's bytes (a session's child decodes
/// without allocating), built from elsewhere (logind) they own theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// `ut_type`: `USER_PROCESS`, `LOGIN_PROCESS`, `DEAD_PROCESS`, ...
    pub kind: i16,
    /// `ut_pid`: the login process.
    pub pid: i32,
    /// `ut_line`: the terminal, relative to `/dev/` (e.g. `pts/0`).
    pub line: Cow<'a, [u8]>,
    /// `ut_user`: the login name.
    pub user: Cow<'a, [u8]>,
    /// `ut_host`: the remote host, empty for local logins.
    pub host: Cow<'a, [u8]>,
    /// `ut_tv.tv_sec`: when the entry was made, in seconds since the epoch.
    pub tv_sec: i64,
}

/// The `len` bytes at `at` in `rec`, or an empty slice if they are not all
/// there (which cannot happen for a whole record, but costs nothing to
/// handle).
fn field(rec: &[u8], at: usize, len: usize) -> &[u8] {
    at.checked_add(len)
        .and_then(|end| rec.get(at..end))
        .unwrap_or_default()
}

/// A fixed-size string field, cut at its first NUL.
fn c_string(rec: &[u8], at: usize, len: usize) -> Cow<'_, [u8]> {
    let raw = field(rec, at, len);
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Cow::Borrowed(raw.get(..end).unwrap_or_default())
}

/// The `N` bytes at `at` as an array, for the integer decoders.
fn array<const N: usize>(rec: &[u8], at: usize) -> Option<[u8; N]> {
    field(rec, at, N).try_into().ok()
}

/// Decodes one record; `None` only if `rec` is shorter than a record.
#[unsafe(link_section = ".text.hot.hostinfod")]
fn parse_record(rec: &[u8]) -> Option<Entry<'_>> {
    if rec.len() < RECORD_SIZE {
        return None;
    }
    Some(Entry {
        kind: i16::from_ne_bytes(array(rec, TYPE_AT)?),
        pid: i32::from_ne_bytes(array(rec, PID_AT)?),
        line: c_string(rec, LINE_AT, LINE_LEN),
        user: c_string(rec, USER_AT, USER_LEN),
        host: c_string(rec, HOST_AT, HOST_LEN),
        // Read as unsigned: glibc 2.40 made this field `uint32_t` so that
        // the layout lasts until 2106, and no login predates 1970, so the
        // unsigned reading is right for files written by older glibc too.
        tv_sec: i64::from(u32::from_ne_bytes(array(rec, TV_SEC_AT)?)),
    })
}

/// Every whole record in `bytes` (a trailing partial record is ignored).
///
/// A partial record is what a reader sees while another process is
/// appending to the file, so it is skipped rather than reported.
pub fn parse(bytes: &[u8]) -> Vec<Entry<'_>> {
    bytes
        .chunks_exact(RECORD_SIZE)
        .filter_map(parse_record)
        .collect()
}

/// Only USER_PROCESS records with a non-empty user.
///
/// This is who(1)'s default selection; an empty name would print a line
/// with nobody in it.
pub fn logged_in(bytes: &[u8]) -> impl Iterator<Item = Entry<'_>> {
    bytes
        .chunks_exact(RECORD_SIZE)
        .filter_map(parse_record)
        .filter(|e| e.kind == USER_PROCESS && !e.user.is_empty())
}

/// Appends one who(1)-style line WITHOUT line end to `out`:
/// `NAME     LINE         YYYY-MM-DD HH:MM (HOST)` — name left-aligned
/// padded to 8, one space, line padded to 12, one space, `when` (the
/// formatted login time), then ` (HOST)` only when host is non-empty.
///
/// This is coreutils who.c `print_line` with its default options: the
/// `"%-8.*s %-12.*s %-*s %-8s"` format, where the precisions are the field
/// sizes, so names and lines are padded by bytes and never truncated. Like
/// who, trailing spaces of the line are removed (they only arise when
/// `when` is empty or ends in spaces); bytes already in `out` are never
/// touched.
///
/// The fields are written cleaned ([`crate::text::push_clean`]), each once,
/// straight into `out`. Padding and trimming go by the bytes as read, so the
/// line is exactly the raw line, trimmed, then cleaned as a whole: every
/// field is followed by an ASCII separator or ends the line, and UTF-8
/// decoding starts afresh at an ASCII byte, so cleaning field by field gives
/// the same bytes.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn format_who_line(e: &Entry, when: impl AsRef<[u8]>, out: &mut Vec<u8>) {
    const SPACES: &[u8; 12] = b"            ";
    let pad = |field: &[u8], width: usize| width.saturating_sub(field.len());
    let (open, host, close): (&[u8], &[u8], &[u8]) = if e.host.is_empty() {
        (b"", b"", b"")
    } else {
        (b" (", &e.host, b")")
    };
    let mut parts: [&[u8]; 10] = [
        &e.user,
        &SPACES[..pad(&e.user, 8)],
        b" ",
        &e.line,
        &SPACES[..pad(&e.line, 12)],
        b" ",
        when.as_ref(),
        open,
        host,
        close,
    ];
    // who's trailing-space trim, on the raw parts: blank parts at the end
    // go, and the last part with something else keeps what precedes its
    // trailing spaces.
    for part in parts.iter_mut().rev() {
        let end = part.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        *part = part.get(..end).unwrap_or_default();
        if end > 0 {
            break;
        }
    }
    for part in parts {
        crate::text::push_clean(out, part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one 384-byte record the way glibc lays it out; string fields
    /// longer than their slot are cut to fit, exactly filling it.
    fn record(kind: i16, pid: i32, line: &[u8], user: &[u8], host: &[u8], sec: u32) -> Vec<u8> {
        fn put(rec: &mut [u8], at: usize, len: usize, value: &[u8]) {
            for (dst, src) in rec.iter_mut().skip(at).take(len).zip(value) {
                *dst = *src;
            }
        }
        let mut rec = vec![0u8; RECORD_SIZE];
        put(&mut rec, 0, 2, &kind.to_ne_bytes());
        put(&mut rec, 4, 4, &pid.to_ne_bytes());
        put(&mut rec, 8, 32, line);
        put(&mut rec, 40, 4, b"ts/0");
        put(&mut rec, 44, 32, user);
        put(&mut rec, 76, 256, host);
        put(&mut rec, 332, 4, &[0xAA; 4]); // ut_exit
        put(&mut rec, 336, 4, &77i32.to_ne_bytes()); // ut_session
        put(&mut rec, 340, 4, &sec.to_ne_bytes());
        put(&mut rec, 344, 4, &123_456i32.to_ne_bytes()); // tv_usec
        put(&mut rec, 348, 16, &[192, 0, 2, 1]); // ut_addr_v6
        put(&mut rec, 364, 20, &[0xEE; 20]); // reserved
        rec
    }

    fn entry(kind: i16, pid: i32, line: &str, user: &str, host: &str, sec: i64) -> Entry<'static> {
        Entry {
            kind,
            pid,
            line: line.as_bytes().to_vec().into(),
            user: user.as_bytes().to_vec().into(),
            host: host.as_bytes().to_vec().into(),
            tv_sec: sec,
        }
    }

    fn who_line(e: &Entry, when: &str) -> String {
        let mut out = Vec::new();
        format_who_line(e, when, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn parses_every_field() {
        let bytes = record(7, 4242, b"pts/3", b"alice", b"10.0.0.5", 1_700_000_000);
        assert_eq!(
            parse(&bytes),
            vec![entry(7, 4242, "pts/3", "alice", "10.0.0.5", 1_700_000_000)]
        );
    }

    #[test]
    fn empty_input() {
        assert!(parse(&[]).is_empty());
        assert_eq!(logged_in(&[]).count(), 0);
    }

    #[test]
    fn partial_trailing_record_is_ignored() {
        let mut bytes = record(7, 1, b"tty1", b"root", b"", 1);
        bytes.extend_from_slice(&record(7, 2, b"tty2", b"bob", b"", 2)[..RECORD_SIZE - 1]);
        let all = parse(&bytes);
        assert_eq!(all.len(), 1);
        assert_eq!(all.first().map(|e| e.pid), Some(1));
        assert!(parse(&bytes[..RECORD_SIZE - 1]).is_empty());
    }

    #[test]
    fn full_width_fields_without_nul() {
        let user = [b'u'; 32];
        let line = [b'l'; 32];
        let host = [b'h'; 256];
        let bytes = record(7, 9, &line, &user, &host, 5);
        let all = parse(&bytes);
        let Some(e) = all.first() else {
            panic!("no record parsed");
        };
        // Each field stops at its own end, not at the neighbour's bytes.
        assert_eq!(e.user, user.to_vec());
        assert_eq!(e.line, line.to_vec());
        assert_eq!(e.host, host.to_vec());
    }

    #[test]
    fn strings_stop_at_first_nul() {
        let bytes = record(7, 9, b"pts/1\0junk", b"bob\0\xffgarbage", b"", 5);
        let all = parse(&bytes);
        assert_eq!(all.first().map(|e| &*e.user), Some(&b"bob"[..]));
        assert_eq!(all.first().map(|e| &*e.line), Some(&b"pts/1"[..]));
    }

    #[test]
    fn time_is_read_as_unsigned() {
        // 2106-02-07, after the signed 32-bit limit.
        let bytes = record(7, 1, b"tty1", b"root", b"", u32::MAX);
        assert_eq!(parse(&bytes).first().map(|e| e.tv_sec), Some(4_294_967_295));
    }

    #[test]
    fn negative_type_and_pid_survive() {
        let bytes = record(-1, -5, b"", b"", b"", 0);
        assert_eq!(parse(&bytes), vec![entry(-1, -5, "", "", "", 0)]);
    }

    #[test]
    fn logged_in_keeps_only_named_user_processes() {
        let mut bytes = Vec::new();
        bytes.extend(record(2, 0, b"~", b"reboot", b"6.1.0", 10)); // BOOT_TIME
        bytes.extend(record(1, 53, b"~", b"runlevel", b"6.1.0", 11)); // RUN_LVL
        bytes.extend(record(6, 700, b"tty1", b"LOGIN", b"", 12)); // LOGIN_PROCESS
        bytes.extend(record(7, 800, b"tty2", b"carol", b"", 13));
        bytes.extend(record(8, 900, b"pts/0", b"", b"", 14)); // DEAD_PROCESS
        bytes.extend(record(7, 901, b"pts/1", b"", b"", 15)); // nameless
        bytes.extend(record(7, 902, b"pts/2", b"dave", b"example.org", 16));
        assert_eq!(parse(&bytes).len(), 7);
        assert_eq!(
            logged_in(&bytes).collect::<Vec<_>>(),
            vec![
                entry(7, 800, "tty2", "carol", "", 13),
                entry(7, 902, "pts/2", "dave", "example.org", 16),
            ]
        );
    }

    #[test]
    fn who_line_with_host() {
        let e = entry(7, 1, "pts/0", "alice", "192.0.2.7", 0);
        assert_eq!(
            who_line(&e, "2026-11-21 08:40"),
            "alice    pts/0        2026-11-21 08:40 (192.0.2.7)"
        );
    }

    #[test]
    fn who_line_without_host() {
        let e = entry(7, 1, "tty1", "root", "", 0);
        assert_eq!(
            who_line(&e, "2026-11-21 08:40"),
            "root     tty1         2026-11-21 08:40"
        );
    }

    #[test]
    fn who_line_long_fields_are_not_truncated() {
        let e = entry(7, 1, "pts/123456789012", "averyverylongname", ":0", 0);
        assert_eq!(
            who_line(&e, "2026-11-21 08:40"),
            "averyverylongname pts/123456789012 2026-11-21 08:40 (:0)"
        );
        // Exactly the field widths: still one separating space.
        let e = entry(7, 1, "123456789012", "12345678", "", 0);
        assert_eq!(who_line(&e, "T"), "12345678 123456789012 T");
    }

    #[test]
    fn who_line_pads_by_bytes() {
        // printf pads by bytes, so a two-byte character counts as two.
        let e = entry(7, 1, "tty1", "jos\u{e9}", "", 0);
        assert_eq!(who_line(&e, "T"), "jos\u{e9}    tty1         T");
    }

    #[test]
    fn who_line_trims_trailing_spaces_like_who() {
        let e = entry(7, 1, "tty1", "root", "", 0);
        assert_eq!(who_line(&e, ""), "root     tty1");
        let e = entry(7, 1, "", "", "", 0);
        assert_eq!(who_line(&e, ""), "");
    }

    #[test]
    fn who_line_appends_and_leaves_prefix_alone() {
        let e = entry(7, 1, "", "", "", 0);
        let mut out = b"prefix   ".to_vec();
        format_who_line(&e, "", &mut out);
        assert_eq!(out, b"prefix   ");
        let e = entry(7, 1, "tty1", "root", "h", 0);
        let mut out = b"x\r\n".to_vec();
        format_who_line(&e, "T", &mut out);
        assert_eq!(out, b"x\r\nroot     tty1         T (h)");
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(RECORD_SIZE * 3 + 17).collect();
        let all = parse(&bytes);
        assert_eq!(all.len(), 3);
        let mut out = Vec::new();
        for e in &all {
            format_who_line(e, "when", &mut out);
        }
        assert!(!out.is_empty());
    }

    #[test]
    fn who_line_fields_are_cleaned() {
        let e = entry(7, 1, "tty\x1b[2J1", "b\x07ob", "evil\x1b]0;x\x07", 0);
        // Padding counts the bytes as read, as the line was padded before
        // it was cleaned as a whole.
        assert_eq!(who_line(&e, "T\x01"), "bob     tty[2J1     T (evil]0;x)");
        let mut e = entry(7, 1, "tty1", "", "", 0);
        e.user = b"jos\xe9".to_vec().into();
        assert_eq!(who_line(&e, "T"), "jos\u{fffd}     tty1         T");
    }

    /// The line as it was built before the fields were cleaned one by one:
    /// the raw fields laid out and trimmed, then cleaned as a whole.
    fn reference_line(e: &Entry, when: &[u8]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&e.user);
        raw.extend(std::iter::repeat_n(
            b' ',
            8usize.saturating_sub(e.user.len()),
        ));
        raw.push(b' ');
        raw.extend_from_slice(&e.line);
        raw.extend(std::iter::repeat_n(
            b' ',
            12usize.saturating_sub(e.line.len()),
        ));
        raw.push(b' ');
        raw.extend_from_slice(when);
        if !e.host.is_empty() {
            raw.extend_from_slice(b" (");
            raw.extend_from_slice(&e.host);
            raw.push(b')');
        }
        while raw.last() == Some(&b' ') {
            raw.pop();
        }
        let mut out = Vec::new();
        crate::text::push_clean(&mut out, &raw);
        out
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Bytes that make the cases that matter likely: spaces (trimming),
        /// controls, and pieces of valid and invalid UTF-8.
        fn field(max: usize) -> impl Strategy<Value = Vec<u8>> {
            let bytes = vec![
                b' ', b' ', b'a', b'(', b'\t', 0x00, 0x07, 0x1b, 0x7f, 0x80, 0x9b, 0xc2, 0xc3,
                0xa9, 0xe2, 0x98, 0x83, 0xf0, 0x9f, 0xff,
            ];
            proptest::collection::vec(proptest::sample::select(bytes), 0..max)
        }

        proptest! {
            #[test]
            fn cleaning_field_by_field_equals_cleaning_the_line(
                user in field(12),
                line in field(16),
                host in field(6),
                when in field(6),
            ) {
                let e = Entry {
                    kind: 7,
                    pid: 1,
                    line: line.into(),
                    user: user.into(),
                    host: host.into(),
                    tv_sec: 0,
                };
                let mut out = b"\xc3".to_vec();
                format_who_line(&e, &when, &mut out);
                let mut want = b"\xc3".to_vec();
                want.extend(reference_line(&e, &when));
                prop_assert_eq!(out, want);
            }
        }
    }

    /// Compares with who(1) on the machine's own utmp; needs a login
    /// session to say anything, so it only runs on request.
    #[test]
    #[ignore = "depends on the host's /var/run/utmp and who(1)"]
    fn agrees_with_system_who() {
        let Ok(bytes) = std::fs::read("/var/run/utmp") else {
            return;
        };
        let Ok(output) = std::process::Command::new("who").output() else {
            return;
        };
        let ours: Vec<_> = logged_in(&bytes).collect();
        let theirs = String::from_utf8_lossy(&output.stdout);
        assert_eq!(ours.len(), theirs.lines().count());
        for (e, line) in ours.iter().zip(theirs.lines()) {
            let mut fields = line.split_whitespace();
            assert_eq!(fields.next(), Some(&*String::from_utf8_lossy(&e.user)));
            assert_eq!(fields.next(), Some(&*String::from_utf8_lossy(&e.line)));
        }
    }
}
