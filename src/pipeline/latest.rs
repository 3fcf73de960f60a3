//! A one-slot channel that keeps only the newest value.
//!
//! Between pipeline stages a queue is the wrong tool: when inference is slower than the camera, a
//! queue grows and every pose comes later than the last. This slot holds at most one value; a
//! producer that finds it full replaces the old value (counted as dropped), so latency stays one
//! frame and memory stays flat however long the node runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

struct Slot<T> {
    value: Option<T>,
    closed: bool,
    sent: u64,
    dropped: u64,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    /// Signalled when a value arrives or the slot closes.
    ready: Condvar,
    /// Signalled when the receiver takes a value or the slot closes.
    taken: Condvar,
}

impl<T> Shared<T> {
    /// The slot stays usable even if a thread panicked while holding the lock: the data is a plain
    /// value with no invariant a half-finished update could break.
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending side. Cloneable; the slot closes when [`LatestSender::close`] is called or every
/// sender is dropped.
pub struct LatestSender<T> {
    shared: Arc<Shared<T>>,
    senders: Arc<()>,
}

/// The receiving side.
pub struct LatestReceiver<T> {
    shared: Arc<Shared<T>>,
}

/// Why [`LatestReceiver::recv_timeout`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    Timeout,
    Closed,
}

/// Counts for the stage statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotStats {
    pub sent: u64,
    /// Values replaced before anyone took them (frames skipped to stay current).
    pub dropped: u64,
}

pub fn latest<T>() -> (LatestSender<T>, LatestReceiver<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            closed: false,
            sent: 0,
            dropped: 0,
        }),
        ready: Condvar::new(),
        taken: Condvar::new(),
    });
    let senders = Arc::new(());
    let receiver = LatestReceiver {
        shared: shared.clone(),
    };
    (LatestSender { shared, senders }, receiver)
}

impl<T> Clone for LatestSender<T> {
    fn clone(&self) -> Self {
        LatestSender {
            shared: self.shared.clone(),
            senders: self.senders.clone(),
        }
    }
}

impl<T> LatestSender<T> {
    /// Puts `value` in the slot, replacing (dropping) any value not yet taken. Returns false when
    /// the slot is closed.
    pub fn send(&self, value: T) -> bool {
        let mut slot = self.shared.lock();
        if slot.closed {
            return false;
        }
        if slot.value.replace(value).is_some() {
            slot.dropped += 1;
        }
        slot.sent += 1;
        drop(slot);
        self.shared.ready.notify_one();
        true
    }

    /// Waits until the slot is empty, then puts `value` in: nothing is dropped (for recorded
    /// sources, where every frame counts). Gives up, returning false, when the slot closes or
    /// `stop` is set.
    pub fn send_when_empty(&self, value: T, stop: &AtomicBool) -> bool {
        let mut slot = self.shared.lock();
        while slot.value.is_some() && !slot.closed {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            slot = self
                .shared
                .taken
                .wait_timeout(slot, Duration::from_millis(50))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        if slot.closed {
            return false;
        }
        slot.value = Some(value);
        slot.sent += 1;
        drop(slot);
        self.shared.ready.notify_one();
        true
    }

    /// Closes the slot: the receiver gets what is left, then `Closed`.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
        self.shared.taken.notify_all();
    }

    pub fn stats(&self) -> SlotStats {
        let slot = self.shared.lock();
        SlotStats {
            sent: slot.sent,
            dropped: slot.dropped,
        }
    }
}

impl<T> Drop for LatestSender<T> {
    fn drop(&mut self) {
        // The last sender going away closes the slot, so a receiver never waits forever.
        if Arc::strong_count(&self.senders) == 1 {
            self.close();
        }
    }
}

impl<T> LatestReceiver<T> {
    /// Waits up to `timeout` for a value. A closed slot still hands out its last value first.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let slot = self.shared.lock();
        let (mut slot, _) = self
            .shared
            .ready
            .wait_timeout_while(slot, timeout, |s| s.value.is_none() && !s.closed)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match slot.value.take() {
            Some(v) => {
                self.shared.taken.notify_one();
                Ok(v)
            }
            None if slot.closed => Err(RecvError::Closed),
            None => Err(RecvError::Timeout),
        }
    }

    /// Takes the value if one is waiting, without blocking.
    pub fn try_recv(&self) -> Option<T> {
        let value = self.shared.lock().value.take();
        if value.is_some() {
            self.shared.taken.notify_one();
        }
        value
    }

    pub fn stats(&self) -> SlotStats {
        let slot = self.shared.lock();
        SlotStats {
            sent: slot.sent,
            dropped: slot.dropped,
        }
    }

    /// Whether a value is waiting (for the queue-depth statistic: never more than one).
    pub fn pending(&self) -> usize {
        usize::from(self.shared.lock().value.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn keeps_only_the_newest_value_and_counts_the_rest() {
        let (tx, rx) = latest();
        for i in 0..5 {
            assert!(tx.send(i));
        }
        assert_eq!(rx.pending(), 1);
        assert_eq!(rx.try_recv(), Some(4));
        assert_eq!(rx.try_recv(), None);
        assert_eq!(
            tx.stats(),
            SlotStats {
                sent: 5,
                dropped: 4
            }
        );
    }

    #[test]
    fn receiver_wakes_when_a_value_arrives() {
        let (tx, rx) = latest();
        let producer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            tx.send(7u32);
            thread::sleep(Duration::from_millis(200));
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(7));
        producer.join().unwrap();
    }

    #[test]
    fn times_out_when_nothing_arrives() {
        let (_tx, rx) = latest::<u8>();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(RecvError::Timeout)
        );
    }

    #[test]
    fn closing_delivers_the_last_value_then_reports_closed() {
        let (tx, rx) = latest();
        tx.send("last");
        tx.close();
        assert!(!tx.send("after close"));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok("last"));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(RecvError::Closed)
        );
    }

    #[test]
    fn send_when_empty_waits_for_the_receiver_and_drops_nothing() {
        let (tx, rx) = latest();
        let stop = AtomicBool::new(false);
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(v) = rx.recv_timeout(Duration::from_secs(5)) {
                thread::sleep(Duration::from_millis(2));
                got.push(v);
            }
            got
        });
        for i in 0..20 {
            assert!(tx.send_when_empty(i, &stop));
        }
        assert_eq!(tx.stats().dropped, 0);
        drop(tx);
        assert_eq!(consumer.join().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn send_when_empty_gives_up_on_stop() {
        let (tx, _rx) = latest();
        let stop = AtomicBool::new(false);
        assert!(tx.send_when_empty(1, &stop));
        stop.store(true, Ordering::SeqCst);
        assert!(!tx.send_when_empty(2, &stop));
    }

    #[test]
    fn dropping_every_sender_closes_the_slot() {
        let (tx, rx) = latest::<u8>();
        let second = tx.clone();
        drop(tx);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(RecvError::Timeout)
        );
        drop(second);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(RecvError::Closed)
        );
    }
}
