//! The configuration: TOML text in, a validated [`Config`] out.
//!
//! Every key is optional and has the default SPEC.md gives; unknown keys and
//! sections are errors (`deny_unknown_fields`), and so are values that parse but
//! make no sense (port 0, a relative socket path, a mode above 0777, a
//! strftime format chrono cannot render). Errors carry the file, line and
//! column of the offending key so `-t` can print `FILE:LINE:COL: message`, and
//! the same function serves `-t`, start-up and SIGHUP, so what `-t` accepts is
//! exactly what a reload accepts.
//!
//! Loading is pure apart from the two facts the defaults depend on (the
//! effective uid and `$XDG_RUNTIME_DIR`), which are passed in as [`Env`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::commands::date::DateFormat;
use crate::error::ConfigError;

/// Where the configuration lives when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/hostinfod/hostinfod.toml";

/// The facts of the environment that the defaults depend on.
#[derive(Debug, Clone)]
pub struct Env {
    /// Effective uid: root gets `/run/hostinfod`, others a per-user directory.
    pub euid: u32,
    /// `$XDG_RUNTIME_DIR`, when set and non-empty.
    pub xdg_runtime_dir: Option<PathBuf>,
}

impl Env {
    /// The environment of this process.
    pub fn current() -> Self {
        // After a privilege drop the re-executed image still resolves the
        // defaults as the first image did (see reload.rs).
        let euid = std::env::var(crate::reload::DEFAULTS_UID)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| nix::unistd::geteuid().as_raw());
        Env {
            euid,
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// The directory for runtime files: `/run/hostinfod` as root, else
    /// `$XDG_RUNTIME_DIR`, else `/tmp/hostinfod-$UID`.
    pub fn runtime_dir(&self) -> PathBuf {
        if self.euid == 0 {
            PathBuf::from("/run/hostinfod")
        } else if let Some(dir) = &self.xdg_runtime_dir {
            dir.clone()
        } else {
            PathBuf::from(format!("/tmp/hostinfod-{}", self.euid))
        }
    }
}

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// `[listen]`
    pub listen: Listen,
    /// `[daemon]`
    pub daemon: Daemon,
    /// `[limits]`
    pub limits: Limits,
    /// `[protocol]`
    pub protocol: Protocol,
    /// `[commands]`
    pub commands: Commands,
    /// `[log]`
    pub log: Log,
    /// True when `listen.tcp` was not set, so unusable default addresses are
    /// skipped with a warning rather than being fatal. Not a key.
    #[serde(skip)]
    pub tcp_is_default: bool,
}

/// `[listen]`: what to serve on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listen {
    /// TCP addresses, `host:port` with IPv6 in brackets.
    pub tcp: Vec<String>,
    /// Unix-domain socket paths.
    pub unix: Vec<PathBuf>,
    /// Octal permissions of the socket files.
    pub unix_mode: String,
    /// listen(2) backlog.
    pub backlog: u32,
    /// FIFO paths: each reader reads one cookie (see crate::fifo).
    pub fifo: Vec<PathBuf>,
    /// Octal permissions of the FIFOs.
    pub fifo_mode: String,
}

/// `[daemon]`: process identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Daemon {
    /// Pidfile path; empty for none.
    pub pid_file: PathBuf,
    /// User to drop to after binding (root only); empty for none.
    pub user: String,
    /// Group to drop to; empty for the user's primary group.
    pub group: String,
    /// Octal umask set when daemonizing.
    pub umask: String,
}

/// `[limits]`: what a client can take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Concurrent sessions.
    pub max_children: u32,
    /// Concurrent sessions per client IP (Unix: per uid).
    pub max_per_source: u32,
    /// Seconds of silence before a session is closed.
    pub idle_timeout_secs: u64,
    /// Seconds after which any session is closed.
    pub session_timeout_secs: u64,
    /// Longest accepted input line.
    pub max_line_bytes: u32,
    /// Seconds children get on SIGTERM before SIGKILL.
    pub shutdown_grace_secs: u64,
}

