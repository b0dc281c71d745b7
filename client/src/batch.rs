//! A producer's open batches: messages grouped by where they go (a partition when the topic's
//! layout is known, else their key; keyless messages together), each batch one PRODUCE frame.
//! Pure bookkeeping, no I/O: the producer task adds messages and takes batches that are full
//! or have lingered long enough.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Where a batch goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// No key: the broker writes it to a partition of the shard serving the connection.
    Keyless,
    /// Partition `j` of the topic's layout.
    Partition(u32),
    /// A key whose partition the client does not know (no layout): batched per key.
    Key(Bytes),
}

/// Messages bound for one route, sent as one frame.
#[derive(Debug)]
pub struct Batch<W> {
    pub route: Route,
    /// The frame's key: any key of the batch (all fall in the same partition).
    pub key: Bytes,
    pub messages: Vec<Bytes>,
    /// What is told the outcome, one per message.
    pub waiters: Vec<W>,
    /// Encoded body size so far (key, and `len u32 | message` each).
    pub bytes: usize,
    pub opened: Instant,
}

/// The open batches of one topic.
pub struct Batches<W> {
    open: HashMap<Route, Batch<W>>,
    max_bytes: usize,
    linger: Duration,
}

impl<W> Batches<W> {
    pub fn new(max_bytes: usize, linger: Duration) -> Batches<W> {
        Batches {
            open: HashMap::new(),
            max_bytes,
            linger,
        }
    }

    /// Adds a message; returns the batches it makes ready (the one it would have overflowed,
    /// and its own if that is full now).
    pub fn add(&mut self, route: Route, key: Bytes, message: Bytes, waiter: W) -> Vec<Batch<W>> {
        let mut ready = Vec::new();
        let size = 4 + message.len();
        if let Some(b) = self.open.get(&route) {
            if b.bytes + size > self.max_bytes {
                ready.extend(self.open.remove(&route));
            }
        }
        let now = Instant::now();
        let batch = self.open.entry(route.clone()).or_insert_with(|| Batch {
            route: route.clone(),
            bytes: 1 + key.len(),
            key,
            messages: Vec::new(),
            waiters: Vec::new(),
            opened: now,
        });
        batch.bytes += size;
        batch.messages.push(message);
        batch.waiters.push(waiter);
        if batch.bytes >= self.max_bytes {
            ready.extend(self.open.remove(&route));
        }
        ready
    }

    /// When the oldest open batch is due, if any is open.
    pub fn next_due(&self) -> Option<Instant> {
        self.open.values().map(|b| b.opened + self.linger).min()
    }

    /// Takes the batches that have lingered long enough by `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<Batch<W>> {
        let due: Vec<Route> = self
            .open
            .values()
            .filter(|b| b.opened + self.linger <= now)
            .map(|b| b.route.clone())
            .collect();
        due.into_iter()
            .filter_map(|r| self.open.remove(&r))
            .collect()
    }

    /// Takes every open batch (flush, close).
    pub fn take_all(&mut self) -> Vec<Batch<W>> {
        self.open.drain().map(|(_, b)| b).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn a_batch_is_ready_when_full_or_due() {
        let mut b: Batches<u32> = Batches::new(100, Duration::from_millis(5));
        assert!(b.add(Route::Keyless, Bytes::new(), msg(40), 1).is_empty());
        assert!(b
            .add(Route::Partition(3), Bytes::from("k"), msg(10), 2)
            .is_empty());
        // 1 + 44 + 44 = 89 < 100; the third would overflow: the first two go, it opens anew.
        assert!(b.add(Route::Keyless, Bytes::new(), msg(40), 3).is_empty());
        let ready = b.add(Route::Keyless, Bytes::new(), msg(40), 4);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].waiters, vec![1, 3]);
        assert_eq!(ready[0].bytes, 89);
        // A message larger than a batch goes alone, at once.
        let ready = b.add(
            Route::Key(Bytes::from("big")),
            Bytes::from("big"),
            msg(500),
            5,
        );
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].waiters, vec![5]);
        let due = b.next_due().unwrap();
        assert!(b.take_due(due - Duration::from_millis(1)).is_empty());
        let mut taken: Vec<u32> = b
            .take_due(due + Duration::from_millis(5))
            .into_iter()
            .flat_map(|b| b.waiters)
            .collect();
        taken.sort();
        assert_eq!(taken, vec![2, 4]);
        assert!(b.next_due().is_none());
    }
}
