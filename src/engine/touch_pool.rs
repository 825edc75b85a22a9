//! Every account's touches, in blocks of size classes carved from shared pages.
//!
//! Issue #2 counts memory per account and per touch. A `Vec<Touch>` per account cost a
//! 24-byte record, a malloc chunk header per account and, growing by half, about a sixth of
//! its room idle. Here an account's touches are one block in the class its length picks; a
//! full block moves to the next class and leaves its slot to the next account that grows into
//! that class. Classes hold 1 to 8 touches exactly, then grow by about a quarter; blocks have
//! no headers, and an account's record is a [`Block`] of 8 bytes. At the end of the 1 M
//! event replay (issue #2) the pages hold 7 % more room than the touches take.
//!
//! A block's class follows from its length alone (the smallest class that holds it), so the
//! record needs no class, and the block is full exactly when its length is its class's size.

use crate::funnel::Touch;

/// Where an account's touches are: a slot of the class its length picks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Block {
    slot: u32,
    len: u32,
}

impl Block {
    pub fn len(self) -> usize {
        self.len as usize
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// Classes: 1 to 8 touches, then about a quarter more each, past `u32::MAX`.
const CLASSES: usize = 100;
const SIZES: [u64; CLASSES] = sizes();

const fn sizes() -> [u64; CLASSES] {
    let mut sizes = [0; CLASSES];
    let (mut c, mut size) = (0, 1u64);
    while c < CLASSES {
        sizes[c] = size;
        size = if size < 8 {
            size + 1
        } else {
            size + size.div_ceil(4)
        };
        c += 1;
    }
    assert!(sizes[CLASSES - 1] > u32::MAX as u64);
    sizes
}

/// The class of a block of `len` touches for lengths up to this, read from a table: every
/// access to a block finds its class, and nearly all accounts are this short.
const TABLE_LEN: usize = 512;
const CLASS_OF: [u8; TABLE_LEN + 1] = class_table();

const fn class_table() -> [u8; TABLE_LEN + 1] {
    let mut table = [0; TABLE_LEN + 1];
    let (mut len, mut c) = (1, 0);
    while len <= TABLE_LEN {
        if SIZES[c] < len as u64 {
            c += 1;
        }
        table[len] = c as u8;
        len += 1;
    }
    table
}

/// The smallest class that holds `len` touches (class 0 for none).
#[inline]
fn class_of(len: usize) -> usize {
    match CLASS_OF.get(len) {
        Some(&c) => c as usize,
        None => SIZES.partition_point(|&size| size < len as u64),
    }
}

/// Touches per page, about: small enough that the part of each class's last page not yet
/// handed out stays small, large enough that pages are few. 16 KiB of touches when they took
/// 24 bytes: kept when they shrank to 22, because more blocks to a page of some classes (22
/// and 44 touches) left more of it idle after a burst (the test below).
const PAGE_TOUCHES: u64 = 16 * 1024 / 24;

#[derive(Debug)]
struct Class {
    size: usize,
    /// A page holds `1 << shift` blocks; 0 for blocks of a page or more, each its own page.
    shift: u32,
    /// Empty for a page whose blocks were all handed back: its memory went back with them.
    pages: Vec<Box<[Touch]>>,
    /// Blocks in use per page, and in all.
    live: Vec<u32>,
    in_use: u32,
    /// Pages with memory.
    held: u32,
    /// Slots from here on were never handed out.
    fresh: u32,
    /// Slots handed back, the last one first to be taken again.
    free: Vec<u32>,
}

impl Class {
    fn new(c: usize, page_touches: u64) -> Class {
        let size = SIZES[c];
        let blocks = (page_touches / size).max(1);
        Class {
            size: size as usize,
            shift: blocks.ilog2(),
            pages: Vec::new(),
            live: Vec::new(),
            in_use: 0,
            held: 0,
            fresh: 0,
            free: Vec::new(),
        }
    }

    #[inline]
    fn range(&self, slot: u32, len: usize) -> (usize, std::ops::Range<usize>) {
        let page = (slot >> self.shift) as usize;
        let start = (slot & ((1 << self.shift) - 1)) as usize * self.size;
        (page, start..start + len)
    }

    fn block(&self, slot: u32, len: usize) -> &[Touch] {
        let (page, range) = self.range(slot, len);
        &self.pages[page][range]
    }

    fn block_mut(&mut self, slot: u32, len: usize) -> &mut [Touch] {
        let (page, range) = self.range(slot, len);
        &mut self.pages[page][range]
    }

    fn new_page(&self) -> Box<[Touch]> {
        vec![Touch::default(); self.size << self.shift].into_boxed_slice()
    }

    fn alloc(&mut self) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.fresh;
                self.fresh = slot
                    .checked_add(1)
                    .expect("fewer than 2³² blocks of a class");
                if (slot >> self.shift) as usize == self.pages.len() {
                    self.pages.push(Box::default());
                    self.live.push(0);
                }
                slot
            }
        };
        let page = (slot >> self.shift) as usize;
        if self.pages[page].is_empty() {
            self.pages[page] = self.new_page();
            self.held += 1;
        }
        self.live[page] += 1;
        self.in_use += 1;
        slot
    }

    /// Hands a slot back; a page with no block left in use gives its memory back.
    fn release(&mut self, slot: u32) {
        let page = (slot >> self.shift) as usize;
        self.live[page] -= 1;
        self.in_use -= 1;
        if self.live[page] == 0 {
            self.pages[page] = Box::default();
            self.held -= 1;
        }
        self.free.push(slot);
    }

    /// Idle room of half the room in use, and of a few pages: accounts that outgrew this
    /// class together (a burst of imports) left pages that the few that stayed behind keep
    /// from going back.
    fn untidy(&self) -> bool {
        let idle = (self.held << self.shift) - self.in_use;
        2 * idle > self.in_use && idle > 4 << self.shift
    }

    fn heap_bytes(&self) -> usize {
        let touches: usize = self.pages.iter().map(|page| page.len()).sum();
        touches * size_of::<Touch>()
            + self.pages.capacity() * size_of::<Box<[Touch]>>()
            + self.live.capacity() * size_of::<u32>()
            + self.free.capacity() * size_of::<u32>()
    }
}

