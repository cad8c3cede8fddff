//! Logging: the `log` facade to stderr or to syslog.
//!
//! `log.destination = "auto"` means stderr in the foreground (`-f`, where
//! systemd's journal or the developer's terminal reads it) and syslog when
//! daemonized (stderr is /dev/null then). Syslog records are RFC 3164 lines,
//! `<PRI>Mmm dd hh:mm:ss hostinfod[PID]: message`, sent as datagrams to
//! `/dev/log` with the configured facility; the environment variable
//! `HOSTINFOD_SYSLOG_SOCKET` names another datagram socket instead, which the
//! tests use to read what would reach syslog.
//!
//! Records are one line each, written with one system call, so lines from
//! the parent and its children never interleave mid-line. Both destinations
//! format into a buffer on the stack: a session's child logs its START
//! record, and every page malloc writes in a child is a copy-on-write fault
//! (the syslog crate, which this replaced, allocated several times per
//! record, took a mutex in the parent's heap and formatted the time in UTC).
//! A record longer than the buffer is cut. On stderr, when `JOURNAL_STREAM`
//! shows that stderr is the journal, each line starts with the `<N>`
//! priority prefix journald understands, so levels survive into
//! `journalctl -p`.
//!
//! Records never vanish without a word: a syslog socket nobody listens on
//! at start is reported by the launcher before it detaches, and the logger
//! connects again whenever a send fails, so a syslog daemon that starts or
//! restarts later receives the next record.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::{Config, FACILITIES, LogDestination};
use crate::text::Fixed;

/// The pid records carry: set at [`init`], and by [`forked`] in a child.
static PID: AtomicU32 = AtomicU32::new(0);

/// In a freshly forked child: records from now on carry its own pid. Costs
/// a getpid only when records at `info` (the level of a session's START and
/// END) are logged at all.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn forked() {
    if log::log_enabled!(log::Level::Info) {
        PID.store(std::process::id(), Ordering::Relaxed);
    }
}

/// The pid this process's records carry: its own, except in a child while
/// `info` records are off (see [`forked`]), when none carry it.
pub fn pid() -> u32 {
    PID.load(Ordering::Relaxed)
}

/// syslog(3) severity of a level; also journald's `<N>` prefix.
fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        _ => 7,
    }
}

