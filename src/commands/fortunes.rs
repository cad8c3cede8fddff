//! The fortune index: where every cookie of `commands.fortune_paths`
//! starts, found once in the parent, so that a session's `cookie` is a
//! random pick, one `open`, `fstat` and `pread` of the text file, and no
//! allocation.
//!
//! [`prepare`] builds the index when the session template is made, at every
//! start and so at every reload (a reload is an exec). It lists the paths as
//! [`super::cookie`] does, reads each `.dat` index whole (4 bytes a cookie)
//! or, for a file without one, the text, and keeps each cookie's start. The
//! child checks that nothing changed since: one `stat` of each configured
//! path (a directory's times change when a file is added, removed or
//! renamed into it) and the [`Stamp`] of the opened text file. When
//! anything differs, [`Index::serve`] declines and the cookie is read the
//! way an unprepared child reads it (listing, index header, offset, text),
//! so a file edited or added between reloads is served correctly, only
//! more slowly, until the next reload indexes it again.
//!
//! The index is installed in a process-wide cell because the session
//! reaches commands through the configuration alone
//! ([`crate::protocol::respond`]); it is written once, before any fork,
//! and only read after, so children share its pages with the parent. Its
//! bulk, where each cookie starts, is a [`SealedTable`]: not in memory at
//! all, so forking costs nothing for it, and a `cookie` reads its one entry
//! with one `pread`.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use super::{Stamp, c_path, cookie, read_into, read_stamped};
use crate::sealed::SealedTable;
use crate::strfile;

/// The most text read for one cookie by the prepared path; a file whose
/// longest cookie (as its index says) does not fit is served by the
/// unprepared path.
pub const MAX_WINDOW: usize = 64 << 10;
/// Windows up to this size are read into a buffer on the stack; a larger
/// one (a file with a cookie longer than Debian's longest, 2,435 bytes) is
/// read into one allocation. A bigger stack buffer would cost every
/// session, not only those that ask for a cookie: a frame larger than a
/// page is probed page by page on entry, and each probe writes a stack
/// page the parent had written at start-up, a copy-on-write fault.
const ON_STACK: usize = 3584;
/// Read beyond the longest cookie, for its separator line and an index that
/// rounded.
const SLACK: usize = 64;

/// One fortune text file of the index.
#[derive(Debug)]
struct File {
    path: CString,
    stamp: Stamp,
    /// Index of its first cookie in [`Index::starts`].
    first: usize,
    /// Bytes read from a cookie's start: its longest cookie and a separator.
    window: usize,
    delim: u8,
    rotated: bool,
}

/// Every cookie under one `fortune_paths`.
#[derive(Debug)]
pub struct Index {
    paths: Vec<PathBuf>,
    /// Each configured path and its stamp when listed (None: missing).
    roots: Vec<(CString, Option<Stamp>)>,
    files: Vec<File>,
    /// Where each cookie starts in its file, file after file.
    starts: SealedTable,
    /// The time the index took to build, for the log.
    took_us: u64,
}

/// Why the prepared path declined: something changed since the index was
/// built, or a read failed; the caller reads the files itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale;

static INSTALLED: OnceLock<Index> = OnceLock::new();

/// Buffers reused from one fortune file to the next while the index is
/// built: start-up allocations freed in between would stay behind in the
/// parent's heap, scattered among what it keeps, and every heap page the
/// parent keeps written costs each fork a page-table entry to copy and each
/// exit one to drop.
#[derive(Default)]
struct Scratch {
    dat: std::ffi::OsString,
    buf: Vec<u8>,
}

