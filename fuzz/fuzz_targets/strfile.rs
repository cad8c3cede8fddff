//! The strfile `.dat` index and plain `%` file readers, on hostile files.
//!
//! Input layout: two bytes giving the length of the `.dat` part, then the
//! `.dat` bytes, then the text file. Checked besides "no panic": an index
//! lookup past `numstr` gives nothing; every counted plain cookie can be
//! fetched and is not blank, and none past the count; cookies come out of
//! the text; the cleaned reply holds no control characters.
#![no_main]

use hostinfod::strfile;
use hostinfod::text;
use libfuzzer_sys::fuzz_target;

fn clean_check(cookie: &[u8]) {
    let mut out = Vec::new();
    text::push_text(&mut out, cookie, b"\n");
    let s = String::from_utf8(out).expect("push_text gives UTF-8");
    assert!(
        s.chars().all(|c| c == '\t' || c == '\n' || !c.is_control()),
        "control character in {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let k = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
    let (dat, body) = rest.split_at(k);

    if let Ok(h) = strfile::parse_header(dat) {
        let n = usize::try_from(h.numstr).unwrap_or(usize::MAX);
        for i in (0..n.min(64)).chain([n, n.saturating_add(1), usize::MAX]) {
            let c = strfile::indexed_cookie(body, dat, &h, i);
            if i >= n {
                assert!(c.is_none(), "cookie {i} of {n}");
            }
            if let Some(c) = c {
                assert!(c.len() <= body.len());
                clean_check(&c);
            }
        }
    }

    let count = strfile::plain_count(body);
    for i in 0..count.min(64) {
        let c = strfile::plain_cookie(body, i).expect("a counted cookie exists");
        assert!(!c.iter().all(u8::is_ascii_whitespace), "blank cookie {i}");
        clean_check(c);
    }
    assert!(strfile::plain_cookie(body, count).is_none());
});
