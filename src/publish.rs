//! Publication: what the daemon tells the world about itself — the locked
//! pidfile, the status file `-s status` and `-s reload` read, the metrics
//! file, and systemd's notifications and watchdog. One owner, so every
//! change of state is published the same way.
//!
//! The counters change on the session path (a fork, a refusal, a reaped
//! child) but are published only from the poll loop's deadlines: the status
//! file at most once per [`STATUS_INTERVAL`] while they change, the metrics
//! file at most once per [`crate::metrics::INTERVAL`], each also when an
//! image starts serving, and the metrics file at stop.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Before anything is taken at start: as root with `daemon.user`, the
/// directories of the status and metrics files must be writable by that
/// user, who rewrites them once privileges are dropped.
pub fn check_writable(
    cfg: &crate::config::Config,
    env: &crate::config::Env,
) -> crate::error::Result<()> {
    cfg.check_user_can_write(env).map_err(|(key, reason)| {
        let (what, path) = if key == "daemon.metrics_file" {
            ("the metrics file", cfg.daemon.metrics_file.clone())
        } else {
            ("the status file", cfg.status_file(env))
        };
        crate::error::Error::Publish { what, path, reason }
    })
}

/// Shortest time between two rewrites of the status file for changed
/// counters or sessions.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

use crate::counters::Counters;
use crate::metrics::{Figures, Metrics};
use crate::notify::Notifier;
use crate::pidfile::Pidfile;
use crate::status::{ReloadResult, Status};

/// The published state of one image.
#[derive(Debug)]
pub struct Publication {
    pidfile: Option<Pidfile>,
    status_path: PathBuf,
    status: Status,
    notifier: Notifier,
    next_watchdog: Option<Instant>,
    /// [`Counters::changes`] when the status file was last written, and when.
    status_seen: (u64, Instant),
    metrics: Metrics,
    /// [`Counters::changes`] when the metrics were last looked at.
    metrics_seen: u64,
}

impl Publication {
    /// Publication through `pidfile` (already locked) and `status_path`.
    pub fn new(pidfile: Option<Pidfile>, status_path: PathBuf, status: Status) -> Self {
        let seen = status.counters.changes();
        let notifier = Notifier::from_env();
        Publication {
            next_watchdog: notifier.watchdog_interval().map(|d| Instant::now() + d),
            pidfile,
            status_path,
            status,
            notifier,
            status_seen: (seen, Instant::now()),
            metrics: Metrics::new(None),
            metrics_seen: seen,
        }
    }

    /// Publishes metrics to `path` too (`daemon.metrics_file`; "" for none).
    pub fn set_metrics_file(&mut self, path: &Path) {
        self.metrics = Metrics::new(Some(path.to_path_buf()).filter(|p| !p.as_os_str().is_empty()));
    }

    /// Writes the status file now (at a fresh start, after the privilege
    /// drop): a status file this daemon cannot write is an error at start,
    /// not a reload that later looks failed.
    pub fn probe(&mut self, counters: &Counters) -> crate::error::Result<()> {
        self.status.counters = *counters;
        self.status
            .write(&self.status_path)
            .map_err(|e| crate::error::Error::Publish {
                what: "the status file",
                path: self.status_path.clone(),
                reason: e.to_string(),
            })
    }

    /// The state as published.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The pidfile, if there is one.
    pub fn pidfile(&self) -> Option<&Pidfile> {
        self.pidfile.as_ref()
    }

    /// The status file's path.
    pub fn status_path(&self) -> &Path {
        &self.status_path
    }

    /// A start that failed after the pidfile was taken: the pidfile goes
    /// (the status file, never written, is left alone: it may not be ours).
    pub fn abandon(&mut self) {
        if let Some(p) = self.pidfile.take() {
            p.remove();
        }
    }

    /// Serving on `listeners` (as `-s status` lists them): the status
    /// file and metrics, then `READY=1`.
    pub fn serving(&mut self, listeners: Vec<String>, sessions: usize, counters: &Counters) {
        self.status.sessions = sessions;
        self.write(listeners, counters);
        self.write_metrics(Instant::now(), sessions, counters);
        self.notifier.ready(&self.headline(sessions, counters));
    }

    /// A SIGHUP was read: counted before the attempt, so `-s reload` sees
    /// its own attempt's result whichever way it goes.
    pub fn reload_started(&mut self) {
        self.status.reload_seq += 1;
        self.status.last_reload = crate::commands::date::now();
    }

    /// The exec is next.
    pub fn reloading(&self) {
        self.notifier.reloading();
    }