/// `[protocol]`: the words around the replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protocol {
    /// First line sent; `{hostname}` is replaced.
    pub greeting: String,
    /// Sent without line end before each command; empty for none.
    pub prompt: String,
}

/// `[commands]`: where the replies come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commands {
    /// strftime format for `date`, parsed once at load.
    pub date_format: DateFormat,
    /// The utmp file `who` reads.
    pub utmp_file: PathBuf,
    /// Files concatenated by `motd`.
    pub motd_files: Vec<PathBuf>,
    /// Fortune files or directories of them.
    pub fortune_paths: Vec<PathBuf>,
}

/// `[log]`: where log records go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Log {
    /// auto, syslog or stderr.
    pub destination: LogDestination,
    /// error, warn, info or debug.
    pub level: LogLevel,
    /// syslog facility name.
    pub facility: String,
}

/// `log.destination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogDestination {
    /// stderr in the foreground, syslog when daemonized.
    Auto,
    /// Always syslog.
    Syslog,
    /// Always stderr.
    Stderr,
}

/// `log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Start-up, sessions, reloads.
    Info,
    /// Everything.
    Debug,
}

impl LogLevel {
    /// The `log` crate's filter for this level.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
        }
    }
}

/// The syslog facilities accepted by `log.facility`.
pub const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

