//! The configuration: TOML text in, a validated [`Config`] out.
//!
//! Every key is optional and has the default hostinfod.toml(5) gives; unknown keys and
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
        Env {
            euid: nix::unistd::geteuid().as_raw(),
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
///
/// Deserialized directly: each key's type validates it while the TOML is
/// read (so its error carries the key's `FILE:LINE:COL`), each default is
/// the function named beside the field, and [`Config::validate`] is left
/// with what one key cannot say alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[listen]`
    #[serde(default)]
    pub listen: Listen,
    /// `[daemon]`
    #[serde(default)]
    pub daemon: Daemon,
    /// `[limits]`
    #[serde(default)]
    pub limits: Limits,
    /// `[access]`
    #[serde(default)]
    pub access: Access,
    /// `[protocol]`
    #[serde(default)]
    pub protocol: Protocol,
    /// `[commands]`
    #[serde(default)]
    pub commands: Commands,
    /// `[log]`
    #[serde(default)]
    pub log: Log,
}

/// `[listen]`: what to serve on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// TCP addresses, `host:port` with IPv6 in brackets.
    #[serde(default = "default_tcp")]
    pub tcp: Vec<TcpAddr>,
    /// Unix-domain socket paths.
    #[serde(default = "default_unix")]
    pub unix: Vec<PathBuf>,
    /// Permissions of the socket files.
    #[serde(default = "default_unix_mode")]
    pub unix_mode: Mode,
    /// listen(2) backlog.
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// FIFO paths: each reader reads one cookie (see crate::fifo).
    #[serde(default)]
    pub fifo: Vec<PathBuf>,
    /// Permissions of the FIFOs.
    #[serde(default = "default_fifo_mode")]
    pub fifo_mode: Mode,
}

/// `[daemon]`: process identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// Pidfile path; empty for none.
    #[serde(default = "default_pid_file")]
    pub pid_file: PathBuf,
    /// User to drop to after binding (root only); empty for none.
    #[serde(default)]
    pub user: String,
    /// Group to drop to; empty for the user's primary group.
    #[serde(default)]
    pub group: String,
    /// The process umask, in every mode.
    #[serde(default = "default_umask")]
    pub umask: Mode,
    /// Prometheus text file for node_exporter's textfile collector; empty
    /// for none.
    #[serde(default = "default_metrics_file")]
    pub metrics_file: PathBuf,
}

/// `[limits]`: what a client can take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Concurrent sessions.
    #[serde(default = "default_max_children")]
    pub max_children: u32,
    /// Concurrent sessions per client IP (Unix: per uid).
    #[serde(default = "default_max_per_source")]
    pub max_per_source: u32,
    /// Seconds of silence before a session is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds after which any session is closed.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_secs: u64,
    /// Longest accepted input line.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: u32,
    /// Seconds children get on SIGTERM before SIGKILL.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// While `max_children` sessions are live, seconds of silence before a
    /// session is closed; 0 = never.
    #[serde(default = "default_busy_idle")]
    pub busy_idle_secs: u64,
    /// New connections per second from one source (bursts of twice that);
    /// 0 = no limit.
    #[serde(default)]
    pub max_rate_per_source: u32,
    /// IPv6 clients are one source per prefix of this many bits.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
}

/// `[access]`: who may connect (see [`crate::access`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Addresses and CIDR prefixes allowed; empty = every address.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Addresses and CIDR prefixes denied.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Unix-socket peers served, by user name or uid; empty = every user.
    #[serde(default)]
    pub unix_users: Vec<IdRef>,
    /// ... or by primary group name or gid.
    #[serde(default)]
    pub unix_groups: Vec<IdRef>,
}

/// A user or group, by number or by name (resolved at load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IdRef {
    /// A uid or gid.
    Id(u32),
    /// A name (or a number written as a string).
    Name(String),
}

/// `[protocol]`: the words around the replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// First line sent; `{hostname}` is replaced.
    #[serde(default = "default_greeting")]
    pub greeting: String,
    /// Sent without line end before each command; empty for none.
    #[serde(default = "default_prompt")]
    pub prompt: String,
}