    /// The reload was refused: the old image serves on.
    pub fn rejected(
        &mut self,
        reason: &str,
        listeners: Vec<String>,
        sessions: usize,
        counters: &Counters,
    ) {
        self.status.result = ReloadResult::Rejected(reason.to_string());
        self.status.sessions = sessions;
        self.write(listeners, counters);
        self.notifier.send(&format!(
            "READY=1\nSTATUS=reload rejected: {}; {}",
            reason.replace('\n', " "),
            self.headline(sessions, counters)
        ));
    }

    /// Moves the pidfile (and the status file beside it) to a new path.
    pub fn relocate(&mut self, pid_file: &Path, status_path: PathBuf) -> crate::error::Result<()> {
        if let Some(pf) = self.pidfile.as_mut()
            && pf.path() != pid_file
        {
            pf.relocate(pid_file)?;
            let _ = std::fs::remove_file(&self.status_path);
            self.status_path = status_path;
        }
        Ok(())
    }

    /// Stopped: the metrics file's last figures (it stays, as node_exporter's
    /// textfile collector expects).
    pub fn stopped(&mut self, counters: &Counters) {
        self.write_metrics(Instant::now(), 0, counters);
    }

    /// Stopping: `STOPPING=1`, and the pidfile and status file go.
    pub fn stopping(&mut self) {
        self.notifier.stopping();
        let _ = std::fs::remove_file(&self.status_path);
        if let Some(p) = self.pidfile.take() {
            p.remove();
        }
    }

    /// When the next publication is owed: the watchdog, or a rewrite of the
    /// status or metrics file for changed counters.
    pub fn deadline(&self, counters: &Counters) -> Option<Instant> {
        let now = counters.changes();
        let status = (now != self.status_seen.0).then(|| self.status_seen.1 + STATUS_INTERVAL);
        let metrics = (now != self.metrics_seen)
            .then(|| self.metrics.next_allowed())
            .flatten();
        [self.next_watchdog, status, metrics]
            .into_iter()
            .flatten()
            .min()
    }

    /// Pets the watchdog, and rewrites the status and metrics files for
    /// changed counters, each when it is due; `sessions` are the live ones.
    #[inline(never)] // out of the poll loop's frame (see crate::server)
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn tick(&mut self, now: Instant, sessions: usize, counters: &Counters) {
        if let (Some(next), Some(every)) = (self.next_watchdog, self.notifier.watchdog_interval())
            && now >= next
        {
            self.notifier.watchdog();
            self.next_watchdog = Some(now + every);
        }
        let changes = counters.changes();
        if changes != self.status_seen.0 && now >= self.status_seen.1 + STATUS_INTERVAL {
            self.status.sessions = sessions;
            self.status.counters = *counters;
            if let Err(e) = self.status.write(&self.status_path) {
                log::warn!(
                    "cannot write status file {}: {e}",
                    self.status_path.display()
                );
            }
            self.status_seen = (changes, now);
            self.notifier
                .send(&format!("STATUS={}", self.headline(sessions, counters)));
        }
        if changes != self.metrics_seen && self.metrics.next_allowed().is_some_and(|t| now >= t) {
            self.write_metrics(now, sessions, counters);
        }
    }

    fn write_metrics(&mut self, now: Instant, sessions: usize, counters: &Counters) {
        self.metrics_seen = counters.changes();
        let f = Figures {
            counters: *counters,
            live: sessions,
            generation: self.status.generation,
            started: self.status.started,
        };
        self.metrics.write(now, &f);
    }

    /// The fds a session's child must not keep: the pidfile's (whose lock
    /// must never be released by a child) and the notify socket.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.pidfile
            .as_ref()
            .map(Pidfile::raw)
            .into_iter()
            .chain(self.notifier.raw())
    }

    /// systemd's `STATUS=`: what serves, and the headline counters.
    fn headline(&self, sessions: usize, c: &Counters) -> String {
        use crate::counters::Counter as C;
        format!(
            "serving {} listener(s), generation {}, {} session(s); {} served, {} refused, {} \
             ended in error",
            self.status.listeners.len(),
            self.status.generation,
            sessions,
            c.get(C::Sessions),
            c.get(C::RefusedBusy) + c.get(C::RefusedRate) + c.get(C::RefusedAccess),
            c.get(C::EndedError)
        )
    }

    fn write(&mut self, listeners: Vec<String>, counters: &Counters) {
        self.status.listeners = listeners;
        self.status.counters = *counters;
        self.status_seen = (counters.changes(), Instant::now());
        if let Err(e) = self.status.write(&self.status_path) {
            log::warn!(
                "cannot write status file {}: {e}",
                self.status_path.display()
            );
        }
    }
}
