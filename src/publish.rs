//! Publication: what the daemon tells the world about itself — the locked
//! pidfile, the status file `-s status` and `-s reload` read, and systemd's
//! notifications and watchdog. One owner, so every change of state is
//! published the same way.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
}

impl Publication {
    /// Publication through `pidfile` (already locked) and `status_path`.
    pub fn new(pidfile: Option<Pidfile>, status_path: PathBuf, status: Status) -> Self {
        let notifier = Notifier::from_env();
        Publication {
            next_watchdog: notifier.watchdog_interval().map(|d| Instant::now() + d),
            pidfile,
            status_path,
            status,
            notifier,
        }
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

    /// Serving on `listeners` (as `-s status` lists them): the status
    /// file, then `READY=1`.
    pub fn serving(&mut self, listeners: Vec<String>, sessions: usize) {
        self.write(listeners);
        self.notifier.ready(&self.headline(sessions));
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
    pub fn rejected(&mut self, reason: &str, listeners: Vec<String>, sessions: usize) {
        self.status.result = ReloadResult::Rejected(reason.to_string());
        self.write(listeners);
        self.notifier.send(&format!(
            "READY=1\nSTATUS=reload rejected: {}; {}",
            reason.replace('\n', " "),
            self.headline(sessions)
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

    /// Stopping: `STOPPING=1`, and the pidfile and status file go.
    pub fn stopping(&mut self) {
        self.notifier.stopping();
        let _ = std::fs::remove_file(&self.status_path);
        if let Some(p) = self.pidfile.take() {
            p.remove();
        }
    }

    /// When the watchdog is next owed.
    pub fn deadline(&self) -> Option<Instant> {
        self.next_watchdog
    }

    /// Pets the watchdog when it is due.
    pub fn tick(&mut self, now: Instant) {
        if let (Some(next), Some(every)) = (self.next_watchdog, self.notifier.watchdog_interval())
            && now >= next
        {
            self.notifier.watchdog();
            self.next_watchdog = Some(now + every);
        }
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

    fn headline(&self, sessions: usize) -> String {
        format!(
            "serving {} listener(s), generation {}, {} session(s)",
            self.status.listeners.len(),
            self.status.generation,
            sessions
        )
    }

    fn write(&mut self, listeners: Vec<String>) {
        self.status.listeners = listeners;
        if let Err(e) = self.status.write(&self.status_path) {
            log::warn!(
                "cannot write status file {}: {e}",
                self.status_path.display()
            );
        }
    }
}
