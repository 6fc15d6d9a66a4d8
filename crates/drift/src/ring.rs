//! [`TimeRing`]: a ring of time slices, each holding what was recorded during its slice (a
//! histogram for drift, event counts for the online metrics). It owns rotation by a slice
//! number passed in (`t_ms / slice_ms`, so tests drive it with a manual clock) and which slices
//! are still inside the window; what a slice holds and how it is summed is the caller's.

/// The values of the last `len` slices of time. At slice `e` the window holds slices
/// `e − len + 1 ..= e`: between `(len − 1)` and `len` slices of history.
#[derive(Debug, Clone)]
pub struct TimeRing<T> {
    ring: Box<[(Option<u64>, T)]>,
}

impl<T: Clone> TimeRing<T> {
    /// A ring of `len` (≥ 1) slices, each starting as `empty`.
    pub fn new(len: usize, empty: T) -> Self {
        Self { ring: vec![(None, empty); len.max(1)].into_boxed_slice() }
    }
}

impl<T> TimeRing<T> {
    /// The value of slice `epoch`, first `reset` if its place last held an older slice. `None`
    /// when the slice is already older than the window (its place holds a newer slice): the
    /// observation arrived too late to count.
    pub fn slot(&mut self, epoch: u64, reset: impl FnOnce(&mut T)) -> Option<&mut T> {
        let len = self.ring.len() as u64;
        let (held, value) = &mut self.ring[(epoch % len) as usize];
        match *held {
            Some(e) if e == epoch => {}
            Some(e) if e > epoch => return None,
            _ => {
                *held = Some(epoch);
                reset(value);
            }
        }
        Some(value)
    }

    /// The values of the slices inside the window ending at slice `epoch`.
    pub fn live(&self, epoch: u64) -> impl Iterator<Item = &T> {
        let first = epoch.saturating_sub(self.ring.len() as u64 - 1);
        self.ring.iter().filter(move |(e, _)| e.is_some_and(|e| e >= first && e <= epoch)).map(|(_, v)| v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slices_rotate_expire_and_late_ones_are_refused() {
        let mut ring = TimeRing::new(3, 0u32);
        for e in [10, 11, 12] {
            *ring.slot(e, |v| *v = 0).unwrap() += 1;
        }
        *ring.slot(12, |v| *v = 0).unwrap() += 1;
        assert_eq!(ring.live(12).sum::<u32>(), 4);
        // Slice 13 takes slice 10's place; 10 is out of the window.
        *ring.slot(13, |v| *v = 0).unwrap() += 5;
        assert_eq!(ring.live(13).sum::<u32>(), 1 + 2 + 5);
        assert!(ring.slot(10, |v| *v = 0).is_none(), "too late");
        assert_eq!(ring.live(20).count(), 0, "everything expired");
    }
}