/// Formats a record into `buf` with `head` written first; returns the length.
fn format(buf: &mut [u8], head: impl FnOnce(&mut Fixed<'_>), record: &log::Record<'_>) -> usize {
    let mut line = Fixed::new(buf);
    head(&mut line);
    let _ = match record.level() {
        log::Level::Error => line.write_str("error: "),
        log::Level::Warn => line.write_str("warning: "),
        _ => Ok(()),
    };
    let _ = write!(line, "{}", record.args());
    line.as_bytes().len()
}

/// The logger: one of the two destinations.
enum Logger {
    /// Lines on fd 2; `journal`: with journald's `<N>` prefix.
    Stderr { journal: bool },
    /// RFC 3164 datagrams on a socket connected to `path`.
    Syslog {
        sock: UnixDatagram,
        path: PathBuf,
        facility: u8,
    },
}

impl log::Log for Logger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut buf = [0u8; 1024];
        let level = record.level();
        let pid = PID.load(Ordering::Relaxed);
        match self {
            Logger::Stderr { journal } => {
                let n = format(
                    &mut buf[..1023],
                    |l| {
                        let _ = if *journal {
                            write!(l, "<{}>", severity(level))
                        } else {
                            write!(l, "hostinfod[{pid}]: ")
                        };
                    },
                    record,
                );
                buf[n] = b'\n';
                // SAFETY: a valid buffer; fd 2 is stderr (or /dev/null).
                unsafe { nix::libc::write(2, buf.as_ptr().cast(), n + 1) };
            }
            Logger::Syslog {
                sock,
                path,
                facility,
            } => {
                let n = format(
                    &mut buf,
                    |l| {
                        let _ = write!(l, "<{}>", facility * 8 + severity(level));
                        // Not chrono's Display, which renders into a String.
                        let now = crate::commands::date::now();
                        crate::commands::date::write_local("%b %e %H:%M:%S", false, now, l);
                        let _ = write!(l, " hostinfod[{pid}]: ");
                    },
                    record,
                );
                // A syslog daemon that restarted (a new socket at the path)
                // left our connection dangling, or none listened when we
                // started: connect again once and resend. Lost records are
                // never fatal. No allocation (see crate::template).
                if sock.send(&buf[..n]).is_err() && sock.connect(path).is_ok() {
                    let _ = sock.send(&buf[..n]);
                }
            }
        }
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
///
/// When syslog is the destination and its socket cannot be reached: in the
/// foreground, records go to stderr instead; daemonized (stderr is
/// /dev/null), the logger keeps the syslog destination and connects again
/// at each record until a syslog daemon listens there, and the launcher has
/// already said so on its stderr ([`warn_unreachable`]).
pub fn init(cfg: &Config, foreground: bool) {
    PID.store(std::process::id(), Ordering::Relaxed);
    log::set_max_level(cfg.log.level.filter());
    let logger: Box<dyn log::Log> = match destination(cfg, foreground) {
        LogDestination::Syslog => match syslog_logger(cfg) {
            (l, Ok(())) => Box::new(l),
            (l, Err(_)) if !foreground => Box::new(l),
            (_, Err(e)) => {
                eprintln!(
                    "hostinfod: syslog socket {} unavailable ({e}); logging to stderr",
                    syslog_path().display()
                );
                stderr_logger()
            }
        },
        _ => stderr_logger(),
    };
    let _ = log::set_boxed_logger(logger);
}

/// Before daemonizing: says on stderr, while the launcher still has one,
/// that syslog is the destination and its socket cannot be reached, so the
/// records would be lost until a syslog daemon listens there.
pub fn warn_unreachable(cfg: &Config) {
    if destination(cfg, false) != LogDestination::Syslog {
        return;
    }
    if let (_, Err(e)) = syslog_logger(cfg) {
        eprintln!(
            "hostinfod: warning: cannot reach the syslog socket {} ({e}): log records are lost \
             until a syslog daemon listens there (or use -f, or log.destination = \"stderr\")",
            syslog_path().display()
        );
    }
}

fn stderr_logger() -> Box<dyn log::Log> {
    Box::new(stderr_logger_value())
}

/// True when stderr is the journal's stream: `JOURNAL_STREAM` is
/// `DEVICE:INODE` of it, compared with stderr itself (as systemd.exec(5)
/// advises), so that a child process whose stderr was redirected elsewhere
/// does not write `<N>` prefixes into a file.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
        Err(_) => false,
    }
}

/// The facility's code: kern 0 … ftp 11 in [`FACILITIES`] order, then
/// local0 … local7 at 16 … 23 (daemon's 3 for an unknown name, which the
/// configuration's validation does not let through).
fn facility_code(name: &str) -> u8 {
    match FACILITIES.iter().position(|f| *f == name) {
        Some(i) if i < 12 => i as u8,
        Some(i) => 16 + (i - 12) as u8,
        None => 3,
    }
}

fn syslog_path() -> PathBuf {
    std::env::var_os("HOSTINFOD_SYSLOG_SOCKET")
        .map_or_else(|| PathBuf::from("/dev/log"), PathBuf::from)
}

/// The syslog logger, and whether its socket could be connected now (it
/// connects again at each record until it can).
fn syslog_logger(cfg: &Config) -> (Logger, std::io::Result<()>) {
    let path = syslog_path();
    // Close-on-exec is std's default: a reload's new image opens its own.
    let sock = match UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => return (stderr_logger_value(), Err(e)),
    };
    let connected = sock.connect(&path);
    (
        Logger::Syslog {
            sock,
            path,
            facility: facility_code(cfg.log.facility.as_str()),
        },
        connected,
    )
}

fn stderr_logger_value() -> Logger {
    Logger::Stderr {
        journal: stderr_is_journal(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_codes_are_syslogs() {
        assert_eq!(facility_code("kern"), 0);
        assert_eq!(facility_code("daemon"), 3);
        assert_eq!(facility_code("ftp"), 11);
        assert_eq!(facility_code("local0"), 16);
        assert_eq!(facility_code("local7"), 23);
        assert_eq!(FACILITIES.len(), 20);
    }

    #[test]
    fn records_are_one_line_cut_to_the_buffer() {
        let long = "x".repeat(3000);
        let mut buf = [0u8; 64];
        let n = format(
            &mut buf,
            |l| {
                let _ = l.write_str("<4>");
            },
            &log::Record::builder()
                .level(log::Level::Warn)
                .args(format_args!("{long}"))
                .build(),
        );
        assert_eq!(n, 64);
        assert!(buf.starts_with(b"<4>warning: xxx"));
    }
}
