//! A watchdog thread on the wall clock: when no fresh command was fed for the timeout, it sends
//! an all-zero stop command (reason `watchdog`) and repeats it every timeout until fed again, so a
//! stalled camera or pipeline still stops the robot.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Result;

use super::output::CommandSink;
use super::{Command, CommandReason, CommandSeq, FollowState};

/// Shortest timeout the watchdog runs with (a zero timeout would spin).
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

struct WatchState {
    last_feed: Instant,
    last: Option<Command>,
    tripped: bool,
    next_stop: Instant,
    shutdown: bool,
    stops_sent: u64,
    errors: u64,
    last_error: Option<String>,
}

struct Shared {
    state: Mutex<WatchState>,
    wake: Condvar,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not keep the stop from being sent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts watchdog threads.
pub struct Watchdog;

impl Watchdog {
    /// Starts a watchdog sending stops to `sink` after `timeout` without [`WatchdogHandle::feed`].
    pub fn spawn(timeout: Duration, sink: Arc<Mutex<dyn CommandSink>>) -> WatchdogHandle {
        Self::spawn_with_seq(timeout, sink, CommandSeq::new())
    }

    /// Like [`Watchdog::spawn`], numbering stops from `seq` (share the follower's
    /// [`Follower::sequence`](super::Follower::sequence) so numbers never repeat).
    pub fn spawn_with_seq(
        timeout: Duration,
        sink: Arc<Mutex<dyn CommandSink>>,
        seq: CommandSeq,
    ) -> WatchdogHandle {
        let timeout = timeout.max(MIN_TIMEOUT);
        let now = Instant::now();
        let shared = Arc::new(Shared {
            state: Mutex::new(WatchState {
                last_feed: now,
                last: None,
                tripped: false,
                next_stop: now,
                shutdown: false,
                stops_sent: 0,
                errors: 0,
                last_error: None,
            }),
            wake: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let sink = Arc::clone(&sink);
            let seq = seq.clone();
            std::thread::Builder::new()
                .name("vigia-watchdog".into())
                .spawn(move || run(&shared, &sink, &seq, timeout))
                .expect("spawn the watchdog thread")
        };
        WatchdogHandle {
            shared,
            sink,
            seq,
            timeout,
            started: now,
            thread: Some(thread),
        }
    }
}

fn run(shared: &Shared, sink: &Mutex<dyn CommandSink>, seq: &CommandSeq, timeout: Duration) {
    let mut st = lock(&shared.state);
    loop {
        if st.shutdown {
            return;
        }
        let now = Instant::now();
        let due = if st.tripped {
            st.next_stop
        } else {
            st.last_feed + timeout
        };
        if now < due {
            st = shared
                .wake
                .wait_timeout(st, due - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        let since_feed = now.duration_since(st.last_feed).as_secs_f64();
        let (time, state) = match st.last {
            Some(c) => (c.time + since_feed, c.state),
            None => (since_feed, FollowState::Idle),
        };
        let stop = Command::stop(time, seq.next(), state, CommandReason::Watchdog);
        st.tripped = true;
        st.next_stop = now + timeout;
        drop(st);
        let result = lock(sink).send(&stop);
        st = lock(&shared.state);
        st.stops_sent += 1;
        if let Err(e) = result {
            st.errors += 1;
            st.last_error = Some(e.to_string());
        }
    }
}

/// Controls a running watchdog; dropping it stops the thread (without a final stop command).
pub struct WatchdogHandle {
    shared: Arc<Shared>,
    sink: Arc<Mutex<dyn CommandSink>>,
    seq: CommandSeq,
    timeout: Duration,
    started: Instant,
    thread: Option<JoinHandle<()>>,
}

impl WatchdogHandle {
    /// Records that `cmd` was just produced (and sent): the timeout starts again.
    pub fn feed(&self, cmd: &Command) {
        self.seq.observe(cmd.seq);
        let mut st = lock(&self.shared.state);
        st.last_feed = Instant::now();
        st.last = Some(*cmd);
        st.tripped = false;
        drop(st);
        self.shared.wake.notify_all();
    }

    /// The timeout in use.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the watchdog is currently sending stops (not fed since the timeout).
    pub fn tripped(&self) -> bool {
        lock(&self.shared.state).tripped
    }

    /// Stop commands sent so far.
    pub fn stops_sent(&self) -> u64 {
        lock(&self.shared.state).stops_sent
    }

    /// Stop commands the sink failed to send.
    pub fn send_errors(&self) -> u64 {
        lock(&self.shared.state).errors
    }

    /// The last sink error, if any.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.state).last_error.clone()
    }

    fn stop_thread(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            // The thread only panics if the sink does; the stop below still goes out.
            let _ = t.join();
        }
    }

    /// Stops the thread and sends one final stop command (reason `shutdown`).
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_thread();
        let (time, state) = {
            let st = lock(&self.shared.state);
            match st.last {
                Some(c) => (c.time + st.last_feed.elapsed().as_secs_f64(), c.state),
                None => (self.started.elapsed().as_secs_f64(), FollowState::Idle),
            }
        };
        let stop = Command::stop(time, self.seq.next(), state, CommandReason::Shutdown);
        let mut sink = lock(&self.sink);
        sink.send(&stop)
    }
}

impl Drop for WatchdogHandle {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::FollowEvent;

