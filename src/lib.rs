//! hostinfod: a classic forking Unix daemon.
//!
//! It listens on TCP and Unix-domain sockets, forks one child per client,
//! reaps children with waitpid, reloads on SIGHUP by re-executing itself in
//! place, and answers a small line protocol (`date`, `who`, `cookie`, `motd`).
//! The contract is SPEC.md; this page is the map of the code. Each module is
//! one concern, as in OpenBSD's daemons; the pure ones (framing, protocol,
//! config, strfile, utmp, text) take bytes and return values.

// ---- the command line and the daemon's life ----

/// The command line: flags, dispatch, exit status.
pub mod cli;
/// `-s reload|stop|status`: talking to the running daemon.
pub mod control;
/// fork/setsid/fork, /dev/null, umask, and readiness reported to the launcher.
pub mod daemon;
/// Failure classes and their exit status.
pub mod error;
/// The `log` facade to stderr or syslog.
pub mod log;
/// sd_notify without libsystemd.
pub mod notify;
/// The locked pidfile.
pub mod pidfile;
/// Dropping root after binding.
pub mod privileges;
/// The status file `-s status` and `-s reload` read.
pub mod status;

// ---- the server ----

/// The children: table, per-source counts, the reaper.
pub mod children;
/// Reads into uninitialised buffers, for the paths every session pays for.
pub mod fdio;
/// FIFO endpoints: one cookie per reader through a named pipe.
pub mod fifo;
/// `-i`: one session on a connection an inetd-style launcher accepted.
pub mod inetd;
/// Binding and adopting listening sockets.
pub mod listen;
/// Giving back the pages of start-up code.
pub mod memory;
/// The in-place re-exec reload and what crosses it.
pub mod reload;
/// The parent's poll loop: accept, fork, reap, reload, stop.
pub mod server;
/// One client's session in the forked child.
pub mod session;
/// Signals read from a signalfd.
pub mod signals;

// ---- the protocol (pure) ----

/// The configuration: TOML in, validated values out.
pub mod config;
/// Line framing with Telnet removed.
pub mod framing;
/// Command parsing and the replies.
pub mod protocol;
/// Making file text safe for a terminal.
pub mod text;

// ---- the commands and their readers ----

/// One module per command that reads the system.
pub mod commands;
/// strfile `.dat` indexes and `%` files.
pub mod strfile;
/// utmp records and who(1) lines.
pub mod utmp;
