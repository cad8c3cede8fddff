//! The library's failure classes and the exit status each maps to.
//!
//! Every message is lowercase and names what failed: the file, key, address or
//! errno. `main` prints `hostinfod: MESSAGE` on stderr and exits with
//! [`Error::exit_code`], so the exit status contract of hostinfod(8) lives here, in
//! one place.
//!
//! [`Error::exit_code`]: crate::error::Error::exit_code

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

/// EX_USAGE would be 64; hostinfod(8) uses 2, the convention of getopt tools.
pub const EXIT_USAGE: i32 = 2;
/// EX_CONFIG from sysexits.h: systemd's `RestartPreventExitStatus=78` keys on it.
pub const EXIT_CONFIG: i32 = 78;
/// LSB: `status` of a program that is not running.
pub const EXIT_NOT_RUNNING: i32 = 3;
/// Any other failure to start or to carry out a control command.
pub const EXIT_FAILURE: i32 = 1;

/// A configuration error located in its file: printed as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", file.display())]
pub struct ConfigError {
    /// The configuration file (or `<built-in>` for the defaults).
    pub file: PathBuf,
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong, starting with the dotted key name when one is known.
    pub message: String,
}

/// Everything that can stop hostinfod from starting or a control command from succeeding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (exit 78).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration file could not be read (exit 78: it is the configuration that is wrong).
    #[error("cannot read configuration {}: {source}", path.display())]
    ConfigRead {
        /// The file named with `-c` or the default path.
        path: PathBuf,
        /// Why the read failed.
        source: io::Error,
    },
    /// Command-line misuse (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A listening address could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// `tcp 127.0.0.1:2345` or `unix /run/x.sock`.
        addr: String,
        /// The underlying errno.
        source: Errno,
    },
    /// An inherited descriptor (`LISTEN_FDS`, or the connection of `-i`) is
    /// not what this mode serves.
    #[error("inherited fd {fd}: {reason}")]
    Inherited {
        /// The descriptor number.
        fd: std::os::fd::RawFd,
        /// What it is and what was expected.
        reason: String,
    },
    /// A FIFO endpoint cannot be set up or served.
    #[error("fifo {}: {reason}", path.display())]
    Fifo {
        /// The FIFO path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A Unix socket path is occupied by something that is not a stale socket.
    #[error("cannot listen on unix {}: {reason}", path.display())]
    UnixPathBusy {
        /// The socket path.
        path: PathBuf,
        /// What is in the way.
        reason: String,
    },
    /// A runtime directory or file fails the ownership and permission
    /// checks (see runtime.rs), or a control command found a pidfile it
    /// cannot trust: nothing is created there and nothing is signalled.
    #[error("{}: {reason}; refusing to use it", path.display())]
    Untrusted {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file the daemon publishes (the status file) cannot be written.
    #[error("cannot write {what} {}: {reason}", path.display())]
    Publish {
        /// `the status file`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Another instance holds the pidfile lock.
    #[error("already running (pid {pid})")]
    AlreadyRunning {
        /// The pid read from the locked pidfile.
        pid: i32,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A system call failed; `what` says which and on what.
    #[error("{what}: {source}")]
    Sys {
        /// The call and its object, e.g. `setuid 65534`.
        what: String,
        /// The errno.
        source: Errno,
    },
    /// `daemon.user` or `daemon.group` names nobody.
    #[error("unknown {kind} {name:?}")]
    UnknownId {
        /// `user` or `group`.
        kind: &'static str,
        /// The name from the configuration.
        name: String,
    },
    /// A control command found no running daemon (exit 1; `-s status`
    /// prints it and exits 3 through [`Error::Exit`]).
    #[error("not running{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NotRunning {
        /// Why we think so, e.g. the pidfile path that is missing.
        detail: Option<String>,
    },
    /// The daemon refused a reload; the message is the daemon's own reason.
    #[error("reload rejected: {0}")]
    ReloadRejected(String),
    /// A control command gave up waiting.
    #[error("{0}")]
    Timeout(String),
    /// The previous image's hand-over could not be read.
    #[error("{0}")]
    Handover(String),
    /// Exit with this status; what there was to say has been printed
    /// (`-s status` of a daemon that is not running: LSB's 3).
    #[error("exit status {0}")]
    Exit(i32),
}

impl Error {
    /// The process exit status hostinfod(8) gives this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::ConfigRead { .. } => EXIT_CONFIG,
            Error::Usage(_) => EXIT_USAGE,
            Error::Exit(code) => *code,
            _ => EXIT_FAILURE,
        }
    }

    /// Shorthand for a failed system call.
    pub fn sys(what: impl Into<String>, source: Errno) -> Self {
        Error::Sys {
            what: what.into(),
            source,
        }
    }

    /// Shorthand for a failed file operation.
    pub fn file(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::File {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
