//! One module per command whose reply comes from the system: the clock,
//! utmp, fortune files and motd files. Each exposes
//! `reply(source, eol, out)`, reads what it needs at the moment it is asked
//! (in the session's child, or in the parent during the start-up self-test
//! session, which asks for `date`), and writes clean text.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

pub mod cookie;
pub mod date;
pub mod fortunes;
pub mod motd;
pub mod who;

/// What identifies a file's contents without reading them: device, inode,
/// type, size and the modification and change times (nanoseconds).
///
/// The parent records a file's stamp when it reads the file for a prepared
/// reply (the fortune index, the motd); a session's child compares it with
/// one `stat` or `fstat` before serving the prepared reply, and reads the
/// file afresh when it differs. Replacing a file (a package upgrade renames
/// a new one into place) changes the inode; editing it in place changes the
/// times, and the change time cannot be set back by a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of what `st` describes.
    pub fn of(st: &nix::libc::stat) -> Self {
        Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// The stamp of the open file `fd`; allocates nothing.
    pub fn of_fd(fd: std::os::fd::RawFd) -> Option<Self> {
        let mut st = std::mem::MaybeUninit::<nix::libc::stat>::uninit();
        // SAFETY: st is writable; fstat fills it when it returns 0.
        if unsafe { nix::libc::fstat(fd, st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: fstat returned 0, so st is initialised.
        Some(Stamp::of(unsafe { st.assume_init_ref() }))
    }

    /// The stamp of the file at `path` (symbolic links followed, as `open`
    /// does), or `None` when there is none; allocates nothing.
    pub fn of_path(path: &std::ffi::CStr) -> Option<Self> {
        let mut st = std::mem::MaybeUninit::<nix::libc::stat>::uninit();
        // SAFETY: path is NUL-terminated; st is writable and filled when
        // stat returns 0.
        if unsafe { nix::libc::stat(path.as_ptr(), st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: stat returned 0, so st is initialised.
        Some(Stamp::of(unsafe { st.assume_init_ref() }))
    }

    /// Whether it is a regular file.
    pub fn is_regular(&self) -> bool {
        self.mode & nix::libc::S_IFMT == nix::libc::S_IFREG
    }
}

/// `path` as a NUL-terminated string for the system calls of a child, which
/// must not allocate; `None` for a path with a NUL byte (no file has one).
pub fn c_path(path: &Path) -> Option<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt as _;
    std::ffi::CString::new(path.as_os_str().as_bytes()).ok()
}

/// Reads at most `max` bytes of the regular file at `path` with
/// [`read_capped`]'s guards, and its [`Stamp`] taken from the same open
/// file before the read.
pub fn read_stamped(path: &Path, max: usize) -> io::Result<(Vec<u8>, Stamp)> {
    let (file, stamp) = open_stamped(path)?;
    let mut buf = Vec::with_capacity(usize::try_from(stamp.size).unwrap_or(0).min(max));
    file.take(max as u64).read_to_end(&mut buf)?;
    Ok((buf, stamp))
}

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

/// Reads at most `max` bytes of the regular file at `path` into `buf`
/// (emptied first), with [`read_capped`]'s guards: for reading many files
/// into one buffer.
pub fn read_into(path: &Path, max: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    read_at_into(path, 0, max, buf).map(drop)
}

/// Reads at most `max` bytes from byte `offset` of the regular file at
/// `path`, with the same guards as [`read_capped`]; returns them and the
/// file's size. For the pieces of a file a reply needs (a fortune index's
/// header, one offset, one cookie), without reading the whole file.
pub fn read_at(path: &Path, offset: u64, max: usize) -> io::Result<(Vec<u8>, u64)> {
    let mut buf = Vec::new();
    let size = read_at_into(path, offset, max, &mut buf)?;
    Ok((buf, size))
}

/// [`read_at`] into `buf` (emptied first, sized from `fstat` so that a file
/// is read with at most one allocation); returns the file's size.
fn read_at_into(path: &Path, offset: u64, max: usize, buf: &mut Vec<u8>) -> io::Result<u64> {
    use std::io::{Seek as _, SeekFrom};
    let (mut file, size) = open_regular(path)?;
    let want = size.saturating_sub(offset).min(max as u64);
    buf.clear();
    buf.reserve(usize::try_from(want).unwrap_or(max));
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    file.take(max as u64).read_to_end(buf)?;
    Ok(size)
}

/// Opens the regular file at `path` for reading, with the guards of
/// [`read_capped`] (non-blocking, not a FIFO or device); returns it and its
/// size, a hint: the file may grow or shrink while it is read.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    let (file, stamp) = open_stamped(path)?;
    Ok((file, u64::try_from(stamp.size).unwrap_or(0)))
}

/// [`open_regular`], with the [`Stamp`] of the file opened.
fn open_stamped(path: &Path) -> io::Result<(File, Stamp)> {
    use std::os::fd::AsRawFd as _;
    let file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    let stamp = Stamp::of_fd(file.as_raw_fd()).ok_or_else(io::Error::last_os_error)?;
    if !stamp.is_regular() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, NotRegularFile));
    }
    Ok((file, stamp))
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
