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

use super::event_ids::{Encoded, EventIds};
use super::store::{Interner, StrArena};
use super::timers::TimerQueue;
use crate::funnel::Touch;
use crate::time::Millis;

const NONE: u32 = u32::MAX;

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
    contact_account: Vec<u32>,
    anons: Interner,
    anon_contact: Vec<u32>,
    anon_account: Vec<u32>,
    slots: Vec<Waiting>,
    free: Vec<u32>,
    live: usize,
    /// Ids of waiting touches (`Waiting::touch.id` points here), and the bytes of live ones.
    pending_ids: EventIds,
    pending_id_bytes: usize,
    /// First waiting touch registered on each contact and each anonymous id, or `NONE`.
    contact_waiting: Vec<u32>,
    anon_waiting: Vec<u32>,
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
            contact_account: Vec::new(),
            anons: Interner::default(),
            anon_contact: Vec::new(),
            anon_account: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            pending_ids: EventIds::default(),
            pending_id_bytes: 0,
            contact_waiting: Vec::new(),
            anon_waiting: Vec::new(),
            anons_by_contact: HashMap::default(),
            by_contact_entries: 0,
            releasing: Vec::new(),
            expiry: TimerQueue::default(),
            conflicts: 0,
            unresolved: 0,
        }
    }

    pub fn contact(&mut self, arena: &mut StrArena, id: &[u8]) -> u32 {
        let (i, new) = self.contacts.intern(arena, id);
        if new {
            self.contact_account.push(NONE);
            self.contact_waiting.push(NONE);
        }
        i
    }

    pub fn anon(&mut self, arena: &mut StrArena, id: &[u8]) -> u32 {
        let (i, new) = self.anons.intern(arena, id);
        if new {
            self.anon_contact.push(NONE);
            self.anon_account.push(NONE);
            self.anon_waiting.push(NONE);
        }
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
            let contact = self.anon_contact[anon as usize];
            if self.resolve_waiting(NONE, anon).is_some() {
                self.release(Node::Anon(anon), joined, touch_ids);
            } else if anon_contact && self.anon_waiting[anon as usize] != NONE {
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
            LinkKind::AnonContact => &mut self.anon_contact[from as usize],
            LinkKind::AnonAccount => &mut self.anon_account[from as usize],
            LinkKind::ContactAccount => &mut self.contact_account[from as usize],
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
                .then(|| self.contact_account[c as usize])
                .filter(|&a| a != NONE)
        };
        of_contact(contact).or_else(|| {
            if anon == NONE {
                return None;
            }
            let direct = self.anon_account[anon as usize];
            if direct != NONE {
                Some(direct)
            } else {
                of_contact(self.anon_contact[anon as usize])
            }
        })
    }

    /// Parks a touch that has no account yet, with its event id.
    pub fn wait(&mut self, mut touch: Touch, ids: Ids, id: &Encoded) {
        touch.id = self.pending_ids.push(id);
        self.pending_id_bytes += id.as_bytes().len();
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
            let via = self.anon_contact[anon as usize];
            if via != NONE && via != contact {
                let anons = self.anons_by_contact.entry(via).or_default();
                if anons.last() != Some(&anon) {
                    anons.push(anon);
                    self.by_contact_entries += 1;
                }
            }
        }
        let deadline = touch.time.saturating_add(self.pending_ttl);
        self.expiry.push((deadline, slot, generation));
    }

    /// The first slot of `node`'s list, and which of a slot's links that list uses.
    fn head(&self, node: Node) -> (u32, usize) {
        match node {
            Node::Contact(c) => (self.contact_waiting[c as usize], 0),
            Node::Anon(a) => (self.anon_waiting[a as usize], 1),
        }
    }

    fn set_head(&mut self, node: Node, slot: u32) {
        match node {
            Node::Contact(c) => self.contact_waiting[c as usize] = slot,
            Node::Anon(a) => self.anon_waiting[a as usize] = slot,
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
                touch.id = touch_ids.copy_from(&self.pending_ids, touch.id);
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
        self.pending_id_bytes -= self.pending_ids.encoded(waiting.touch.id).len();
        waiting.live = false;
        waiting.generation = waiting.generation.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
    }

    /// Gives up on waiting touches whose event time plus `pending_ttl` the watermark has
    /// passed; returns how many.
    pub fn expire(&mut self, watermark: Millis) -> u64 {
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

    /// Drops anonymous ids without waiting touches from `anons_by_contact` once its entries
    /// outnumber the live touches, so memory follows the touches actually waiting.
    fn compact(&mut self) {
        if self.by_contact_entries < 1024 || self.by_contact_entries < 4 * self.live {
            return;
        }
        let anon_waiting = &self.anon_waiting;
        self.anons_by_contact.retain(|_, anons| {
            anons.retain(|&a| anon_waiting[a as usize] != NONE);
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
            w.touch.id = kept.copy_from(&self.pending_ids, w.touch.id);
        }
        self.pending_ids = kept;
    }

    /// Touches waiting for an account now.
    pub fn pending(&self) -> usize {
        self.live
    }

    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    pub fn anon_count(&self) -> usize {
        self.anons.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.contacts.heap_bytes()
            + self.anons.heap_bytes()
            + (self.contact_account.capacity()
                + self.contact_waiting.capacity()
                + self.anon_account.capacity()
                + self.anon_contact.capacity()
                + self.anon_waiting.capacity())
                * 4
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
            identity.wait(Touch::new(i, 0, 0, true, 0), ids, &id);
            let link = Ids {
                account: Some(0),
                ..ids
            };
            identity.link(link, &mut joined, &mut touch_ids);
            assert_eq!(joined.len(), 1);
            assert_eq!(touch_ids.get_string(joined[0].1.id), format!("event-{i}"));
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
