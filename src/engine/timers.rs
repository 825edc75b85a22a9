//! A min-queue of deadlines that is cheap when deadlines arrive mostly in order.
//!
//! Waiting touches expire at `occurred_at + pending_ttl` and accounts are re-checked at their
//! journeys' deadlines; both are pushed roughly in event-time order because most traffic
//! arrives near real time. In-order pushes go to the back of a deque (O(1)); the few out of
//! order (late offline imports) go to a binary heap. Popping takes the smaller of the two
//! fronts. Profiles showed a plain `BinaryHeap` costing ~9 % of replay time.
//!
//! The smallest item is also kept aside, because the engine asks "is anything due?" a few
//! times per event and the answer is almost always no.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::SnapshotError;
use crate::codec::{Reader, Writer};

#[derive(Debug)]
pub struct TimerQueue<T: Ord + Copy> {
    in_order: VecDeque<T>,
    out_of_order: BinaryHeap<Reverse<T>>,
    /// The smallest item of both, `None` when empty.
    min: Option<T>,
}

impl<T: Ord + Copy> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            in_order: VecDeque::new(),
            out_of_order: BinaryHeap::new(),
            min: None,
        }
    }
}

impl<T: Ord + Copy> TimerQueue<T> {
    pub fn push(&mut self, item: T) {
        match self.in_order.back() {
            Some(last) if item < *last => self.out_of_order.push(Reverse(item)),
            _ => self.in_order.push_back(item),
        }
        self.min = Some(self.min.map_or(item, |m| m.min(item)));
    }

    /// The smallest item.
    #[inline]
    pub fn peek(&self) -> Option<T> {
        self.min
    }

    fn fronts_min(&self) -> Option<T> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(&a), Some(&Reverse(b))) => Some(a.min(b)),
            (Some(&a), None) => Some(a),
            (None, Some(&Reverse(b))) => Some(b),
            (None, None) => None,
        }
    }

    /// Removes and returns the smallest item.
    pub fn pop(&mut self) -> Option<T> {
        let take_deque = match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => a <= b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let item = if take_deque {
            self.in_order.pop_front()
        } else {
            self.out_of_order.pop().map(|Reverse(b)| b)
        };
        self.min = self.fronts_min();
        item
    }

    pub fn heap_bytes(&self) -> usize {
        (self.in_order.capacity() + self.out_of_order.capacity()) * size_of::<T>()
    }

    /// Saves the items in order, each with `item` (at least `item_bytes` bytes): how they are
    /// split between the deque and the heap is not state, since pops come out in order
    /// either way. The deque is sorted already, so only the heap's few items are sorted and
    /// merged in.
    pub fn save(&self, w: &mut Writer<'_>, item_bytes: usize, item: impl Fn(&mut Writer<'_>, T)) {
        let mut late: Vec<T> = self.out_of_order.iter().map(|&Reverse(t)| t).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
