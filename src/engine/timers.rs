//! A min-queue of deadlines that is cheap when deadlines arrive mostly in order.
//!
//! Waiting touches expire at `occurred_at + pending_ttl` and accounts are re-checked at their
//! journeys' deadlines; both are pushed roughly in event-time order because most traffic
//! arrives near real time. In-order pushes go to the back of a deque (O(1)). The others
//! (late offline imports, and account deadlines, whose windows differ by stage) go to sorted
//! runs, merged like a log-structured tree: a push merges the newest runs while the one
//! below is not twice as long, so there are about log₂ n runs and each item is moved about
//! log₂ n times, always in memory order and in place (from the back). Popping takes the
//! smallest of the deque's front and the runs' ends.
//!
//! Profiles showed a plain `BinaryHeap` costing ~9 % of replay time; then, with only the
//! out-of-order half in a heap, still ~6 %: half the pushes of a replay are out of order and
//! the heap holds 100 000 of them, so each pop walked 17 levels of a 2 MB array, a cache
//! miss per level. Runs are read and written sequentially.
//!
//! The smallest item is also kept aside, because the engine asks "is anything due?" a few
//! times per event and the answer is almost always no.

use std::collections::VecDeque;

use super::SnapshotError;
use crate::codec::{Reader, Writer};

/// More runs than this are merged into one (pops can shrink old runs below the sizes that
/// keep their number logarithmic).
const MAX_RUNS: usize = 32;

/// Out-of-order pushes go into the newest run in place while it is shorter than this.
const SHORT_RUN: usize = 16;

#[derive(Debug)]
pub struct TimerQueue<T: Ord + Copy> {
    in_order: VecDeque<T>,
    /// Out-of-order items in runs sorted descending (each run's smallest item is last), the
    /// longest first. Never an empty run.
    runs: Vec<Vec<T>>,
    /// The smallest item of all, `None` when empty.
    min: Option<T>,
}

impl<T: Ord + Copy> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            in_order: VecDeque::new(),
            runs: Vec::new(),
            min: None,
        }
    }
}

impl<T: Ord + Copy> TimerQueue<T> {
    pub fn push(&mut self, item: T) {
        match self.in_order.back() {
            Some(last) if item < *last => self.push_run(item),
            _ => self.in_order.push_back(item),
        }
        self.min = Some(self.min.map_or(item, |m| m.min(item)));
    }

    fn push_run(&mut self, item: T) {
        match self.runs.last_mut() {
            // Short runs take the item in place: no allocation per out-of-order push.
            Some(run) if run.len() < SHORT_RUN => {
                let at = run.partition_point(|&x| x > item);
                run.insert(at, item);
            }
            _ => {
                let mut run = Vec::with_capacity(SHORT_RUN);
                run.push(item);
                self.runs.push(run);
            }
        }
        loop {
            let n = self.runs.len();
            let merge = n >= 2 && self.runs[n - 2].len() <= 2 * self.runs[n - 1].len();
            if !merge && n <= MAX_RUNS {
                return;
            }
            let mut top = self.runs.pop().expect("two runs or more");
            let below = self.runs.last_mut().expect("two runs or more");
            if below.capacity() < top.capacity() {
                std::mem::swap(below, &mut top);
            }
            merge_into(below, &top);
        }
    }

    /// The smallest item.
    #[inline]
    pub fn peek(&self) -> Option<T> {
        self.min
    }

    /// The run whose end is the smallest, with that end, and the smallest end of the other
    /// runs: one scan answers both which run to pop and what is smallest after the pop.
    fn smallest_runs(&self) -> (Option<(usize, T)>, Option<T>) {
        let (mut best, mut second): (Option<(usize, T)>, Option<T>) = (None, None);
        for (i, run) in self.runs.iter().enumerate() {
            let end = *run.last().expect("runs are never empty");
            match best {
                Some((_, b)) if end >= b => second = smaller(second, Some(end)),
                _ => {
                    second = best.map(|(_, b)| b);
                    best = Some((i, end));
                }
            }
        }
        (best, second)
    }

    /// Removes and returns the smallest item.
    pub fn pop(&mut self) -> Option<T> {
        let (run, other_runs) = self.smallest_runs();
        let (item, runs_min) = match (self.in_order.front(), run) {
            (Some(&a), Some((_, b))) if a <= b => (self.in_order.pop_front(), Some(b)),
            (_, Some((i, _))) => {
                let run = &mut self.runs[i];
                let item = run.pop();
                let end = run.last().copied();
                if run.is_empty() {
                    self.runs.remove(i);
                } else if run.len() < run.capacity() / 4 && run.capacity() > 4 * SHORT_RUN {
                    // A run popped down to a quarter gives back its room: merged runs
                    // otherwise keep the largest size they ever had, and all of them
                    // together hold more than the queue ever did.
                    run.shrink_to(2 * run.len());
                }
                (item, smaller(end, other_runs))
            }
            (_, None) => (self.in_order.pop_front(), None),
        };
        self.min = smaller(self.in_order.front().copied(), runs_min);
        item
    }

