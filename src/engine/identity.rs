//! Identity (SPEC §2): links between anonymous ids, contacts and accounts, and the touches
//! that wait for an account.
//!
//! Links: `anonymous → contact`, `anonymous → account`, `contact → account`. Each anonymous or
//! contact id keeps the first link of each kind it receives; a later one pointing elsewhere is
//! a conflict (counted, ignored). A touch with no resolvable account waits here, registered on
//! its contact and anonymous nodes, until a link resolves it or the watermark passes its event
//! time plus `pending_ttl`.
//!
//! A waiting touch's event id lives in a store of its own (`pending_ids`), which is rebuilt
//! from the live touches once dead ones dominate it: about a fifth of touches never resolve,
//! and their ids should not outlive them. A touch that joins an account has its id copied to
//! the engine's store of retained touch ids.
//!
//! The touches waiting on a contact or an anonymous id form a circular doubly linked list
//! through their slots, headed from a per-node array: registering, releasing and expiring are
//! O(1) per touch with no allocation and no hash lookup, and a freed touch leaves nothing
//! stale behind (a hash map of per-node vectors cost 4 MB and ~200 instructions per wait).

use foldhash::fast::RandomState;
use hashbrown::HashMap;

use super::SnapshotError;
use super::event_ids::{Encoded, EventIds};
use super::snapshot::TouchCheck;
use super::store::{Interner, StrArena};
use super::timers::TimerQueue;
use crate::codec::{Reader, Writer};
use crate::funnel::Touch;
use crate::time::Millis;

const NONE: u32 = u32::MAX;

/// Bytes of a saved [`Waiting`].
const WAITING_BYTES: usize = Touch::SAVED_BYTES + 13 + 16;

/// A node waiting touches can be registered on. Its value indexes `Waiting::links`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Contact(u32),
    Anon(u32),
}

/// A slot's neighbours in one node's list (circular: a lone slot is its own neighbour).
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

/// The ids an event carries, interned: account index, contact node, anonymous node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ids {
    pub account: Option<u32>,
    pub contact: Option<u32>,
    pub anon: Option<u32>,
}

/// A contact's account (`NONE` until linked) and the first of its waiting touches (`NONE`).
#[derive(Debug, Clone, Copy)]
struct ContactNode {
    account: u32,
    waiting: u32,
}

impl Default for ContactNode {
    fn default() -> Self {
        ContactNode {
            account: NONE,
            waiting: NONE,
        }
    }
}

/// An anonymous id's contact and account (`NONE` until linked) and first waiting touch.
#[derive(Debug, Clone, Copy)]
struct AnonNode {
    contact: u32,
    account: u32,
    waiting: u32,
}