/// `[commands]`: where the replies come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    /// strftime format for `date`, checked as it is read.
    #[serde(default = "default_date_format")]
    pub date_format: DateFormat,
    /// The utmp file `who` reads.
    #[serde(default = "default_utmp")]
    pub utmp_file: PathBuf,
    /// Where `who` reads from: utmp_file, logind's sessions, or either.
    #[serde(default = "default_who_source")]
    pub who_source: WhoSource,
    /// Files concatenated by `motd`.
    #[serde(default = "default_motd")]
    pub motd_files: Vec<PathBuf>,
    /// Fortune files or directories of them.
    #[serde(default = "default_fortunes")]
    pub fortune_paths: Vec<PathBuf>,
}

/// `commands.who_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhoSource {
    /// `utmp_file` when it exists, else systemd-logind's sessions.
    Auto,
    /// Always `utmp_file`.
    Utmp,
    /// Always systemd-logind's sessions.
    Logind,
}

/// `[log]`: where log records go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// auto, syslog or stderr.
    #[serde(default = "default_destination")]
    pub destination: LogDestination,
    /// error, warn, info or debug.
    #[serde(default = "default_level")]
    pub level: LogLevel,
    /// syslog facility.
    #[serde(default = "default_facility")]
    pub facility: Facility,
}

// The defaults, in one place. Two depend on the environment (the runtime
// directory follows the effective uid and $XDG_RUNTIME_DIR): they read the
// [`Env`] that [`Config::parse`] sets for the length of one parse.

thread_local! {
    static PARSING_FOR: std::cell::RefCell<Option<Env>> = const { std::cell::RefCell::new(None) };
}

fn runtime_dir() -> PathBuf {
    PARSING_FOR.with(|e| match &*e.borrow() {
        Some(env) => env.runtime_dir(),
        None => Env::current().runtime_dir(),
    })
}

fn default_tcp() -> Vec<TcpAddr> {
    ["127.0.0.1:2345", "[::1]:2345"]
        .into_iter()
        .filter_map(|a| a.parse().ok())
        .map(|addr| TcpAddr {
            addr,
            built_in: true,
        })
        .collect()
}
fn default_unix() -> Vec<PathBuf> {
    vec![runtime_dir().join("hostinfod.sock")]
}
fn default_unix_mode() -> Mode {
    Mode(0o666)
}
fn default_fifo_mode() -> Mode {
    Mode(0o644)
}
fn default_backlog() -> u32 {
    128
}
fn default_pid_file() -> PathBuf {
    runtime_dir().join("hostinfod.pid")
}
fn default_metrics_file() -> PathBuf {
    PathBuf::new()
}
fn default_umask() -> Mode {
    Mode(0o022)
}
fn default_max_children() -> u32 {
    256
}
fn default_max_per_source() -> u32 {
    32
}
fn default_idle_timeout() -> u64 {
    300
}
fn default_session_timeout() -> u64 {
    3600
}
fn default_max_line() -> u32 {
    1024
}
fn default_grace() -> u64 {
    5
}
fn default_busy_idle() -> u64 {
    10
}
fn default_ipv6_prefix() -> u8 {
    64
}
fn default_greeting() -> String {
    "Welcome to hostinfod on {hostname}; type help for command list.".into()
}
fn default_prompt() -> String {
    "Command? ".into()
}
fn default_date_format() -> DateFormat {
    DateFormat::new("%a %b %e %H:%M:%S %Y")
}
fn default_utmp() -> PathBuf {
    "/var/run/utmp".into()
}
fn default_who_source() -> WhoSource {
    WhoSource::Auto
}
fn default_motd() -> Vec<PathBuf> {
    vec!["/run/motd.dynamic".into(), "/etc/motd".into()]
}
fn default_fortunes() -> Vec<PathBuf> {
    vec!["/usr/share/games/fortunes".into()]
}
fn default_destination() -> LogDestination {
    LogDestination::Auto
}
fn default_level() -> LogLevel {
    LogLevel::Info
}
fn default_facility() -> Facility {
    Facility("daemon".into())
}