    pub fn heap_bytes(&self) -> usize {
        let runs: usize = self.runs.iter().map(Vec::capacity).sum();
        (self.in_order.capacity() + runs) * size_of::<T>()
    }

    /// Saves the items in order, each with `item` (at least `item_bytes` bytes): how they are
    /// split between the deque and the runs is not state, since pops come out in order
    /// either way. The deque is sorted already, so only the runs' items are sorted and
    /// merged in.
    pub fn save(&self, w: &mut Writer<'_>, item_bytes: usize, item: impl Fn(&mut Writer<'_>, T)) {
        let mut late: Vec<T> = self.runs.iter().flatten().copied().collect();
        late.sort_unstable();
        let n = self.in_order.len() + late.len();
        w.reserve(8 + n * item_bytes);
        w.len(n);
        let mut late = late.into_iter().peekable();
        for &t in &self.in_order {
            while let Some(l) = late.next_if(|&l| l < t) {
                item(w, l);
            }
            item(w, t);
        }
        for l in late {
            item(w, l);
        }
    }

    /// Loads what [`TimerQueue::save`] wrote, reading each item with `item`.
    pub fn load(
        r: &mut Reader<'_>,
        item_bytes: usize,
        mut item: impl FnMut(&mut Reader<'_>) -> Result<T, SnapshotError>,
    ) -> Result<TimerQueue<T>, SnapshotError> {
        let n = r.len(item_bytes)?;
        let mut queue = TimerQueue {
            in_order: VecDeque::with_capacity(n),
            ..TimerQueue::default()
        };
        for _ in 0..n {
            queue.push(item(r)?);
        }
        Ok(queue)
    }
}

/// Merges `from` into `into`, both sorted descending, in place: from the back, so each write
/// lands past every item of `into` not yet read, and no second buffer is needed.
fn merge_into<T: Ord + Copy>(into: &mut Vec<T>, from: &[T]) {
    let (Some(&filler), mut j) = (from.first(), from.len()) else {
        return;
    };
    let mut i = into.len();
    // Exactly: doubling would leave each run up to half empty, and there are many runs.
    into.reserve_exact(j);
    into.resize(i + j, filler);
    while j > 0 {
        let w = i + j - 1;
        if i > 0 && into[i - 1] < from[j - 1] {
            into[w] = into[i - 1];
            i -= 1;
        } else {
            into[w] = from[j - 1];
            j -= 1;
        }
    }
}

/// The smaller of two items that may be absent.
fn smaller<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    proptest! {
        #[test]
        fn pops_in_the_same_order_as_a_binary_heap(ops in prop::collection::vec(prop::option::of(0u32..1000), 0..300)) {
            let mut queue = TimerQueue::default();
            let mut heap = BinaryHeap::new();
            for op in ops {
                match op {
                    Some(v) => {
                        queue.push(v);
                        heap.push(Reverse(v));
                    }
                    None => prop_assert_eq!(queue.pop(), heap.pop().map(|Reverse(v)| v)),
                }
                prop_assert_eq!(queue.peek(), heap.peek().map(|&Reverse(v)| v));
            }
        }

        #[test]
        fn long_interleavings_pop_like_a_binary_heap(seed in any::<u64>(), pops in 1u64..4) {
            // Thousands of out-of-order pushes: runs merge, shrink under pops and are merged
            // again.
            let (mut queue, mut heap, mut state) = (TimerQueue::default(), BinaryHeap::new(), seed | 1);
            for i in 0..20_000u64 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if state % (pops + 1) == 0 {
                    prop_assert_eq!(queue.pop(), heap.pop().map(|Reverse(v)| v));
                } else {
                    let v = (i / 4 + state % 5000, (state >> 20) as u32);
                    queue.push(v);
                    heap.push(Reverse(v));
                }
                prop_assert_eq!(queue.peek(), heap.peek().map(|&Reverse(v)| v));
                prop_assert!(queue.runs.len() <= MAX_RUNS);
            }
            while let Some(Reverse(v)) = heap.pop() {
                prop_assert_eq!(queue.pop(), Some(v));
            }
            prop_assert_eq!(queue.pop(), None);
        }

        #[test]
        fn a_loaded_queue_pops_like_the_saved_one(ops in prop::collection::vec(prop::option::of(0u32..1000), 0..300)) {
            let mut queue = TimerQueue::default();
            for op in ops {
                match op {
                    Some(v) => queue.push(v),
                    None => _ = queue.pop(),
                }
            }
            let mut bytes = Vec::new();
            queue.save(&mut Writer::new(&mut bytes), 4, |w, v| w.u32(v));
            let mut r = Reader::new(&bytes);
            let mut saved = Vec::new();
            let mut loaded = TimerQueue::load(&mut r, 4, |r| {
                saved.push(r.u32()?);
                Ok(*saved.last().unwrap())
            })
            .unwrap();
            r.finish().unwrap();
            prop_assert!(saved.is_sorted(), "saved in order, so equal queues save equal bytes");
            prop_assert_eq!(loaded.peek(), queue.peek());
            while let Some(v) = queue.pop() {
                prop_assert_eq!(loaded.pop(), Some(v));
            }
            prop_assert_eq!(loaded.pop(), None);
        }
    }
}
