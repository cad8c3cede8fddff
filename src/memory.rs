//! Keeping the parent small: giving back the pages of code that only
//! start-up ran, and the heap pages it freed.
//!
//! Parsing the command line and the TOML file, validating, binding: all of it
//! runs once, yet its code pages stay mapped in the parent for its whole life,
//! and since nothing else maps this binary they count as the parent's own
//! memory (USS). Once serving, [`trim`] asks the kernel to drop the mappings
//! of such pages: read-only file-backed pages that only we map and that hold
//! no private copy (no anonymous pages, so nothing is lost — they are read
//! again from the page cache if ever needed). The few pages the serving loop
//! uses fault back in on the first connection and stay.
//!
//! They fault back in 64 KiB at a time (the kernel's fault-around window), so
//! what stays mapped depends on how the serving code is spread over the
//! binary: build.rs gathers it into few windows (`.text.hot` and LLD's symbol
//! order), and `bench/layout.sh check` fails in CI when that layout is lost.
//!
//! Mappings with anonymous pages are never touched: `.data.rel.ro` is
//! read-only after relocation but its pages are private copies, and dropping
//! them would bring back the unrelocated file contents.
//!
//! Start-up also leaves freed memory in the heap. Those pages stay written
//! until they are given back, and each written page of the parent's is one
//! more page-table entry for every fork to copy and every exit to drop, so
//! [`trim_heap`] returns them once start-up's last temporary (the
//! rehearsal's) is freed.
//!
//! [`trim`]: crate::memory::trim
//! [`trim_heap`]: crate::memory::trim_heap

/// One mapping from /proc/self/smaps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    file_backed: bool,
    /// Private_Clean + Private_Dirty: pages only we map. For a file page
    /// "dirty" can mean the page cache has not written it back yet (a binary
    /// just built); without anonymous pages there is no private copy either way.
    private_kb: u64,
    anonymous_kb: u64,
}

/// Parses the mappings of an smaps text.
fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            out.push(Mapping {
                start,
                end,
                writable: perms.contains('w'),
                file_backed: path.starts_with('/'),
                ..Mapping::default()
            });
            continue;
        }
        let value = || f.clone().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        if let Some(m) = out.last_mut() {
            match first {
                "Private_Clean:" | "Private_Dirty:" => m.private_kb += value(),
                "Anonymous:" => m.anonymous_kb = value(),
                _ => {}
            }
        }
    }
    out
}

/// The mappings that are safe and worth dropping.
fn trimmable(maps: &[Mapping]) -> impl Iterator<Item = &Mapping> {
    maps.iter()
        .filter(|m| m.file_backed && !m.writable && m.anonymous_kb == 0 && m.private_kb > 0)
}

/// Drops the page mappings of read-only file pages only this process maps.
/// Returns the kilobytes of code pages given back.
pub fn trim() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let maps = parse_smaps(&text);
    let mut freed = 0;
    for m in trimmable(&maps) {
        // SAFETY: the range is one whole mapping of ours, read-only, file
        // backed and without private copies: MADV_DONTNEED only drops page
        // table entries, and later accesses read the same file pages again.
        let r = unsafe {
            nix::libc::madvise(m.start as *mut _, m.end - m.start, nix::libc::MADV_DONTNEED)
        };
        if r == 0 {
            freed += m.private_kb;
        }
    }
    freed
}

/// Returns the heap memory start-up freed to the system: whole free pages
/// inside the heap, not only at its end. Call once start-up's last
/// temporary is freed: every heap page the parent keeps written is copied
/// at each fork.
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free heap memory; single-threaded.
    unsafe { nix::libc::malloc_trim(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
5600-5700 r--p 00000000 fd:01 123 /usr/sbin/hostinfod
Private_Clean:        64 kB
Anonymous:             0 kB
5700-5800 r-xp 00001000 fd:01 123 /usr/sbin/hostinfod
Private_Clean:       900 kB
Anonymous:             0 kB
5800-5900 r--p 00002000 fd:01 123 /usr/sbin/hostinfod
Private_Clean:         0 kB
Anonymous:            32 kB
5900-5a00 rw-p 00003000 fd:01 123 /usr/sbin/hostinfod
Private_Clean:         8 kB
Anonymous:             4 kB
7f00-7f10 r-xp 00000000 fd:01 9 /usr/lib/x86_64-linux-gnu/libc.so.6
Private_Clean:         0 kB
Anonymous:             0 kB
7f20-7f30 rw-p 00000000 00:00 0 
Private_Clean:         0 kB
Anonymous:            12 kB
";

    #[test]
    fn only_clean_read_only_private_file_pages_are_trimmed() {
        let maps = parse_smaps(SAMPLE);
        assert_eq!(maps.len(), 6);
        let t: Vec<usize> = trimmable(&maps).map(|m| m.start).collect();
        // Text and rodata of the binary; not relro (anonymous copies), not
        // data (writable), not libc (shared), not the heap.
        assert_eq!(t, vec![0x5600, 0x5700]);
    }

    #[test]
    fn trimming_gives_back_a_private_read_only_file_mapping() {
        use std::io::Write;
        // A mapping of our own: the test binary's code may be shared with
        // the other test processes running at the same time, so it is not
        // a reliable "only we map it" case.
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(&[0x5a; 64 * 1024]).expect("write");
        let len = 64 * 1024;
        // SAFETY: a fresh read-only private mapping of a file we own.
        let p = unsafe {
            nix::libc::mmap(
                std::ptr::null_mut(),
                len,
                nix::libc::PROT_READ,
                nix::libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&f),
                0,
            )
        };
        assert_ne!(p, nix::libc::MAP_FAILED);
        let start = p as usize;
        // SAFETY: reads inside the mapping, which holds what we wrote.
        let sum: u64 = (0..len)
            .step_by(4096)
            .map(|o| u64::from(unsafe { *(p as *const u8).add(o) }))
            .sum();
        assert_eq!(sum, 16 * 0x5a);
        let resident = || {
            let text = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
            let m = parse_smaps(&text);
            let m = m.iter().find(|m| m.start == start).expect("our mapping");
            m.private_kb
        };
        assert_eq!(resident(), 64, "all 16 pages mapped before the trim");
        assert!(trim() >= 64);
        assert_eq!(resident(), 0, "the trim dropped the pages");
        // They come back on access, with the same contents.
        // SAFETY: as above.
        assert_eq!(unsafe { *(p as *const u8).add(4096 * 3) }, 0x5a);
        // SAFETY: unmapping the mapping made above.
        unsafe { nix::libc::munmap(p, len) };
        assert_eq!(trimmable(&parse_smaps(SAMPLE)).count(), 2);
    }
}
