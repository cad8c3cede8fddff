//! Reads into uninitialised buffers.
//!
//! After every fork the parent's pages are copy-on-write, and a page either
//! process writes while the other still maps it costs a fault and a 4 KiB
//! copy. A read buffer on the stack that is zeroed before each read writes
//! all of its pages, where the kernel would write only what it returns; so
//! the session's input, the signalfd records and the exit pipe's PIDs are
//! read into buffers left uninitialised, and only the part the kernel filled
//! is ever looked at; so is the utmp file, a few records at a time.

use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use nix::errno::Errno;

/// Types for which every bit pattern is a valid value, so bytes from the
/// kernel can be read as them.
///
/// # Safety
///
/// Implement only for plain old data: no references, no niches, no padding
/// whose contents matter.
pub unsafe trait Plain: Copy {}

// SAFETY: any byte is a u8.
unsafe impl Plain for u8 {}
// SAFETY: signalfd_siginfo is a C struct of integers.
unsafe impl Plain for nix::libc::signalfd_siginfo {}

/// One read(2) of `fd` into `buf`, returning the whole records it filled:
/// empty at end of file (or when fewer bytes than one record came), the
/// errno on failure.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn read_records<T: Plain, const N: usize>(
    fd: RawFd,
    buf: &mut MaybeUninit<[T; N]>,
) -> Result<&[T], Errno> {
    let size = std::mem::size_of::<T>();
    // SAFETY: buf is writable for N * size bytes.
    let n = unsafe { nix::libc::read(fd, buf.as_mut_ptr().cast(), N * size) };
    if n < 0 {
        return Err(Errno::last());
    }
    let got = (n as usize / size).min(N);
    // SAFETY: read(2) filled the first `got` whole records, and any bytes
    // are a valid T (Plain).
    Ok(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<T>(), got) })
}

/// Reads `fd` into `buf` until it is full or the file ends (a short read
/// is retried, so fixed-size records never straddle two calls), returning
/// the bytes read: fewer than `N` only at end of file or on an error after
/// some bytes came; the errno when nothing could be read.
#[inline]
pub fn read_full<const N: usize>(
    fd: RawFd,
    buf: &mut MaybeUninit<[u8; N]>,
) -> Result<&[u8], Errno> {
    let mut n = 0;
    while n < N {
        // SAFETY: buf is writable for N bytes, n < N.
        let r = unsafe { nix::libc::read(fd, buf.as_mut_ptr().cast::<u8>().add(n).cast(), N - n) };
        match r {
            0 => break,
            r if r > 0 => n += r as usize,
            _ if Errno::last() == Errno::EINTR => {}
            _ if n == 0 => return Err(Errno::last()),
            _ => break,
        }
    }
    // SAFETY: read(2) filled the first n bytes.
    Ok(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn returns_what_was_written_then_eof_then_errors() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        nix::unistd::write(&w, b"hello").expect("write");
        let mut buf = MaybeUninit::<[u8; 16]>::uninit();
        assert_eq!(read_records(r.as_raw_fd(), &mut buf), Ok(&b"hello"[..]));
        drop(w);
        assert_eq!(read_records(r.as_raw_fd(), &mut buf), Ok(&[][..]));
        assert_eq!(read_records(-1, &mut buf), Err(Errno::EBADF));
    }

    #[test]
    fn a_full_read_gathers_short_reads_until_full_or_eof() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        // Two writes: a pipe gives them back in two reads.
        nix::unistd::write(&w, b"abc").expect("write");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            nix::unistd::write(&w, b"defgh").expect("write");
        });
        let mut buf = MaybeUninit::<[u8; 6]>::uninit();
        assert_eq!(read_full(r.as_raw_fd(), &mut buf), Ok(&b"abcdef"[..]));
        writer.join().expect("writer");
        // The writer is gone: what is left, then end of file.
        assert_eq!(read_full(r.as_raw_fd(), &mut buf), Ok(&b"gh"[..]));
        assert_eq!(read_full(r.as_raw_fd(), &mut buf), Ok(&[][..]));
        assert_eq!(read_full(-1, &mut buf), Err(Errno::EBADF));
    }

    #[test]
    fn only_whole_records_are_returned() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let size = std::mem::size_of::<nix::libc::signalfd_siginfo>();
        // One record and a half.
        let bytes = vec![1u8; size + size / 2];
        nix::unistd::write(&w, &bytes).expect("write");
        let mut buf = MaybeUninit::<[nix::libc::signalfd_siginfo; 2]>::uninit();
        let got = read_records(r.as_raw_fd(), &mut buf).expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ssi_signo, u32::from_ne_bytes([1; 4]));
    }
}
