//! Memory only the parent maps: the table of live sessions and the daemon's
//! `Server`, which a session's child never reads.
//!
//! A fork copies the page-table entries of every page the parent has
//! touched, and each of those pages the parent writes afterwards is a
//! write fault (and a 4 KiB copy while the child still maps it). The reaper's table of live
//! sessions is written at every fork and every reap, grows with the live
//! sessions (a megabyte with ten thousand of them), and no child ever looks
//! at it. So it lives in a mapping advised `MADV_DONTFORK`: a forked child
//! does not get the mapping at all, fork copies none of its entries, and
//! the parent writes it without faults.
//!
//! The same holds for the daemon's `Server` itself ([`ParentOnlyBox`]): the
//! loop writes its fields on every turn, and which of them share a page is
//! the compiler's choice, so on the stack or the heap every page of it the
//! loop writes after a fork is a fault.
//!
//! The price is a rule: a child must never touch such memory (it is not
//! mapped there; a read would be SIGSEGV). A session's child reads only
//! what the parent gathered for it before the fork (the configuration and
//! the template on the heap, and a few descriptors), and leaves with
//! `_exit` without dropping anything.
//!
//! Where the mapping or the advice is refused, the slice lives on the heap
//! instead, forked like the rest: slower, never wrong.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use nix::libc;

/// A fixed-length slice of `T` in memory a forked child does not inherit.
pub struct ParentOnly<T: Copy> {
    store: Store<T>,
}

enum Store<T> {
    /// `len` values at `ptr`, in a private anonymous mapping of `bytes`.
    Mapped {
        ptr: NonNull<T>,
        len: usize,
        bytes: usize,
    },
    Heap(Vec<T>),
}

impl<T: Copy> ParentOnly<T> {
    /// `len` copies of `fill`.
    pub fn new(len: usize, fill: T) -> Self {
        let store = Self::map(len, fill).unwrap_or_else(|| Store::Heap(vec![fill; len]));
        ParentOnly { store }
    }

    /// True when the slice is kept out of forked children.
    pub fn is_parent_only(&self) -> bool {
        matches!(self.store, Store::Mapped { .. })
    }

    fn map(len: usize, fill: T) -> Option<Store<T>> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        if bytes == 0 {
            return None;
        }
        let ptr = map_parent_only(bytes)?.cast::<T>();
        for i in 0..len {
            // SAFETY: within the mapping, which is page-aligned (so aligned
            // for T) and `len * size_of::<T>()` bytes long.
            unsafe { ptr.as_ptr().add(i).write(fill) };
        }
        Some(Store::Mapped { ptr, len, bytes })
    }
}

/// A fresh private anonymous mapping of `bytes`, advised `MADV_DONTFORK`;
/// None when either is refused.
fn map_parent_only(bytes: usize) -> Option<NonNull<u8>> {
    // SAFETY: a fresh private anonymous mapping; nothing else refers to
    // the range.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: the range was just mapped by us.
    if unsafe { libc::madvise(p, bytes, libc::MADV_DONTFORK) } != 0 {
        // SAFETY: unmapping what we mapped; nothing refers to it.
        unsafe { libc::munmap(p, bytes) };
        return None;
    }
    NonNull::new(p.cast::<u8>())
}

impl<T: Copy> Deref for ParentOnly<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.store {
            // SAFETY: `len` initialised values, mapped for our lifetime.
            Store::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
            Store::Heap(v) => v,
        }
    }
}

impl<T: Copy> DerefMut for ParentOnly<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.store {
            // SAFETY: as in deref, and `&mut self` makes the borrow unique.
            Store::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
            Store::Heap(v) => v,
        }
    }
}

impl<T: Copy> Drop for ParentOnly<T> {
    fn drop(&mut self) {
        if let Store::Mapped { ptr, bytes, .. } = self.store {
            // SAFETY: our own mapping; T is Copy, so there is nothing to
            // drop in it, and no reference outlives self.
            unsafe { libc::munmap(ptr.as_ptr().cast(), bytes) };
        }
    }
}

impl<T: Copy + fmt::Debug> fmt::Debug for ParentOnly<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParentOnly")
            .field("len", &self.len())
            .field("parent_only", &self.is_parent_only())
            .finish()
    }
}

/// One value in memory a forked child does not inherit: the daemon's
/// `Server`, whose fields the parent writes on every turn of its loop. On
/// the stack or the heap, each page of it the parent writes while a child
/// lives is a copy-on-write fault, and which fields share a page is the
/// compiler's choice; here no write of the parent's ever faults.
///
/// The value's own heap allocations (a `Vec`'s buffer, a `Box`'s contents)
/// are ordinary heap memory, which children inherit: what a child reads
/// lives there, reached through references taken before the fork.
pub struct ParentOnlyBox<T> {
    store: BoxStore<T>,
}

enum BoxStore<T> {
    /// The value at `ptr`, in a private anonymous mapping of `bytes`.
    Mapped {
        ptr: NonNull<T>,
        bytes: usize,
    },
    Heap(Box<T>),
}

