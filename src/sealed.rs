//! A table of numbers kept out of the parent's memory: in a sealed memfd,
//! read with `pread`.
//!
//! Every page of private memory the parent has touched costs each session
//! twice: fork copies its page-table entry, and the child's exit tears it
//! down, each time taking a reference on the page that the other CPU has
//! just taken (measured: 28 more such pages in the C floor's parent cost it
//! 4–5 % of its sessions/s). A table built once at start and read by few
//! sessions, like the fortune index (four bytes a cookie: 17 pages for
//! Debian's 15,217), should cost the others nothing. So it is written into a
//! memfd that is then sealed against writing, growing and shrinking, and
//! not mapped at all: fork copies one descriptor, and a session that wants
//! one entry reads it with one `pread`. (A shared mapping would spare the
//! page-table entries too, but adds a mapping for fork to copy, which costs
//! about as much.)
//!
//! Where a memfd cannot be made or sealed, the table stays on the heap:
//! slower to fork, never wrong.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::libc;
use nix::sys::memfd::{MFdFlags, memfd_create};

/// A fixed table of `u32`, read-only once made.
#[derive(Debug)]
pub struct SealedTable {
    store: Store,
}

#[derive(Debug)]
enum Store {
    /// `len` values in native byte order in a sealed memfd.
    Sealed {
        fd: OwnedFd,
        len: usize,
    },
    Heap(Vec<u32>),
}

impl SealedTable {
    /// A table holding `values`.
    pub fn new(values: Vec<u32>) -> Self {
        let store = match seal(&values) {
            Some(fd) => Store::Sealed {
                fd,
                len: values.len(),
            },
            None => Store::Heap(values),
        };
        SealedTable { store }
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Sealed { len, .. } => *len,
            Store::Heap(v) => v.len(),
        }
    }

    /// True when it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the table is in a sealed memfd, not in our memory.
    pub fn is_sealed(&self) -> bool {
        matches!(self.store, Store::Sealed { .. })
    }

    /// Entry `i`: one `pread` when sealed. None past the end or when the
    /// read fails.
    pub fn get(&self, i: usize) -> Option<u32> {
        match &self.store {
            Store::Sealed { fd, len } => {
                if i >= *len {
                    return None;
                }
                let at = libc::off_t::try_from(i.checked_mul(4)?).ok()?;
                let mut b = [0u8; 4];
                // SAFETY: b is writable for 4 bytes; the fd is ours.
                let n = unsafe { libc::pread(fd.as_raw_fd(), b.as_mut_ptr().cast(), 4, at) };
                (n == 4).then(|| u32::from_ne_bytes(b))
            }
            Store::Heap(v) => v.get(i).copied(),
        }
    }
}

/// A sealed memfd holding `values`, or None where that cannot be had.
fn seal(values: &[u32]) -> Option<OwnedFd> {
    use std::io::Write as _;
    if values.is_empty() {
        return None;
    }
    let fd = memfd_create(
        c"hostinfod-table",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .ok()?;
    let mut file = std::fs::File::from(fd);
    // A page at a time, so that no second copy of the table is allocated.
    let mut page = [0u8; 4096];
    for chunk in values.chunks(page.len() / 4) {
        for (b, v) in page.chunks_exact_mut(4).zip(chunk) {
            b.copy_from_slice(&v.to_ne_bytes());
        }
        file.write_all(&page[..chunk.len() * 4]).ok()?;
    }
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals)).ok()?;
    Some(file.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_every_value() {
        let v: Vec<u32> = (0..20_000).map(|i| i * 7 + 3).collect();
        let t = SealedTable::new(v.clone());
        assert!(t.is_sealed());
        assert_eq!(t.len(), v.len());
        for i in [0, 1, 1023, 1024, 19_999] {
            assert_eq!(t.get(i), Some(v[i]));
        }
        assert_eq!(t.get(20_000), None);
        let empty = SealedTable::new(Vec::new());
        assert!(empty.is_empty() && !empty.is_sealed());
        assert_eq!(empty.get(0), None);
    }

    /// The check that the table stays out of our memory and cannot be
    /// changed: no mapping of it, and writes, growth and new seals refused.
    #[test]
    fn the_table_is_sealed_and_not_mapped() {
        let t = SealedTable::new((0..50_000).collect());
        let Store::Sealed { fd, .. } = &t.store else {
            panic!("not sealed");
        };
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        assert!(!maps.contains("hostinfod-table"), "the table is mapped");
        assert!(nix::unistd::write(fd, b"x").is_err(), "writable");
        assert!(fcntl(fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SEAL)).is_err());
        assert_eq!(t.get(49_999), Some(49_999));
    }
}
