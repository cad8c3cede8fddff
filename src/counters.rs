//! The counters: sessions forked, refusals by kind, sessions' ends by kind,
//! fork failures, reloads and rejected reloads, counted by the parent from
//! its first start. They cross every reload in the [`Handover`] and are
//! reset only by a restart.
//!
//! The `Server` owns them, as plain integers beside its other parts: the
//! ends are counted by the callback the reaper calls from every path that
//! reaps (the poll loop, the accept path's settling, the stop, the start
//! after a reload). A session's child inherits a copy it never writes.
//!
//! Counting is the only thing done on the session path, and it writes the
//! `Server`'s memory, which no child inherits (see
//! [`crate::parentonly`]): a process-wide table would put one more page in
//! the set the parent dirties after each fork, and every such page is a
//! copy-on-write fault per session and a page each idle child keeps.
//! Publishing the figures (status file, metrics file) is done from the poll
//! loop's deadlines (see [`crate::publish`]), which ask
//! [`Counters::changes`] whether there is anything new.
//!
//! [`Handover`]: crate::handover::Handover

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

/// Every counter.
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

    /// Counts one event.
    #[inline]
    pub fn bump(&mut self, c: Counter) {
        self.values[c.index()] += 1;
    }

    /// Counts a refusal by its kind (a failed fork is counted where it fails).
    pub fn count_refusal(&mut self, why: &Refusal) {
        match why {
            Refusal::Access => self.bump(Counter::RefusedAccess),
            Refusal::Rate(_) => self.bump(Counter::RefusedRate),
            Refusal::Busy(_) => self.bump(Counter::RefusedBusy),
            Refusal::NoFork => {}
        }
    }

    /// The sum of the counters, which only grow: equal values mean nothing
    /// new to publish.
    pub fn changes(&self) -> u64 {
        self.values.iter().sum()
    }

    /// `(name, value)` for every counter, in [`ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ALL.iter().map(|&c| (c.name(), self.get(c)))
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
    fn counting_changes_the_sum() {
        let mut c = Counters::default();
        let before = c.changes();
        c.bump(Counter::RefusedRate);
        c.count_refusal(&Refusal::Access);
        c.count_refusal(&Refusal::NoFork);
        assert_eq!(c.changes(), before + 2);
        assert_eq!(c.get(Counter::RefusedRate), 1);
        assert_eq!(c.get(Counter::RefusedAccess), 1);
    }
}
