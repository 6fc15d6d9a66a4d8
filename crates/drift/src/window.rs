//! The sliding window of one histogram: a [`TimeRing`] of per-slice histograms. This module owns
//! where an observation goes and summing the slices still inside the window.

use crate::ring::TimeRing;

/// Where one observation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A bucket of the compared histogram.
    Bucket(usize),
    /// A missing value kept outside the compared histogram (numeric features).
    Missing,
    /// A value of the wrong kind for the feature; counted, never compared.
    Invalid,
}

/// Counts summed over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Totals {
    pub counts: Vec<u64>,
    pub missing: u64,
    pub invalid: u64,
}

impl Totals {
    /// Zero counts over `buckets` buckets.
    pub(crate) fn new(buckets: usize) -> Self {
        Self { counts: vec![0; buckets], missing: 0, invalid: 0 }
    }
}

/// One slice's histogram.
#[derive(Debug, Clone)]
struct SubBucket {
    counts: Vec<u64>,
    missing: u64,
    invalid: u64,
}

/// A histogram over the last `sub_buckets` slices of time (see [`TimeRing`]).
#[derive(Debug)]
pub(crate) struct Window {
    ring: TimeRing<SubBucket>,
}

impl Window {
    /// An empty window of `sub_buckets` (≥ 1) slices over a histogram of `buckets` buckets.
    pub(crate) fn new(buckets: usize, sub_buckets: usize) -> Self {
        Self { ring: TimeRing::new(sub_buckets, SubBucket { counts: vec![0; buckets], missing: 0, invalid: 0 }) }
    }

    /// Counts `slots` (one observation each) into slice `epoch`.
    pub(crate) fn add(&mut self, epoch: u64, slots: impl IntoIterator<Item = Slot>) {
        let reset = |sub: &mut SubBucket| {
            sub.counts.fill(0);
            sub.missing = 0;
            sub.invalid = 0;
        };
        let Some(sub) = self.ring.slot(epoch, reset) else {
            return;
        };
        for slot in slots {
            match slot {
                Slot::Bucket(i) => {
                    if let Some(c) = sub.counts.get_mut(i) {
                        *c += 1;
                    }
                }
                Slot::Missing => sub.missing += 1,
                Slot::Invalid => sub.invalid += 1,
            }
        }
    }

    /// Adds the slices inside the window ending at slice `epoch` to `totals` (which has as many
    /// buckets as this window).
    pub(crate) fn add_to(&self, epoch: u64, totals: &mut Totals) {
        for sub in self.ring.live(epoch) {
            for (t, c) in totals.counts.iter_mut().zip(&sub.counts) {
                *t += c;
            }
            totals.missing += sub.missing;
            totals.invalid += sub.invalid;
        }
    }
}
