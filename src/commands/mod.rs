//! One module per command whose reply comes from the system: the clock,
//! utmp, fortune files and motd files. Each exposes
//! `reply(source, eol, out)`, reads what it needs at the moment it is asked
//! (in the session's child, or in the parent during the start-up self-test
//! session, which asks for `date`), and writes clean text.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use nix::sys::stat::{SFlag, fstat};

pub mod cookie;
pub mod date;
pub mod motd;
pub mod who;

/// Reads at most `max` bytes of the regular file at `path`.
///
/// Every file a command reads goes through here. The file is opened with
/// `O_NONBLOCK`, so that opening a FIFO cannot wait for a writer, and
/// anything that is not a regular file (a FIFO, a device such as
/// `/dev/zero`, a socket, a directory) is refused with a
/// [`NotRegularFile`] error: session timeouts cover only socket I/O, so a
/// read that blocks would hold the child forever. The buffer is sized from
/// `fstat` up front, so a file is read with one allocation.
pub fn read_capped(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    read_at(path, 0, max).map(|(bytes, _)| bytes)
}

/// Reads at most `max` bytes from byte `offset` of the regular file at
/// `path`, with the same guards as [`read_capped`]; returns them and the
/// file's size. For the pieces of a file a reply needs (a fortune index's
/// header, one offset, one cookie), without reading the whole file.
pub fn read_at(path: &Path, offset: u64, max: usize) -> io::Result<(Vec<u8>, u64)> {
    use std::io::{Seek as _, SeekFrom};
    let mut file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    let st = fstat(&file)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, NotRegularFile));
    }
    // The size is a hint: the file may grow or shrink while it is read.
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let want = size.saturating_sub(offset).min(max as u64);
    let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(max));
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    file.take(max as u64).read_to_end(&mut buf)?;
    Ok((buf, size))
}

/// The error [`read_capped`] gives for a path that is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRegularFile;

impl std::fmt::Display for NotRegularFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a regular file")
    }
}

impl std::error::Error for NotRegularFile {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file_is_read_and_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello world").expect("write");
        assert_eq!(read_capped(&p, 100).expect("read"), b"hello world");
        assert_eq!(read_capped(&p, 11).expect("read"), b"hello world");
        assert_eq!(read_capped(&p, 5).expect("read"), b"hello");
        assert_eq!(read_capped(&p, 0).expect("read"), b"");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        assert_eq!(read_capped(&empty, 100).expect("read"), b"");
    }

    #[test]
    fn missing_file_is_not_found() {
        let e = read_capped(Path::new("/nonexistent/x"), 10).expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    fn assert_refused(e: &io::Error) {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.get_ref().is_some_and(|i| i.is::<NotRegularFile>()), "{e}");
        assert_eq!(e.to_string(), "not a regular file");
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        // No writer ever opens the FIFO: a blocking open or read would never
        // return, so the read runs in a thread and the test waits a bounded time.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_capped(&p, 100));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("read_capped blocked on a FIFO");
        assert_refused(&got.expect_err("a FIFO is not a regular file"));
    }

    #[test]
    fn devices_and_directories_are_refused() {
        assert_refused(&read_capped(Path::new("/dev/zero"), 100).expect_err("device"));
        let dir = tempfile::tempdir().expect("tempdir");
        assert_refused(&read_capped(dir.path(), 100).expect_err("directory"));
    }
}
