//! Hostile fortune files read the way the `cookie` command reads them:
//! through `commands::cookie::source` (the `.dat` header, or the plain file
//! counted) and `commands::cookie::cookie_of` (one offset, a window of the
//! text at it, the cookie cut from that window), on real files, then
//! cleaned by `text::push_text` as the reply is.
//!
//! Input layout: two bytes, a little-endian u16 whose low 15 bits are the
//! length of the `.dat` part and whose top bit says "no `.dat` file at all",
//! then the `.dat` bytes, then the text file. Checked besides "no panic":
//! no cookie past the count (`numstr` for a usable index, the non-blank
//! cookies of a plain file); every counted plain cookie exists and is not
//! blank; an indexed cookie of an unrotated file is the text at its
//! offset; the cleaned reply holds no control characters.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hostinfod::commands::cookie;
use hostinfod::strfile;
use hostinfod::text;
use libfuzzer_sys::fuzz_target;

/// A directory of this fuzzing process, made once.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("hostinfod-fuzz-strfile-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz scratch directory");
        d
    })
}

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
    let head = u16::from_le_bytes([*a, *b]);
    let with_dat = head & 0x8000 == 0;
    let k = usize::from(head & 0x7fff).min(rest.len());
    let (dat, body) = rest.split_at(k);

    let text_path = dir().join("cookies");
    let dat_path = dir().join("cookies.dat");
    std::fs::write(&text_path, body).expect("write the text file");
    if with_dat {
        std::fs::write(&dat_path, dat).expect("write the index");
    } else {
        let _ = std::fs::remove_file(&dat_path);
    }

    // What the command will find, worked out here independently.
    let index = if with_dat {
        strfile::parse_header_of(dat, dat.len()).ok()
    } else {
        None
    };
    let count = match &index {
        Some(h) => usize::try_from(h.numstr).unwrap_or(usize::MAX),
        None => strfile::plain_count(body),
    };

    let Some(src) = cookie::source(text_path) else {
        panic!("a regular file that was just written is a source");
    };
    for i in (0..count.min(64)).chain([count, count.saturating_add(1), usize::MAX]) {
        let c = cookie::cookie_of(&src, i);
        if i >= count {
            assert!(c.is_none(), "cookie {i} of {count}");
            continue;
        }
        match (&index, &c) {
            (None, None) => panic!("plain cookie {i} of {count} missing"),
            (None, Some(c)) => {
                assert!(!c.iter().all(u8::is_ascii_whitespace), "blank cookie {i}");
            }
            (Some(h), Some(c)) if h.flags & strfile::STR_ROTATED == 0 => {
                let at = strfile::offset_pos(i)
                    .and_then(|p| dat.get(p..))
                    .and_then(strfile::offset_from)
                    .expect("a cookie comes from an offset in the table");
                assert_eq!(
                    body.get(at..at + c.len()),
                    Some(c.as_slice()),
                    "cookie {i} is not the text at offset {at}"
                );
            }
            _ => {}
        }
        if let Some(c) = c {
            assert!(c.len() <= body.len());
            clean_check(&c);
        }
    }
});
