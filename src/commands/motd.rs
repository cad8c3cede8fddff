//! `motd`: the existing `commands.motd_files`, concatenated, in order.
//!
//! A file that does not exist is skipped (Debian's `/run/motd.dynamic` often
//! is missing); one that exists but cannot be read, or is not a regular file
//! (a FIFO, `/dev/zero`), is skipped too, since the client can do nothing
//! about it. At most [`MAX_FILE`] bytes are read from each file so a huge
//! file cannot tie up the session.
//!
//! A daemon reads the files once, at start and at every reload, when it
//! makes the session template ([`prepare`]), and keeps the finished reply
//! for each line end with each file's [`Stamp`]. A session's child `stat`s
//! each file (one system call a file, allocating nothing) and sends the
//! prepared reply when every stamp is the same; otherwise it reads the
//! files itself, so an edited motd is served at once, without a reload.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

use super::{Stamp, c_path, read_stamped};

/// The most read from one motd file.
pub const MAX_FILE: usize = 64 * 1024;
/// The reply when no motd file could be read.
pub const NONE: &[u8] = b"No message of the day.";

/// The motd read by the parent, and what it was read from.
#[derive(Debug)]
pub struct Prepared {
    files: Vec<PathBuf>,
    /// Each file as a C string and its stamp when read (None: missing).
    stamps: Vec<(CString, Option<Stamp>)>,
    crlf: Vec<u8>,
    lf: Vec<u8>,
}

static PREPARED: OnceLock<Prepared> = OnceLock::new();

/// Reads `files` and installs the reply for this process's sessions, unless
/// one is installed already (an image prepares once). The process-wide cell
/// is written before any fork and only read after, as
/// [`super::fortunes`]'s index is, because a session reaches commands
/// through the configuration alone.
pub fn prepare(files: &[PathBuf]) -> &'static Prepared {
    PREPARED.get_or_init(|| Prepared::read(files))
}

impl Prepared {
    /// Reads `files` now.
    pub fn read(files: &[PathBuf]) -> Self {
        let mut stamps = Vec::with_capacity(files.len());
        let (mut crlf, mut lf) = (Vec::new(), Vec::new());
        let mut any = false;
        for path in files {
            let Some(c) = c_path(path) else { continue };
            // Stamped before the attempt: a file that appears or vanishes
            // in between then shows as changed to the child.
            let before = Stamp::of_path(&c);
            let stamp = match read_stamped(path, MAX_FILE) {
                Ok((text, stamp)) => {
                    any = true;
                    crate::text::push_text(&mut crlf, &text, b"\r\n");
                    crate::text::push_text(&mut lf, &text, b"\n");
                    Some(stamp)
                }
                Err(_) => before,
            };
            stamps.push((c, stamp));
        }
        if !any {
            crate::text::push_line(&mut crlf, NONE, b"\r\n");
            crate::text::push_line(&mut lf, NONE, b"\n");
        }
        Prepared {
            files: files.to_vec(),
            stamps,
            crlf,
            lf,
        }
    }

    /// The reply for line end `eol`, if every file is as it was read.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn fresh(&self, eol: &[u8]) -> Option<&[u8]> {
        let reply = match eol {
            b"\r\n" => &self.crlf,
            b"\n" => &self.lf,
            _ => return None,
        };
        self.stamps
            .iter()
            .all(|(path, stamp)| Stamp::of_path(path) == *stamp)
            .then_some(reply.as_slice())
    }

    /// The longest reply, for sizing the session's output buffer.
    pub fn reply_len(&self) -> usize {
        self.crlf.len().max(self.lf.len())
    }

    /// What it holds on the parent's heap, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.crlf.capacity()
            + self.lf.capacity()
            + self
                .stamps
                .iter()
                .map(|(c, _)| {
                    c.as_bytes().len() + 1 + std::mem::size_of::<(CString, Option<Stamp>)>()
                })
                .sum::<usize>()
    }
}

/// Appends the motd and `eol`-ended lines.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn reply(files: &[PathBuf], eol: &[u8], out: &mut Vec<u8>) {
    if let Some(p) = PREPARED.get().filter(|p| p.files == files)
        && let Some(text) = p.fresh(eol)
    {
        out.extend_from_slice(text);
        return;
    }
    let mut any = false;
    for path in files {
        if let Ok(text) = super::read_capped(path, MAX_FILE) {
            any = true;
            crate::text::push_text(out, &text, eol);
        }
    }
    if !any {
        crate::text::push_line(out, NONE, eol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenates_existing_files_and_cleans_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "first\n").expect("write");
        std::fs::write(&b, "\x1b[31msecond\r\nthird").expect("write");
        let mut out = Vec::new();
        reply(&[a, dir.path().join("missing"), b], b"\r\n", &mut out);
        assert_eq!(out, b"first\r\n[31msecond\r\nthird\r\n");
    }

    #[test]
    fn none_existing() {
        let mut out = Vec::new();
        reply(&["/nonexistent/x".into()], b"\n", &mut out);
        assert_eq!(out, b"No message of the day.\n");
    }

    #[test]
    fn big_file_is_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("big");
        std::fs::write(&a, vec![b'x'; 200_000]).expect("write");
        let mut out = Vec::new();
        reply(&[a], b"\n", &mut out);
        assert_eq!(out.len(), MAX_FILE + 1);
    }

    #[test]
    fn prepared_reply_is_the_same_and_follows_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let gone = dir.path().join("gone");
        std::fs::write(&a, "first\x07\nsecond").expect("write");
        let files = vec![a.clone(), gone.clone()];
        let p = Prepared::read(&files);
        for eol in [&b"\r\n"[..], b"\n"] {
            let mut want = Vec::new();
            reply(&files, eol, &mut want);
            assert_eq!(p.fresh(eol), Some(&want[..]));
        }
        // File times advance with the kernel's clock tick: an edit that
        // keeps the size within one tick would look unchanged.
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(&a, "FIRST\x07\nsecond").expect("write");
        assert_eq!(p.fresh(b"\n"), None, "edited in place");
        let p = Prepared::read(&files);
        std::fs::write(&gone, "back").expect("write");
        assert_eq!(p.fresh(b"\n"), None, "a missing file appeared");
        let p = Prepared::read(std::slice::from_ref(&gone));
        std::fs::remove_file(&gone).expect("rm");
        assert_eq!(p.fresh(b"\n"), None, "a file vanished");
        assert_eq!(
            Prepared::read(&[gone]).fresh(b"\n"),
            Some(&b"No message of the day.\n"[..])
        );
    }

    #[test]
    fn fifo_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let a = dir.path().join("a");
        std::fs::write(&a, "hello\n").expect("write");
        let mut out = Vec::new();
        reply(&[fifo.clone(), a], b"\n", &mut out);
        assert_eq!(out, b"hello\n");
        out.clear();
        reply(&[fifo, "/dev/zero".into()], b"\n", &mut out);
        assert_eq!(out, b"No message of the day.\n");
    }
}
