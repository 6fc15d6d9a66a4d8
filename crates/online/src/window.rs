//! The sliding window of one arm's counts: the drift crate's [`TimeRing`] over [`Counts`]. This
//! module owns summing the slices still inside the window.

use crate::metrics::Counts;
use recserve_drift::ring::TimeRing;

/// Counts over the last `sub_buckets` slices of time (see [`TimeRing`]).
#[derive(Debug)]
pub(crate) struct Window {
    ring: TimeRing<Counts>,
}

impl Window {
    /// An empty window of `sub_buckets` (≥ 1) slices.
    pub(crate) fn new(sub_buckets: usize) -> Self {
        Self { ring: TimeRing::new(sub_buckets, Counts::default()) }
    }

    /// The counts of slice `epoch`, reset if the sub-bucket last held an older slice. `None` when
    /// the slice is already older than the window: the observation arrived too late to count.
    pub(crate) fn slice(&mut self, epoch: u64) -> Option<&mut Counts> {
        self.ring.slot(epoch, |c| *c = Counts::default())
    }

    /// The sum of the slices inside the window ending at slice `epoch`.
    pub(crate) fn sum(&self, epoch: u64) -> Counts {
        let mut total = Counts::default();
        for counts in self.ring.live(epoch) {
            total.add(counts);
        }
        total
    }
}
