//! Build script: lay the code a session runs out together.
//!
//! After start-up the parent gives back the code pages it no longer runs
//! (src/memory.rs), but the kernel maps file pages in 64 KiB windows
//! ("fault-around"), and the few functions a serving daemon runs were spread
//! over 14 of the binary's 16 windows of code, so the parent kept most of its
//! code mapped. Our own hot functions carry
//! `#[link_section = ".text.hot.hostinfod"]`, and `-z keep-text-section-prefix`
//! keeps them together in `.text.hot`; the few hot functions of other crates
//! are listed in `bench/hot-symbols.txt` for LLD's `--symbol-ordering-file`.
//!
//! Both options are LLD's (GNU ld knows the first), and rustc links with LLD
//! by default on x86_64-unknown-linux-gnu from 1.90 on. They are passed only
//! there, and not when the build chooses its own linker (RUSTFLAGS or
//! CARGO_TARGET_*_LINKER), nor when HOSTINFOD_NO_CODE_LAYOUT is set. Names in
//! the list that do not exist are ignored: a stale list costs part of the
//! layout, never the build.

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