// The raw, file-shaped mirror of the configuration: every key optional so that
// defaults that depend on the environment (uid, XDG_RUNTIME_DIR) can be filled
// in afterwards, and so that we know which keys were set explicitly.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<RawListen>,
    daemon: Option<RawDaemon>,
    limits: Option<RawLimits>,
    protocol: Option<RawProtocol>,
    commands: Option<RawCommands>,
    log: Option<RawLog>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    tcp: Option<Vec<String>>,
    unix: Option<Vec<PathBuf>>,
    unix_mode: Option<String>,
    backlog: Option<u32>,
    fifo: Option<Vec<PathBuf>>,
    fifo_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    pid_file: Option<PathBuf>,
    user: Option<String>,
    group: Option<String>,
    umask: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_children: Option<u32>,
    max_per_source: Option<u32>,
    idle_timeout_secs: Option<u64>,
    session_timeout_secs: Option<u64>,
    max_line_bytes: Option<u32>,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtocol {
    greeting: Option<String>,
    prompt: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommands {
    date_format: Option<String>,
    utmp_file: Option<PathBuf>,
    motd_files: Option<Vec<PathBuf>>,
    fortune_paths: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    destination: Option<LogDestination>,
    level: Option<LogLevel>,
    facility: Option<String>,
}

impl Config {
    /// The built-in defaults for this environment.
    pub fn defaults(env: &Env) -> Self {
        Self::from_raw(RawConfig::default(), env)
    }

    /// Parses and validates `text`, read from `file`.
    pub fn parse(text: &str, file: &Path, env: &Env) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let key = key_at(text, span.start);
            let message = match key {
                Some(key) => format!("{key}: {}", e.message().trim()),
                None => e.message().trim().to_string(),
            };
            located(file, text, span.start, message)
        })?;
        let config = Self::from_raw(raw, env);
        config.validate().map_err(|(key, message)| {
            let offset = key_span(text, &key).unwrap_or(0);
            located(file, text, offset, format!("{key}: {message}"))
        })?;
        Ok(config)
    }

    /// Reads `path` (or the defaults when `path` is None and the default
    /// file does not exist) and validates it.
    pub fn load(path: Option<&Path>, env: &Env) -> crate::error::Result<Self> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(Self::defaults(env)),
        };
        let text =
            std::fs::read_to_string(&path).map_err(|source| crate::error::Error::ConfigRead {
                path: path.clone(),
                source,
            })?;
        Ok(Self::parse(&text, &path, env)?)
    }

    fn from_raw(raw: RawConfig, env: &Env) -> Self {
        let l = raw.listen.unwrap_or_default();
        let d = raw.daemon.unwrap_or_default();
        let m = raw.limits.unwrap_or_default();
        let p = raw.protocol.unwrap_or_default();
        let c = raw.commands.unwrap_or_default();
        let g = raw.log.unwrap_or_default();
        let run = env.runtime_dir();
        let tcp_is_default = l.tcp.is_none();
        Config {
            listen: Listen {
                tcp: l
                    .tcp
                    .unwrap_or_else(|| vec!["127.0.0.1:2345".into(), "[::1]:2345".into()]),
                unix: l.unix.unwrap_or_else(|| vec![run.join("hostinfod.sock")]),
                unix_mode: l.unix_mode.unwrap_or_else(|| "0666".into()),
                backlog: l.backlog.unwrap_or(128),
                fifo: l.fifo.unwrap_or_default(),
                fifo_mode: l.fifo_mode.unwrap_or_else(|| "0644".into()),
            },
            daemon: Daemon {
                pid_file: d.pid_file.unwrap_or_else(|| run.join("hostinfod.pid")),
                user: d.user.unwrap_or_default(),
                group: d.group.unwrap_or_default(),
                umask: d.umask.unwrap_or_else(|| "0022".into()),
            },
            limits: Limits {
                max_children: m.max_children.unwrap_or(256),
                max_per_source: m.max_per_source.unwrap_or(32),
                idle_timeout_secs: m.idle_timeout_secs.unwrap_or(300),
                session_timeout_secs: m.session_timeout_secs.unwrap_or(3600),
                max_line_bytes: m.max_line_bytes.unwrap_or(1024),
                shutdown_grace_secs: m.shutdown_grace_secs.unwrap_or(5),
            },
            protocol: Protocol {
                greeting: p.greeting.unwrap_or_else(|| {
                    "Welcome to hostinfod on {hostname}; type help for command list.".into()
                }),
                prompt: p.prompt.unwrap_or_else(|| "Command? ".into()),
            },
            commands: Commands {
                date_format: c
                    .date_format
                    .map_or_else(|| "%a %b %e %H:%M:%S %Y".into(), DateFormat::from),
                utmp_file: c.utmp_file.unwrap_or_else(|| "/var/run/utmp".into()),
                motd_files: c
                    .motd_files
                    .unwrap_or_else(|| vec!["/run/motd.dynamic".into(), "/etc/motd".into()]),
                fortune_paths: c
                    .fortune_paths
                    .unwrap_or_else(|| vec!["/usr/share/games/fortunes".into()]),
            },
            log: Log {
                destination: g.destination.unwrap_or(LogDestination::Auto),
                level: g.level.unwrap_or(LogLevel::Info),
                facility: g.facility.unwrap_or_else(|| "daemon".into()),
            },
            tcp_is_default,
        }
    }

    /// Checks values that parse but make no sense. Returns the dotted key and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        for a in &self.listen.tcp {
            match a.parse::<SocketAddr>() {
                Ok(sa) if sa.port() == 0 => {
                    return err("listen.tcp", format!("{a:?}: port must be 1-65535"));
                }
                Ok(_) => {}
                Err(_) => {
                    return err(
                        "listen.tcp",
                        format!("{a:?} is not an address as host:port (IPv6 as [addr]:port)"),
                    );
                }
            }
        }
        for p in &self.listen.unix {
            check_abs_path("listen.unix", p)?;
            // sun_path holds 108 bytes including the terminating NUL.
            if p.as_os_str().len() > 107 {
                return err(
                    "listen.unix",
                    format!("{}: longer than 107 bytes", p.display()),
                );
            }
        }
        parse_mode(&self.listen.unix_mode).map_err(|m| ("listen.unix_mode".to_string(), m))?;
        for (i, p) in self.listen.fifo.iter().enumerate() {
            check_abs_path("listen.fifo", p)?;
            if p.file_name().is_none() {
                return err("listen.fifo", format!("{}: not a file path", p.display()));
            }
            if self.listen.unix.contains(p) || self.listen.fifo[..i].contains(p) {
                return err("listen.fifo", format!("{}: configured twice", p.display()));
            }
        }
        parse_mode(&self.listen.fifo_mode).map_err(|m| ("listen.fifo_mode".to_string(), m))?;
        if self.listen.backlog == 0 {
            return err("listen.backlog", "must be at least 1".into());
        }
        if !self.daemon.pid_file.as_os_str().is_empty() {
            check_abs_path("daemon.pid_file", &self.daemon.pid_file)?;
        }
        if !self.daemon.group.is_empty() && self.daemon.user.is_empty() {
            return err("daemon.group", "needs daemon.user".into());
        }
        parse_mode(&self.daemon.umask).map_err(|m| ("daemon.umask".to_string(), m))?;
        let l = &self.limits;
        for (k, v) in [
            ("limits.max_children", u64::from(l.max_children)),
            ("limits.max_per_source", u64::from(l.max_per_source)),
            ("limits.idle_timeout_secs", l.idle_timeout_secs),
            ("limits.session_timeout_secs", l.session_timeout_secs),
            ("limits.max_line_bytes", u64::from(l.max_line_bytes)),
        ] {
            if v == 0 {
                return err(k, "must be at least 1".into());
            }
        }
        // Bounds that keep arithmetic on deadlines and buffers far from overflow.
        if l.max_children > 1_000_000 {
            return err("limits.max_children", "must be at most 1000000".into());
        }
        if l.max_line_bytes > 1 << 20 {
            return err("limits.max_line_bytes", "must be at most 1048576".into());
        }
        for (k, v) in [
            ("limits.idle_timeout_secs", l.idle_timeout_secs),
            ("limits.session_timeout_secs", l.session_timeout_secs),
            ("limits.shutdown_grace_secs", l.shutdown_grace_secs),
        ] {
            if v > 10 * 365 * 86400 {
                return err(k, "must be at most 315360000 (ten years)".into());
            }
        }
        for (k, v) in [
            ("protocol.greeting", &self.protocol.greeting),
            ("protocol.prompt", &self.protocol.prompt),
        ] {
            if v.chars().any(|c| c.is_control() && c != '\t') {
                return err(k, "must not contain control characters".into());
            }
            // One line of text; the bound also keeps the rendered greeting
            // (sent by every child, and by the start-up self-test into a
            // socket buffer nobody reads until it ends) small.
            if v.len() > 1024 {
                return err(k, "must be at most 1024 bytes".into());
            }
        }
        self.commands
            .date_format
            .validate()
            .map_err(|m| ("commands.date_format".to_string(), m))?;
        check_abs_path("commands.utmp_file", &self.commands.utmp_file)?;
        for p in &self.commands.motd_files {
            check_abs_path("commands.motd_files", p)?;
        }
        for p in &self.commands.fortune_paths {
            check_abs_path("commands.fortune_paths", p)?;
        }
        if !FACILITIES.contains(&self.log.facility.as_str()) {
            return err(
                "log.facility",
                format!(
                    "unknown facility {:?}, expected one of {}",
                    self.log.facility,
                    FACILITIES.join(", ")
                ),
            );
        }
        Ok(())
    }

    /// The effective configuration as TOML, for `--print-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// `listen.unix_mode` as a number (validated at load).
    pub fn unix_mode(&self) -> u32 {
        parse_mode(&self.listen.unix_mode).unwrap_or(0o666)
    }

    /// `listen.fifo_mode` as a number (validated at load).
    pub fn fifo_mode(&self) -> u32 {
        parse_mode(&self.listen.fifo_mode).unwrap_or(0o644)
    }

    /// `daemon.umask` as a number (validated at load).
    pub fn umask(&self) -> u32 {
        parse_mode(&self.daemon.umask).unwrap_or(0o022)
    }

    /// The status file path: beside the pidfile, or in the runtime directory
    /// when there is no pidfile.
    pub fn status_file(&self, env: &Env) -> PathBuf {
        if self.daemon.pid_file.as_os_str().is_empty() {
            env.runtime_dir().join("hostinfod.status")
        } else {
            self.daemon.pid_file.with_extension("status")
        }
    }
}

