//! Accounts and their ordered touches, and the bookkeeping that keeps the funnel counters
//! equal to "every journey of every account, decided at the current watermark".
//!
//! The invariant: `stats` always equals the sum over accounts of their journeys' contributions
//! at the current watermark. A new touch changes only the journey it lands in and the ones
//! after it (earlier journeys already have a later journey, so their outcomes are final), so
//! an insert takes back the contribution of that suffix, inserts, and adds it again. The
//! passing of time changes only an account's last journey per funnel, at a deadline the
//! account registers in a timer queue.
//!
//! An append (the common case) walks the last journey once and extends it with one push.
//! Walking a long journey on every touch would still be quadratic for an account with
//! constant traffic, so the last journey of a funnel is kept, computed, once it has
//! [`LONG_JOURNEY`] touches: an append then costs the same however long the journey is.

use std::cmp::Ordering;

use foldhash::fast::RandomState;
use hashbrown::HashMap;

use super::SnapshotError;
use super::changes::Changes;
use super::event_ids::EventIds;
use super::snapshot::TouchCheck;
use super::store::{Interner, StrArena};
use super::timers::TimerQueue;
use super::touch_pool::{Block, TouchPool};
use crate::codec::{Reader, Writer};
use crate::funnel::journey::{self, Journey};
use crate::funnel::stats::FunnelStats;
use crate::funnel::{Funnels, Touch};
use crate::time::Millis;

/// Journeys with this many touches keep their state between touches (see the module doc).
pub const LONG_JOURNEY: usize = 64;

/// A queued check of an account's journeys, ordered by deadline, then account: 12 bytes
/// where the tuple took 16 (the queue holds about one per account, issue #2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C, packed(4))]
struct Check {
    deadline: Millis,
    account: u32,
}
const _: () = assert!(size_of::<Check>() == 12);

#[derive(Debug, Default)]
struct Account {
    /// Its touches, in the pool.
    touches: Block,
    /// A timer for this account is queued at this watermark value (`Millis::MAX`: none).
    next_check: Millis,
}

/// What the account bookkeeping needs from the rest of the engine.
pub struct Context<'a> {
    pub funnels: &'a Funnels,
    /// Event ids that touches in accounts do not hold themselves, for the tie-break of
    /// SPEC §3.
    pub touch_ids: &'a EventIds,
    pub stats: &'a mut [FunnelStats],
    pub watermark: Millis,
}

#[derive(Debug)]
pub struct Accounts {
    names: Interner,
    accounts: Vec<Account>,
    pool: TouchPool,
    timers: TimerQueue<Check>,
    /// The last journey per (account, funnel), for journeys of [`LONG_JOURNEY`] touches or more.
    long: HashMap<(u32, u32), Journey, RandomState>,
    /// The fewest touches an account had when a journey of it went into `long`. Touches are
    /// never removed, so an account with fewer has nothing there, and most appends skip the
    /// lookup.
    long_floor: usize,
    /// [`LONG_JOURNEY`], lowered by tests to take the cached path as often as possible.
    pub long_journey: usize,
    /// Accounts changed since the BI export last took them; `None` when the export is off.
    pub changes: Option<Changes>,
    /// The journey an append walks into, reused rather than built and moved per touch.
    scratch: Option<Journey>,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            names: Interner::default(),
            accounts: Vec::new(),
            pool: TouchPool::default(),
            timers: TimerQueue::default(),
            long: HashMap::default(),
            long_floor: usize::MAX,
            long_journey: LONG_JOURNEY,
            changes: None,
            scratch: None,
        }
    }
}

impl Accounts {
    pub fn intern(&mut self, arena: &mut StrArena, name: &[u8]) -> u32 {
        self.intern_hashed(arena, name, self.names.hash(name))
    }

    /// The hash [`Accounts::intern_hashed`] takes for `name`, with its table line prefetched.
    pub fn prefetch(&self, name: &[u8]) -> u64 {
        self.names.prefetch(name)
    }

    pub fn intern_hashed(&mut self, arena: &mut StrArena, name: &[u8], hash: u64) -> u32 {
        let (i, new) = self.names.intern_hashed(arena, name, hash);
        if new {
            self.accounts.push(Account {
                touches: Block::default(),
                next_check: Millis::MAX,
            });
        }
        i
    }

