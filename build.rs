//! Build script: lay the code a session runs out together.
//!
//! After start-up the parent gives back the code pages it no longer runs
//! (src/memory.rs says why and how), but the kernel maps file pages in 64 KiB
//! windows ("fault-around"), so what the parent keeps mapped is every window
//! that holds a function the serving loop or a session runs. Two link options
//! gather those functions into few windows:
//!
//! - our own hot functions carry `#[link_section = ".text.hot.hostinfod"]`,
//!   and `-z keep-text-section-prefix` keeps them together in `.text.hot`;
//! - the hot functions of std, the other crates and the statically linked C
//!   library are listed in `bench/hot-symbols.txt` for LLD's
//!   `--symbol-ordering-file`, which puts them first in `.text`; the C
//!   library's variables a forked child writes are listed too, and lead
//!   `.data` and `.bss`, each group after a page-aligned marker
//!   (src/layout.rs): one page of each copied per session.
//!
//! Both are LLD's (GNU ld knows the first), and rustc links with LLD by
//! default on x86_64-unknown-linux-gnu from 1.90 on. They are passed only
//! there, and not when the build chooses its own linker (RUSTFLAGS or
//! CARGO_TARGET_*_LINKER), nor when HOSTINFOD_NO_CODE_LAYOUT is set. LLD
//! ignores names of the list that are not in the binary, so CI runs
//! `bench/layout.sh check` on the release build: it fails when `.text.hot` is
//! missing, when an attributed function lies outside it, or when a name of the
//! list is stale (`bench/layout.sh update` rewrites the list). BENCHMARKS.md
//! has what the layout is worth.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bench/hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=HOSTINFOD_NO_CODE_LAYOUT");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    if env::var_os("HOSTINFOD_NO_CODE_LAYOUT").is_some()
        || env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
    {
        return;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("link-self-contained") || !rustc_at_least(1, 90) {
        return;
    }
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={dir}/bench/hot-symbols.txt");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// True if the compiler building us is at least `major.minor`.
fn rustc_at_least(major: u32, minor: u32) -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(release) = text.lines().find_map(|l| l.strip_prefix("release: ")) else {
        return false;
    };
    let mut parts = release
        .split(['.', '-'])
        .filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(ma), Some(mi)) => (ma, mi) >= (major, minor),
        _ => false,
    }
}
