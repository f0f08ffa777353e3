//! Where a plan's activation values go in their arena: the planner walks the plan once
//! with [`Lifetimes`] to record each value's size and lifetime, places them offline
//! ([`Lifetimes::place`]: largest first, or first fit in plan order when that packs
//! tighter), and walks it again with the offsets decided ([`Placed`]).

/// Where the activation values of a plan go, in f32 units: asked for room as the plan
/// is walked, and told when a value's room is free again.
pub(super) trait Placement {
    /// The offset of a new value of `len` units.
    fn alloc(&mut self, len: usize) -> usize;
    /// The value at `offset` (of `len` units) is read no more.
    fn release(&mut self, offset: usize, len: usize);
    /// The arena's length.
    fn size(&self) -> usize;
}

/// Records each allocation's length and lifetime instead of placing it: allocation k is
/// given "offset" k, by which its release is recognised.
#[derive(Default)]
pub(super) struct Lifetimes {
    /// (length, first event, event after the last read: usize::MAX if never released).
    pub(super) allocs: Vec<(usize, usize, usize)>,
    /// The allocations and releases in order: (allocation, is a release).
    events: Vec<(usize, bool)>,
}

impl Placement for Lifetimes {
    fn alloc(&mut self, len: usize) -> usize {
        let k = self.allocs.len();
        self.allocs.push((len, self.events.len(), usize::MAX));
        self.events.push((k, false));
        k
    }

    fn release(&mut self, k: usize, _: usize) {
        if let Some(a) = self.allocs.get_mut(k) {
            a.2 = self.events.len();
            self.events.push((k, true));
        }
    }

    fn size(&self) -> usize {
        0
    }
}

impl Lifetimes {
    /// Offsets for the recorded allocations: greedy by size (largest first, each at the
    /// lowest offset no overlapping lifetime uses), or first fit replayed in plan order
    /// when that gives the smaller arena.
    pub(super) fn place(&self) -> Placed {
        let by_size = self.greedy_by_size();
        let first_fit = self.first_fit();
        let arena = |offsets: &[usize]| {
            offsets
                .iter()
                .zip(&self.allocs)
                .map(|(o, a)| o + a.0)
                .max()
                .unwrap_or(0)
        };
        let (a, b) = (arena(&by_size), arena(&first_fit));
        let (offsets, size) = if a <= b { (by_size, a) } else { (first_fit, b) };
        Placed {
            offsets,
            next: 0,
            size,
        }
    }

    pub(super) fn greedy_by_size(&self) -> Vec<usize> {
        let a = &self.allocs;
        let mut order: Vec<usize> = (0..a.len()).collect();
        order.sort_by(|&i, &j| a[j].0.cmp(&a[i].0).then(a[i].1.cmp(&a[j].1)));
        let mut offsets = vec![0; a.len()];
        let mut placed: Vec<usize> = Vec::new();
        for &i in &order {
            let (len, start, end) = a[i];
            let mut busy: Vec<(usize, usize)> = placed
                .iter()
                .filter(|&&j| a[j].1 < end && start < a[j].2)
                .map(|&j| (offsets[j], offsets[j] + a[j].0))
                .collect();
            busy.sort_unstable();
            let mut offset = 0;
            for (lo, hi) in busy {
                if lo >= offset + len {
                    break;
                }
                offset = offset.max(hi);
            }
            offsets[i] = offset;
            placed.push(i);
        }
        offsets
    }

    pub(super) fn first_fit(&self) -> Vec<usize> {
        let mut free = FreeList::default();
        let mut offsets = vec![0; self.allocs.len()];
        for &(k, is_release) in &self.events {
            let len = self.allocs[k].0;
            if is_release {
                free.release(offsets[k], len);
            } else {
                offsets[k] = free.alloc(len);
            }
        }
        offsets
    }
}

/// Offsets decided beforehand, handed out in allocation order.
pub(super) struct Placed {
    offsets: Vec<usize>,
    next: usize,
    size: usize,
}

impl Placement for Placed {
    fn alloc(&mut self, _: usize) -> usize {
        let offset = self.offsets.get(self.next).copied().unwrap_or(self.size);
        self.next += 1;
        offset
    }

