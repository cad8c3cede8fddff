//! Start-up: a fresh start and a start after a reload, sharing one finish.
//!
//! A fresh start resolves the binary and configuration paths, takes the
//! pidfile (first, so a second instance says "already running" rather than
//! failing on an address the first one holds), binds or adopts the
//! listeners and drops privileges. A start after a reload adopts all of that
//! from the [`Handover`]: the pidfile's locked fd, the listeners, the live
//! sessions, the counters. Both then [`finish`]: parts assembled, status
//! published, ready.

use std::path::PathBuf;

use crate::admission::Admission;
use crate::config::{self, Config, Env};
use crate::counters::Counters;
use crate::daemon::Readiness;
use crate::error::{Error, Result};
use crate::fifo::Fifos;
use crate::handover::{self, Handover};
use crate::listen::{self, Addr, Listener};
use crate::parentonly::ParentOnlyBox;
use crate::pidfile::Pidfile;
use crate::privileges;
use crate::publish::Publication;
use crate::reaper::{Reaper, monotonic_us};
use crate::signals::Signals;
use crate::status::{ReloadResult, Status};
use crate::template::Template;

use super::{Launch, Options, Server, log_exit};

/// Starts hostinfod as `opts` says (or as the previous image handed over)
/// and runs until it is stopped.
pub fn run(opts: Options) -> Result<()> {
    let handover = handover::receive().map_err(Error::Handover)?;
    match handover {
        Some(h) => {
            let env = Env {
                euid: h.defaults_uid,
                ..Env::current()
            };
            let cfg = Config::load(h.config.as_deref(), &env)?;
            crate::log::init(&cfg, opts.foreground);
            let mut server = park(Server::resumed(cfg, env, h)?);
            crate::layout::at_page_top(|| server.serve())
        }
        None => {
            let env = Env::current();
            // The file in force is fixed now, absolute (the daemon leaves
            // for "/"): every reload reads the same file, and one that has
            // vanished rejects the reload instead of falling back to the
            // built-in defaults.
            let config = match opts.config {
                Some(p) => Some(
                    std::path::absolute(&p)
                        .map_err(|source| Error::ConfigRead { path: p, source })?,
                ),
                None => Some(PathBuf::from(config::DEFAULT_PATH)).filter(|p| p.exists()),
            };
            let cfg = Config::load(config.as_deref(), &env)?;
            // Taken before chdir("/"), so a relative argv[0] cannot change
            // meaning; /proc/self/exe gives it absolute.
            let exe = std::env::current_exe().map_err(|e| Error::file("/proc/self/exe", e))?;
            let mut readiness = if opts.foreground {
                crate::daemon::set_umask(cfg.umask());
                Readiness::none()
            } else {
                crate::log::warn_unreachable(&cfg);
                crate::daemon::daemonize(cfg.umask(), &crate::reload::listen_fds())?
            };
            crate::log::init(&cfg, opts.foreground);
            let launch = Launch {
                exe,
                args: std::env::args_os().collect(),
                config,
                activated: false,
            };
            match Server::fresh(cfg, env, launch) {
                Ok(server) => {
                    let mut server = park(server);
                    readiness.ok();
                    crate::layout::at_page_top(|| server.serve())
                }
                Err(e) => {
                    // In the foreground main prints the error itself.
                    if !opts.foreground {
                        log::error!("{e}");
                    }
                    readiness.fail(&e);
                    Err(e)
                }
            }
        }
    }
}