/// Each section's defaults are those of an empty section.
macro_rules! default_from_empty {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                toml::from_str("").unwrap_or_else(|e| panic!("defaults of {}: {e}", stringify!($t)))
            }
        }
    )*};
}
default_from_empty!(Listen, Daemon, Limits, Protocol, Commands, Log);

/// A TCP address to listen on.
#[derive(Debug, Clone, Copy, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TcpAddr {
    /// The address.
    pub addr: SocketAddr,
    /// One of the built-in defaults (not written in the file): skipped with
    /// a warning, rather than fatal, on a host that lacks its family.
    #[serde(skip)]
    pub built_in: bool,
}

/// Addresses are equal when they name the same socket, however they were given.
impl PartialEq for TcpAddr {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl TryFrom<String> for TcpAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.parse::<SocketAddr>() {
            Ok(sa) if sa.port() == 0 => Err(format!("{s:?}: port must be 1-65535")),
            Ok(addr) => Ok(TcpAddr {
                addr,
                built_in: false,
            }),
            Err(_) => Err(format!(
                "{s:?} is not an address as host:port (IPv6 as [addr]:port)"
            )),
        }
    }
}

impl From<TcpAddr> for String {
    fn from(a: TcpAddr) -> String {
        a.addr.to_string()
    }
}

/// Permission bits, written in octal (`"0666"`), at most `0777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mode(u32);

impl Mode {
    /// The bits.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl TryFrom<String> for Mode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_mode(&s).map(Mode)
    }
}

impl From<Mode> for String {
    fn from(m: Mode) -> String {
        format!("{:04o}", m.0)
    }
}

/// A syslog facility name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Facility(String);

impl Facility {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Facility {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if FACILITIES.contains(&s.as_str()) {
            Ok(Facility(s))
        } else {
            Err(format!(
                "unknown facility {s:?}, expected one of {}",
                FACILITIES.join(", ")
            ))
        }
    }
}

impl From<Facility> for String {
    fn from(f: Facility) -> String {
        f.0
    }
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

impl Config {
    /// The built-in defaults for this environment.
    pub fn defaults(env: &Env) -> Self {
        Self::parse("", Path::new("(defaults)"), env)
            .unwrap_or_else(|e| panic!("the built-in defaults do not validate: {e}"))
    }

