//! The sliding window of one histogram: a ring of time sub-buckets, each holding the counts
//! recorded during its slice of time. This module owns rotation (by a time passed in, so tests
//! drive it with a manual clock) and summing the sub-buckets still inside the window.

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

#[derive(Debug)]
struct SubBucket {
    /// Which slice of time (`t_ms / slice_ms`) the counts belong to; `None` before first use.
    epoch: Option<u64>,
    counts: Vec<u64>,
    missing: u64,
    invalid: u64,
}

/// A histogram over the last `sub_buckets` slices of time. At time `t` (slice `e = t / slice_ms`)
/// the window holds slices `e − sub_buckets + 1 ..= e`: between `(sub_buckets − 1) · slice_ms`
/// and `sub_buckets · slice_ms` of history.
#[derive(Debug)]
pub(crate) struct Window {
    ring: Vec<SubBucket>,
}

impl Window {
    /// An empty window of `sub_buckets` (≥ 1) slices over a histogram of `buckets` buckets.
    pub(crate) fn new(buckets: usize, sub_buckets: usize) -> Self {
        let ring = (0..sub_buckets.max(1))
            .map(|_| SubBucket { epoch: None, counts: vec![0; buckets], missing: 0, invalid: 0 })
            .collect();
        Self { ring }
    }

    /// The sub-bucket for slice `epoch`, reset if it last held an older slice. `None` when the
    /// slice is already older than the window (its place holds a newer slice): the observation
    /// arrived too late to count.
    fn sub_bucket(&mut self, epoch: u64) -> Option<&mut SubBucket> {
        let len = self.ring.len() as u64;
        let sub = &mut self.ring[(epoch % len) as usize];
        match sub.epoch {
            Some(e) if e == epoch => {}
            Some(e) if e > epoch => return None,
            _ => {
                sub.epoch = Some(epoch);
                sub.counts.fill(0);
                sub.missing = 0;
                sub.invalid = 0;
            }
        }
        Some(sub)
    }

    /// Counts `slots` (one observation each) into slice `epoch`.
    pub(crate) fn add(&mut self, epoch: u64, slots: impl IntoIterator<Item = Slot>) {
        let Some(sub) = self.sub_bucket(epoch) else {
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
        let len = self.ring.len() as u64;
        let first = epoch.saturating_sub(len - 1);
        for sub in &self.ring {
            if sub.epoch.is_some_and(|e| e >= first && e <= epoch) {
                for (t, c) in totals.counts.iter_mut().zip(&sub.counts) {
                    *t += c;
                }
                totals.missing += sub.missing;
                totals.invalid += sub.invalid;
            }
        }
    }
}
