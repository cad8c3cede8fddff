//! The session template: what every session starts from, prepared once in
//! the parent before any fork — and the copy-on-write economy, explained
//! once, here.
//!
//! After `fork` the child shares every page with the parent until one of
//! them writes it; each page written is then a fault and a 4 KiB copy, on
//! the path every session pays for. So the parent prepares here what a
//! session needs (the greeting bytes per transport, the session's buffers,
//! the configuration), and the session's path keeps to these rules:
//! - no allocation in the child on the way to a `date`, `help` or `quit`
//!   reply (malloc writes allocator pages shared with the parent): the
//!   buffers are allocated here and handed to the child by
//!   [`Template::buffers`], a bitwise copy that writes nothing;
//! - read buffers on the stack are left uninitialised ([`crate::fdio`]),
//!   and formatted text goes into fixed stack buffers
//!   ([`crate::text::Fixed`]);
//! - the parent's poll set lives on the stack, which is written anyway;
//! - what only the parent reads and writes on the session path (the table
//!   of live sessions) lives in memory no child inherits
//!   ([`crate::parentonly`]), and so does the `Server` itself, with
//!   everything the loop writes (its counters among them): a child starts
//!   from what the parent gathered for it before the fork;
//! - what a command reads from files that rarely change is read here, once
//!   per image (so at every reload, which is an exec): the fortune index
//!   ([`crate::commands::fortunes`]) and the motd
//!   ([`crate::commands::motd::prepare`]). The child checks the files'
//!   stamps and reads them itself only when they changed; the output
//!   buffer is sized for the longest prepared reply, so that serving one
//!   allocates nothing.
//!
//! A change to the session path that breaks these rules still works; it
//! only costs faults per session, which `bench/compare.sh` reports.

use std::os::fd::RawFd;

use crate::config::Config;
use crate::session::{self, Buffers, Context};

/// The prepared start of every session of one image.
#[derive(Debug)]
pub struct Template {
    hello_tcp: Vec<u8>,
    hello_unix: Vec<u8>,
    bufs: Buffers,
}

impl Template {
    /// The template for `cfg` on host `hostname`.
    pub fn new(cfg: &Config, hostname: &str) -> Self {
        let fortunes = crate::commands::fortunes::prepare(&cfg.commands.fortune_paths);
        let motd = crate::commands::motd::prepare(&cfg.commands.motd_files);
        log::debug!(
            "fortune index: {} cookies in {} files, {} kB on the heap and {} kB sealed, built in {} us; motd: {} bytes, {} kB",
            fortunes.cookies(),
            fortunes.files(),
            fortunes.heap_bytes().div_ceil(1024),
            fortunes.sealed_bytes().div_ceil(1024),
            fortunes.took_us(),
            motd.reply_len(),
            motd.heap_bytes().div_ceil(1024),
        );
        let mut bufs = Buffers::new(cfg.limits.max_line_bytes as usize);
        // Room for the longest prepared reply and its prompt; the pages are
        // touched only by the child that needs them.
        let longest = fortunes.reply_bound(2).max(motd.reply_len());
        bufs.out
            .reserve(longest.saturating_add(cfg.protocol.prompt.len()));
        Template {
            hello_tcp: hello(cfg, hostname, b"\r\n"),
            hello_unix: hello(cfg, hostname, b"\n"),
            bufs,
        }
    }

    /// What a session reads from the parent; `busy` is the read end of the
    /// "server is full" pipe ([`crate::busy`]), if any.
    pub fn context<'a>(&'a self, cfg: &'a Config, busy: Option<RawFd>) -> Context<'a> {
        Context {
            cfg,
            hello_tcp: &self.hello_tcp,
            hello_unix: &self.hello_unix,
            busy,
        }
    }

    /// The session's buffers, in a forked child.
    ///
    /// # Safety
    /// Call once, in a child that never returns to the parent's code and
    /// never drops the template: the copy shares the template's heap
    /// buffers, and only one of the two may ever be used or dropped.
    pub unsafe fn buffers(&self) -> Buffers {
        // SAFETY: per the contract above, the original is never used again
        // in this process; a bitwise copy writes no page, where `take()`
        // would write into the template's page.
        unsafe { std::ptr::read(&self.bufs) }
    }

    /// Runs the start-up self-test session (see [`session::Rehearsal`])
    /// after giving back the start-up code pages, so that the pages the
    /// parent keeps mapped are those of serving and of a session, which
    /// children share; then gives back the heap pages start-up freed.
    pub fn rehearse(&self, cfg: &Config) {
        // The rehearsal is never shed.
        let ctx = self.context(cfg, None);
        let rehearsal = session::Rehearsal::prepare(&ctx);
        let trimmed = crate::memory::trim();
        log::debug!("gave back {trimmed} kB of start-up code pages");
        if let Err(e) = rehearsal.and_then(|r| r.run(&ctx)) {
            log::warn!("start-up self-test session failed: {e}");
        }
        crate::memory::trim_heap();
    }
}

fn hello(cfg: &Config, hostname: &str, eol: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    v.extend_from_slice(
        cfg.protocol
            .greeting
            .replace("{hostname}", hostname)
            .as_bytes(),
    );
    v.extend_from_slice(eol);
    v.extend_from_slice(cfg.protocol.prompt.as_bytes());
    v
}
