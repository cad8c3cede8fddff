//! `motd`: the existing `commands.motd_files`, concatenated, in order.
//!
//! A file that does not exist is skipped (Debian's `/run/motd.dynamic` often
//! is missing); one that exists but cannot be read is skipped too, since the
//! client can do nothing about it. At most [`MAX_FILE`] bytes are read from
//! each file so a huge or endless file (a FIFO, `/dev/zero`) cannot tie up the
//! session.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

/// The most read from one motd file.
pub const MAX_FILE: u64 = 64 * 1024;
/// The reply when no motd file exists.
pub const NONE: &[u8] = b"No message of the day.";

/// Appends the motd and `eol`-ended lines.
pub fn reply(files: &[PathBuf], eol: &[u8], out: &mut Vec<u8>) {
    let mut any = false;
    let mut buf = Vec::new();
    for path in files {
        let Ok(file) = File::options()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
        else {
            continue;
        };
        any = true;
        buf.clear();
        if file.take(MAX_FILE).read_to_end(&mut buf).is_ok() {
            crate::text::push_text(out, &buf, eol);
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
        assert_eq!(out.len(), MAX_FILE as usize + 1);
    }
}
