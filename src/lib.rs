//! hostinfod: a classic forking Unix daemon.
//!
//! It listens on TCP and Unix-domain sockets, forks one child per client,
//! reaps children with waitpid, reloads on SIGHUP by re-executing itself in
//! place, and answers a small line protocol (`date`, `who`, `cookie`,
//! `motd`). The man pages hostinfod(8) and hostinfod.toml(5) are its
//! reference; this page is the map of the code.
//!
//! **Start here.** `main` hands the command line to [`cli`], which either
//! answers at once (`-t`, `--print-config`), talks to a running daemon
//! ([`control`]), or starts one: [`server::run`]. The server is a
//! coordinator of owned parts, each a module with one concern — the
//! listening sockets ([`listen`]), the live sessions and their reaping
//! ([`reaper`]), every decision taken at accept time ([`admission`]), what
//! the daemon publishes about itself ([`publish`]) and what every session
//! starts from ([`template`]). Its poll loop waits on the listeners and a
//! signalfd ([`signals`]); the parent is one thread, always, because it forks.
//!
//! **A session.** The parent accepts, asks [`admission`], forks; the child
//! runs [`session`] (waiting in [`session::wait`], stopped by
//! [`session::stop`]): bytes are framed into lines ([`framing`]), each line is
//! parsed and answered ([`protocol`]), and the replies come from
//! [`commands`], one module per command, which read the system through pure
//! readers ([`strfile`], [`utmp`]) and clean what they send ([`text`]).
//!
//! **A reload.** SIGHUP: the new configuration is loaded ([`config`]), the
//! binary is checked and re-executed in place ([`reload`]), and what crosses
//! the exec is one value ([`handover`]).
//!
//! **Around them.** Runtime files are created and checked by [`runtime`]
//! (and [`pidfile`], [`status`]); what the parent counts is [`counters`],
//! published by [`publish`] and [`metrics`]; `who` reads [`utmp`] or
//! [`logind`]; `-i` serves one inherited connection ([`inetd`]); FIFO
//! endpoints are [`fifo`].
//!
//! The pure modules (framing, protocol, config, strfile, utmp, logind, text,
//! handover) take bytes and return values; they are property-tested and
//! fuzzed. `ARCHITECTURE.md` has the same map with the path of a session
//! and of a reload step by step.

// ---- the command line and the daemon's life ----

pub mod cli;
pub mod control;
pub mod daemon;
pub mod error;
pub mod log;
pub mod notify;
pub mod pidfile;
pub mod privileges;
pub mod runtime;
pub mod status;

// ---- the server ----

pub mod admission;
pub mod busy;
pub mod counters;
pub mod fdio;
pub mod fifo;
pub mod handover;
pub mod inetd;
pub mod layout;
pub mod listen;
pub mod memory;
pub mod metrics;
pub mod parentonly;
pub mod peer;
pub mod pidtable;
pub mod publish;
pub mod reaper;
pub mod reload;
pub mod sealed;
pub mod server;
pub mod session;
pub mod signals;
pub mod template;

// ---- the protocol (pure) ----

pub mod access;
pub mod config;
pub mod framing;
pub mod protocol;
pub mod rate;
pub mod text;

// ---- the commands and their readers ----

pub mod commands;
pub mod logind;
pub mod strfile;
pub mod utmp;

/// Held by every unit test that starts or reaps a child process: `cargo
/// test` runs the tests as threads of one process, where one test's
/// `waitpid(-1)` would reap another's child.
#[cfg(test)]
pub(crate) fn children_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