/// Adds one fortune file: through its `.dat` index when it has a
/// usable one, else by splitting its text. A file that cannot be read
/// is left out, as the unprepared path leaves it out.
fn add(text: &Path, files: &mut Vec<File>, starts: &mut Vec<u32>, scratch: &mut Scratch) {
    let Some(path) = c_path(text) else { return };
    let first = starts.len();
    cookie::dat_into(text, &mut scratch.dat);
    let d = &mut scratch.buf;
    let dat = read_into(Path::new(&scratch.dat), cookie::MAX_FILE, d)
        .ok()
        .and_then(|()| Some((strfile::parse_header(d).ok()?, &*d)));
    let (stamp, window, delim, rotated) = if let Some((h, d)) = dat {
        // The text is opened only for its stamp and size.
        let Ok((_, stamp)) = read_stamped(text, 0) else {
            return;
        };
        let size = u64::try_from(stamp.size).unwrap_or(0);
        for i in 0..usize::try_from(h.numstr).unwrap_or(0) {
            let Some(start) = strfile::offset_pos(i)
                .and_then(|at| d.get(at..))
                .and_then(strfile::offset_from)
            else {
                break;
            };
            // No cookie starts at or past the end (an index older than
            // its text): the unprepared path finds none there either.
            if (start as u64) < size
                && let Ok(start) = u32::try_from(start)
            {
                starts.push(start);
            }
        }
        let longest = usize::try_from(h.longlen).unwrap_or(usize::MAX);
        (
            stamp,
            longest.saturating_add(SLACK),
            h.delim,
            h.flags & strfile::STR_ROTATED != 0,
        )
    } else {
        let Ok((body, stamp)) = read_stamped(text, cookie::MAX_FILE) else {
            return;
        };
        let mut longest = 0;
        for span in strfile::plain_spans(&body) {
            longest = longest.max(span.len());
            if let Ok(start) = u32::try_from(span.start) {
                starts.push(start);
            }
        }
        (stamp, longest.saturating_add(SLACK), b'%', false)
    };
    if starts.len() > first {
        files.push(File {
            path,
            stamp,
            first,
            window,
            delim,
            rotated,
        });
    }
}

/// Builds the index of `paths` and installs it for this process's sessions,
/// unless one is installed already (an image prepares once; a second
/// template in one process, as in tests, keeps the first). Returns the
/// installed index.
pub fn prepare(paths: &[PathBuf]) -> &'static Index {
    INSTALLED.get_or_init(|| Index::build(paths))
}

/// The installed index when it was built for `paths`.
pub fn installed(paths: &[PathBuf]) -> Option<&'static Index> {
    INSTALLED.get().filter(|ix| ix.paths == paths)
}