impl<T> ParentOnlyBox<T> {
    /// Moves `value` into parent-only memory (onto the heap where the
    /// mapping or the advice is refused).
    pub fn new(value: T) -> Self {
        let bytes = std::mem::size_of::<T>().max(1);
        // A page-aligned mapping suits any alignment up to a page's.
        let mapped = (std::mem::align_of::<T>() <= 4096)
            .then(|| map_parent_only(bytes))
            .flatten();
        match mapped {
            Some(p) => {
                let ptr = p.cast::<T>();
                // SAFETY: the mapping is fresh, page-aligned (so aligned for
                // T, checked above) and at least size_of::<T>() bytes.
                unsafe { ptr.as_ptr().write(value) };
                ParentOnlyBox {
                    store: BoxStore::Mapped { ptr, bytes },
                }
            }
            None => ParentOnlyBox {
                store: BoxStore::Heap(Box::new(value)),
            },
        }
    }

    /// True when the value is kept out of forked children.
    pub fn is_parent_only(&self) -> bool {
        matches!(self.store, BoxStore::Mapped { .. })
    }
}

impl<T> Deref for ParentOnlyBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.store {
            // SAFETY: initialised in new, mapped for our lifetime.
            BoxStore::Mapped { ptr, .. } => unsafe { ptr.as_ref() },
            BoxStore::Heap(b) => b,
        }
    }
}

impl<T> DerefMut for ParentOnlyBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.store {
            // SAFETY: as in deref, and `&mut self` makes the borrow unique.
            BoxStore::Mapped { ptr, .. } => unsafe { ptr.as_mut() },
            BoxStore::Heap(b) => b,
        }
    }
}

impl<T> Drop for ParentOnlyBox<T> {
    fn drop(&mut self) {
        if let BoxStore::Mapped { ptr, bytes } = self.store {
            // SAFETY: the value was written in new and is dropped once, here;
            // then the mapping, ours, is unmapped with nothing referring to it.
            unsafe {
                std::ptr::drop_in_place(ptr.as_ptr());
                libc::munmap(ptr.as_ptr().cast(), bytes);
            }
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ParentOnlyBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};

    #[test]
    fn holds_what_is_written() {
        let mut s = ParentOnly::new(1000, 7u64);
        assert!(s.is_parent_only());
        assert_eq!(s.len(), 1000);
        assert!(s.iter().all(|&v| v == 7));
        s[999] = 9;
        assert_eq!(s[999], 9);
        assert_eq!(ParentOnly::new(0, 1u8).len(), 0);
    }

    /// The check that the trick still works: a forked child does not have
    /// the mapping (its access faults), while the parent's is intact.
    #[test]
    fn a_forked_child_does_not_inherit_it() {
        let _children = crate::children_lock();
        let s = ParentOnly::new(4096, 1u8);
        let addr = s.as_ptr() as usize;
        // SAFETY: the child only calls async-signal-safe functions
        // (msync, _exit) before it exits.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                // msync on an unmapped range fails with ENOMEM: the child
                // does not map it. (Touching it would be SIGSEGV.)
                // SAFETY: msync only inspects the range.
                let r = unsafe { libc::msync(addr as *mut _, 4096, libc::MS_ASYNC) };
                let code = if r != 0 && nix::errno::Errno::last() == nix::errno::Errno::ENOMEM {
                    0
                } else {
                    1
                };
                crate::daemon::exit_now(code)
            }
            ForkResult::Parent { child } => {
                assert_eq!(
                    waitpid(child, None).expect("waitpid"),
                    WaitStatus::Exited(child, 0),
                    "the child still maps the parent-only slice"
                );
            }
        }
        assert_eq!(s[4095], 1);
    }

    #[test]
    fn a_boxed_value_is_kept_from_children_and_dropped_once() {
        let _children = crate::children_lock();
        let drops = std::rc::Rc::new(std::cell::Cell::new(0));
        struct Counted(std::rc::Rc<std::cell::Cell<u32>>, [u64; 600]);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let mut b = ParentOnlyBox::new(Counted(drops.clone(), [3; 600]));
        assert!(b.is_parent_only());
        b.1[599] = 4;
        assert_eq!((b.1[0], b.1[599]), (3, 4));
        let addr = &b.1 as *const _ as usize & !4095;
        // SAFETY: the child only calls async-signal-safe functions
        // (msync, _exit) before it exits.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                // SAFETY: msync only inspects the range.
                let r = unsafe { libc::msync(addr as *mut _, 4096, libc::MS_ASYNC) };
                let unmapped = r != 0 && nix::errno::Errno::last() == nix::errno::Errno::ENOMEM;
                crate::daemon::exit_now(if unmapped { 0 } else { 1 })
            }
            ForkResult::Parent { child } => {
                assert_eq!(
                    waitpid(child, None).expect("waitpid"),
                    WaitStatus::Exited(child, 0),
                    "the child still maps the parent-only value"
                );
            }
        }
        assert_eq!(drops.get(), 0);
        drop(b);
        assert_eq!(drops.get(), 1, "dropped exactly once");
    }
}
