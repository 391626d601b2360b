//! Turns at the inference engine for cameras that share one machine: at most `capacity`
//! inferences run at once, and waiting cameras are served first come, first served, so a camera
//! that has just had its turn queues behind the others (round-robin among live cameras).

use std::sync::{Arc, Condvar, Mutex};

/// A first-come, first-served semaphore for inference, shared by the cameras of one process.
#[derive(Debug, Clone)]
pub struct InferenceTurns(Arc<Turns>);

#[derive(Debug)]
struct Turns {
    capacity: u64,
    /// Tickets handed out and turns finished.
    counters: Mutex<Counters>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Counters {
    issued: u64,
    finished: u64,
}

/// One camera's turn; the next waiting camera goes when it is dropped.
#[derive(Debug)]
pub struct Turn<'a>(&'a Turns);

impl InferenceTurns {
    /// Turns for `capacity` inferences at once (at least one).
    pub fn new(capacity: usize) -> Self {
        InferenceTurns(Arc::new(Turns {
            capacity: capacity.max(1) as u64,
            counters: Mutex::new(Counters::default()),
            changed: Condvar::new(),
        }))
    }

    /// How many inferences may run at once.
    pub fn capacity(&self) -> usize {
        self.0.capacity as usize
    }

    /// Waits for this caller's turn, behind every caller that asked before it.
    pub fn take(&self) -> Turn<'_> {
        let turns = &*self.0;
        let mut c = turns.counters.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = c.issued;
        c.issued += 1;
        // Ticket t goes once all but `capacity - 1` of the tickets before it have finished.
        while ticket >= c.finished + turns.capacity {
            c = turns.changed.wait(c).unwrap_or_else(|p| p.into_inner());
        }
        Turn(turns)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut c = self.0.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.finished += 1;
        drop(c);
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn never_more_than_capacity_at_once() {
        let turns = InferenceTurns::new(2);
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let _turn = turns.take();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn callers_that_always_want_a_turn_alternate() {
        // Three callers that ask again right after their turn: with first come, first served
        // nobody gets two turns while another waits.
        let turns = InferenceTurns::new(1);
        let order = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for id in 0..3usize {
                let (turns, order) = (&turns, &order);
                s.spawn(move || {
                    for _ in 0..30 {
                        let _turn = turns.take();
                        order.lock().unwrap().push(id);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
            }
        });
        let order = order.into_inner().unwrap();
        assert_eq!(order.len(), 90);
        // Once all three are queued (after the first few turns) nobody takes two turns in a
        // row, unless the machine held the others back for a whole turn; a plain lock lets the
        // caller that just let go take it again nearly every time.
        let middle = &order[6..80];
        let mut repeats = 0;
        for w in middle.windows(2) {
            if w[0] == w[1] {
                repeats += 1;
            }
        }
        assert!(repeats <= 10, "turns not shared: {order:?}");
    }
}