impl Server {
    /// The first image.
    fn fresh(cfg: Config, env: Env, mut launch: Launch) -> Result<Self> {
        let signals = Signals::install()?;
        let target = privileges::resolve(&cfg)?;
        // Runtime directories, the pidfile and socket files are checked and
        // created by runtime.rs, pidfile.rs and listen.rs, and given to the
        // unprivileged user as they are created, through descriptors.
        crate::runtime::set_owner(target.as_ref().map(|t| (t.uid.as_raw(), t.gid.as_raw())));
        // Pidfile first: a second instance must say "already running", not
        // fail on an address the first one holds.
        let pidfile = if cfg.daemon.pid_file.as_os_str().is_empty() {
            None
        } else {
            Some(Pidfile::acquire(&cfg.daemon.pid_file)?)
        };
        let passed = crate::reload::listen_fds();
        launch.activated = !passed.is_empty();
        let listeners = if launch.activated {
            let names = crate::reload::listen_names(passed.len());
            let mut v = Vec::with_capacity(passed.len());
            for (fd, name) in passed.iter().zip(&names) {
                // SAFETY: LISTEN_PID names us: these fds were passed to us to own.
                let l = unsafe { listen::adopt(*fd) }?;
                log::info!("socket activation: using {} (name {name:?})", l.addr);
                v.push(l);
            }
            v
        } else {
            listen::bind_configured(&cfg, &[])?
        };
        if let Err(e) = crate::publish::check_writable(&cfg, &env) {
            listen::remove_socket_files(&listeners);
            if let Some(p) = pidfile {
                p.remove();
            }
            return Err(e);
        }
        if let Some(t) = &target {
            privileges::drop_to(t)?;
            log::info!("running as user {} (uid {}, gid {})", t.name, t.uid, t.gid);
        }
        // Prepared as the user the writers run as.
        let fifos = Fifos::prepare(&cfg)?;
        let status = Status {
            pid: std::process::id(),
            generation: 0,
            reload_seq: 0,
            started: crate::commands::date::now(),
            last_reload: 0,
            result: ReloadResult::None,
            last_reload_ms: None,
            listeners: Vec::new(),
            sessions: 0,
            counters: Default::default(),
        };
        let status_path = cfg.status_file(&env);
        let mut publication = Publication::new(pidfile, status_path, status);
        if let Err(e) = publication.probe(&Counters::default()) {
            listen::remove_socket_files(&listeners);
            publication.abandon();
            return Err(e);
        }
        let reaper = Reaper::new(cfg.limits.max_children as usize, cfg.limits.max_per_source)
            .map_err(|e| Error::sys("exit pipe", e))?;
        log::info!(
            "hostinfod {} started (pid {})",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        );
        Ok(finish(Parts {
            cfg,
            env,
            launch,
            signals,
            listeners,
            reaper,
            publication,
            fifos,
            counters: Counters::default(),
        }))
    }

    /// An image started by a reload: everything adopted from `h`.
    fn resumed(cfg: Config, env: Env, h: Handover) -> Result<Self> {
        let signals = Signals::install()?;
        let passed = crate::reload::listen_fds();
        let mut listeners = Vec::with_capacity(passed.len());
        for (fd, handed) in passed.iter().zip(&h.listeners) {
            // SAFETY: the previous image placed these fds for us to own.
            let mut l = unsafe { listen::adopt(*fd) }?;
            l.owns_path = handed.owns_path && matches!(l.addr, Addr::Unix(_));
            listeners.push(l);
        }
        let next_fd = 3 + passed.len() as i32;
        let pidfile = if h.pidfile {
            // SAFETY: the previous image placed the pidfile's fd right after
            // the listeners for us to own.
            Some(unsafe { Pidfile::adopt(next_fd, &cfg.daemon.pid_file) }?)
        } else {
            None
        };
        let fifos = Fifos::prepare(&cfg)?;
        let mut reaper = Reaper::new(cfg.limits.max_children as usize, cfg.limits.max_per_source)
            .map_err(|e| Error::sys("exit pipe", e))?;
        reaper.adopt(h.children.iter().copied());
        let mut counters = h.counters;
        // SIGCHLDs that arrived while the exec ran were collapsed into at
        // most one pending signal, and the old exit pipe is gone: one full
        // pass now rather than waiting for the next signal.
        reaper.reap_all(|r| log_exit(r, &mut counters));
        let reload_ms = monotonic_us().saturating_sub(h.hup_at_us) as f64 / 1000.0;
        let status = Status {
            pid: std::process::id(),
            generation: h.generation,
            reload_seq: h.reload_seq,
            started: h.started,
            last_reload: crate::commands::date::now(),
            result: ReloadResult::Ok,
            last_reload_ms: Some(reload_ms),
            listeners: Vec::new(),
            sessions: 0,
            counters,
        };
        let status_path = cfg.status_file(&env);
        let publication = Publication::new(pidfile, status_path, status);
        let launch = Launch {
            exe: h.exe.clone(),
            args: std::env::args_os().collect(),
            config: h.config.clone(),
            activated: h.activated,
        };
        // Never what this image itself uses (the default status file of
        // "no pidfile" can be the old one's path).
        let in_use = |p: &&PathBuf| {
            p.as_path() == publication.status_path()
                || publication
                    .pidfile()
                    .is_some_and(|f| f.path() == p.as_path())
        };
        let left: Vec<PathBuf> = h.leftovers.iter().filter(|p| !in_use(p)).cloned().collect();
        remove_leftovers(&left);
        log::info!(
            "reloaded (generation {}) in {reload_ms:.1} ms",
            h.generation
        );
        Ok(finish(Parts {
            cfg,
            env,
            launch,
            signals,
            listeners,
            reaper,
            publication,
            fifos,
            counters,
        }))
    }
}