    fn release(&mut self, _: usize, _: usize) {}

    fn size(&self) -> usize {
        self.size
    }
}

/// First-fit allocator over one arena, merging neighbours on release.
#[derive(Default)]
struct FreeList {
    /// Free (offset, len) ranges, sorted by offset.
    holes: Vec<(usize, usize)>,
    high_water: usize,
}

impl FreeList {
    fn alloc(&mut self, len: usize) -> usize {
        if let Some(i) = self.holes.iter().position(|&(_, l)| l >= len) {
            let (off, l) = self.holes[i];
            if l == len {
                self.holes.remove(i);
            } else {
                self.holes[i] = (off + len, l - len);
            }
            return off;
        }
        // Grow, absorbing a hole that ends at the high-water mark.
        if let Some(&(off, l)) = self.holes.last() {
            if off + l == self.high_water {
                self.holes.pop();
                self.high_water = off + len;
                return off;
            }
        }
        let off = self.high_water;
        self.high_water += len;
        off
    }

    fn release(&mut self, offset: usize, len: usize) {
        let i = self.holes.partition_point(|&(o, _)| o < offset);
        self.holes.insert(i, (offset, len));
        // Merge with the right neighbour, then the left.
        if i + 1 < self.holes.len() && self.holes[i].0 + self.holes[i].1 == self.holes[i + 1].0 {
            self.holes[i].1 += self.holes[i + 1].1;
            self.holes.remove(i + 1);
        }
        if i > 0 && self.holes[i - 1].0 + self.holes[i - 1].1 == self.holes[i].0 {
            self.holes[i - 1].1 += self.holes[i].1;
            self.holes.remove(i);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn free_list_reuses_and_merges() {
        let mut f = FreeList::default();
        let a = f.alloc(64);
        let b = f.alloc(128);
        let c = f.alloc(64);
        assert_eq!((a, b, c), (0, 64, 192));
        f.release(a, 64);
        f.release(b, 128);
        assert_eq!(f.holes, vec![(0, 192)]);
        assert_eq!(f.alloc(192), 0);
        assert_eq!(f.high_water, 256);
    }

    /// Replays a sequence of allocations (len) and releases (index) through a recorder.
    fn record(events: &[(bool, usize)]) -> Lifetimes {
        let mut l = Lifetimes::default();
        for &(is_alloc, v) in events {
            if is_alloc {
                Placement::alloc(&mut l, v);
            } else {
                Placement::release(&mut l, v, 0);
            }
        }
        l
    }

    /// No two allocations alive at once share memory.
    pub(in crate::graph) fn assert_disjoint(l: &Lifetimes, offsets: &[usize]) {
        for (i, a) in l.allocs.iter().enumerate() {
            for (j, b) in l.allocs.iter().enumerate().skip(i + 1) {
                let live_together = a.1 < b.2 && b.1 < a.2;
                let overlap = offsets[i] < offsets[j] + b.0 && offsets[j] < offsets[i] + a.0;
                assert!(
                    !(live_together && overlap),
                    "allocations {i} and {j} collide"
                );
            }
        }
    }

    #[test]
    fn largest_first_placement_packs_what_first_fit_fragments() {
        // 64 and 128 live; the 64 dies; 192 arrives while 128 lives; first fit (in plan
        // order) puts it past the 128, largest first puts the 192 lowest.
        let l = record(&[
            (true, 64),
            (true, 128),
            (false, 0),
            (true, 192),
            (false, 1),
            (true, 64),
            (false, 2),
            (false, 3),
        ]);
        let arena = |offsets: &[usize]| {
            offsets
                .iter()
                .zip(&l.allocs)
                .map(|(o, a)| o + a.0)
                .max()
                .unwrap()
        };
        let (greedy, first) = (l.greedy_by_size(), l.first_fit());
        assert_disjoint(&l, &greedy);
        assert_disjoint(&l, &first);
        assert_eq!(arena(&first), 384);
        assert_eq!(arena(&greedy), 320);
        let placed = l.place();
        assert_eq!((placed.size, placed.offsets), (320, greedy));
    }
}
