//! The metrics file (`daemon.metrics_file`): the counters, the live
//! sessions, the generation and the start time in the Prometheus text
//! exposition format, for node_exporter's textfile collector.
//!
//! It is replaced atomically (a fresh temporary file renamed over it, in a
//! checked directory, never through a symbolic link: see
//! [`crate::runtime::write_atomic`]) when an image starts serving, at most
//! every [`INTERVAL`] while anything in it changes, and at stop. The writes
//! are driven by the poll loop's deadlines through [`crate::publish`]; the
//! accept and reaping paths only count.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::counters::{Counter, Counters};

/// Shortest time between two writes while the figures change.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// What the file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// The counters.
    pub counters: Counters,
    /// Live sessions.
    pub live: usize,
    /// The generation.
    pub generation: u64,
    /// Unix time of the first start.
    pub started: i64,
}

/// The file's text.
pub fn render(f: &Figures) -> String {
    let c = &f.counters;
    let mut s = String::with_capacity(2048);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(s, "{name}{labels} {v}");
        }
    };
    family(
        "hostinfod_sessions_total",
        "counter",
        "Sessions forked since the first start.",
        &[("", c.get(Counter::Sessions))],
    );
    family(
        "hostinfod_sessions_live",
        "gauge",
        "Sessions being served.",
        &[("", f.live as u64)],
    );
    family(
        "hostinfod_refused_total",
        "counter",
        "Connections refused without a fork, by reason.",
        &[
            ("{reason=\"busy\"}", c.get(Counter::RefusedBusy)),
            ("{reason=\"rate\"}", c.get(Counter::RefusedRate)),
            ("{reason=\"access\"}", c.get(Counter::RefusedAccess)),
        ],
    );
    family(
        "hostinfod_session_ends_total",
        "counter",
        "Sessions ended, by how they ended.",
        &[
            ("{how=\"quit\"}", c.get(Counter::EndedQuit)),
            ("{how=\"eof\"}", c.get(Counter::EndedEof)),
            ("{how=\"idle\"}", c.get(Counter::EndedIdle)),
            (
                "{how=\"session_timeout\"}",
                c.get(Counter::EndedSessionTimeout),
            ),
            ("{how=\"too_long\"}", c.get(Counter::EndedTooLong)),
            ("{how=\"shutdown\"}", c.get(Counter::EndedShutdown)),
            ("{how=\"error\"}", c.get(Counter::EndedError)),
        ],
    );
    family(
        "hostinfod_fork_failures_total",
        "counter",
        "Failed forks.",
        &[("", c.get(Counter::ForkFailures))],
    );
    family(
        "hostinfod_reloads_total",
        "counter",
        "Reloads, by result.",
        &[
            ("{result=\"ok\"}", c.get(Counter::Reloads)),
            ("{result=\"rejected\"}", c.get(Counter::ReloadsRejected)),
        ],
    );
    family(
        "hostinfod_generation",
        "gauge",
        "Reloads that took effect since the first start.",
        &[("", f.generation)],
    );
    family(
        "hostinfod_start_time_seconds",
        "gauge",
        "Unix time of the first start.",
        &[("", f.started.max(0) as u64)],
    );
    s
}

/// The metrics file of one image and when it is next due.
#[derive(Debug)]
pub struct Metrics {
    path: Option<PathBuf>,
    written: Option<(Instant, Figures)>,
}

impl Metrics {
    /// Metrics to `path`; None: no metrics file.
    pub fn new(path: Option<PathBuf>) -> Self {
        Metrics {
            path,
            written: None,
        }
    }

    /// When the next write is allowed: at once before the first, then
    /// [`INTERVAL`] after the last; None without a metrics file.
    pub fn next_allowed(&self) -> Option<Instant> {
        self.path.as_ref()?;
        Some(
            self.written
                .as_ref()
                .map_or_else(Instant::now, |(at, _)| *at + INTERVAL),
        )
    }

    /// Writes the file, unless it already says `f`. The caller keeps to
    /// [`Metrics::next_allowed`] (but for the writes at start and stop).
    pub fn write(&mut self, now: Instant, f: &Figures) {
        let Some(path) = &self.path else { return };
        if self.written.as_ref().is_some_and(|(_, last)| last == f) {
            return;
        }
        if let Err(e) = crate::runtime::write_atomic(path, render(f).as_bytes(), 0o644) {
            log::warn!("cannot write metrics file {}: {e}", path.display());
        }
        // Also after a failure: tried again one interval later, not in a
        // loop that logs without end.
        self.written = Some((now, *f));
    }

    /// The last figures written, if any.
    pub fn last(&self) -> Option<&Figures> {
        self.written.as_ref().map(|(_, f)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            counters: Counters {
                values: std::array::from_fn(|i| i as u64 + 1),
            },
            live: 3,
            generation: 2,
            started: 1_700_000_000,
        }
    }

    #[test]
    fn every_family_and_sample() {
        let t = render(&figures());
        for line in [
            "# TYPE hostinfod_sessions_total counter",
            "hostinfod_sessions_total 1",
            "hostinfod_sessions_live 3",
            "hostinfod_refused_total{reason=\"busy\"} 2",
            "hostinfod_refused_total{reason=\"rate\"} 3",
            "hostinfod_refused_total{reason=\"access\"} 4",
            "hostinfod_session_ends_total{how=\"quit\"} 5",
            "hostinfod_session_ends_total{how=\"error\"} 11",
            "hostinfod_fork_failures_total 12",
            "hostinfod_reloads_total{result=\"ok\"} 13",
            "hostinfod_reloads_total{result=\"rejected\"} 14",
            "hostinfod_generation 2",
            "hostinfod_start_time_seconds 1700000000",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} in\n{t}");
        }
    }

    #[test]
    fn written_once_per_change_and_interval() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("m.prom");
        let mut m = Metrics::new(Some(p.clone()));
        let t0 = Instant::now();
        assert!(m.next_allowed().is_some_and(|t| t <= Instant::now()));
        let mut f = figures();
        m.write(t0, &f);
        let text = std::fs::read_to_string(&p).expect("written");
        assert!(text.contains("hostinfod_sessions_live 3"), "{text}");
        assert_eq!(m.next_allowed(), Some(t0 + INTERVAL));
        // The same figures: not written again, the interval not restarted.
        m.write(t0 + INTERVAL, &f);
        assert_eq!(m.next_allowed(), Some(t0 + INTERVAL));
        f.live = 0;
        m.write(t0 + INTERVAL, &f);
        let text = std::fs::read_to_string(&p).expect("written");
        assert!(text.contains("hostinfod_sessions_live 0"), "{text}");
        assert_eq!(m.last().map(|l| l.live), Some(0));
        assert_eq!(Metrics::new(None).next_allowed(), None);
    }
}