    /// Parses and validates `text`, read from `file`.
    pub fn parse(text: &str, file: &Path, env: &Env) -> Result<Self, ConfigError> {
        let previous = PARSING_FOR.with(|e| e.replace(Some(env.clone())));
        let parsed: Result<Config, _> = toml::from_str(text);
        PARSING_FOR.with(|e| e.replace(previous));
        let config = parsed.map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            // A document that does not parse (a duplicate key) has no tree
            // to look the key up in: then the line names it.
            let key = key_at(text, span.start).or_else(|| key_on_line(text, span.start));
            let message = match key {
                Some(key) => format!("{key}: {}", e.message().trim()),
                None => e.message().trim().to_string(),
            };
            located(file, text, span.start, message)
        })?;
        config.validate().map_err(|(key, message)| {
            let offset = key_span(text, &key).unwrap_or(0);
            located(file, text, offset, format!("{key}: {message}"))
        })?;
        Ok(config)
    }

    /// Reads `path` (or the defaults when `path` is None and the default
    /// file does not exist) and validates it.
    pub fn load(path: Option<&Path>, env: &Env) -> crate::error::Result<Self> {
        Ok(Self::load_text(path, env)?.0)
    }

    /// [`Config::load`], then everything else a start would reject that can
    /// be known without starting (`-t`): unknown `daemon.user` or
    /// `daemon.group`, runtime directories that fail the checks.
    pub fn load_for_start(path: Option<&Path>, env: &Env) -> crate::error::Result<Self> {
        let (cfg, text, file) = Self::load_text(path, env)?;
        cfg.check_start(env).map_err(|(key, message)| {
            let offset = key_span(&text, &key).unwrap_or(0);
            located(&file, &text, offset, format!("{key}: {message}"))
        })?;
        Ok(cfg)
    }

    fn load_text(path: Option<&Path>, env: &Env) -> crate::error::Result<(Self, String, PathBuf)> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => {
                return Ok((
                    Self::defaults(env),
                    String::new(),
                    PathBuf::from("(defaults)"),
                ));
            }
        };
        let bytes = std::fs::read(&path).map_err(|source| crate::error::Error::ConfigRead {
            path: path.clone(),
            source,
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                // Located in the valid part before the first bad byte.
                let at = e.utf8_error().valid_up_to();
                let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
                let message = match key_on_line(&valid, at) {
                    Some(k) => format!("{k}: not valid UTF-8"),
                    None => "not valid UTF-8".to_string(),
                };
                return Err(located(&path, &valid, at, message).into());
            }
        };
        let cfg = Self::parse(&text, &path, env)?;
        Ok((cfg, text, path))
    }

    /// What a start rejects beyond [`Config::validate`]: names nobody has,
    /// runtime directories that fail the ownership and permission checks.
    pub fn check_start(&self, env: &Env) -> Result<(), (String, String)> {
        let d = &self.daemon;
        if !d.user.is_empty() {
            crate::privileges::files_only_lookups();
            if !matches!(nix::unistd::User::from_name(&d.user), Ok(Some(_))) {
                return Err(("daemon.user".into(), format!("unknown user {:?}", d.user)));
            }
        }
        if !d.group.is_empty() && !matches!(nix::unistd::Group::from_name(&d.group), Ok(Some(_))) {
            return Err((
                "daemon.group".into(),
                format!("unknown group {:?}", d.group),
            ));
        }
        self.check_user_can_write(env)?;
        // Each file's directory on its own, so the error names its key.
        let mut files: Vec<(&str, PathBuf)> = Vec::new();
        files.extend(self.listen.unix.iter().map(|p| ("listen.unix", p.clone())));
        files.push(("daemon.pid_file", self.status_file(env)));
        if !d.metrics_file.as_os_str().is_empty() {
            files.push(("daemon.metrics_file", d.metrics_file.clone()));
        }
        for (key, path) in files {
            let mut one = self.clone();
            one.listen.unix = vec![path.clone()];
            one.daemon.pid_file = path;
            crate::runtime::check_config(&one, env)
                .map_err(|e| (key.to_string(), e.to_string()))?;
        }
        Ok(())
    }

    /// After the privilege drop, `daemon.user` rewrites the status and
    /// metrics files: as root, a directory of theirs that exists and that
    /// user cannot write into fails `-t` and the start (one to be created is
    /// made theirs).
    pub fn check_user_can_write(&self, env: &Env) -> Result<(), (String, String)> {
        let d = &self.daemon;
        if !d.user.is_empty()
            && nix::unistd::geteuid().is_root()
            && let Ok(Some(u)) = nix::unistd::User::from_name(&d.user)
        {
            let gid = match nix::unistd::Group::from_name(&d.group) {
                Ok(Some(g)) if !d.group.is_empty() => g.gid,
                _ => u.gid,
            };
            let mut files = vec![("daemon.pid_file", self.status_file(env))];
            if !d.metrics_file.as_os_str().is_empty() {
                files.push(("daemon.metrics_file", d.metrics_file.clone()));
            }
            for (key, file) in files {
                let Some(dir) = file.parent() else { continue };
                if let Ok(m) = std::fs::metadata(dir)
                    && !writable_by(&m, u.uid.as_raw(), gid.as_raw())
                {
                    return Err((
                        key.into(),
                        format!(
                            "{}: not writable by daemon.user {:?}, who rewrites {} there",
                            dir.display(),
                            d.user,
                            file.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks what no single key's type can: ranges, paths that must be
    /// absolute, keys that need each other. Returns the dotted key and the
    /// reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
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
        for (i, a) in self.listen.tcp.iter().enumerate() {
            if self.listen.tcp[..i].contains(a) {
                return err(
                    "listen.tcp",
                    format!("{} is listed twice", String::from(*a)),
                );
            }
        }
        for (i, p) in self.listen.unix.iter().enumerate() {
            if self.listen.unix[..i].contains(p) {
                return err("listen.unix", format!("{} is listed twice", p.display()));
            }
        }
        for (i, p) in self.listen.fifo.iter().enumerate() {
            check_abs_path("listen.fifo", p)?;
            if p.file_name().is_none() {
                return err("listen.fifo", format!("{}: not a file path", p.display()));
            }
            if self.listen.unix.contains(p) || self.listen.fifo[..i].contains(p) {
                return err("listen.fifo", format!("{}: configured twice", p.display()));
            }
        }
        if self.listen.backlog == 0 {
            return err("listen.backlog", "must be at least 1".into());
        }
        if !self.daemon.pid_file.as_os_str().is_empty() {
            check_abs_path("daemon.pid_file", &self.daemon.pid_file)?;
        }
        if !self.daemon.metrics_file.as_os_str().is_empty() {
            check_abs_path("daemon.metrics_file", &self.daemon.metrics_file)?;
        }
        if !self.daemon.group.is_empty() && self.daemon.user.is_empty() {
            return err("daemon.group", "needs daemon.user".into());
        }
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
            ("limits.busy_idle_secs", l.busy_idle_secs),
        ] {
            if v > 10 * 365 * 86400 {
                return err(k, "must be at most 315360000 (ten years)".into());
            }
        }
        if l.max_rate_per_source > 1_000_000 {
            return err(
                "limits.max_rate_per_source",
                "must be at most 1000000".into(),
            );
        }
        if l.ipv6_prefix > 128 {
            return err("limits.ipv6_prefix", "must be at most 128".into());
        }
        crate::access::Rules::from_config(&self.access)?;
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
        check_abs_path("commands.utmp_file", &self.commands.utmp_file)?;
        for p in &self.commands.motd_files {
            check_abs_path("commands.motd_files", p)?;
        }
        for p in &self.commands.fortune_paths {
            check_abs_path("commands.fortune_paths", p)?;
        }
        Ok(())
    }

    /// The effective configuration as TOML, for `--print-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// `listen.unix_mode` as a number.
    pub fn unix_mode(&self) -> u32 {
        self.listen.unix_mode.bits()
    }

    /// `listen.fifo_mode` as a number.
    pub fn fifo_mode(&self) -> u32 {
        self.listen.fifo_mode.bits()
    }

    /// `daemon.umask` as a number.
    pub fn umask(&self) -> u32 {
        self.daemon.umask.bits()
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

/// Whether the mode bits let `uid`/`gid` create files in the directory
/// `m` describes (supplementary groups and ACLs aside).
fn writable_by(m: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let bits = if m.uid() == uid {
        0o300
    } else if m.gid() == gid {
        0o030
    } else {
        0o003
    };
    m.mode() & bits == bits
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

/// The dotted key written on the line holding `offset`, read from the text
/// itself: `SECTION.KEY` for `KEY = ...` under `[SECTION]`, or the section
/// for a header line.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[start..end].trim();
    let header = |l: &str| {
        l.strip_prefix('[').map(|h| {
            h.trim_matches(|c| c == '[' || c == ']' || c == ' ')
                .to_string()
        })
    };
    if let Some(h) = header(line) {
        return Some(h);
    }
    let key = line
        .split('=')
        .next()?
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return None;
    }
    let section = text[..start].lines().rev().find_map(|l| header(l.trim()));
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
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
        let tcp: Vec<String> = c.listen.tcp.iter().map(|a| a.addr.to_string()).collect();
        assert_eq!(tcp, vec!["127.0.0.1:2345", "[::1]:2345"]);
        assert!(c.listen.tcp.iter().all(|a| a.built_in));
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
        assert!(c.listen.tcp.is_empty());
        let c = parse("[listen]\ntcp = [\"127.0.0.1:2345\"]\n").expect("given");
        assert!(
            !c.listen.tcp[0].built_in,
            "an address in the file is not a built-in one"
        );
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
    fn who_source_is_one_of_three() {
        assert_eq!(
            parse("").expect("defaults").commands.who_source,
            WhoSource::Auto
        );
        for (text, want) in [
            ("auto", WhoSource::Auto),
            ("utmp", WhoSource::Utmp),
            ("logind", WhoSource::Logind),
        ] {
            let c = parse(&format!("[commands]\nwho_source = \"{text}\"\n")).expect(text);
            assert_eq!(c.commands.who_source, want);
        }
        let e = parse("[commands]\nwho_source = \"systemd\"\n").expect_err("unknown source");
        assert!(
            e.message.starts_with("commands.who_source:"),
            "{}",
            e.message
        );
        assert_eq!(e.line, 2);
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
    fn a_date_format_whose_output_cannot_fit_is_rejected() {
        let long = format!("[commands]\ndate_format = \"{}\"\n", "%A ".repeat(30));
        let e = parse(&long).expect_err("too long");
        assert!(
            e.message.starts_with("commands.date_format:") && e.message.contains("at most 256"),
            "{}",
            e.message
        );
        assert_eq!((e.line, e.col), (2, 15));
        assert!(parse("[commands]\ndate_format = \"%A %B %d %Y %H:%M:%S %Z\"\n").is_ok());
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
        let c = Config::parse(&uncommented, Path::new("/shipped.toml"), &root)
            .expect("shipped file parses");
        let d = Config::defaults(&root);
        assert!(
            c.listen.tcp.iter().all(|a| !a.built_in),
            "every key was uncommented"
        );
        assert_eq!(c, d);
        let keys = uncommented
            .lines()
            .filter(|l| l.contains(" = ") && !l.starts_with('#'))
            .count();
        assert_eq!(keys, 34, "one line per key");
    }

    #[test]
    fn abuse_limits_have_their_defaults_and_bounds() {
        let c = parse("").expect("defaults");
        assert_eq!(
            (
                c.limits.busy_idle_secs,
                c.limits.max_rate_per_source,
                c.limits.ipv6_prefix
            ),
            (10, 0, 64)
        );
        assert_eq!(c.access, Access::default());
        assert!(parse("[limits]\nbusy_idle_secs = 0\nipv6_prefix = 128\n").is_ok());
        let e = parse("[limits]\nipv6_prefix = 129\n").expect_err("too long");
        assert_eq!(e.message, "limits.ipv6_prefix: must be at most 128");
        let e = parse("[limits]\nmax_rate_per_source = -1\n").expect_err("negative");
        assert!(
            e.message.starts_with("limits.max_rate_per_source:"),
            "{}",
            e.message
        );
    }

    #[test]
    fn access_entries_are_checked_and_named() {
        let c = parse(
            "[access]\nallow = [\"127.0.0.0/8\", \"::1\"]\ndeny = [\"127.0.0.2\"]\n\
             unix_users = [\"root\", 1000]\nunix_groups = [0]\n",
        )
        .expect("valid access");
        assert_eq!(
            c.access.unix_users,
            vec![IdRef::Name("root".into()), IdRef::Id(1000)]
        );
        let again = parse(&c.to_toml()).expect("printed config parses");
        assert_eq!(again.access, c.access);
        let e = parse("# x\n[access]\ndeny = [\"10.0.0.1/8\"]\n").expect_err("host bits");
        assert_eq!((e.line, e.col), (3, 1));
        assert_eq!(
            e.message,
            "access.deny: \"10.0.0.1/8\" has host bits set (the network is 10.0.0.0/8)"
        );
        let e = parse("[access]\nallow = [\"example.com\"]\n").expect_err("name");
        assert!(
            e.message.starts_with("access.allow: \"example.com\""),
            "{}",
            e.message
        );
        let e = parse("[access]\nunix_users = [\"no-such-user-hid\"]\n").expect_err("user");
        assert_eq!(
            e.message,
            "access.unix_users: unknown user \"no-such-user-hid\""
        );
        assert!(parse("[access]\nbogus = []\n").is_err());
    }

    #[test]
    fn line_col_handles_multibyte() {
        assert_eq!(line_col("é\nab", 4), (2, 2));
        assert_eq!(line_col("abc", 99), (1, 4));
    }
}
