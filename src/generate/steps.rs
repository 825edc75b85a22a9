//! When each account takes its next step: a calendar queue with one bucket per day. Steps are
//! scheduled days to months ahead, so a bucket is sorted once when its day comes, instead of
//! every step paying a cache-missing sift through a heap of all accounts. Pops come in
//! `(time, account)` order, exactly as a binary heap would give them.

use super::clock::DAY;

pub(super) struct StepQueue {
    base_day: i64,
    /// The day being drained; -1 before the first.
    day: i64,
    /// That day's remaining steps, sorted descending (the next one is last).
    current: Vec<(i64, u32)>,
    /// Later days' steps, unsorted, indexed by day − `base_day`.
    buckets: Vec<Vec<(i64, u32)>>,
    len: usize,
}

impl StepQueue {
    pub(super) fn new(start: i64) -> StepQueue {
        StepQueue {
            base_day: start.div_euclid(DAY),
            day: -1,
            current: Vec::new(),
            buckets: Vec::new(),
            len: 0,
        }
    }

    pub(super) fn push(&mut self, t: i64, account: u32) {
        let day = (t.div_euclid(DAY) - self.base_day).max(0);
        let key = (t, account);
        if day <= self.day {
            let at = self.current.partition_point(|&x| x > key);
            self.current.insert(at, key);
        } else {
            let day = day as usize;
            if self.buckets.len() <= day {
                self.buckets.resize_with(day + 1, Vec::new);
            }
            self.buckets[day].push(key);
        }
        self.len += 1;
    }

    /// The time of the next step.
    pub(super) fn peek(&mut self) -> Option<i64> {
        if self.len == 0 {
            return None;
        }
        while self.current.is_empty() {
            self.day += 1;
            // Taking (not swapping) the bucket lets past days' memory go.
            self.current = std::mem::take(&mut self.buckets[self.day as usize]);
            self.current.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.current.last().map(|&(t, _)| t)
    }

    pub(super) fn pop(&mut self) -> Option<(i64, u32)> {
        self.peek()?;
        self.len -= 1;
        self.current.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::rng::Rng;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    #[test]
    fn pops_in_the_same_order_as_a_heap() {
        let mut rng = Rng::new(3);
        let mut queue = StepQueue::new(0);
        let mut heap = BinaryHeap::new();
        let mut now = 0;
        for round in 0..20_000u32 {
            let pushes = if round < 100 { 5 } else { 1 };
            for _ in 0..pushes {
                let t = now + rng.between(0, 30 * DAY);
                let account = rng.below(50) as u32;
                queue.push(t, account);
                heap.push(Reverse((t, account)));
            }
            let got = queue.pop();
            assert_eq!(got, heap.pop().map(|r| r.0));
            now = got.map_or(now, |(t, _)| t);
        }
        while let Some(Reverse(x)) = heap.pop() {
            assert_eq!(queue.pop(), Some(x));
        }
        assert_eq!(queue.pop(), None);
    }
}
