//! Rendered lines waiting for their arrival time. The heap orders small keys (arrival, then
//! creation order, so ties stay deterministic); lines live in reusable slots, so steady-state
//! generation neither moves nor allocates lines.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::LineKind;

pub(super) struct Slot {
    pub line: Vec<u8>,
    pub kind: LineKind,
}

#[derive(Default)]
pub(super) struct Arrivals {
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    seq: u64,
}

impl Arrivals {
    /// A free slot with an empty line to render into; [`Arrivals::push`] queues it.
    pub(super) fn take_slot(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].line.clear();
                i
            }
            None => {
                self.slots.push(Slot {
                    line: Vec::with_capacity(256),
                    kind: LineKind::Duplicate { exact: true },
                });
                (self.slots.len() - 1) as u32
            }
        }
    }

    pub(super) fn line_mut(&mut self, slot: u32) -> &mut Vec<u8> {
        &mut self.slots[slot as usize].line
    }

    /// A new slot holding a copy of `slot`'s line.
    pub(super) fn copy_slot(&mut self, slot: u32) -> u32 {
        let copy = self.take_slot();
        let line = std::mem::take(&mut self.slots[slot as usize].line);
        self.slots[copy as usize].line.clone_from(&line);
        self.slots[slot as usize].line = line;
        copy
    }

    pub(super) fn push(&mut self, arrival: i64, slot: u32, kind: LineKind) {
        self.seq += 1;
        self.slots[slot as usize].kind = kind;
        self.heap.push(Reverse((arrival, self.seq, slot)));
    }

    pub(super) fn next_arrival(&self) -> Option<i64> {
        self.heap.peek().map(|r| r.0.0)
    }

    /// The earliest line: its arrival time and slot, to read with [`Arrivals::get`] and then
    /// [`Arrivals::release`].
    pub(super) fn pop(&mut self) -> Option<(i64, u32)> {
        self.heap
            .pop()
            .map(|Reverse((arrival, _, slot))| (arrival, slot))
    }

    pub(super) fn get(&self, slot: u32) -> &Slot {
        &self.slots[slot as usize]
    }

    pub(super) fn release(&mut self, slot: u32) {
        self.free.push(slot);
    }
}
