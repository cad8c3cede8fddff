//! `cookie` / `fortune`: one fortune cookie, chosen uniformly at random over
//! every cookie of every fortune file found in `commands.fortune_paths`.
//!
//! A path may be a file or a directory of fortune files (as
//! `/usr/share/games/fortunes`). Where a strfile `.dat` index sits beside a
//! file, the count comes from its header and the cookie from its offset table
//! ([`crate::strfile`]); otherwise the file is split on `%` lines. Files are
//! read here, in the session's child, so the parent's heap never holds them.
//! When no cookie is found anywhere, a built-in set answers, so a fresh
//! machine without fortune-mod still has something to say.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::strfile;

/// Larger files are skipped: a fortune file is text for humans.
const MAX_FILE: u64 = 16 << 20;
/// At most this many files are considered, however large the directory.
const MAX_FILES: usize = 512;

/// Used when no fortune file can be found.
pub const BUILT_IN: &[&str] = &[
    "The best way to predict the future is to fork it.",
    "A daemon is only as quiet as its logs.",
    "There is no place like 127.0.0.1.",
    "Every zombie is a parent that forgot to wait.",
    "Reload early, reload often, refuse no one.",
    "Unix is simple; it just takes a genius to understand its simplicity.",
    "Premature optimization is the root of all evil.",
    "If it is not tested, it is broken.",
];

/// One fortune file with what we know of it.
#[derive(Debug)]
struct Source {
    text: PathBuf,
    dat: Option<Vec<u8>>,
    header: Option<strfile::Header>,
    count: usize,
}

/// Appends a random cookie.
pub fn reply(paths: &[PathBuf], eol: &[u8], out: &mut Vec<u8>) {
    let sources = discover(paths);
    let total: usize = sources.iter().map(|s| s.count).sum();
    if total > 0 {
        let mut pick = random_below(total);
        for s in &sources {
            if pick < s.count {
                if let Some(cookie) = cookie_of(s, pick) {
                    crate::text::push_text(out, &cookie, eol);
                    return;
                }
                break;
            }
            pick -= s.count;
        }
    }
    let fallback = BUILT_IN[random_below(BUILT_IN.len())];
    crate::text::push_text(out, fallback.as_bytes(), eol);
}

/// Every fortune file under `paths`, with its cookie count.
fn discover(paths: &[PathBuf]) -> Vec<Source> {
    let mut files = Vec::new();
    for p in paths {
        match fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let Ok(rd) = fs::read_dir(p) else { continue };
                let mut names: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| is_fortune_name(f))
                    .collect();
                names.sort();
                files.extend(names);
            }
            Ok(m) if m.is_file() => files.push(p.clone()),
            _ => {}
        }
        if files.len() >= MAX_FILES {
            files.truncate(MAX_FILES);
            break;
        }
    }
    files.into_iter().filter_map(source).collect()
}

/// Index files, hidden files and fortune-mod's by-products are not cookies.
fn is_fortune_name(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') {
        return false;
    }
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    !matches!(ext, "dat" | "pos" | "u8" | "sh" | "txt" | "md") && p.is_file()
}

fn source(text: PathBuf) -> Option<Source> {
    let mut dat_path = text.clone().into_os_string();
    dat_path.push(".dat");
    if let Some(dat) = read_capped(Path::new(&dat_path))
        && let Ok(header) = strfile::parse_header(&dat)
    {
        let count = usize::try_from(header.numstr).ok()?;
        return Some(Source {
            text,
            dat: Some(dat),
            header: Some(header),
            count,
        });
    }
    let body = read_capped(&text)?;
    let count = strfile::plain_count(&body);
    Some(Source {
        text,
        dat: None,
        header: None,
        count,
    })
}

fn cookie_of(s: &Source, i: usize) -> Option<Vec<u8>> {
    let body = read_capped(&s.text)?;
    match (&s.dat, &s.header) {
        (Some(dat), Some(h)) => strfile::indexed_cookie(&body, dat, h, i),
        _ => strfile::plain_cookie(&body, i).map(<[u8]>::to_vec),
    }
}

fn read_capped(path: &Path) -> Option<Vec<u8>> {
    let f = fs::File::open(path).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.take(MAX_FILE).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// A uniformly distributed number in `0..n` (n > 0) from the kernel's CSPRNG.
/// The kernel is asked afresh in every child: a PRNG state inherited through
/// fork would give every session the same cookie.
fn random_below(n: usize) -> usize {
    let n = n as u64;
    // Rejection sampling removes the modulo bias; the loop is bounded and in
    // practice runs once.
    let zone = u64::MAX - (u64::MAX % n);
    let mut r = 0;
    for _ in 0..16 {
        r = getrandom::u64().unwrap_or(0);
        if r < zone {
            break;
        }
    }
    (r % n) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_when_nothing_found() {
        let mut out = Vec::new();
        reply(&["/nonexistent".into()], b"\n", &mut out);
        let s = String::from_utf8(out).expect("utf8");
        assert!(BUILT_IN.iter().any(|b| s == format!("{b}\n")), "{s:?}");
    }

    #[test]
    fn plain_file_cookies_are_all_reachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("f"), "one\n%\ntwo\n%\nthree\n").expect("write");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut out = Vec::new();
            reply(&[dir.path().to_path_buf()], b"\n", &mut out);
            seen.insert(String::from_utf8(out).expect("utf8"));
        }
        let want: std::collections::BTreeSet<String> = ["one\n", "two\n", "three\n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn random_below_is_in_range() {
        for n in [1usize, 2, 3, 1000] {
            for _ in 0..100 {
                assert!(random_below(n) < n);
            }
        }
    }
}
