//! The reaper's table of live sessions, keyed by PID, laid out for `fork`.
//!
//! After each fork every page the parent writes is a copy-on-write fault, so
//! the table is an open-addressed array of slots indexed by the PID itself
//! (linear probing, backward-shift deletion): recording a child writes one
//! slot, and since PIDs are handed out in order, the slot of the child just
//! forked and that of the one just reaped usually share a page. A hash map
//! writes a control byte and a bucket in two places (measured: 3 more
//! faults per session in the parent). Lookups cost the same with ten
//! thousand live sessions as with ten; the array has at least twice as many
//! slots as sessions, and grows (doubling) only as sessions do. The slots
//! live in memory no child inherits ([`crate::parentonly`]): fork copies
//! none of their page-table entries however large the table, and writing a
//! slot is never a copy-on-write fault.

use crate::parentonly::ParentOnly;
use crate::reaper::Child;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// 0: empty (no process has PID 0).
    pid: i32,
    child: Child,
}

/// PID → session, in an array of slots.
#[derive(Debug)]
pub struct PidTable {
    slots: ParentOnly<Slot>,
    len: usize,
}

const EMPTY: Slot = Slot {
    pid: 0,
    child: Child {
        source: crate::peer::Source::Uid(0),
        started_us: 0,
    },
};

impl Default for PidTable {
    fn default() -> Self {
        Self::new()
    }
}

impl PidTable {
    /// An empty table (64 slots).
    pub fn new() -> Self {
        Self::with_capacity(32)
    }

    /// A table for `capacity` sessions without growing.
    pub fn with_capacity(capacity: usize) -> Self {
        let n = (capacity.max(8) * 2).next_power_of_two();
        PidTable {
            slots: ParentOnly::new(n, EMPTY),
            len: 0,
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, pid: i32) -> usize {
        pid as u32 as usize & self.mask()
    }

    fn find(&self, pid: i32) -> Option<usize> {
        let mut i = self.home(pid);
        loop {
            match self.slots[i].pid {
                0 => return None,
                p if p == pid => return Some(i),
                _ => i = (i + 1) & self.mask(),
            }
        }
    }

    /// The session of `pid`.
    pub fn get(&self, pid: i32) -> Option<&Child> {
        self.find(pid).map(|i| &self.slots[i].child)
    }

    /// Records `pid`; returns what it replaces.
    pub fn insert(&mut self, pid: i32, child: Child) -> Option<Child> {
        if pid == 0 {
            return None;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut i = self.home(pid);
        loop {
            let s = &mut self.slots[i];
            if s.pid == 0 {
                *s = Slot { pid, child };
                self.len += 1;
                return None;
            }
            if s.pid == pid {
                return Some(std::mem::replace(&mut s.child, child));
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Forgets `pid`, returning its session.
    pub fn remove(&mut self, pid: i32) -> Option<Child> {
        let mut hole = self.find(pid)?;
        let child = self.slots[hole].child;
        // Backward shift: move up each later entry of the run whose home is
        // not between the hole and itself, so no tombstones are left.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let p = self.slots[j].pid;
            if p == 0 {
                break;
            }
            let home = self.home(p);
            let between = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !between {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole].pid = 0;
        self.len -= 1;
        Some(child)
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (i32, Child)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.pid != 0)
            .map(|s| (s.pid, s.child))
    }

    fn grow(&mut self) {
        let bigger = ParentOnly::new(self.slots.len() * 2, EMPTY);
        let old = std::mem::replace(&mut self.slots, bigger);
        self.len = 0;
        for s in old.iter().filter(|s| s.pid != 0) {
            self.insert(s.pid, s.child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn child(n: u64) -> Child {
        Child {
            source: crate::peer::Source::Uid(n as u32),
            started_us: n,
        }
    }

    proptest! {
        /// Any sequence of inserts and removes agrees with a HashMap, with
        /// PIDs crowded into few home slots (long probe runs that wrap).
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec((any::<bool>(), 1i32..200), 0..400)) {
            let mut t = PidTable::with_capacity(4);
            let mut m: HashMap<i32, Child> = HashMap::new();
            for (n, (insert, pid)) in ops.into_iter().enumerate() {
                let pid = if pid % 3 == 0 { pid * 16 } else { pid };
                if insert {
                    prop_assert_eq!(t.insert(pid, child(n as u64)), m.insert(pid, child(n as u64)));
                } else {
                    prop_assert_eq!(t.remove(pid), m.remove(&pid));
                }
                prop_assert_eq!(t.len(), m.len());
                for (p, c) in &m {
                    prop_assert_eq!(t.get(*p), Some(c));
                }
                let mut all: Vec<_> = t.iter().map(|(p, _)| p).collect();
                all.sort_unstable();
                let mut want: Vec<_> = m.keys().copied().collect();
                want.sort_unstable();
                prop_assert_eq!(all, want);
            }
        }
    }

    #[test]
    fn the_slots_are_kept_out_of_children() {
        // What makes recording a child free of copy-on-write faults (see
        // crate::parentonly, whose own test forks to show it).
        let mut t = PidTable::new();
        assert!(t.slots.is_parent_only());
        for pid in 2..200 {
            t.insert(pid, child(1));
        }
        assert!(t.slots.is_parent_only(), "after growing too");
    }

    #[test]
    fn consecutive_pids_take_consecutive_slots() {
        let mut t = PidTable::with_capacity(256);
        for pid in 1024..1124 {
            t.insert(pid, child(1));
        }
        let slots: Vec<usize> = (1024..1124).map(|p| t.find(p).expect("present")).collect();
        assert!(slots.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(t.insert(0, child(1)), None);
        assert_eq!(t.len(), 100);
    }
}
