//! Logging: the `log` facade to stderr or to syslog.
//!
//! `log.destination = "auto"` means stderr in the foreground (`-f`, where
//! systemd's journal or the developer's terminal reads it) and syslog when
//! daemonized (stderr is /dev/null then). The syslog logger uses ident
//! `hostinfod`, our pid, and the configured facility over `/dev/log`; the
//! environment variable `HOSTINFOD_SYSLOG_SOCKET` names another datagram
//! socket instead, which the tests use to read what would reach syslog.
//!
//! Records are one line each. On stderr, when `JOURNAL_STREAM` shows that
//! stderr is the journal, each line starts with the `<N>` priority prefix
//! journald understands, so levels survive into `journalctl -p`.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::config::{Config, LogDestination};

struct Stderr {
    journal: bool,
    pid: u32,
}

impl log::Log for Stderr {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // One write per record, built first, so lines from the parent and
        // its children never interleave mid-line; built on the stack, since
        // a session's child logs its START record and should not malloc.
        // A record longer than the buffer is cut, its line end kept.
        let mut buf = [0u8; 1024];
        let mut line = crate::text::Fixed::new(&mut buf[..1023]);
        let level = record.level();
        if self.journal {
            let pri = match level {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                _ => 7,
            };
            let _ = write!(line, "<{pri}>");
        } else {
            let _ = write!(line, "hostinfod[{}]: ", self.pid);
        }
        let _ = match level {
            log::Level::Error => line.write_str("error: "),
            log::Level::Warn => line.write_str("warning: "),
            _ => Ok(()),
        };
        let _ = write!(line, "{}", record.args());
        let n = line.as_bytes().len();
        buf[n] = b'\n';
        let _ = std::io::stderr().write_all(&buf[..=n]);
    }

    fn flush(&self) {}
}

/// Where log records go for this process.
pub fn destination(cfg: &Config, foreground: bool) -> LogDestination {
    match cfg.log.destination {
        LogDestination::Auto if foreground => LogDestination::Stderr,
        LogDestination::Auto => LogDestination::Syslog,
        d => d,
    }
}

/// Installs the global logger. Called once per process image.
pub fn init(cfg: &Config, foreground: bool) {
    log::set_max_level(cfg.log.level.filter());
    let logger: Box<dyn log::Log> = match destination(cfg, foreground) {
        LogDestination::Syslog => match syslog_logger(cfg) {
            Ok(l) => l,
            Err(e) => {
                // No syslog daemon: fall back to stderr rather than go silent.
                eprintln!("hostinfod: syslog unavailable ({e}); logging to stderr");
                stderr_logger()
            }
        },
        _ => stderr_logger(),
    };
    let _ = log::set_boxed_logger(logger);
}

fn stderr_logger() -> Box<dyn log::Log> {
    Box::new(Stderr {
        journal: std::env::var_os("JOURNAL_STREAM").is_some(),
        pid: std::process::id(),
    })
}

fn syslog_logger(cfg: &Config) -> Result<Box<dyn log::Log>, syslog::Error> {
    let facility: syslog::Facility = cfg
        .log
        .facility
        .parse()
        .unwrap_or(syslog::Facility::LOG_DAEMON);
    let formatter = syslog::Formatter3164 {
        facility,
        hostname: None,
        process: "hostinfod".into(),
        pid: std::process::id(),
    };
    let logger = match std::env::var_os("HOSTINFOD_SYSLOG_SOCKET") {
        Some(path) => syslog::unix_custom(formatter, path)?,
        None => syslog::unix(formatter)?,
    };
    Ok(Box::new(syslog::BasicLogger::new(logger)))
}
