//! SIGTERM/SIGINT: stop accepting, tell the children, wait, exit.

use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::Result;
use crate::listen;

use super::{Server, log_exit};

impl Server {
    /// Closes the listeners, removes the runtime files, sends each session
    /// SIGTERM (its child says `Server shutting down.`), SIGKILLs what is
    /// left after `shutdown_grace_secs`, and returns.
    #[cold]
    #[inline(never)] // out of the poll loop's frame (see Server::serve)
    pub(super) fn shutdown(&mut self) -> Result<()> {
        log::info!("stopping: {} session(s) to end", self.reaper.len());
        listen::remove_socket_files(&self.listeners);
        self.listeners.clear();
        self.fifos.stop();
        self.fifos.remove_files();
        self.publication.stopping();
        let pids: Vec<i32> = self.reaper.iter().map(|(p, _)| p).collect();
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(self.cfg.limits.shutdown_grace_secs);
        loop {
            self.reaper.reap_all(|r| log_exit(r, &mut self.counters));
            if self.reaper.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let pids: Vec<i32> = self.reaper.iter().map(|(p, _)| p).collect();
                for &pid in &pids {
                    log::warn!("pid {pid} still running after the grace period: SIGKILL");
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                // Bounded: SIGKILL cannot be caught, so each waitpid returns.
                for pid in pids {
                    if !self
                        .reaper
                        .wait_pid(pid, |r| log_exit(r, &mut self.counters))
                    {
                        self.reaper.forget(pid);
                    }
                }
                break;
            }
            let mut pfd = [libc::pollfd {
                fd: self.signals.raw(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: a valid array of one pollfd.
            unsafe { libc::poll(pfd.as_mut_ptr(), 1, left.as_millis().clamp(1, 1000) as i32) };
            let _ = self.signals.drain();
        }
        self.publication.stopped(&self.counters);
        log::info!("stopped");
        Ok(())
    }
}
