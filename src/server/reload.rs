//! SIGHUP: validate, check the binary, hand over, re-execute in place — or
//! keep serving and say why not.
//!
//! [`Server::plan`] decides what the next image gets (listeners kept by
//! address, new ones bound now so that an address that cannot be bound
//! rejects the reload while this image serves; a moved pidfile; the files
//! the next image removes) and returns the [`Handover`] or the reason; the
//! exec returns only its error. Either way out of a failure, this image is
//! as it was.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::counters::Counter;
use crate::handover::{HandedListener, Handover};
use crate::listen::{self, Listener};
use crate::reaper::monotonic_us;

use super::Server;

/// A reload ready to exec.
struct Plan {
    handover: Handover,
    /// The next image's listeners, in hand-over order.
    fds: Vec<RawFd>,
    /// Listeners bound for the next image, dropped if the exec fails.
    fresh: Vec<Listener>,
}

impl Server {
    /// Reloads; returns only if the reload was rejected.
    #[cold]
    #[inline(never)] // out of the poll loop's frame (see Server::serve)
    pub(super) fn reload(&mut self) {
        let hup_at = monotonic_us();
        self.publication.reload_started();
        log::info!("SIGHUP: reloading configuration");
        let reason = match self.plan(hup_at) {
            Ok(plan) => self.exec(plan),
            Err(reason) => reason,
        };
        self.counters.bump(Counter::ReloadsRejected);
        log::error!(
            "reload rejected, still serving generation {}: {reason}",
            self.publication.status().generation
        );
        let endpoints = self.endpoints();
        self.publication
            .rejected(&reason, endpoints, self.reaper.len(), &self.counters);
    }

    fn plan(&mut self, hup_at_us: u64) -> Result<Plan, String> {
        let new =
            Config::load(self.launch.config.as_deref(), &self.env).map_err(|e| e.to_string())?;
        crate::reload::preflight(&self.launch.exe, self.launch.config.as_deref())?;
        if (&new.daemon.user, &new.daemon.group) != (&self.cfg.daemon.user, &self.cfg.daemon.group)
        {
            log::warn!(
                "daemon.user/daemon.group changed: privileges are set at start, so this takes \
                 effect at the next start, not on reload"
            );
        }
        let mut fds = Vec::new();
        let mut handed = Vec::new();
        let mut fresh = Vec::new();
        let mut leftovers: Vec<PathBuf> = Vec::new();
        if self.launch.activated {
            // systemd's sockets are the socket unit's: all kept as they are.
            for l in &self.listeners {
                fds.push(l.raw());
                handed.push(HandedListener {
                    owns_path: l.owns_path,
                });
            }
        } else {
            let want = listen::configured(&new);
            for l in &self.listeners {
                if want.contains(&l.addr) {
                    listen::reconfigure(l, new.listen.backlog, new.unix_mode());
                } else if let Some(p) = l.owned_path() {
                    // Removed by the next image once it serves (the socket
                    // itself closes on exec).
                    leftovers.push(p.to_path_buf());
                }
            }
            let have: Vec<_> = self.listeners.iter().map(|l| l.addr.clone()).collect();
            fresh = listen::bind_configured(&new, &have).map_err(|e| e.to_string())?;
            for a in &want {
                if let Some(l) = self.listeners.iter().chain(&fresh).find(|l| &l.addr == a) {
                    fds.push(l.raw());
                    handed.push(HandedListener {
                        owns_path: l.owns_path,
                    });
                }
            }
        }
        // A changed daemon.pid_file: move the locked pidfile (and the status
        // file beside it) now, so a path we cannot take rejects the reload.
        // Set to "": the pidfile's fd is not handed over (it closes on exec,
        // which releases the lock) and the next image removes both files.
        let mut pidfile = self.publication.pidfile().is_some();
        if pidfile {
            let want = &new.daemon.pid_file;
            if want.as_os_str().is_empty() {
                pidfile = false;
                leftovers.extend(self.publication.pidfile().map(|p| p.path().to_path_buf()));
                leftovers.push(self.publication.status_path().to_path_buf());
            } else if let Err(e) = self.publication.relocate(want, new.status_file(&self.env)) {
                listen::remove_socket_files(&fresh);
                return Err(e.to_string());
            }
        }
        // FIFOs no longer configured are removed by the next image.
        leftovers.extend(
            self.fifos
                .paths()
                .filter(|p| !new.listen.fifo.iter().any(|q| q == p))
                .map(Path::to_path_buf),
        );
        let status = self.publication.status();
        let handover = Handover {
            exe: self.launch.exe.clone(),
            config: self.launch.config.clone(),
            generation: status.generation + 1,
            reload_seq: status.reload_seq,
            started: status.started,
            hup_at_us,
            defaults_uid: self.env.euid,
            activated: self.launch.activated,
            listeners: handed,
            pidfile,
            children: self.reaper.iter().collect(),
            leftovers,
            counters: {
                // Counted by the next image, which is the reload that worked.
                let mut c = self.counters;
                c.bump(Counter::Reloads);
                c
            },
        };
        Ok(Plan {
            handover,
            fds,
            fresh,
        })
    }

    /// Execs the plan; returns the reason when the exec failed, with the
    /// freshly bound listeners gone and everything else as it was.
    fn exec(&mut self, plan: Plan) -> String {
        let memfd = match plan.handover.to_memfd() {
            Ok(fd) => fd,
            Err(e) => {
                listen::remove_socket_files(&plan.fresh);
                return format!("cannot write the hand-over: {e}");
            }
        };
        let mut rest: Vec<RawFd> = Vec::with_capacity(2);
        if plan.handover.pidfile {
            rest.extend(self.publication.pidfile().map(|p| p.raw()));
        }
        rest.push(memfd.as_raw_fd());
        // The writers end here and the next image starts its own; if the
        // exec fails, they are restarted as after any death.
        self.fifos.stop();
        self.publication.reloading();
        let exe: &Path = &self.launch.exe;
        let err = crate::reload::exec(exe, &self.launch.args, &plan.fds, &rest);
        listen::remove_socket_files(&plan.fresh);
        format!("cannot execute {}: {err}", exe.display())
    }
}