fn check_abs_path(key: &str, p: &Path) -> Result<(), (String, String)> {
    if p.as_os_str().is_empty() {
        Err((key.into(), "empty path".into()))
    } else if !p.is_absolute() {
        // The daemon changes directory to / so a relative path would change meaning.
        Err((
            key.into(),
            format!("{}: must be an absolute path", p.display()),
        ))
    } else {
        Ok(())
    }
}

/// Parses an octal permission string such as `"0666"`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(v) if v <= 0o777 && !digits.is_empty() => Ok(v),
        _ => Err(format!("{s:?} is not an octal mode from 0000 to 0777")),
    }
}

fn located(file: &Path, text: &str, offset: usize, message: String) -> ConfigError {
    let (line, col) = line_col(text, offset);
    ConfigError {
        file: file.to_path_buf(),
        line,
        col,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

type DeTable<'i> = toml::de::DeTable<'i>;

/// The dotted name of the innermost key whose key or value span contains `offset`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    fn walk(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (k, v) in table.iter() {
            path.push(k.get_ref().to_string());
            // A section's span covers only its header, so look inside every
            // table, not just the ones whose span contains the offset.
            if let Some(inner) = v.get_ref().as_table()
                && walk(inner, offset, path)
            {
                return true;
            }
            let (ks, vs) = (k.span(), v.span());
            if ks.contains(&offset) || vs.contains(&offset) || ks.start == offset {
                return true;
            }
            path.pop();
        }
        false
    }
    let doc = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    walk(doc.get_ref(), offset, &mut path).then(|| path.join("."))
}

