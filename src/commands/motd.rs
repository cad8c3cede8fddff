//! `motd`: the existing `commands.motd_files`, concatenated, in order.
//!
//! A file that does not exist is skipped (Debian's `/run/motd.dynamic` often
//! is missing); one that exists but cannot be read, or is not a regular file
//! (a FIFO, `/dev/zero`), is skipped too, since the client can do nothing
//! about it. At most [`MAX_FILE`] bytes are read from each file so a huge
//! file cannot tie up the session.

use std::path::PathBuf;

/// The most read from one motd file.
pub const MAX_FILE: usize = 64 * 1024;
/// The reply when no motd file could be read.
pub const NONE: &[u8] = b"No message of the day.";

/// Appends the motd and `eol`-ended lines.
pub fn reply(files: &[PathBuf], eol: &[u8], out: &mut Vec<u8>) {
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