#[derive(Debug)]
pub struct TouchPool {
    /// Made as they are first needed.
    classes: Vec<Class>,
    /// A class to compact (see [`TouchPool::untidy`]).
    untidy: Option<usize>,
    /// [`PAGE_TOUCHES`], lowered by tests so that few touches span many pages.
    page_touches: u64,
}

impl Default for TouchPool {
    fn default() -> Self {
        TouchPool {
            classes: Vec::new(),
            untidy: None,
            page_touches: PAGE_TOUCHES,
        }
    }
}

impl TouchPool {
    #[inline]
    pub fn get(&self, block: Block) -> &[Touch] {
        match block.len() {
            0 => &[],
            len => self.classes[class_of(len)].block(block.slot, len),
        }
    }

    #[inline]
    pub fn get_mut(&mut self, block: Block) -> &mut [Touch] {
        match block.len() {
            0 => &mut [],
            len => self.classes[class_of(len)].block_mut(block.slot, len),
        }
    }

    /// Inserts `touch` at `at` (at most the length), moving the block to the next class
    /// when it is full.
    #[inline]
    pub fn insert(&mut self, block: &mut Block, at: usize, touch: Touch) {
        let len = block.len();
        assert!(at <= len, "inserting touch {at} of {len}");
        let grown = class_of(len + 1);
        if len == 0 || grown != class_of(len) {
            self.move_to(block, grown);
        }
        let touches = self.classes[grown].block_mut(block.slot, len + 1);
        if at < len {
            touches.copy_within(at..len, at + 1);
        }
        touches[at] = touch;
        block.len += 1;
    }