impl Index {
    /// Lists and indexes every fortune file under `paths`.
    pub fn build(paths: &[PathBuf]) -> Self {
        let t0 = Instant::now();
        // Stamped before listing: a change after the listing then shows.
        let roots = paths
            .iter()
            .filter_map(|p| {
                let c = c_path(p)?;
                let stamp = Stamp::of_path(&c);
                Some((c, stamp))
            })
            .collect();
        let mut files = Vec::new();
        let mut starts = Vec::new();
        let mut scratch = Scratch::default();
        for text in cookie::fortune_files(paths) {
            add(&text, &mut files, &mut starts, &mut scratch);
        }
        files.shrink_to_fit();
        Index {
            paths: paths.to_vec(),
            roots,
            files,
            starts: SealedTable::new(starts),
            took_us: u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// Cookies indexed.
    pub fn cookies(&self) -> usize {
        self.starts.len()
    }

    /// Fortune files indexed.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// What the index holds on the parent's heap, in bytes (the cookies'
    /// starts only when they could not be sealed away).
    pub fn heap_bytes(&self) -> usize {
        let paths: usize = self.files.iter().map(|f| f.path.as_bytes().len() + 1).sum();
        let roots: usize = self.roots.iter().map(|(c, _)| c.as_bytes().len() + 1).sum();
        let starts = if self.starts.is_sealed() {
            0
        } else {
            self.starts.len() * 4
        };
        starts
            + self.files.capacity() * std::mem::size_of::<File>()
            + self.roots.capacity() * std::mem::size_of::<(CString, Option<Stamp>)>()
            + paths
            + roots
    }

    /// Bytes of the cookies' starts kept out of memory (in a sealed memfd).
    pub fn sealed_bytes(&self) -> usize {
        if self.starts.is_sealed() {
            self.starts.len() * 4
        } else {
            0
        }
    }

    /// Microseconds the index took to build.
    pub fn took_us(&self) -> u64 {
        self.took_us
    }

    /// The longest reply [`Index::serve`] appends (every line end doubled
    /// at worst), so the session's output buffer can be sized before fork.
    pub fn reply_bound(&self, eol_len: usize) -> usize {
        let window = self
            .files
            .iter()
            .map(|f| f.window)
            .filter(|&w| w <= MAX_WINDOW)
            .max()
            .unwrap_or(0);
        let builtin = cookie::BUILT_IN.iter().map(|c| c.len()).max().unwrap_or(0);
        window.max(builtin) * eol_len.max(1) + eol_len
    }

    /// Appends a random cookie, unless something changed since the index
    /// was built. Allocates nothing while the output buffer has room and
    /// the file's longest cookie fits the stack buffer (3.5 KiB). Never inlined, so that
    /// its read buffer is on the stack only while a cookie is served.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    #[inline(never)]
    pub fn serve(&self, eol: &[u8], out: &mut Vec<u8>) -> Result<(), Stale> {
        for (path, stamp) in &self.roots {
            if Stamp::of_path(path) != *stamp {
                return Err(Stale);
            }
        }
        if self.starts.is_empty() {
            let fallback = cookie::BUILT_IN[cookie::random_below(cookie::BUILT_IN.len())];
            crate::text::push_text(out, fallback.as_bytes(), eol);
            return Ok(());
        }
        let pick = cookie::random_below(self.starts.len());
        let at = self.files.partition_point(|f| f.first <= pick);
        let file = self
            .files
            .get(at.checked_sub(1).ok_or(Stale)?)
            .ok_or(Stale)?;
        let start = self.starts.get(pick).ok_or(Stale)?;
        if file.window > MAX_WINDOW {
            return Err(Stale);
        }
        // Left uninitialised (see crate::fdio): only what pread fills is read.
        let mut stack = [const { MaybeUninit::<u8>::uninit() }; ON_STACK];
        let mut heap = Vec::new();
        let buf = if file.window <= ON_STACK {
            &mut stack[..]
        } else {
            heap.reserve_exact(file.window);
            heap.spare_capacity_mut()
        };
        let text = read_window(file, start, buf)?;
        let len = strfile::cookie_len(text, file.delim);
        let cookie = &mut text[..len];
        if file.rotated {
            strfile::rot13(cookie);
        }
        crate::text::push_text(out, cookie, eol);
        Ok(())
    }
}

/// Opens `file`, checks it is the file indexed, and reads its window from
/// `start` into `buf`: the bytes read, or [`Stale`].
fn read_window<'b>(
    file: &File,
    start: u32,
    buf: &'b mut [MaybeUninit<u8>],
) -> Result<&'b mut [u8], Stale> {
    use nix::libc;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: the path is NUL-terminated.
    let fd: RawFd = unsafe { libc::open(file.path.as_ptr(), flags) };
    if fd < 0 {
        return Err(Stale);
    }
    let same = Stamp::of_fd(fd) == Some(file.stamp);
    let n = if same {
        let want = file.window.min(buf.len());
        // SAFETY: buf is writable for its length >= want bytes.
        unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), want, libc::off_t::from(start)) }
    } else {
        -1
    };
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    let n = usize::try_from(n).map_err(|_| Stale)?;
    if n == 0 {
        return Err(Stale);
    }
    // SAFETY: pread filled the first n bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), n) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::fs;

    fn all_served(ix: &Index, n: usize) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for _ in 0..n {
            let mut out = Vec::new();
            ix.serve(b"\n", &mut out).expect("fresh index");
            seen.insert(String::from_utf8(out).expect("utf8"));
        }
        seen
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// strfile's layout: header, then numstr + 1 offsets.
    fn dat(flags: u32, longlen: u32, offsets: &[u32]) -> Vec<u8> {
        let numstr = offsets.len() as u32 - 1;
        let mut out = Vec::new();
        for v in [2, numstr, longlen, 1, flags] {
            out.extend_from_slice(&u32::to_be_bytes(v));
        }
        out.extend_from_slice(b"%\0\0\0");
        for o in offsets {
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    #[test]
    fn plain_and_indexed_files_serve_every_cookie() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("a"),
            "one\n%\ntwo\nlines\n%\n%\n  \n%\nthree",
        )
        .expect("write");
        // "uryyb\n%\nnoo\n%\n" rot13'd: hello, abb
        fs::write(dir.path().join("b"), "uryyb\n%\nnoo\n%\n").expect("write");
        fs::write(
            dir.path().join("b.dat"),
            dat(strfile::STR_ROTATED, 5, &[0, 8, 14]),
        )
        .expect("write");
        let ix = Index::build(&[dir.path().to_path_buf()]);
        assert_eq!((ix.files(), ix.cookies()), (2, 5));
        // The starts are out of memory (crate::sealed), read back by pread.
        assert_eq!(ix.sealed_bytes(), 5 * 4);
        assert_eq!(
            all_served(&ix, 400),
            set(&["one\n", "two\nlines\n", "three\n", "hello\n", "abb\n"])
        );
    }

    /// File times advance with the kernel's clock tick: an edit that keeps
    /// the size within one tick of the stamp would look unchanged.
    fn tick() {
        std::thread::sleep(std::time::Duration::from_millis(30));
    }

    #[test]
    fn a_change_declines_and_the_reply_follows_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        fs::write(&f, "old\n").expect("write");
        let paths = vec![dir.path().to_path_buf()];
        let ix = Index::build(&paths);
        assert_eq!(all_served(&ix, 5), set(&["old\n"]));
        tick();
        // Edited in place (same directory entry): the file's stamp differs.
        fs::write(&f, "new\n").expect("write");
        assert_eq!(ix.serve(b"\n", &mut Vec::new()), Err(Stale));
        let mut out = Vec::new();
        cookie::reply(&paths, b"\n", &mut out);
        assert_eq!(out, b"new\n");
        // A new file: the directory's stamp differs.
        let ix = Index::build(&paths);
        tick();
        fs::write(dir.path().join("g"), "more\n").expect("write");
        assert_eq!(ix.serve(b"\n", &mut Vec::new()), Err(Stale));
    }

    #[test]
    fn nothing_found_serves_the_built_in_set() {
        let ix = Index::build(&["/nonexistent/fortunes".into()]);
        assert_eq!(ix.cookies(), 0);
        let mut out = Vec::new();
        ix.serve(b"\r\n", &mut out).expect("nothing changed");
        let s = String::from_utf8(out).expect("utf8");
        assert!(
            cookie::BUILT_IN.iter().any(|b| s == format!("{b}\r\n")),
            "{s:?}"
        );
        assert!(ix.reply_bound(2) >= s.len());
    }

    #[test]
    fn long_cookies_are_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "x".repeat(ON_STACK * 2);
        fs::write(dir.path().join("f"), format!("{long}\n%\nshort\n")).expect("write");
        let ix = Index::build(&[dir.path().to_path_buf()]);
        assert_eq!(all_served(&ix, 40), set(&[&format!("{long}\n"), "short\n"]));
        let huge = "y".repeat(MAX_WINDOW);
        fs::write(dir.path().join("g"), &huge).expect("write");
        let ix = Index::build(&[dir.path().join("g")]);
        assert_eq!(
            ix.serve(b"\n", &mut Vec::new()),
            Err(Stale),
            "read unprepared"
        );
    }

    #[test]
    fn offsets_past_the_end_are_not_indexed() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("f"), "a\n%\n").expect("write");
        fs::write(dir.path().join("f.dat"), dat(0, 2, &[0, 400, 800])).expect("write");
        let ix = Index::build(&[dir.path().to_path_buf()]);
        assert_eq!(ix.cookies(), 1);
        assert_eq!(all_served(&ix, 5), set(&["a\n"]));
    }
}
