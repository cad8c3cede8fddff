//! The counters: sessions forked, refusals by kind, sessions' ends by kind,
//! fork failures, reloads and rejected reloads, counted by the parent from
//! its first start. They cross every reload in the [`Handover`] and are
//! reset only by a restart.
//!
//! They live in one process-wide table rather than in the `Server`: the
//! ends are counted where children are reaped, and the reaper calls back a
//! plain `fn` (`log_exit`) from every path that reaps (the poll loop, the
//! accept path's settling, the stop, the start after a reload). The parent
//! is one thread, so relaxed atomics are plain counters here; a session's
//! child inherits a copy it never writes.
//!
//! Counting is the only thing done on the session path: publishing the
//! figures (status file, metrics file) is done from the poll loop's
//! deadlines (see [`crate::publish`]), which ask [`changes`] whether there
//! is anything new.
//!
//! [`Handover`]: crate::handover::Handover

use std::sync::atomic::{AtomicU64, Ordering};

use crate::admission::Refusal;
use crate::session::End;

/// One counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Sessions forked.
    Sessions,
    /// Refused: over `max_per_source`.
    RefusedBusy,
    /// Refused: over `max_rate_per_source`.
    RefusedRate,
    /// Refused by `[access]`.
    RefusedAccess,
    /// Ended by `quit`.
    EndedQuit,
    /// Ended by the client's EOF (or reset).
    EndedEof,
    /// Ended by the idle or busy-idle timeout.
    EndedIdle,
    /// Ended by `session_timeout_secs`.
    EndedSessionTimeout,
    /// Ended by an over-long line.
    EndedTooLong,
    /// Ended by the daemon's stop.
    EndedShutdown,
    /// Crashed, killed, or failed.
    EndedError,
    /// fork(2) failed.
    ForkFailures,
    /// Reloads that took effect.
    Reloads,
    /// Reloads rejected.
    ReloadsRejected,
}

/// Every counter, in the order of [`Counters::values`] and of the
/// hand-over's encoding.
pub const ALL: [Counter; 14] = [
    Counter::Sessions,
    Counter::RefusedBusy,
    Counter::RefusedRate,
    Counter::RefusedAccess,
    Counter::EndedQuit,
    Counter::EndedEof,
    Counter::EndedIdle,
    Counter::EndedSessionTimeout,
    Counter::EndedTooLong,
    Counter::EndedShutdown,
    Counter::EndedError,
    Counter::ForkFailures,
    Counter::Reloads,
    Counter::ReloadsRejected,
];

impl Counter {
    /// The counter's name in the status file and `-s status --json`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Sessions => "sessions",
            Counter::RefusedBusy => "refused_busy",
            Counter::RefusedRate => "refused_rate",
            Counter::RefusedAccess => "refused_access",
            Counter::EndedQuit => "ended_quit",
            Counter::EndedEof => "ended_eof",
            Counter::EndedIdle => "ended_idle",
            Counter::EndedSessionTimeout => "ended_session_timeout",
            Counter::EndedTooLong => "ended_too_long",
            Counter::EndedShutdown => "ended_shutdown",
            Counter::EndedError => "ended_error",
            Counter::ForkFailures => "fork_failures",
            Counter::Reloads => "reloads",
            Counter::ReloadsRejected => "reloads_rejected",
        }
    }

    /// The counter of a session's end.
    pub fn of_end(end: End) -> Counter {
        match end {
            End::Quit => Counter::EndedQuit,
            End::Eof => Counter::EndedEof,
            End::Idle | End::BusyIdle => Counter::EndedIdle,
            End::SessionTimeout => Counter::EndedSessionTimeout,
            End::TooLong => Counter::EndedTooLong,
            End::Shutdown => Counter::EndedShutdown,
            End::Error => Counter::EndedError,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A snapshot of every counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// The values, in [`ALL`]'s order.
    pub values: [u64; ALL.len()],
}

impl Counters {
    /// One counter's value.
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c.index()]
    }

    /// One more of `c` (in a snapshot: for the hand-over of a reload, which
    /// counts once the next image serves).
    pub fn bump(&mut self, c: Counter) {
        self.values[c.index()] += 1;
    }

    /// `(name, value)` for every counter, in [`ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ALL.iter().map(|&c| (c.name(), self.get(c)))
    }
}

static TABLE: [AtomicU64; ALL.len()] = [const { AtomicU64::new(0) }; ALL.len()];
/// Counts one event.
pub fn count(c: Counter) {
    TABLE[c.index()].fetch_add(1, Ordering::Relaxed);
}

/// Counts a refusal by its kind (a failed fork is counted where it fails).
pub fn count_refusal(why: &Refusal) {
    match why {
        Refusal::Access => count(Counter::RefusedAccess),
        Refusal::Rate(_) => count(Counter::RefusedRate),
        Refusal::Busy(_) => count(Counter::RefusedBusy),
        Refusal::NoFork => {}
    }
}

/// The sum of the counters, which only grow: equal values mean nothing
/// new to publish.
pub fn changes() -> u64 {
    TABLE.iter().map(|a| a.load(Ordering::Relaxed)).sum()
}

/// The counters now.
pub fn snapshot() -> Counters {
    let mut s = Counters::default();
    for (v, a) in s.values.iter_mut().zip(&TABLE) {
        *v = a.load(Ordering::Relaxed);
    }
    s
}

/// Sets the counters to what the previous image handed over.
pub fn restore(from: &Counters) {
    for (a, v) in TABLE.iter().zip(from.values) {
        a.store(v, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_has_its_counter_and_names_are_distinct() {
        for e in End::ALL {
            let c = Counter::of_end(e);
            assert_eq!(c.name(), format!("ended_{}", e.how()));
        }
        let mut names: Vec<_> = ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn count_snapshot_restore() {
        // The one test touching the process-wide table.
        let before = changes();
        let mut base = snapshot();
        count(Counter::RefusedRate);
        assert!(changes() > before);
        assert_eq!(
            snapshot().get(Counter::RefusedRate),
            base.get(Counter::RefusedRate) + 1
        );
        base.values[Counter::Reloads.index()] = 7;
        restore(&base);
        assert_eq!(snapshot(), base);
    }
}