    /// Gives `block` a slot of class `c`, with its touches, handing its old slot back.
    #[inline(never)]
    fn move_to(&mut self, block: &mut Block, c: usize) {
        let slot = self.class(c).alloc();
        let len = block.len();
        if len > 0 {
            let (below, above) = self.classes.split_at_mut(c);
            let old = &mut below[c - 1];
            above[0]
                .block_mut(slot, len)
                .copy_from_slice(old.block(block.slot, len));
            old.release(block.slot);
            if old.untidy() {
                self.untidy = Some(c - 1);
            }
        }
        block.slot = slot;
    }

    /// A block holding `touches` (for loading a snapshot).
    pub fn alloc_copy(&mut self, touches: &[Touch]) -> Block {
        let len = u32::try_from(touches.len()).expect("fewer than 2³² touches per account");
        if len == 0 {
            return Block::default();
        }
        let class = self.class(class_of(touches.len()));
        let slot = class.alloc();
        class
            .block_mut(slot, touches.len())
            .copy_from_slice(touches);
        Block { slot, len }
    }

    /// A class whose idle room should be taken back by [`TouchPool::compact`]: the pool does
    /// not know which account holds which block, its owner does.
    pub fn untidy(&self) -> Option<usize> {
        self.untidy
    }

    /// Moves the blocks of class `c` to as few pages as hold them; `blocks` are all the
    /// pool's blocks (those of other classes are left as they are).
    pub fn compact<'a>(&mut self, c: usize, blocks: impl Iterator<Item = &'a mut Block>) {
        let mut tidy = Class::new(c, self.page_touches);
        let old = &self.classes[c];
        for block in blocks.filter(|b| !b.is_empty() && class_of(b.len()) == c) {
            let slot = tidy.alloc();
            tidy.block_mut(slot, block.len())
                .copy_from_slice(old.block(block.slot, block.len()));
            block.slot = slot;
        }
        self.classes[c] = tidy;
        self.untidy = None;
    }

    fn class(&mut self, c: usize) -> &mut Class {
        while self.classes.len() <= c {
            self.classes
                .push(Class::new(self.classes.len(), self.page_touches));
        }
        &mut self.classes[c]
    }

    pub fn heap_bytes(&self) -> usize {
        self.classes.iter().map(Class::heap_bytes).sum::<usize>()
            + self.classes.capacity() * size_of::<Class>()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::engine::TouchId;

    fn touch(n: u64) -> Touch {
        Touch::new(
            n as i64,
            TouchId::Hex16(n),
            (n % (1 << Touch::KIND_BITS)) as u16,
            n.is_multiple_of(2),
            n as u16,
        )
    }

    #[test]
    fn classes_grow_by_a_quarter_and_the_table_agrees_with_the_search() {
        assert_eq!(&SIZES[..12], &[1, 2, 3, 4, 5, 6, 7, 8, 10, 13, 17, 22]);
        for len in 1..=4 * TABLE_LEN {
            let c = class_of(len);
            assert_eq!(c, SIZES.partition_point(|&size| size < len as u64), "{len}");
            assert!(SIZES[c] >= len as u64 && (c == 0 || SIZES[c - 1] < len as u64));
        }
    }

    #[test]
    fn blocks_keep_their_touches_in_order_through_moves_and_reused_slots() {
        // Many accounts grown in an interleaved order, inserting at the front, the back and
        // the middle, so blocks move class by class, across pages, into slots others left.
        let mut pool = TouchPool::default();
        let mut blocks = vec![Block::default(); 300];
        let mut expected: Vec<Vec<Touch>> = vec![Vec::new(); 300];
        let mut n = 0u64;
        for round in 0..3000usize {
            for a in (0..blocks.len()).filter(|a| (a * 7 + round) % (a % 13 + 1) == 0) {
                let len = expected[a].len();
                let at = [len, 0, len / 2][(round + a) % 3];
                n += 1;
                pool.insert(&mut blocks[a], at, touch(n));
                expected[a].insert(at, touch(n));
            }
        }
        for (a, block) in blocks.iter().enumerate() {
            assert_eq!(pool.get(*block), &expected[a][..], "account {a}");
        }
        // Some accounts reached classes of a page per block, which give memory back.
        assert!(expected.iter().any(|t| t.len() as u64 > PAGE_TOUCHES));
        let copied: Vec<Block> = expected.iter().map(|t| pool.alloc_copy(t)).collect();
        for (a, block) in copied.iter().enumerate() {
            assert_eq!(pool.get(*block), &expected[a][..]);
            assert_eq!(pool.get(blocks[a]), &expected[a][..]);
        }
        pool.get_mut(copied[5])[0] = touch(0);
        assert_eq!(pool.get(copied[5])[0], touch(0));
        assert_eq!(pool.get(blocks[5]), &expected[5][..]);
    }

    #[test]
    fn accounts_that_outgrow_a_class_together_leave_no_idle_pages() {
        // 20 000 accounts grown a touch each per round, to 1 to 40 touches: each class's
        // blocks are handed back before any account needs that class again, except those of
        // the accounts that stopped there, scattered over every page. Without compaction
        // the pool holds five times the touches.
        let mut pool = TouchPool::default();
        let mut blocks = vec![Block::default(); 20_000];
        let (mut total, mut compactions) = (0, 0);
        for round in 0..40 {
            for a in 0..blocks.len() {
                if a % 40 >= round {
                    pool.insert(&mut blocks[a], round, touch((a * 40 + round) as u64));
                    total += 1;
                }
                if let Some(c) = pool.untidy() {
                    compactions += 1;
                    pool.compact(c, blocks.iter_mut());
                }
            }
        }
        let bytes = total * size_of::<Touch>();
        assert!(
            pool.heap_bytes() < bytes * 4 / 3,
            "{} for {bytes}",
            pool.heap_bytes()
        );
        assert!(compactions > 5, "{compactions}");
        for (a, &block) in blocks.iter().enumerate() {
            let expected: Vec<Touch> = (0..=a % 40).map(|r| touch((a * 40 + r) as u64)).collect();
            assert_eq!(pool.get(block), &expected[..], "account {a}");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Insert into account `.0` at `.1` per mille of its length.
        Insert(usize, u16),
        /// Compact the class of account `.0`'s block (whether untidy or not).
        Compact(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            20 => (0..24usize, 0..=1000u16).prop_map(|(a, at)| Op::Insert(a, at)),
            1 => (0..24usize).prop_map(Op::Compact),
        ]
    }

    proptest! {
        #[test]
        fn blocks_read_back_as_vectors_would(ops in prop::collection::vec(op(), 1..600)) {
            // Pages of 8 touches, so a few hundred touches cross many pages and classes of
            // a page per block.
            let mut pool = TouchPool { page_touches: 8, ..TouchPool::default() };
            let mut blocks = [Block::default(); 24];
            let mut model: Vec<Vec<Touch>> = vec![Vec::new(); 24];
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(a, per_mille) => {
                        let at = model[a].len() * usize::from(per_mille) / 1000;
                        pool.insert(&mut blocks[a], at, touch(n as u64));
                        model[a].insert(at, touch(n as u64));
                    }
                    Op::Compact(a) if !blocks[a].is_empty() => {
                        pool.compact(class_of(blocks[a].len()), blocks.iter_mut());
                    }
                    Op::Compact(_) => {}
                }
                if let Some(c) = pool.untidy() {
                    pool.compact(c, blocks.iter_mut());
                }
                for (a, &block) in blocks.iter().enumerate() {
                    prop_assert_eq!(pool.get(block), &model[a][..]);
                }
            }
        }
    }
}
