//! Who gets a connection: fairness before a request head arrives.
//!
//! A connection still sending its request head has proven nothing (no
//! token yet), so such connections get a small budget of their own,
//! [`MAX_PENDING`], separate from the requests being served. When a new
//! connection finds the budget full, the oldest pending connection of the
//! peer holding the most is closed, and a peer holds at most
//! [`MAX_PENDING_PER_PEER`]: a client trickling header bytes on many
//! connections (a slowloris) closes its own connections, not others', and
//! a legitimate client, which sends its head at once, is read before it
//! could become the oldest.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Connections still sending their request head, all peers together.
pub(crate) const MAX_PENDING: usize = 16;
/// Connections of one peer address still sending their request head.
pub(crate) const MAX_PENDING_PER_PEER: usize = 8;

struct Waiting {
    peer: IpAddr,
    close: Arc<Notify>,
}

/// The connections whose request head has not arrived, oldest first.
#[derive(Default)]
pub(super) struct PendingHeads {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    waiting: BTreeMap<u64, Waiting>,
}

/// A connection admitted to the head phase: `close` is notified if it is
/// closed to make room.
pub(super) struct Admitted {
    pub(super) id: u64,
    pub(super) close: Arc<Notify>,
}

impl PendingHeads {
    /// Admits a new connection from `peer`, closing one pending connection
    /// when a budget is full. Returns the admission and whether another
    /// connection was closed for it.
    pub(super) fn admit(&self, peer: IpAddr) -> (Admitted, bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let of_peer =
            |inner: &Inner, peer: IpAddr| inner.waiting.values().filter(|w| w.peer == peer).count();
        let victim_peer = if of_peer(&inner, peer) >= MAX_PENDING_PER_PEER {
            Some(peer)
        } else if inner.waiting.len() >= MAX_PENDING {
            // The peer holding the most; among equals, the one waiting
            // longest (the map iterates oldest first).
            let mut counts: Vec<(IpAddr, usize)> = Vec::new();
            for w in inner.waiting.values() {
                match counts.iter_mut().find(|(p, _)| *p == w.peer) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((w.peer, 1)),
                }
            }
            let most = counts.iter().map(|c| c.1).max().unwrap_or(0);
            counts.into_iter().find(|c| c.1 == most).map(|c| c.0)
        } else {
            None
        };
        let closed = victim_peer
            .and_then(|victim| {
                let id = *inner.waiting.iter().find(|(_, w)| w.peer == victim)?.0;
                inner.waiting.remove(&id)
            })
            .inspect(|w| w.close.notify_one())
            .is_some();
        let id = inner.next_id;
        inner.next_id += 1;
        let close = Arc::new(Notify::new());
        inner.waiting.insert(
            id,
            Waiting {
                peer,
                close: close.clone(),
            },
        );
        (Admitted { id, close }, closed)
    }

    /// The connection's head arrived, or it ended: it leaves the head
    /// phase. Returns false when it had been closed to make room.
    pub(super) fn leave(&self, id: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.waiting.remove(&id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_peer_beyond_its_share_closes_its_own_oldest() {
        let heads = PendingHeads::default();
        let mut attacker = Vec::new();
        for _ in 0..MAX_PENDING_PER_PEER {
            let (admitted, closed) = heads.admit(ip(1));
            assert!(!closed);
            attacker.push(admitted);
        }
        let (other, closed) = heads.admit(ip(2));
        assert!(!closed);
        let (_, closed) = heads.admit(ip(1));
        assert!(closed, "the attacker's ninth closes one");
        assert!(!heads.leave(attacker[0].id), "its oldest was closed");
        assert!(heads.leave(other.id), "the other peer's is untouched");
    }

    #[test]
    fn a_full_budget_closes_the_oldest_of_the_peer_holding_the_most() {
        let heads = PendingHeads::default();
        let first_legit = heads.admit(ip(9)).0;
        let mut by_peer: Vec<Admitted> = Vec::new();
        for peer in 1..=3 {
            for _ in 0..5 {
                by_peer.push(heads.admit(ip(peer)).0);
            }
        }
        // 16 pending: ip 9 has one, 1..=3 have five each.
        let (_, closed) = heads.admit(ip(4));
        assert!(closed);
        assert!(heads.leave(first_legit.id), "the lone legitimate one stays");
        assert!(!heads.leave(by_peer[0].id), "ip 1's oldest went");
        assert!(heads.leave(by_peer[1].id));
    }
}