/// What each start brings to [`finish`].
struct Parts {
    cfg: Config,
    env: Env,
    launch: Launch,
    signals: Signals,
    listeners: Vec<Listener>,
    reaper: Reaper,
    publication: Publication,
    fifos: Fifos,
    counters: Counters,
}

/// The part both starts share: assemble, publish, rehearse.
fn finish(parts: Parts) -> Server {
    let Parts {
        cfg,
        env,
        launch,
        signals,
        listeners,
        reaper,
        publication,
        fifos,
        counters,
    } = parts;
    if listeners.is_empty() {
        log::warn!("no listening address configured: serving nobody");
    }
    for l in &listeners {
        log::info!("listening on {}", l.addr);
    }
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    crate::commands::date::warm_up();
    let mut server = Server {
        template: Box::new(Template::new(&cfg, &hostname)),
        admission: Admission::new(&cfg),
        spare: super::accept::open_spare(),
        cfg: Box::new(cfg),
        env,
        launch,
        signals,
        listeners,
        reaper,
        publication,
        fifos,
        counters,
    };
    server
        .publication
        .set_metrics_file(&server.cfg.daemon.metrics_file);
    let fds = server.parent_fds();
    server.fifos.start_due(&fds);
    let endpoints = server.endpoints();
    server
        .publication
        .serving(endpoints, server.reaper.len(), &server.counters);
    // Last before serving (see crate::template).
    server.template.rehearse(&server.cfg);
    server
}

/// Moves the server into memory its children do not inherit (see
/// [`Server`]), and says where it went.
fn park(server: Server) -> ParentOnlyBox<Server> {
    let server = ParentOnlyBox::new(server);
    if server.is_parent_only() {
        log::debug!(
            "the server's state ({} bytes) is kept out of forked children",
            std::mem::size_of::<Server>()
        );
    } else {
        log::warn!(
            "cannot map memory kept out of forked children: the server's state is on the heap, \
             and each page of it written after a fork costs a copy"
        );
    }
    server
}

/// Removes the files the previous image's configuration left (see
/// [`Handover::leftovers`]), each only if it is what we think it is: a
/// socket file, or a pidfile or status file that names this process.
fn remove_leftovers(paths: &[PathBuf]) {
    use std::os::unix::fs::FileTypeExt as _;
    let me = std::process::id();
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            continue;
        };
        let ours = if meta.file_type().is_socket() || meta.file_type().is_fifo() {
            true
        } else if meta.is_file() {
            crate::pidfile::read_pid(p) == Some(me as i32)
                || crate::status::read(p)
                    .and_then(|m| m.get("pid").cloned())
                    .is_some_and(|v| v == me.to_string())
        } else {
            false
        };
        if ours {
            match std::fs::remove_file(p) {
                Ok(()) => log::info!("removed {} (no longer configured)", p.display()),
                Err(e) => log::warn!("cannot remove {}: {e}", p.display()),
            }
        }
    }
}