    #[cfg(test)]
    pub fn find(&self, arena: &StrArena, name: &[u8]) -> Option<u32> {
        self.names.get(arena, name)
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// The index the account with this name hash most likely has, with its name's arena
    /// position and its record prefetched (for warming caches: [`super::Engine::warm`]).
    pub fn warm_name(&self, hash: u64) -> Option<u32> {
        let i = self.names.warm(hash)?;
        crate::mem::prefetch(&self.accounts[i as usize]);
        Some(i)
    }

    /// Prefetches the bytes of the warmed account name `i`, whose position is in by now.
    pub fn warm_name_bytes(&self, arena: &StrArena, i: u32) {
        self.names.warm_bytes(arena, i);
    }

    pub fn prefetch_record(&self, account: u32) {
        crate::mem::prefetch(&self.accounts[account as usize]);
    }

    /// Prefetches the end of the account's touches, where a new touch usually goes.
    pub fn prefetch_touches(&self, account: u32) {
        let touches = self.pool.get(self.accounts[account as usize].touches);
        if let Some(last) = touches.last() {
            crate::mem::prefetch(last);
        }
    }

    /// The interner of account names (whose names live in the engine's arena).
    pub fn interner(&mut self) -> &mut Interner {
        &mut self.names
    }

    pub fn name(&self, arena: &StrArena, account: u32) -> String {
        self.names.name(arena, account)
    }

    pub fn touches_mut(&mut self, account: u32) -> &mut [Touch] {
        self.pool.get_mut(self.accounts[account as usize].touches)
    }

    #[cfg(test)]
    pub fn pool_bytes(&self) -> usize {
        self.pool.heap_bytes()
    }

    /// Journeys kept between touches.
    #[cfg(test)]
    pub fn long_count(&self) -> usize {
        self.long.len()
    }

    #[cfg(test)]
    pub fn touches(&self, account: u32) -> &[Touch] {
        self.pool.get(self.accounts[account as usize].touches)
    }

    /// Adds a touch to an account's journeys, keeping the counters exact.
    pub fn insert(&mut self, account: u32, touch: Touch, cx: &mut Context<'_>) {
        let touches = self.pool.get(self.accounts[account as usize].touches);
        let at = insert_position(touches, touch, cx.touch_ids);
        if let Some(changes) = &mut self.changes {
            changes.mark(account, at);
        }
        let deadline = if at > 0 && at == touches.len() {
            self.append(account, touch, cx)
        } else {
            self.insert_before_last(account, at, touch, cx)
        };
        self.arm(account, deadline);
        if let Some(class) = self.pool.untidy() {
            let blocks = self.accounts.iter_mut().map(|a| &mut a.touches);
            self.pool.compact(class, blocks);
        }
    }

    /// The common case: the touch sorts after every touch of the account, so only the last
    /// journey of each funnel changes (or is closed by a new one). Returns the account's
    /// next deadline.
    fn append(&mut self, account: u32, mut touch: Touch, cx: &mut Context<'_>) -> Millis {
        let block = &mut self.accounts[account as usize].touches;
        let touches = self.pool.get_mut(*block);
        let at = touches.len();
        let mut deadline = Millis::MAX;
        for f in 0..cx.funnels.len() {
            let key = (account, f as u32);
            let funnel = &cx.funnels.funnels[f];
            let stats = &mut cx.stats[f];
            let cached = if at >= self.long_floor {
                self.long.remove(&key)
            } else {
                None
            };
            let last = match cached {
                Some(last) => self.scratch.insert(last),
                None => {
                    let start = journey::journey_start(touches, at - 1, f);
                    let scratch = &mut self.scratch;
                    journey::walk_into(touches, start, f, cx.funnels, false, scratch, |_, _| {});
                    scratch.as_mut().expect("the account has touches")
                }
            };
            stats.add(last, funnel, cx.watermark, false, -1);
            if let Some(closed) = journey::append(last, &mut touch, at, f, cx.funnels) {
                stats.add(&closed, funnel, cx.watermark, true, 1);
            }
            stats.add(last, funnel, cx.watermark, false, 1);
            deadline = deadline.min(last.deadline(funnel, cx.watermark).unwrap_or(Millis::MAX));
            if last.touch_count() >= self.long_journey {
                self.long_floor = self.long_floor.min(at + 1);
                self.long.insert(key, last.clone());
            }
        }
        self.pool.insert(block, at, touch);
        deadline
    }

    /// A touch that lands before the last one (or the account's first): the journeys from the
    /// one it lands in onward are taken back, the touch inserted, and they are added again.
    /// Everything earlier is unaffected: those journeys already have a later journey.
    fn insert_before_last(
        &mut self,
        account: u32,
        at: usize,
        touch: Touch,
        cx: &mut Context<'_>,
    ) -> Millis {
        let block = &mut self.accounts[account as usize].touches;
        let touches = self.pool.get_mut(*block);
        let funnels = cx.funnels.len();
        let mut on_stack = [0usize; 8];
        let mut on_heap = Vec::new();
        let from: &mut [usize] = if funnels <= on_stack.len() {
            &mut on_stack[..funnels]
        } else {
            on_heap.resize(funnels, 0);
            &mut on_heap
        };
        for (f, from) in from.iter_mut().enumerate() {
            if at > 0 {
                *from = journey::journey_start(touches, at - 1, f);
            }
            let stats = &mut cx.stats[f];
            let funnel = &cx.funnels.funnels[f];
            journey::walk(touches, *from, f, cx.funnels, false, |j, later| {
                stats.add(j, funnel, cx.watermark, later, -1)
            });
        }
        self.pool.insert(block, at, touch);
        let touches = self.pool.get_mut(*block);
        let mut deadline = Millis::MAX;
        for (f, &from) in from.iter().enumerate() {
            let stats = &mut cx.stats[f];
            let funnel = &cx.funnels.funnels[f];
            let last = journey::walk(touches, from, f, cx.funnels, true, |j, later| {
                stats.add(j, funnel, cx.watermark, later, 1);
                if !later {
                    deadline =
                        deadline.min(j.deadline(funnel, cx.watermark).unwrap_or(Millis::MAX));
                }
            });
            match last {
                Some(j) if j.touch_count() >= self.long_journey => {
                    self.long_floor = self.long_floor.min(touches.len());
                    self.long.insert((account, f as u32), j);
                }
                _ if touches.len() >= self.long_floor => {
                    self.long.remove(&(account, f as u32));
                }
                _ => {}
            }
        }
        deadline
    }

    /// Queues a check of `account` at `deadline` unless an earlier one is queued already.
    fn arm(&mut self, account: u32, deadline: Millis) {
        let next = &mut self.accounts[account as usize].next_check;
        if deadline < *next {
            *next = deadline;
            self.timers.push(Check { deadline, account });
        }
    }

    /// Moves the counters from watermark `from` to watermark `to` (`to >= from`): every
    /// account whose last journeys have a deadline before `to` is decided again.
    pub fn advance(&mut self, from: Millis, to: Millis, cx: &mut Context<'_>) {
        while let Some(Check { deadline, account }) = self.timers.peek() {
            if to <= deadline {
                break;
            }
            self.timers.pop();
            let state = &mut self.accounts[account as usize];
            if state.next_check != deadline {
                continue; // superseded by an earlier timer that already ran
            }
            state.next_check = Millis::MAX;
            let touches = self.pool.get_mut(state.touches);
            if let Some(changes) = &mut self.changes {
                changes.mark(account, touches.len() - 1);
            }
            let mut next = Millis::MAX;
            for f in 0..cx.funnels.len() {
                let funnel = &cx.funnels.funnels[f];
                let stats = &mut cx.stats[f];
                let mut redo = |j: &Journey, later: bool| {
                    stats.add(j, funnel, from, later, -1);
                    stats.add(j, funnel, to, later, 1);
                    if !later {
                        next = next.min(j.deadline(funnel, to).unwrap_or(Millis::MAX));
                    }
                };
                let cached = if touches.len() >= self.long_floor {
                    self.long.get(&(account, f as u32))
                } else {
                    None
                };
                if let Some(last) = cached {
                    redo(last, false);
                } else {
                    let start = journey::journey_start(touches, touches.len() - 1, f);
                    journey::walk(touches, start, f, cx.funnels, false, redo);
                }
            }
            self.arm(account, next);
        }
    }

    /// Visits every journey of every account in funnel `f` (for recomputing from scratch).
    pub fn for_each_journey(
        &mut self,
        f: usize,
        funnels: &Funnels,
        mut visit: impl FnMut(u32, &Journey, bool),
    ) {
        for (i, account) in self.accounts.iter().enumerate() {
            journey::walk(
                self.pool.get_mut(account.touches),
                0,
                f,
                funnels,
                false,
                |j, later| visit(i as u32, j, later),
            );
        }
    }

    /// Visits the journeys of one account in funnel `f` with its touches (for the account view).
    pub fn journeys_of(
        &mut self,
        account: u32,
        f: usize,
        funnels: &Funnels,
        mut visit: impl FnMut(&[Touch], &Journey, bool),
    ) {
        let touches = self.pool.get_mut(self.accounts[account as usize].touches);
        let mut found = Vec::new();
        journey::walk(touches, 0, f, funnels, false, |j, later| {
            found.push((j.clone(), later))
        });
        for (j, later) in found {
            visit(touches, &j, later);
        }
    }

    pub fn lookup(&self, arena: &StrArena, name: &[u8]) -> Option<u32> {
        self.names.get(arena, name)
    }

    pub fn touch_count(&self) -> usize {
        self.accounts.iter().map(|a| a.touches.len()).sum()
    }

    /// Saves the names, each account's touches and pending check, the timers, the kept long
    /// journeys (sorted by key, so equal state saves to equal bytes) and the long-journey
    /// settings. The index of names is rebuilt on load.
    pub fn save(&self, w: &mut Writer<'_>) {
        self.names.save(w);
        let touches = self.touch_count();
        w.reserve(8 + 16 * self.accounts.len() + Touch::SAVED_BYTES * touches);
        w.len(self.accounts.len());
        for account in &self.accounts {
            w.i64(account.next_check);
            w.len(account.touches.len());
            for &touch in self.pool.get(account.touches) {
                touch.save(w);
            }
        }
        self.timers.save(w, 12, |w, Check { deadline, account }| {
            w.i64(deadline);
            w.u32(account);
        });
        let mut long: Vec<_> = self.long.iter().collect();
        long.sort_unstable_by_key(|&(&key, _)| key);
        w.len(long.len());
        for (&(account, f), journey) in long {
            w.u32(account);
            w.u32(f);
            journey.save(w);
        }
        w.u64(self.long_floor as u64);
        w.u64(self.long_journey as u64);
    }

    /// Loads what [`Accounts::save`] wrote, checking every index against the tables it points
    /// into.
    pub fn load(
        r: &mut Reader<'_>,
        arena: &StrArena,
        touch_ids: &EventIds,
        funnels: &Funnels,
        check: &TouchCheck<'_>,
    ) -> Result<Accounts, SnapshotError> {
        r.section("accounts");
        let names = Interner::load(r, arena)?;
        let n = r.len(16)?;
        if n != names.len() {
            return Err(r.corrupt(format_args!("{n} accounts for {} names", names.len())));
        }
        let mut accounts = Vec::with_capacity(n);
        let mut pool = TouchPool::default();
        let mut touches = Vec::new();
        for _ in 0..n {
            let next_check = r.i64()?;
            let k = r.len(Touch::SAVED_BYTES)?;
            touches.clear();
            for _ in 0..k {
                let touch = Touch::load(r)?;
                if !check.touch(touch, touch_ids) {
                    return Err(r.corrupt("a touch points outside the tables"));
                }
                touches.push(touch);
            }
            accounts.push(Account {
                touches: pool.alloc_copy(&touches),
                next_check,
            });
        }
        r.section("account timers");
        let timers = TimerQueue::load(r, 12, |r| {
            let deadline = r.i64()?;
            let account = r.u32()?;
            // Only an account with touches is ever checked.
            match accounts.get(account as usize) {
                Some(a) if !a.touches.is_empty() => Ok(Check { deadline, account }),
                _ => Err(r.corrupt(format_args!("timer for account {account}"))),
            }
        })?;
        r.section("long journeys");
        let k = r.len(8)?;
        let mut long = HashMap::with_capacity_and_hasher(k, RandomState::default());
        for _ in 0..k {
            let (account, f) = (r.u32()?, r.u32()?);
            let (Some(a), Some(funnel)) = (
                accounts.get(account as usize),
                funnels.funnels.get(f as usize),
            ) else {
                return Err(r.corrupt(format_args!("journey of account {account}, funnel {f}")));
            };
            let journey = Journey::load(r, a.touches.len(), funnel)?;
            if !journey.entered_dims[..journey.reached]
                .iter()
                .all(|&d| check.dims.valid(d))
            {
                return Err(r.corrupt("a journey's dimension values have no codes"));
            }
            long.insert((account, f), journey);
        }
        let long_floor = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
        let long_journey = r.u64()?;
        if long_journey == 0 {
            return Err(r.corrupt("long journeys of 0 touches"));
        }
        Ok(Accounts {
            names,
            accounts,
            pool,
            timers,
            long,
            long_floor,
            long_journey: usize::try_from(long_journey).unwrap_or(usize::MAX),
            changes: None,
            scratch: None,
        })
    }

    pub fn heap_bytes(&self) -> usize {
        self.names.heap_bytes()
            + self.accounts.capacity() * size_of::<Account>()
            + self.pool.heap_bytes()
            + self.timers.heap_bytes()
            + self.changes.as_ref().map_or(0, Changes::heap_bytes)
    }
}

/// Touches are ordered by (`occurred_at`, `event_id` as bytes), SPEC §3.
pub fn touch_order(a: &Touch, b: &Touch, ids: &EventIds) -> Ordering {
    a.time()
        .cmp(&b.time())
        .then_with(|| ids.order(a.id(), b.id()))
}

/// Where `touch` goes in the sorted `touches`: after every touch that does not sort after it,
/// so the rare exact tie (an id accepted again after dedup forgot it, at the same time) keeps
/// arrival order. Appending, the common case, is checked first.
fn insert_position(touches: &[Touch], touch: Touch, ids: &EventIds) -> usize {
    match touches.last() {
        None => 0,
        Some(last) if touch_order(last, &touch, ids) != Ordering::Greater => touches.len(),
        Some(_) => touches.partition_point(|t| touch_order(t, &touch, ids) != Ordering::Greater),
    }
}
