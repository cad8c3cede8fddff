//! Where the pages a session writes fall: the few variables every forked
//! child writes, and the parent's stack under its poll loop.
//!
//! After `fork`, each page the parent or the child writes that they still
//! share is a copy-on-write fault: a page allocated and copied, in the
//! parent on the loop's path and in every child. How many pages a session
//! writes is fixed by the code; how many *distinct* pages that is depends
//! on where page boundaries fall, and without care that changes with every
//! build (code that grows moves every variable after it) and with every
//! environment (the environment's length moves the stack). Measured with a
//! trace of faults by address, one unlucky build took 19 faults a session
//! where another took 13, with the same code paths (BENCHMARKS.md). So:
//!
//! - **Variables.** The C library's variables a forked child writes (the
//!   locks fork resets, the time zone's state) and our own
//!   (`hostinfod_session_fd`, see [`crate::session::stop`]) are listed in
//!   `bench/hot-symbols.txt`, which LLD's symbol ordering puts first in
//!   `.data` and `.bss`. Each group starts right after a page-aligned,
//!   page-sized marker listed before it (`hostinfod_data_page`,
//!   `hostinfod_bss_page`), so each starts on a page of its own and fits
//!   in it: one page of each written per session, whatever the build. The
//!   markers are never touched, so they cost a page of file and of address
//!   space, no memory.
//! - **The stack.** The frames a session's fork runs through in the parent
//!   (the poll loop, accepting, forking, the C library's fork) take about
//!   2 KiB. [`at_page_top`] starts the poll loop just below a page boundary,
//!   so that they fit in one page, whatever the environment and the frames
//!   above the loop.
//!
//! `bench/layout.sh check` fails when either group spans more than one
//! page; `tests/sessions.rs` (run on the release build) fails when the
//! parent takes a fault more a session than the stack page and the page of
//! its TLS.

/// A page-aligned page: what the markers are.
#[repr(C, align(4096))]
struct Page([u8; PAGE]);

const PAGE: usize = 4096;

/// The marker before the listed `.data` variables (writable and not all
/// zero, so it is in `.data`; never written).
#[unsafe(no_mangle)]
static mut hostinfod_data_page: Page = {
    let mut p = [0u8; PAGE];
    p[PAGE - 1] = 1;
    Page(p)
};

/// The marker before the listed `.bss` variables (writable and all zero, so
/// in `.bss`; never written).
#[unsafe(no_mangle)]
static mut hostinfod_bss_page: Page = Page([0; PAGE]);

/// Keeps both markers in the binary (the linker drops what nothing
/// references); costs nothing at run time.
fn keep_markers() {
    std::hint::black_box(&raw const hostinfod_data_page);
    std::hint::black_box(&raw const hostinfod_bss_page);
}

/// Runs `f` with its stack starting just below a page boundary: descends
/// by frames of at least 64 bytes (`STEP`) until the next boundary below is
/// passed. At most a page and a step of stack are spent, once.
#[inline(never)]
pub fn at_page_top<R>(f: impl FnOnce() -> R) -> R {
    keep_markers();
    let mark = 0u8;
    let here = std::hint::black_box(&raw const mark) as usize;
    // The page below this one ends at this page's base: f's frames start
    // within a frame of `descend` under it.
    descend(here & !(PAGE - 1), f)
}

const STEP: usize = 64;

#[inline(never)]
fn descend<R>(target: usize, f: impl FnOnce() -> R) -> R {
    let pad = [0u8; STEP];
    let here = std::hint::black_box(&raw const pad) as usize;
    let r = if here <= target {
        f()
    } else {
        descend(target, f)
    };
    // Used after the call, so the call is not a tail call that would reuse
    // this frame.
    std::hint::black_box(&pad);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_runs_below_a_page_boundary() {
        let sp = at_page_top(|| {
            let mark = 0u8;
            std::hint::black_box(&raw const mark) as usize
        });
        // Within the top few hundred bytes of its page.
        let below_top = PAGE - sp % PAGE;
        assert!(below_top <= 512, "{below_top} bytes below the page's top");
        assert_eq!(at_page_top(|| 7), 7);
    }
}
