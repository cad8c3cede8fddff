//! `cookie` / `fortune`: one fortune cookie, chosen uniformly at random over
//! every cookie of every fortune file found in `commands.fortune_paths`.
//!
//! A path may be a file or a directory of fortune files (as
//! `/usr/share/games/fortunes`). Where a strfile `.dat` index sits beside a
//! file, only what the reply needs is read: each index's 24-byte header for
//! the counts, the chosen cookie's 4-byte offset, and a window of the text
//! at that offset as long as the index's longest cookie
//! ([`crate::strfile`]); a file without an index is read whole and split on
//! `%` lines. When no cookie is found anywhere, a built-in set answers, so a
//! fresh machine without fortune-mod still has something to say.
//!
//! A daemon's sessions pick from the index the parent built at start or
//! reload ([`super::fortunes`]): one `open`, `fstat` and `pread`. What is
//! here is the way without it, taken by `-i` sessions and whenever a file
//! or directory changed since the index was built, so that an edited or
//! added file is served at once.

use std::fs;
use std::path::{Path, PathBuf};

use super::{read_at, read_capped};
use crate::strfile;

/// At most this much of a fortune file without an index is read: a
/// fortune file is text for humans.
pub(super) const MAX_FILE: usize = 16 << 20;
/// At most this much text is read for one indexed cookie.
const MAX_COOKIE: usize = 64 << 10;
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
#[doc(hidden)]
pub struct Source {
    text: PathBuf,
    /// The header of its `.dat` index, when it has a usable one.
    index: Option<strfile::Header>,
    count: usize,
}

/// The `.dat` index beside `text`.
pub(super) fn dat_of(text: &Path) -> PathBuf {
    let mut p = std::ffi::OsString::new();
    dat_into(text, &mut p);
    PathBuf::from(p)
}

/// The `.dat` index beside `text`, in `out` (emptied first).
pub(super) fn dat_into(text: &Path, out: &mut std::ffi::OsString) {
    out.clear();
    out.push(text.as_os_str());
    out.push(".dat");
}

/// Appends a random cookie.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn reply(paths: &[PathBuf], eol: &[u8], out: &mut Vec<u8>) {
    if let Some(index) = super::fortunes::installed(paths)
        && index.serve(eol, out).is_ok()
    {
        return;
    }
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
    fortune_files(paths)
        .into_iter()
        .filter_map(source)
        .collect()
}

/// Every fortune file under `paths`, in the order cookies are numbered.
///
/// Nothing is stat'ed here: a path that is not a directory is taken as a
/// file, a directory entry unless it is a directory itself (the type comes
/// with the entry), and [`read_capped`] refuses whatever is not a regular
/// file when the file is read.
pub(super) fn fortune_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        match fs::read_dir(p) {
            Ok(rd) => {
                let mut names: Vec<PathBuf> = rd
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                    .map(|e| e.path())
                    .filter(|f| is_fortune_name(f))
                    .collect();
                names.sort();
                files.extend(names);
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => files.push(p.clone()),
            Err(_) => {}
        }
        if files.len() >= MAX_FILES {
            files.truncate(MAX_FILES);
            break;
        }
    }
    files
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
    !matches!(ext, "dat" | "pos" | "u8" | "sh" | "txt" | "md")
}

#[doc(hidden)]
pub fn source(text: PathBuf) -> Option<Source> {
    if let Ok((head, len)) = read_at(&dat_of(&text), 0, strfile::HEADER_LEN)
        && let Ok(header) = strfile::parse_header_of(&head, usize::try_from(len).ok()?)
    {
        let count = usize::try_from(header.numstr).ok()?;
        return Some(Source {
            text,
            index: Some(header),
            count,
        });
    }
    let body = read_capped(&text, MAX_FILE).ok()?;
    let count = strfile::plain_count(&body);
    Some(Source {
        text,
        index: None,
        count,
    })
}

#[doc(hidden)]
pub fn cookie_of(s: &Source, i: usize) -> Option<Vec<u8>> {
    let Some(h) = &s.index else {
        let body = read_capped(&s.text, MAX_FILE).ok()?;
        return strfile::plain_cookie(&body, i).map(<[u8]>::to_vec);
    };
    if i >= usize::try_from(h.numstr).ok()? {
        return None;
    }
    let at = u64::try_from(strfile::offset_pos(i)?).ok()?;
    let (entry, _) = read_at(&dat_of(&s.text), at, 4).ok()?;
    let start = u64::try_from(strfile::offset_from(&entry)?).ok()?;
    // The longest cookie, its separator line, and slack for an index that
    // rounded; at least a page, at most MAX_COOKIE.
    let window = usize::try_from(h.longlen)
        .unwrap_or(MAX_COOKIE)
        .saturating_add(64)
        .clamp(4096, MAX_COOKIE);
    let (text, _) = read_at(&s.text, start, window).ok()?;
    strfile::cookie_at_start(&text, h)
}

/// A uniformly distributed number in `0..n` (n > 0) from the kernel's CSPRNG.
/// The kernel is asked afresh in every child: a PRNG state inherited through
/// fork would give every session the same cookie.
pub(super) fn random_below(n: usize) -> usize {
    let n = n as u64;
    // Rejection sampling removes the modulo bias; the loop is bounded and in
    // practice runs once.
    let zone = u64::MAX - (u64::MAX % n);
    let mut r = 0;
    for _ in 0..16 {
        r = kernel_random();
        if r < zone {
            break;
        }
    }
    (r % n) as usize
}

/// Eight bytes from getrandom(2): one system call. (The `getrandom` crate,
/// used before, looks the C library's wrapper up with dlsym, which a static
/// binary cannot do; it then fell back to polling /dev/random and reading
/// /dev/urandom, five system calls in every child.) 0 if the call fails,
/// which only costs the uniformity of one pick.
fn kernel_random() -> u64 {
    let mut r = 0u64;
    // SAFETY: r is writable for its 8 bytes.
    let n = unsafe { nix::libc::getrandom((&raw mut r).cast(), 8, 0) };
    if n == 8 { r } else { 0 }
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
    fn fifos_and_subdirectories_are_not_cookies() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("f"), "only\n").expect("write");
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let fifo = dir.path().join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        // As a directory entry and as a path of its own: refused, not waited on.
        for paths in [
            vec![dir.path().to_path_buf()],
            vec![fifo, dir.path().join("f")],
        ] {
            for _ in 0..20 {
                let mut out = Vec::new();
                reply(&paths, b"\n", &mut out);
                assert_eq!(out, b"only\n");
            }
        }
    }

    #[test]
    fn kernel_random_is_fresh_each_call() {
        // Equal by chance once in 2^64.
        assert_ne!(kernel_random(), kernel_random());
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