/// The byte offset of the key `dotted` (e.g. `limits.max_children`) in `text`.
fn key_span(text: &str, dotted: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        if parts.peek().is_none() {
            return Some(k.span().start);
        }
        table = v.get_ref().as_table()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            euid: 1000,
            xdg_runtime_dir: None,
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/x.toml"), &env())
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").expect("empty is valid");
        assert_eq!(c.listen.tcp, vec!["127.0.0.1:2345", "[::1]:2345"]);
        assert!(c.tcp_is_default);
        assert_eq!(c.limits.max_line_bytes, 1024);
        assert_eq!(
            c.listen.unix,
            vec![PathBuf::from("/tmp/hostinfod-1000/hostinfod.sock")]
        );
        assert_eq!(
            c.daemon.pid_file,
            PathBuf::from("/tmp/hostinfod-1000/hostinfod.pid")
        );
    }

    #[test]
    fn root_and_xdg_defaults() {
        let root = Env {
            euid: 0,
            xdg_runtime_dir: Some("/run/user/0".into()),
        };
        assert_eq!(
            Config::defaults(&root).listen.unix,
            vec![PathBuf::from("/run/hostinfod/hostinfod.sock")]
        );
        let user = Env {
            euid: 1000,
            xdg_runtime_dir: Some("/run/user/1000".into()),
        };
        assert_eq!(
            Config::defaults(&user).daemon.pid_file,
            PathBuf::from("/run/user/1000/hostinfod.pid")
        );
    }

    #[test]
    fn unknown_key_is_named_with_line() {
        let e = parse("[listen]\nbacklog = 5\nbogus = 1\n").expect_err("unknown key");
        assert_eq!((e.line, e.col), (3, 1));
        assert!(e.message.contains("bogus"), "{}", e.message);
    }

    #[test]
    fn unknown_section_is_an_error() {
        let e = parse("[nope]\nx = 1\n").expect_err("unknown section");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("nope"), "{}", e.message);
    }

    #[test]
    fn wrong_type_names_key() {
        let e = parse("[limits]\nmax_children = \"many\"\n").expect_err("type");
        assert_eq!(e.line, 2);
        assert!(
            e.message.starts_with("limits.max_children:"),
            "{}",
            e.message
        );
    }

    #[test]
    fn invalid_value_names_key_and_line() {
        let e = parse("# c\n[limits]\n\nmax_children = 0\n").expect_err("zero");
        assert_eq!((e.line, e.col), (4, 1));
        assert_eq!(e.message, "limits.max_children: must be at least 1");
        let shown = e.to_string();
        assert!(
            shown.starts_with("/x.toml:4:1: limits.max_children"),
            "{shown}"
        );
    }

    #[test]
    fn addresses_are_checked() {
        assert!(parse("[listen]\ntcp = [\"127.0.0.1:0\"]\n").is_err());
        assert!(parse("[listen]\ntcp = [\"localhost\"]\n").is_err());
        assert!(parse("[listen]\ntcp = [\"[::1]:80\", \"0.0.0.0:1\"]\n").is_ok());
        let c = parse("[listen]\ntcp = []\n").expect("empty list");
        assert!(!c.tcp_is_default);
        assert!(parse("[listen]\nunix = [\"rel.sock\"]\n").is_err());
        let long = format!("[listen]\nunix = [\"/{}\"]\n", "a".repeat(120));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0666"), Ok(0o666));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("01777").is_err());
        assert!(parse_mode("").is_err());
        let e = parse("[daemon]\numask = \"9\"\n").expect_err("bad umask");
        assert!(e.message.starts_with("daemon.umask:"), "{}", e.message);
    }

    #[test]
    fn enums_and_facility() {
        assert!(parse("[log]\nlevel = \"loud\"\n").is_err());
        assert!(parse("[log]\nfacility = \"local9\"\n").is_err());
        let c =
            parse("[log]\ndestination = \"stderr\"\nlevel = \"debug\"\nfacility = \"local3\"\n")
                .expect("valid log");
        assert_eq!(c.log.level, LogLevel::Debug);
    }

    #[test]
    fn bad_date_format_is_rejected() {
        let e = parse("[commands]\ndate_format = \"%Q\"\n").expect_err("bad strftime");
        assert!(
            e.message.starts_with("commands.date_format:"),
            "{}",
            e.message
        );
    }

    #[test]
    fn greeting_is_bounded() {
        let long = format!("[protocol]\ngreeting = \"{}\"\n", "x".repeat(1025));
        let e = parse(&long).expect_err("too long");
        assert!(e.message.starts_with("protocol.greeting:"), "{}", e.message);
        assert!(
            parse(&format!(
                "[protocol]\ngreeting = \"{}\"\n",
                "x".repeat(1024)
            ))
            .is_ok()
        );
    }

    #[test]
    fn control_characters_in_greeting_rejected() {
        assert!(parse("[protocol]\ngreeting = \"a\\u001b[2Jb\"\n").is_err());
        assert!(parse("[protocol]\nprompt = \"\"\n").is_ok());
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("[listen\n").expect_err("syntax");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn print_config_round_trips() {
        let c = parse("[limits]\nmax_children = 7\n").expect("valid");
        let again = parse(&c.to_toml()).expect("printed config parses");
        assert_eq!(again.limits.max_children, 7);
        assert_eq!(again.listen, c.listen);
    }

    #[test]
    fn shipped_file_documents_the_defaults() {
        // Every key of config/hostinfod.toml is there, commented out, with
        // its default: uncommented, the file must mean exactly the defaults.
        let shipped = include_str!("../config/hostinfod.toml");
        let uncommented: String = shipped
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let root = Env {
            euid: 0,
            xdg_runtime_dir: None,
        };
        let mut c = Config::parse(&uncommented, Path::new("/shipped.toml"), &root)
            .expect("shipped file parses");
        let d = Config::defaults(&root);
        assert!(!c.tcp_is_default, "every key was uncommented");
        c.tcp_is_default = true;
        assert_eq!(c, d);
        let keys = uncommented
            .lines()
            .filter(|l| l.contains(" = ") && !l.starts_with('#'))
            .count();
        assert_eq!(keys, 25, "one line per key");
    }

    #[test]
    fn line_col_handles_multibyte() {
        assert_eq!(line_col("é\nab", 4), (2, 2));
        assert_eq!(line_col("abc", 99), (1, 4));
    }
}