    /// Keeps what it is sent, with the arrival time.
    #[derive(Default)]
    struct Recorder {
        got: Vec<(Instant, Command)>,
    }

    impl CommandSink for Recorder {
        fn send(&mut self, cmd: &Command) -> Result<()> {
            self.got.push((Instant::now(), *cmd));
            Ok(())
        }
        fn send_event(&mut self, _: &FollowEvent) -> Result<()> {
            Ok(())
        }
    }

    fn moving(seq: u64, time: f64) -> Command {
        let mut c = Command::stop(time, seq, FollowState::Locked, CommandReason::Follow);
        c.yaw_rate = 0.4;
        c.forward = 0.2;
        c.target_id = Some(1);
        c
    }

    #[test]
    fn follow_watchdog_stops_after_timeout_and_repeats() {
        let rec = Arc::new(Mutex::new(Recorder::default()));
        let sink: Arc<Mutex<dyn CommandSink>> = rec.clone();
        let wd = Watchdog::spawn(Duration::from_millis(50), sink);
        let last = moving(9, 2.0);
        lock(&*rec).send(&last).unwrap();
        let fed_at = Instant::now();
        wd.feed(&last);
        std::thread::sleep(Duration::from_millis(400));
        assert!(wd.tripped());
        let got = lock(&*rec).got.clone();
        let stops: Vec<_> = got
            .iter()
            .filter(|(_, c)| c.reason == CommandReason::Watchdog)
            .collect();
        assert!(stops.len() >= 2, "stop repeated: {}", stops.len());
        let (first_at, first) = stops[0];
        assert!(first_at.duration_since(fed_at) >= Duration::from_millis(50));
        assert!(first.is_zero_motion() && first.target_id.is_none());
        assert_eq!(first.state, FollowState::Locked);
        assert_eq!(first.seq, 10, "numbered after the fed command");
        assert!(first.time >= 2.05);
        assert!(stops.windows(2).all(|w| w[1].1.seq > w[0].1.seq));
        // Nothing moving after the first stop.
        let after: Vec<_> = got.iter().filter(|(t, _)| *t >= *first_at).collect();
        assert!(after.iter().all(|(_, c)| c.is_zero_motion()));
        assert!(wd.stops_sent() as usize >= stops.len());
    }

    #[test]
    fn follow_watchdog_feeding_keeps_it_quiet() {
        let rec = Arc::new(Mutex::new(Recorder::default()));
        let wd = Watchdog::spawn(Duration::from_millis(500), rec.clone());
        for i in 0..10 {
            wd.feed(&moving(i, i as f64 * 0.02));
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(wd.stops_sent(), 0);
        assert!(!wd.tripped());
        drop(wd);
        assert!(lock(&*rec).got.is_empty());
    }

    #[test]
    fn follow_watchdog_unfed_from_start_stops_and_refeeding_clears() {
        let rec = Arc::new(Mutex::new(Recorder::default()));
        let seq = CommandSeq::new();
        let wd = Watchdog::spawn_with_seq(Duration::from_millis(30), rec.clone(), seq.clone());
        std::thread::sleep(Duration::from_millis(200));
        assert!(wd.tripped());
        let n = wd.stops_sent();
        assert!(n >= 1);
        let first = lock(&*rec).got[0].1;
        assert_eq!(first.state, FollowState::Idle);
        assert_eq!(first.seq, 0);
        wd.feed(&moving(seq.next(), 1.0));
        assert!(!wd.tripped());
        assert_eq!(wd.send_errors(), 0);
        assert!(wd.last_error().is_none());
    }

    #[test]
    fn follow_watchdog_shutdown_sends_a_final_stop() {
        let rec = Arc::new(Mutex::new(Recorder::default()));
        let wd = Watchdog::spawn(Duration::from_secs(10), rec.clone());
        wd.feed(&moving(3, 5.0));
        wd.shutdown().unwrap();
        let got = lock(&*rec).got.clone();
        assert_eq!(got.len(), 1);
        let c = got[0].1;
        assert_eq!(c.reason, CommandReason::Shutdown);
        assert!(c.is_zero_motion());
        assert_eq!(c.seq, 4);
        assert!(c.time >= 5.0);
    }
}