impl Default for AnonNode {
    fn default() -> Self {
        AnonNode {
            contact: NONE,
            account: NONE,
            waiting: NONE,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    touch: Touch,
    contact: u32,
    anon: u32,
    /// Bumped whenever the slot is freed, so stale references in the expiry queue are
    /// recognised.
    generation: u32,
    live: bool,
    /// Neighbours in the lists of its contact (0) and of its anonymous id (1).
    links: [Link; 2],
}

#[derive(Debug)]
pub struct Identity {
    pending_ttl: Millis,
    contacts: Interner,
    /// Per contact: its account link and first waiting touch, side by side so one cache line
    /// answers both (they were separate arrays, a miss each).
    contact_nodes: Vec<ContactNode>,
    anons: Interner,
    /// Per anonymous id: its contact and account links and first waiting touch.
    anon_nodes: Vec<AnonNode>,
    slots: Vec<Waiting>,
    free: Vec<u32>,
    live: usize,
    /// Ids of waiting touches that they do not hold themselves (`TouchId::Stored` points
    /// here), and the bytes of live ones.
    pending_ids: EventIds,
    pending_id_bytes: usize,
    /// Anonymous ids with waiting touches whose contact has no account yet, by that contact.
    anons_by_contact: HashMap<u32, Vec<u32>, RandomState>,
    /// Entries in `anons_by_contact`, stale ones included, so compaction is cheap to schedule.
    by_contact_entries: usize,
    /// Scratch for the slots of a list being released.
    releasing: Vec<u32>,
    expiry: TimerQueue<(Millis, u32, u32)>,
    pub conflicts: u64,
    pub unresolved: u64,
}

impl Identity {
    pub fn new(pending_ttl: Millis) -> Identity {
        Identity {
            pending_ttl,
            contacts: Interner::default(),
            contact_nodes: Vec::new(),
            anons: Interner::default(),
            anon_nodes: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            pending_ids: EventIds::default(),
            pending_id_bytes: 0,
            anons_by_contact: HashMap::default(),
            by_contact_entries: 0,
            releasing: Vec::new(),
            expiry: TimerQueue::default(),
            conflicts: 0,
            unresolved: 0,
        }
    }

    pub fn contact(&mut self, arena: &mut StrArena, id: &[u8]) -> u32 {
        self.contact_hashed(arena, id, self.contacts.hash(id))
    }

    /// The hash [`Identity::contact_hashed`] takes for `id`, with its table line prefetched.
    pub fn prefetch_contact(&self, id: &[u8]) -> u64 {
        self.contacts.prefetch(id)
    }

    pub fn contact_hashed(&mut self, arena: &mut StrArena, id: &[u8], hash: u64) -> u32 {
        let (i, new) = self.contacts.intern_hashed(arena, id, hash);
        if new {
            self.contact_nodes.push(ContactNode::default());
        }
        i
    }

    pub fn anon(&mut self, arena: &mut StrArena, id: &[u8]) -> u32 {
        self.anon_hashed(arena, id, self.anons.hash(id))
    }

    /// The hash [`Identity::anon_hashed`] takes for `id`, with its table line prefetched.
    pub fn prefetch_anon(&self, id: &[u8]) -> u64 {
        self.anons.prefetch(id)
    }

    pub fn anon_hashed(&mut self, arena: &mut StrArena, id: &[u8], hash: u64) -> u32 {
        let (i, new) = self.anons.intern_hashed(arena, id, hash);
        if new && i as usize == self.anon_nodes.len() {
            self.anon_nodes.push(AnonNode::default());
        }
        // A reused index's node was bare when forgotten, as a new one is.
        i
    }

    /// Records the links an accepted event carries and pushes onto `joined` every waiting
    /// touch they resolve, with its account; their ids are moved into `touch_ids`.
    ///
    /// All links of the event are set before any waiting touch is resolved: they arrive
    /// together, so a touch resolves with all of them in place whatever order they are
    /// listed in (SPEC §4: only which link comes *first* may depend on arrival order).
    pub fn link(&mut self, ids: Ids, joined: &mut Vec<(u32, Touch)>, touch_ids: &mut EventIds) {
        let anon_contact = matches!((ids.anon, ids.contact), (Some(a), Some(c)) if self.set_link(LinkKind::AnonContact, a, c));
        let anon_account = matches!((ids.anon, ids.account), (Some(a), Some(x)) if self.set_link(LinkKind::AnonAccount, a, x));
        let contact_account = matches!((ids.contact, ids.account), (Some(c), Some(x)) if self.set_link(LinkKind::ContactAccount, c, x));
        if let (true, Some(contact)) = (contact_account, ids.contact) {
            self.release(Node::Contact(contact), joined, touch_ids);
            let anons = self.anons_by_contact.remove(&contact).unwrap_or_default();
            self.by_contact_entries -= anons.len();
            for anon in anons {
                self.release(Node::Anon(anon), joined, touch_ids);
            }
        }
        if let Some(anon) = ids.anon
            && (anon_account || anon_contact)
        {
            let contact = self.anon_nodes[anon as usize].contact;
            if self.resolve_waiting(NONE, anon).is_some() {
                self.release(Node::Anon(anon), joined, touch_ids);
            } else if anon_contact && self.anon_nodes[anon as usize].waiting != NONE {
                // Its touches resolve once the contact gets an account.
                self.anons_by_contact.entry(contact).or_default().push(anon);
                self.by_contact_entries += 1;
            }
        }
        if !joined.is_empty() {
            // Released ids are dead in `pending_ids` too, whether or not anything expires.
            self.compact_ids();
        }
    }

    /// Sets a link unless one of that kind exists; returns whether it was new. A different
    /// existing link makes this one a conflict.
    fn set_link(&mut self, kind: LinkKind, from: u32, to: u32) -> bool {
        let slot = match kind {
            LinkKind::AnonContact => &mut self.anon_nodes[from as usize].contact,
            LinkKind::AnonAccount => &mut self.anon_nodes[from as usize].account,
            LinkKind::ContactAccount => &mut self.contact_nodes[from as usize].account,
        };
        if *slot == NONE {
            *slot = to;
            true
        } else {
            if *slot != to {
                self.conflicts += 1;
            }
            false
        }
    }

    /// The account a touch with these ids belongs to (SPEC §2): its `account_id`; else its
    /// contact's linked account; else its anonymous id's linked account, directly or through
    /// a linked contact.
    pub fn resolve(&self, ids: Ids) -> Option<u32> {
        ids.account
            .or_else(|| self.resolve_waiting(ids.contact.unwrap_or(NONE), ids.anon.unwrap_or(NONE)))
    }

    fn resolve_waiting(&self, contact: u32, anon: u32) -> Option<u32> {
        let of_contact = |c: u32| {
            (c != NONE)
                .then(|| self.contact_nodes[c as usize].account)
                .filter(|&a| a != NONE)
        };
        of_contact(contact).or_else(|| {
            if anon == NONE {
                return None;
            }
            let direct = self.anon_nodes[anon as usize].account;
            if direct != NONE {
                Some(direct)
            } else {
                of_contact(self.anon_nodes[anon as usize].contact)
            }
        })
    }

    /// Parks a touch that has no account yet, with its event id.
    pub fn wait(&mut self, mut touch: Touch, ids: Ids, id: &Encoded) {
        touch.set_id(self.pending_ids.keep(id));
        self.pending_id_bytes += self.pending_ids.kept_len(touch.id());
        let contact = ids.contact.unwrap_or(NONE);
        let anon = ids.anon.unwrap_or(NONE);
        let unlinked = Link {
            prev: NONE,
            next: NONE,
        };
        let waiting = Waiting {
            touch,
            contact,
            anon,
            generation: 0,
            live: true,
            links: [unlinked; 2],
        };
        let slot = match self.free.pop() {
            Some(i) => {
                let generation = self.slots[i as usize].generation;
                self.slots[i as usize] = Waiting {
                    generation,
                    ..waiting
                };
                i
            }
            None => {
                self.slots.push(waiting);
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots[slot as usize].generation;
        self.live += 1;
        if contact != NONE {
            self.push_back(Node::Contact(contact), slot);
        }
        if anon != NONE {
            self.push_back(Node::Anon(anon), slot);
            // The touch also resolves when the anonymous id's own contact gets an account.
            let via = self.anon_nodes[anon as usize].contact;
            if via != NONE && via != contact {
                let anons = self.anons_by_contact.entry(via).or_default();
                if anons.last() != Some(&anon) {
                    anons.push(anon);
                    self.by_contact_entries += 1;
                }
            }
        }
        let deadline = touch.time().saturating_add(self.pending_ttl);
        self.expiry.push((deadline, slot, generation));
    }

    /// The first slot of `node`'s list, and which of a slot's links that list uses.
    fn head(&self, node: Node) -> (u32, usize) {
        match node {
            Node::Contact(c) => (self.contact_nodes[c as usize].waiting, 0),
            Node::Anon(a) => (self.anon_nodes[a as usize].waiting, 1),
        }
    }

    fn set_head(&mut self, node: Node, slot: u32) {
        match node {
            Node::Contact(c) => self.contact_nodes[c as usize].waiting = slot,
            Node::Anon(a) => self.anon_nodes[a as usize].waiting = slot,
        }
    }

    /// Registers `slot` last on `node`'s list.
    fn push_back(&mut self, node: Node, slot: u32) {
        let (first, k) = self.head(node);
        if first == NONE {
            self.set_head(node, slot);
            self.slots[slot as usize].links[k] = Link {
                prev: slot,
                next: slot,
            };
            return;
        }
        let last = self.slots[first as usize].links[k].prev;
        self.slots[slot as usize].links[k] = Link {
            prev: last,
            next: first,
        };
        self.slots[last as usize].links[k].next = slot;
        self.slots[first as usize].links[k].prev = slot;
    }

    /// Takes `slot` off `node`'s list.
    fn unlink(&mut self, node: Node, slot: u32) {
        let (first, k) = self.head(node);
        let Link { prev, next } = self.slots[slot as usize].links[k];
        if next == slot {
            self.set_head(node, NONE);
            return;
        }
        if first == slot {
            self.set_head(node, next);
        }
        self.slots[prev as usize].links[k].next = next;
        self.slots[next as usize].links[k].prev = prev;
    }

    /// Moves the waiting touches of `node` that now resolve into `joined`, in the order they
    /// were registered; the others stay where they are.
    fn release(&mut self, node: Node, joined: &mut Vec<(u32, Touch)>, touch_ids: &mut EventIds) {
        let (first, k) = self.head(node);
        if first == NONE {
            return;
        }
        let mut slots = std::mem::take(&mut self.releasing);
        let mut slot = first;
        loop {
            slots.push(slot);
            slot = self.slots[slot as usize].links[k].next;
            if slot == first {
                break;
            }
        }
        for &slot in &slots {
            let waiting = self.slots[slot as usize];
            if let Some(account) = self.resolve_waiting(waiting.contact, waiting.anon) {
                let mut touch = waiting.touch;
                touch.set_id(touch_ids.keep_copy(&self.pending_ids, touch.id()));
                joined.push((account, touch));
                self.free_slot(slot);
            }
        }
        slots.clear();
        self.releasing = slots;
    }

    /// Frees a waiting touch's slot, taking it off its lists.
    fn free_slot(&mut self, slot: u32) {
        let Waiting { contact, anon, .. } = self.slots[slot as usize];
        if contact != NONE {
            self.unlink(Node::Contact(contact), slot);
        }
        if anon != NONE {
            self.unlink(Node::Anon(anon), slot);
        }
        let waiting = &mut self.slots[slot as usize];
        self.pending_id_bytes -= self.pending_ids.kept_len(waiting.touch.id());
        waiting.live = false;
        waiting.generation = waiting.generation.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
    }

    /// Gives up on waiting touches whose event time plus `pending_ttl` the watermark has
    /// passed; returns how many. An anonymous id left with no touch and no link is
    /// forgotten (its name goes from `arena`).
    pub fn expire(&mut self, watermark: Millis, arena: &mut StrArena) -> u64 {
        let mut expired = 0;
        while let Some((deadline, slot, generation)) = self.expiry.peek() {
            if watermark <= deadline {
                break;
            }
            self.expiry.pop();
            let waiting = self.slots[slot as usize];
            if waiting.live && waiting.generation == generation {
                self.free_slot(slot);
                expired += 1;
                if waiting.anon != NONE {
                    self.forget_if_bare(waiting.anon, arena);
                }
            }
        }
        self.unresolved += expired;
        if expired > 0 && self.live == 0 {
            // Everything that waited is gone: drop the registrations at once.
            self.anons_by_contact.clear();
            self.by_contact_entries = 0;
        } else if expired > 0 {
            self.compact();
        }
        if expired > 0 {
            self.compact_ids();
        }
        expired
    }

    /// Forgets an anonymous id with no link and no waiting touch. Such a node is exactly what
    /// an id never seen would get, so forgetting it changes no outcome; it is how memory
    /// follows the visitors of the last `pending_ttl` rather than every cookie ever seen
    /// (most never identify: 79 000 of 203 000 in issue #2's traffic).
    ///
    /// Only expiry leaves a node bare: a touch released to an account had a link on its
    /// anonymous id (an event with two ids links them, SPEC §2).
    fn forget_if_bare(&mut self, anon: u32, arena: &mut StrArena) {
        let node = self.anon_nodes[anon as usize];
        if node.contact == NONE && node.account == NONE && node.waiting == NONE {
            self.anons.forget(arena, anon);
        }
    }

    /// Drops anonymous ids without waiting touches from `anons_by_contact` once its entries
    /// outnumber the live touches, so memory follows the touches actually waiting.
    fn compact(&mut self) {
        if self.by_contact_entries < 1024 || self.by_contact_entries < 4 * self.live {
            return;
        }
        let anon_nodes = &self.anon_nodes;
        self.anons_by_contact.retain(|_, anons| {
            anons.retain(|&a| anon_nodes[a as usize].waiting != NONE);
            !anons.is_empty()
        });
        self.by_contact_entries = self.anons_by_contact.values().map(Vec::len).sum();
    }

    /// Rebuilds `pending_ids` from the live waiting touches once it is mostly dead ids, so its
    /// size follows the touches actually waiting (amortised: it at least halves each time).
    fn compact_ids(&mut self) {
        if self.pending_ids.len() < 2 * self.pending_id_bytes + 4096 {
            return;
        }
        let mut kept = EventIds::with_capacity(self.pending_id_bytes);
        for w in self.slots.iter_mut().filter(|w| w.live) {
            w.touch
                .set_id(kept.keep_copy(&self.pending_ids, w.touch.id()));
        }
        self.pending_ids = kept;
    }

    /// Contacts with anonymous ids registered on them.
    #[cfg(test)]
    pub fn registered_contacts(&self) -> usize {
        self.anons_by_contact.len()
    }

    /// Touches waiting for an account now.
    pub fn pending(&self) -> usize {
        self.live
    }

    /// The node the contact with this hash most likely has, its name's arena position and
    /// the node prefetched (for warming caches: [`super::Engine::warm`]).
    pub fn warm_contact(&self, hash: u64) -> Option<u32> {
        let i = self.contacts.warm(hash)?;
        crate::mem::prefetch(&self.contact_nodes[i as usize]);
        Some(i)
    }

    /// [`Identity::warm_contact`] for an anonymous id.
    pub fn warm_anon(&self, hash: u64) -> Option<u32> {
        let i = self.anons.warm(hash)?;
        crate::mem::prefetch(&self.anon_nodes[i as usize]);
        Some(i)
    }

    /// Prefetches the bytes of the names of warmed `ids`, whose positions are in by now.
    pub fn warm_names(&self, arena: &StrArena, ids: Ids) {
        if let Some(i) = ids.contact {
            self.contacts.warm_bytes(arena, i);
        }
        if let Some(i) = ids.anon {
            self.anons.warm_bytes(arena, i);
        }
    }

    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    /// Anonymous ids known now (forgotten ones are not).
    pub fn anon_count(&self) -> usize {
        self.anons.live()
    }

    /// The interners whose names live in the engine's arena.
    pub fn interners(&mut self) -> [&mut Interner; 2] {
        [&mut self.contacts, &mut self.anons]
    }

    /// Saves the ids, links, waiting touches (freed slots too: their generations tell stale
    /// expiry entries apart), lists, registrations by contact (sorted by contact), the expiry
    /// queue and the counts. Indexes, `live` and the byte counts are rebuilt on load.
    pub fn save(&self, w: &mut Writer<'_>) {
        self.contacts.save(w);
        self.anons.save(w);
        // Field by field, as when they were separate arrays: the format did not change.
        let (contacts, anons) = (&self.contact_nodes, &self.anon_nodes);
        for field in [
            contacts.iter().map(|n| n.account).collect::<Vec<_>>(),
            contacts.iter().map(|n| n.waiting).collect(),
            anons.iter().map(|n| n.contact).collect(),
            anons.iter().map(|n| n.account).collect(),
            anons.iter().map(|n| n.waiting).collect(),
        ] {
            w.u32s(&field);
        }
        self.pending_ids.save(w);
        w.reserve(8 + self.slots.len() * WAITING_BYTES);
        w.len(self.slots.len());
        for slot in &self.slots {
            slot.touch.save(w);
            w.u32(slot.contact);
            w.u32(slot.anon);
            w.u32(slot.generation);
            w.bool(slot.live);
            for link in slot.links {
                w.u32(link.prev);
                w.u32(link.next);
            }
        }
        w.u32s(&self.free);
        let mut by_contact: Vec<_> = self.anons_by_contact.iter().collect();
        by_contact.sort_unstable_by_key(|&(&contact, _)| contact);
        w.len(by_contact.len());
        for (&contact, anons) in by_contact {
            w.u32(contact);
            w.u32s(anons);
        }
        self.expiry.save(w, 16, |w, (deadline, slot, generation)| {
            w.i64(deadline);
            w.u32(slot);
            w.u32(generation);
        });
        w.u64(self.conflicts);
        w.u64(self.unresolved);
    }

    /// Loads what [`Identity::save`] wrote. Every index is checked against its table, and the
    /// waiting lists must be well formed, so no later walk can run off a table or forever.
    pub fn load(
        r: &mut Reader<'_>,
        pending_ttl: Millis,
        arena: &StrArena,
        accounts: usize,
        check: &TouchCheck<'_>,
    ) -> Result<Identity, SnapshotError> {
        r.section("identity");
        let mut identity = Identity::new(pending_ttl);
        identity.contacts = Interner::load(r, arena)?;
        identity.anons = Interner::load(r, arena)?;
        let (contacts, anons) = (identity.contacts.len(), identity.anons.len());
        let mut table = |len: usize, values: usize, what: &str| {
            let v = r.u32s()?;
            if v.len() != len || v.iter().any(|&x| x != NONE && x as usize >= values) {
                return Err(r.corrupt(format_args!("{what} out of range")));
            }
            Ok(v)
        };
        let contact_account = table(contacts, accounts, "contact accounts")?;
        let contact_waiting = table(contacts, usize::MAX, "contact lists")?;
        let anon_contact = table(anons, contacts, "anonymous contacts")?;
        let anon_account = table(anons, accounts, "anonymous accounts")?;
        let anon_waiting = table(anons, usize::MAX, "anonymous lists")?;
        identity.contact_nodes = (contact_account.iter().zip(&contact_waiting))
            .map(|(&account, &waiting)| ContactNode { account, waiting })
            .collect();
        identity.anon_nodes = (anon_contact.iter().zip(&anon_account).zip(&anon_waiting))
            .map(|((&contact, &account), &waiting)| AnonNode {
                contact,
                account,
                waiting,
            })
            .collect();
        let forgotten_with_links = (identity.anon_nodes.iter().enumerate()).find(|&(i, n)| {
            identity.anons.is_forgotten(i as u32)
                && (n.contact != NONE || n.account != NONE || n.waiting != NONE)
        });
        if let Some((i, _)) = forgotten_with_links {
            return Err(r.corrupt(format_args!("forgotten anonymous id {i} has links")));
        }

        r.section("waiting touches");
        identity.pending_ids = EventIds::load(r)?;
        let n = r.len(WAITING_BYTES)?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            let touch = Touch::load(r)?;
            let (contact, anon, generation) = (r.u32()?, r.u32()?, r.u32()?);
            let live = r.bool()?;
            let mut links = [Link {
                prev: NONE,
                next: NONE,
            }; 2];
            for link in &mut links {
                link.prev = r.u32()?;
                link.next = r.u32()?;
            }
            slots.push(Waiting {
                touch,
                contact,
                anon,
                generation,
                live,
                links,
            });
        }
        identity.slots = slots;
        identity.free = r.u32s()?;
        identity.check_waiting(r, check)?;

        r.section("registrations by contact");
        let k = r.len(12)?;
        for _ in 0..k {
            let contact = r.u32()?;
            let list = r.u32s()?;
            if contact as usize >= contacts || list.iter().any(|&a| a as usize >= anons) {
                return Err(r.corrupt("registration out of range"));
            }
            identity.by_contact_entries += list.len();
            identity.anons_by_contact.insert(contact, list);
        }
        r.section("expiry queue");
        let slots = identity.slots.len();
        identity.expiry = TimerQueue::load(r, 16, |r| {
            let (deadline, slot, generation) = (r.i64()?, r.u32()?, r.u32()?);
            if slot as usize >= slots {
                return Err(r.corrupt(format_args!("expiry of slot {slot}")));
            }
            Ok((deadline, slot, generation))
        })?;
        identity.conflicts = r.u64()?;
        identity.unresolved = r.u64()?;
        Ok(identity)
    }

    /// Checks loaded slots, free list and list heads, and recomputes `live` and
    /// `pending_id_bytes`. A live slot's lists must link back to it (`prev` of its `next` is
    /// itself) through live slots of the same node: `next` is then a permutation of each
    /// node's slots, so walking a list comes back to its head.
    fn check_waiting(
        &mut self,
        r: &Reader<'_>,
        check: &TouchCheck<'_>,
    ) -> Result<(), SnapshotError> {
        let n = self.slots.len();
        let (contacts, anons) = (self.contacts.len(), self.anons.len());
        let mut freed = vec![false; n];
        for &slot in &self.free {
            match freed.get_mut(slot as usize) {
                Some(f) if !*f && !self.slots[slot as usize].live => *f = true,
                _ => return Err(r.corrupt(format_args!("free slot {slot}"))),
            }
        }
        let mut live = 0;
        let mut id_bytes = 0;
        for (i, w) in self.slots.iter().enumerate() {
            if !w.live {
                continue;
            }
            live += 1;
            if !check.touch(w.touch, &self.pending_ids) {
                return Err(r.corrupt(format_args!("waiting touch {i} points outside the tables")));
            }
            id_bytes += self.pending_ids.kept_len(w.touch.id());
            let nodes = [(w.contact, contacts), (w.anon, anons)];
            for (k, (node, count)) in nodes.into_iter().enumerate() {
                if node == NONE {
                    continue;
                }
                let next = w.links[k].next as usize;
                let linked = node < count as u32
                    && !(k == 1 && self.anons.is_forgotten(node))
                    && self.slots.get(next).is_some_and(|x| {
                        x.live && x.links[k].prev == i as u32 && [x.contact, x.anon][k] == node
                    });
                if !linked {
                    return Err(r.corrupt(format_args!("waiting touch {i} is not in its list")));
                }
            }
        }
        if live + self.free.len() != n {
            return Err(r.corrupt("slots neither live nor free"));
        }
        let heads = self
            .contact_nodes
            .iter()
            .map(|n| (n.waiting, 0))
            .enumerate();
        let heads = heads.chain(self.anon_nodes.iter().map(|n| (n.waiting, 1)).enumerate());
        for (node, (slot, k)) in heads {
            if slot == NONE {
                continue;
            }
            let ok = self
                .slots
                .get(slot as usize)
                .is_some_and(|w| w.live && [w.contact, w.anon][k] == node as u32);
            if !ok {
                return Err(r.corrupt(format_args!("list head {slot} is not on its node")));
            }
        }
        self.live = live;
        self.pending_id_bytes = id_bytes;
        Ok(())
    }

    pub fn heap_bytes(&self) -> usize {
        self.contacts.heap_bytes()
            + self.anons.heap_bytes()
            + self.contact_nodes.capacity() * size_of::<ContactNode>()
            + self.anon_nodes.capacity() * size_of::<AnonNode>()
            + self.slots.capacity() * size_of::<Waiting>()
            + self.pending_ids.heap_bytes()
            + self.expiry.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_released_touches_do_not_pile_up() {
        let mut arena = StrArena::default();
        let mut touch_ids = EventIds::default();
        let mut identity = Identity::new(Millis::MAX / 2);
        let mut joined = Vec::new();
        for i in 0..20_000 {
            let anon = identity.anon(&mut arena, format!("cookie-{i}").as_bytes());
            let ids = Ids {
                anon: Some(anon),
                ..Ids::default()
            };
            let id = Encoded::new(format!("event-{i}").as_bytes());
            identity.wait(
                Touch::new(i, crate::engine::TouchId::Stored(0), 0, true, 0),
                ids,
                &id,
            );
            let link = Ids {
                account: Some(0),
                ..ids
            };
            identity.link(link, &mut joined, &mut touch_ids);
            assert_eq!(joined.len(), 1);
            assert_eq!(
                touch_ids.touch_string(joined[0].1.id()),
                format!("event-{i}")
            );
            joined.clear();
        }
        assert_eq!(identity.pending(), 0);
        assert!(
            identity.pending_ids.len() < 8192,
            "{}",
            identity.pending_ids.len()
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum LinkKind {
    AnonContact,
    AnonAccount,
    ContactAccount,
}
