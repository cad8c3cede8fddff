//! `max_rate_per_source`: a token bucket per source
//! ([`RateLimit`]), the source being the per-source
//! key of [`crate::peer::Source::key`] (IPv6 folded to `ipv6_prefix` bits).
//!
//! The rate limit is a token bucket per source: `rate` tokens a second, at
//! most `2 × rate` held, one taken per new connection. It is kept as GCRA
//! (the "virtual scheduling" form of the same bucket): one timestamp per
//! source, the time at which its bucket would be full again. The table is
//! fixed in size, allocated once per configuration: [`SLOTS`] entries in
//! sets of [`WAYS`], a source's set chosen by a keyed hash (the key is
//! random per process, so a client cannot aim many addresses at one set).
//! A new source takes the entry in its set whose bucket is fullest; an
//! entry whose bucket is full again says nothing that a fresh entry would
//! not, and a source that connects fast keeps its entry against a flood of
//! new ones. However many addresses an attacker has, the table does not
//! grow, and the check costs one hash and four comparisons, with no
//! allocation.

use std::hash::BuildHasher;

use crate::peer::Source;

/// Entries in the rate table.
pub const SLOTS: usize = 4096;
/// Entries per set: a source lives in one of the [`WAYS`] entries of its set.
pub const WAYS: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: Option<Source>,
    /// When this source's bucket is full again (ns, the caller's clock).
    full_at: u64,
}

/// `max_rate_per_source`: a token bucket per source in a table of fixed size.
#[derive(Debug)]
pub struct RateLimit {
    /// Empty when there is no limit.
    slots: Box<[Slot]>,
    /// Nanoseconds per token.
    interval: u64,
    /// How far ahead of now `full_at` may be for a connection to pass:
    /// (burst - 1) intervals.
    tolerance: u64,
    hasher: std::hash::RandomState,
}

impl RateLimit {
    /// A limit of `per_sec` new connections a second from one source, with
    /// bursts of `2 × per_sec`; 0 = no limit (and no table).
    pub fn new(per_sec: u32) -> Self {
        let (slots, interval, tolerance) = if per_sec == 0 {
            (Vec::new().into_boxed_slice(), 0, 0)
        } else {
            let interval = 1_000_000_000 / u64::from(per_sec);
            let burst = 2 * u64::from(per_sec);
            let empty = Slot {
                key: None,
                full_at: 0,
            };
            (
                vec![empty; SLOTS].into_boxed_slice(),
                interval,
                interval * (burst - 1),
            )
        };
        RateLimit {
            slots,
            interval,
            tolerance,
            hasher: std::hash::RandomState::new(),
        }
    }

    /// True when a limit is set.
    pub fn enabled(&self) -> bool {
        !self.slots.is_empty()
    }

    /// A new connection from `key` at `now_ns` (CLOCK_MONOTONIC
    /// nanoseconds, or any clock that never goes back): true if it is
    /// within the rate (a token is taken), false if it is over.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    pub fn allow(&mut self, key: Source, now_ns: u64) -> bool {
        if self.slots.is_empty() {
            return true;
        }
        let sets = self.slots.len() / WAYS;
        let set = (self.hash(&key) % sets as u64) as usize;
        let ways = &mut self.slots[set * WAYS..(set + 1) * WAYS];
        let i = match ways.iter().position(|s| s.key == Some(key)) {
            Some(i) => i,
            None => {
                // The fullest bucket (earliest full_at; empty entries have 0).
                let mut victim = 0;
                for (j, s) in ways.iter().enumerate() {
                    if s.full_at < ways[victim].full_at {
                        victim = j;
                    }
                }
                ways[victim] = Slot {
                    key: Some(key),
                    full_at: 0,
                };
                victim
            }
        };
        let slot = &mut ways[i];
        let full_at = slot.full_at.max(now_ns);
        if full_at - now_ns > self.tolerance {
            return false;
        }
        slot.full_at = full_at + self.interval;
        true
    }

    fn hash(&self, key: &Source) -> u64 {
        self.hasher.hash_one(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn v4(s: &str) -> Source {
        s.parse::<Source>().expect("address").key(64)
    }

    #[test]
    fn no_limit_allows_everything_and_holds_nothing() {
        let mut r = RateLimit::new(0);
        assert!(!r.enabled());
        assert!((0..10_000).all(|_| r.allow(v4("127.0.0.1"), 0)));
    }

    #[test]
    fn burst_of_twice_the_rate_then_the_rate() {
        let mut r = RateLimit::new(5);
        let k = v4("127.0.0.2");
        let t0 = 100 * S;
        // A burst of 10 at once, then refused.
        assert_eq!((0..20).filter(|_| r.allow(k, t0)).count(), 10);
        // Another source is unaffected.
        assert!(r.allow(v4("127.0.0.3"), t0));
        // One token every 200 ms.
        assert!(!r.allow(k, t0 + S / 5 - 1));
        assert!(r.allow(k, t0 + S / 5));
        assert!(!r.allow(k, t0 + S / 5));
        // Sustained: over 10 s at 50 attempts a second, 5 a second pass,
        // plus the 3 tokens the bucket regained between t0 + 0.2 s and t0 + 1 s.
        let mut passed = 0;
        for i in 0..500 {
            if r.allow(k, t0 + S + i * S / 50) {
                passed += 1;
            }
        }
        assert!((52..=54).contains(&passed), "{passed}");
        // After a quiet 2 s the whole burst is back.
        let later = t0 + 20 * S;
        assert_eq!((0..20).filter(|_| r.allow(k, later)).count(), 10);
    }

    #[test]
    fn many_sources_do_not_grow_the_table_or_evict_a_flooder() {
        let mut r = RateLimit::new(1);
        let flooder = v4("127.0.0.9");
        let t0 = 5 * S;
        assert!(r.allow(flooder, t0) && r.allow(flooder, t0));
        assert!(!r.allow(flooder, t0));
        // Two hundred thousand other sources, each connecting once, at the same instant.
        for i in 0..200_000u32 {
            let k = Source::Ip(std::net::Ipv4Addr::from(0x0a00_0000 + i).into());
            assert!(r.allow(k, t0), "a first connection always passes");
        }
        assert_eq!(r.slots.len(), SLOTS);
        // Each of them holds an entry whose bucket is full 1 s later,
        // the flooder's 2 s later: it keeps its entry and stays refused.
        assert!(!r.allow(flooder, t0 + S / 2));
    }

    #[test]
    fn largest_rate_has_a_nonzero_interval() {
        let mut r = RateLimit::new(1_000_000);
        let k = v4("127.0.0.1");
        assert_eq!((0..3_000_000).filter(|_| r.allow(k, 0)).count(), 2_000_000);
    }
}
