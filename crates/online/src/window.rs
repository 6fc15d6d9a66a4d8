//! The sliding window of one arm's counts: a ring of time sub-buckets, each holding the counts
//! recorded during its slice of time (the drift crate's window, over [`Counts`] instead of a
//! histogram). This module owns rotation (by a time passed in, so tests drive it with a manual
//! clock) and summing the sub-buckets still inside the window.

use crate::metrics::Counts;

#[derive(Debug, Clone, Copy)]
struct SubBucket {
    /// Which slice of time (`t_ms / slice_ms`) the counts belong to; `None` before first use.
    epoch: Option<u64>,
    counts: Counts,
}

/// Counts over the last `sub_buckets` slices of time. At time `t` (slice `e = t / slice_ms`) the
/// window holds slices `e − sub_buckets + 1 ..= e`: between `(sub_buckets − 1) · slice_ms` and
/// `sub_buckets · slice_ms` of history.
#[derive(Debug)]
pub(crate) struct Window {
    ring: Box<[SubBucket]>,
}

impl Window {
    /// An empty window of `sub_buckets` (≥ 1) slices.
    pub(crate) fn new(sub_buckets: usize) -> Self {
        let empty = SubBucket { epoch: None, counts: Counts::default() };
        Self { ring: vec![empty; sub_buckets.max(1)].into_boxed_slice() }
    }

    /// The counts of slice `epoch`, reset if the sub-bucket last held an older slice. `None` when
    /// the slice is already older than the window (its place holds a newer slice): the
    /// observation arrived too late to count in the window.
    pub(crate) fn slice(&mut self, epoch: u64) -> Option<&mut Counts> {
        let len = self.ring.len() as u64;
        let sub = &mut self.ring[(epoch % len) as usize];
        match sub.epoch {
            Some(e) if e == epoch => {}
            Some(e) if e > epoch => return None,
            _ => {
                sub.epoch = Some(epoch);
                sub.counts = Counts::default();
            }
        }
        Some(&mut sub.counts)
    }

    /// The sum of the slices inside the window ending at slice `epoch`.
    pub(crate) fn sum(&self, epoch: u64) -> Counts {
        let len = self.ring.len() as u64;
        let first = epoch.saturating_sub(len - 1);
        let mut total = Counts::default();
        for sub in self.ring.iter().filter(|s| s.epoch.is_some_and(|e| e >= first && e <= epoch)) {
            total.add(&sub.counts);
        }
        total
    }
}
