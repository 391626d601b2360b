//! Reconnecting live sources: a wrapper that reopens a camera or stream after it fails or ends,
//! waiting with exponential backoff, until it recovers, a maximum of attempts, or a stop flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::source::{Frame, FrameSource, SourceHealth, SourceInfo};

/// Longest slice a backoff wait sleeps before looking at the stop flag again.
const SLEEP_SLICE: Duration = Duration::from_millis(20);

/// Exponential backoff between reconnect attempts: `initial`, then times `factor` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Delay before the first attempt.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Growth of the delay per attempt (at least 1).
    pub factor: f64,
    /// Random reduction of each delay, as a fraction in `[0, 1]` (0.2: between 80 and 100 %), so
    /// that many clients of one server do not retry in step.
    pub jitter: f64,
    attempt: u32,
    rng: u64,
}

impl Default for Backoff {
    /// 0.5 s, doubling up to 10 s, with 10 % jitter.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(10), 2.0).with_jitter(0.1)
    }
}

impl Backoff {
    /// A backoff without jitter.
    pub fn new(initial: Duration, max: Duration, factor: f64) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Backoff {
            initial,
            max: max.max(initial),
            factor: if factor.is_finite() {
                factor.max(1.0)
            } else {
                1.0
            },
            jitter: 0.0,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The same backoff with a random reduction of up to `jitter` (clamped to `[0, 1]`).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Delays handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay to wait before the next attempt; each call moves one step up.
    pub fn next_delay(&mut self) -> Duration {
        let grown = self.initial.as_secs_f64() * self.factor.powi(self.attempt.min(1024) as i32);
        let capped = grown.min(self.max.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let reduced = if self.jitter > 0.0 {
            capped * (1.0 - self.jitter * self.random_unit())
        } else {
            capped
        };
        Duration::try_from_secs_f64(reduced.max(0.0)).unwrap_or(self.max)
    }

    /// Starts again from `initial` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// A uniform number in `[0, 1)` from a xorshift generator.
    fn random_unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How long a live source that cannot be opened at start is retried.
#[derive(Debug, Clone)]
pub struct StartWait {
    /// The longest wait: zero fails at once, `None` retries until `stop`.
    pub limit: Option<Duration>,
    /// The source's name in messages.
    pub name: String,
    /// Ends the wait (Ctrl-C).
    pub stop: Arc<AtomicBool>,
}

impl Default for StartWait {
    /// Fails at once.
    fn default() -> Self {
        StartWait::none()
    }
}

impl StartWait {
    /// Fails at once (the default).
    pub fn none() -> Self {
        StartWait {
            limit: Some(Duration::ZERO),
            name: String::new(),
            stop: Arc::default(),
        }
    }
}

/// Failures at start that may pass by themselves: the device or stream is not there yet.
/// Anything else (a missing program, a bad option) is reported at once.
fn may_pass(e: &Error) -> bool {
    matches!(
        e,
        Error::SourceOpen { .. } | Error::SourceLost { .. } | Error::SourceStalled { .. }
    )
}

/// Calls `open` until it succeeds, retrying failures that may pass with the default backoff
/// within `start.limit`; the last failure is returned when the wait runs out or is stopped.
fn open_retrying<S>(open: &mut impl FnMut() -> Result<S>, start: &StartWait) -> Result<S> {
    let began = Instant::now();
    let mut backoff = Backoff::default();
    let mut last_reason = String::new();
    loop {
        let e = match open() {
            Ok(s) => {
                if backoff.attempt() > 0 {
                    eprintln!(
                        "vigia: {} is available after {:.1} s",
                        start.name,
                        began.elapsed().as_secs_f64()
                    );
                }
                return Ok(s);
            }
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        let left = start.limit.map(|l| l.saturating_sub(began.elapsed()));
        if !may_pass(&e) || left.is_some_and(|l| l < delay) || start.stop.load(Ordering::Relaxed) {
            return Err(e);
        }
        let reason = e.to_string();
        if reason != last_reason {
            eprintln!(
                "vigia: {reason}; retrying with backoff up to every {} ({}; --source-wait limits the wait)",
                format_delay(backoff.max),
                match start.limit {
                    Some(l) => format!("for up to {}", format_delay(l)),
                    None => "until it comes or Ctrl-C".into(),
                }
            );
            last_reason = reason;
        }
        let end = Instant::now() + delay;
        while Instant::now() < end {
            if start.stop.load(Ordering::Relaxed) {
                return Err(e);
            }
            std::thread::sleep(SLEEP_SLICE);
        }
    }
}

/// A live source that reopens its inner source when it fails or ends.
///
/// Frames keep increasing indices and timestamps across reconnects; `health()` adds up the
/// troubles of every inner source and counts the reopenings in `reconnects`. It ends
/// (`Ok(None)`) only when the stop flag is set or after `max_attempts` failed attempts in a
/// row; [`Reconnecting::gave_up`] then tells why.
pub struct Reconnecting<S, F>
where
    F: FnMut() -> Result<S> + Send,
    S: FrameSource,
{
    open: F,
    inner: Option<S>,
    info: SourceInfo,
    backoff: Backoff,
    max_attempts: Option<u32>,
    stop: Arc<AtomicBool>,
    /// Failed attempts (losses and failed reopenings) since the last good frame.
    failures: u32,
    /// Why the source was last lost, for the next message.
    last_reason: String,
    gave_up: Option<String>,
    /// Index of the next frame; inner indices are offset by `index_base`.
    next_index: u64,
    index_base: u64,
    /// Inner timestamps are offset by the time the inner source was opened.
    started: Instant,
    time_base: f64,
    last_timestamp: f64,
    reconnects: u64,
    retired: SourceHealth,
}

impl<S, F> Reconnecting<S, F>
where
    F: FnMut() -> Result<S> + Send,
    S: FrameSource,
{
    /// Opens the source a first time (failing at once if that fails: a wrong device or URL is
    /// reported, not retried) and reconnects it later with the default backoff, forever.
    pub fn new(open: F) -> Result<Self> {
        Self::new_waiting(open, &StartWait::none())
    }

    /// As [`Reconnecting::new`], retrying a first open that fails for as long as `start` says
    /// (boards often boot before their cameras, and streams come up after their clients).
    pub fn new_waiting(mut open: F, start: &StartWait) -> Result<Self> {
        let inner = open_retrying(&mut open, start)?;
        let info = inner.info().clone();
        Ok(Reconnecting {
            open,
            inner: Some(inner),
            info,
            backoff: Backoff::default(),
            max_attempts: None,
            stop: Arc::new(AtomicBool::new(false)),
            failures: 0,
            last_reason: String::new(),
            gave_up: None,
            next_index: 0,
            index_base: 0,
            started: Instant::now(),
            time_base: 0.0,
            last_timestamp: 0.0,
            reconnects: 0,
            retired: SourceHealth::default(),
        })
    }

    /// Uses this backoff between attempts.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Gives up after this many failed attempts in a row (`None`: never).
    pub fn with_max_attempts(mut self, max_attempts: Option<u32>) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Ends the source (and any wait) as soon as `stop` is set.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }

    /// Names the source in messages and `info()` (default: the inner source's name).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.info.name = name.into();
        self
    }

    /// The flag that stops the source.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The backoff state (its `attempt()` is 0 while frames flow).
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// Why the source ended when it gave up reconnecting; `None` while it runs or when stopped.
    pub fn gave_up(&self) -> Option<&str> {
        self.gave_up.as_deref()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `delay` in short slices; false when the stop flag cut it short.
    fn wait(&self, delay: Duration) -> bool {
        let end = Instant::now() + delay;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(SLEEP_SLICE));
        }
    }

    /// Retires the inner source after a loss, keeping its health counters.
    fn retire(&mut self, reason: String) {
        if let Some(old) = self.inner.take() {
            let h = old.health();
            self.retired.corrupt_frames += h.corrupt_frames;
            self.retired.reconnects += h.reconnects;
        }
        self.last_reason = reason;
    }

    /// Waits and reopens once; `Ok(false)` when the source must end (stop or give up).
    fn reopen(&mut self) -> bool {
        if self.max_attempts.is_some_and(|max| self.failures >= max) {
            let why = format!(
                "{} lost ({}); gave up after {} reconnect attempts",
                self.info.name, self.last_reason, self.failures
            );
            eprintln!("vigia: {why}");
            self.gave_up = Some(why);
            return false;
        }
        self.failures += 1;
        let delay = self.backoff.next_delay();
        let verb = if self.failures == 1 {
            "lost"
        } else {
            "still unavailable"
        };
        eprintln!(
            "vigia: {} {verb} ({}); reconnecting in {} (attempt {})",
            self.info.name,
            self.last_reason,
            format_delay(delay),
            self.failures
        );
        if !self.wait(delay) {
            return false;
        }
        match (self.open)() {
            Ok(src) => {
                self.inner = Some(src);
                self.reconnects += 1;
                self.index_base = self.next_index;
                self.time_base = self.started.elapsed().as_secs_f64();
            }
            Err(e) => self.last_reason = e.to_string(),
        }
        true
    }
}

/// A delay as people read it: "0.5 s", "12 s", "20 ms".
fn format_delay(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.0} s")
    } else if s >= 0.1 {
        format!("{s:.1} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

impl<S, F> FrameSource for Reconnecting<S, F>
where
    F: FnMut() -> Result<S> + Send,
    S: FrameSource,
{
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if self.stopped() || self.gave_up.is_some() {
                return Ok(None);
            }
            let Some(inner) = self.inner.as_mut() else {
                if !self.reopen() {
                    return Ok(None);
                }
                continue;
            };
            match inner.next_frame() {
                Ok(Some(mut frame)) => {
                    self.failures = 0;
                    self.backoff.reset();
                    frame.index = (self.index_base + frame.index).max(self.next_index);
                    self.next_index = frame.index + 1;
                    frame.timestamp = (self.time_base + frame.timestamp).max(self.last_timestamp);
                    self.last_timestamp = frame.timestamp;
                    return Ok(Some(frame));
                }
                Ok(None) => self.retire("end of stream".into()),
                Err(e) => self.retire(e.to_string()),
            }
        }
    }

    fn health(&self) -> SourceHealth {
        let current = self.inner.as_ref().map(|s| s.health()).unwrap_or_default();
        SourceHealth {
            corrupt_frames: self.retired.corrupt_frames + current.corrupt_frames,
            reconnects: self.retired.reconnects + current.reconnects + self.reconnects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use image::{Rgb, RgbImage};
    use std::sync::Mutex;

    /// What the flaky test source does, shared between its openings.
    struct Script {
        /// For each opening that succeeds, how many attempts fail before it (consumed; the
        /// first entry is for the first opening; missing entries are 0).
        open_failures: Vec<u32>,
        /// Frames each opened source yields before it fails (consumed; then it runs forever).
        frames_per_life: Vec<u64>,
        /// Whether a source ends cleanly instead of failing.
        end_cleanly: bool,
        opens: u32,
        failed_opens: u32,
        /// Open failures still to produce before the next success, once loaded.
        pending: Option<u32>,
    }

    /// A source of solid-colour frames that fails on a script.
    struct Flaky {
        info: SourceInfo,
        life: u32,
        produced: u64,
        limit: Option<u64>,
        end_cleanly: bool,
        corrupt: u64,
    }

    impl FrameSource for Flaky {
        fn info(&self) -> &SourceInfo {
            &self.info
        }

        fn next_frame(&mut self) -> Result<Option<Frame>> {
            if self.limit.is_some_and(|l| self.produced >= l) {
                if self.end_cleanly {
                    return Ok(None);
                }
                return Err(Error::SourceLost {
                    source_name: "test camera".into(),
                    reason: "unplugged".into(),
                });
            }
            let shade = (self.life * 40 % 256) as u8;
            let frame = Frame {
                index: self.produced,
                timestamp: self.produced as f64 * 0.01,
                image: RgbImage::from_pixel(4, 3, Rgb([shade, 255 - shade, 7])),
                origin: self.info.name.clone(),
            };
            self.produced += 1;
            self.corrupt = 1;
            Ok(Some(frame))
        }

        fn health(&self) -> SourceHealth {
            SourceHealth {
                corrupt_frames: self.corrupt,
                reconnects: 0,
            }
        }
    }

    fn opener(script: Arc<Mutex<Script>>) -> impl FnMut() -> Result<Flaky> + Send {
        move || {
            let mut s = script.lock().unwrap();
            let pending = match s.pending {
                Some(n) => n,
                None if s.open_failures.is_empty() => 0,
                None => s.open_failures.remove(0),
            };
            if pending > 0 {
                s.pending = Some(pending - 1);
                s.failed_opens += 1;
                return Err(Error::SourceOpen {
                    source_name: "test camera".into(),
                    reason: "no such device".into(),
                });
            }
            s.pending = None;
            s.opens += 1;
            let limit = if s.frames_per_life.is_empty() {
                None
            } else {
                Some(s.frames_per_life.remove(0))
            };
            Ok(Flaky {
                info: SourceInfo {
                    name: "testcam".into(),
                    width: 4,
                    height: 3,
                    live: true,
                    ..SourceInfo::default()
                },
                life: s.opens,
                produced: 0,
                limit,
                end_cleanly: s.end_cleanly,
                corrupt: 0,
            })
        }
    }

    fn script(open_failures: Vec<u32>, frames_per_life: Vec<u64>) -> Arc<Mutex<Script>> {
        Arc::new(Mutex::new(Script {
            open_failures,
            frames_per_life,
            end_cleanly: false,
            opens: 0,
            failed_opens: 0,
            pending: None,
        }))
    }

    fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(8), 2.0)
    }

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 2.0);
        let got: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.attempt(), 6);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        // Thousands of attempts neither overflow nor exceed the cap.
        for _ in 0..5000 {
            assert!(b.next_delay() <= Duration::from_millis(1000));
        }
        // A cap beyond what f64 seconds hold neither panics nor shrinks.
        let mut huge = Backoff::new(Duration::from_secs(1), Duration::MAX, 1e300);
        huge.next_delay();
        assert!(huge.next_delay() >= Duration::from_secs(1 << 40));
        // A factor below 1 or NaN is treated as 1 (constant delay).
        let mut flat = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), f64::NAN);
        assert_eq!(flat.next_delay(), flat.next_delay());
        let mut flat = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 0.5);
        assert_eq!(flat.next_delay(), Duration::from_millis(50));
        assert_eq!(flat.next_delay(), Duration::from_millis(50));
    }

    #[test]
    fn backoff_jitter_stays_in_range_and_varies() {
        let mut b =
            Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1.0).with_jitter(0.3);
        let delays: Vec<Duration> = (0..200).map(|_| b.next_delay()).collect();
        assert!(delays
            .iter()
            .all(|d| *d >= Duration::from_millis(700) && *d <= Duration::from_secs(1)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100);
        let d = Backoff::default();
        assert_eq!(d.initial, Duration::from_millis(500));
        assert_eq!(d.max, Duration::from_secs(10));
    }

    #[test]
    fn frames_continue_after_failures_on_open_and_mid_stream() {
        // Life 1: 3 frames then an error; reopening fails twice; life 2: 2 frames then an
        // error; reopening fails once; life 3 runs on.
        let s = script(vec![0, 2, 1], vec![3, 2]);
        let mut src = Reconnecting::new(opener(s.clone()))
            .unwrap()
            .with_backoff(fast());
        assert_eq!(src.info().name, "testcam");
        let mut frames = Vec::new();
        for _ in 0..10 {
            frames.push(src.next_frame().unwrap().expect("frames continue"));
        }
        let indices: Vec<u64> = frames.iter().map(|f| f.index).collect();
        assert_eq!(indices, (0..10).collect::<Vec<u64>>());
        assert!(frames.windows(2).all(|w| w[1].timestamp >= w[0].timestamp));
        // The colours show which life each frame came from.
        let lives: Vec<u8> = frames.iter().map(|f| f.image.get_pixel(0, 0)[0]).collect();
        assert_eq!(lives, [40, 40, 40, 80, 80, 120, 120, 120, 120, 120]);
        let h = src.health();
        assert_eq!(h.reconnects, 2);
        // One corrupt frame reported by each of the three lives.
        assert_eq!(h.corrupt_frames, 3);
        let s = s.lock().unwrap();
        assert_eq!(s.opens, 3);
        assert_eq!(s.failed_opens, 3);
        assert_eq!(
            src.backoff().attempt(),
            0,
            "a good frame resets the backoff"
        );
        assert!(src.gave_up().is_none());
    }

    #[test]
    fn a_clean_end_is_reconnected_too() {
        let s = script(vec![], vec![2, 2]);
        s.lock().unwrap().end_cleanly = true;
        let mut src = Reconnecting::new(opener(s)).unwrap().with_backoff(fast());
        let idx: Vec<u64> = (0..6)
            .map(|_| src.next_frame().unwrap().unwrap().index)
            .collect();
        assert_eq!(idx, [0, 1, 2, 3, 4, 5]);
        assert_eq!(src.health().reconnects, 2);
    }

    #[test]
    fn backoff_grows_while_failing_and_resets_after_recovery() {
        let s = script(vec![0, 3], vec![1, 1]);
        let mut src = Reconnecting::new(opener(s))
            .unwrap()
            .with_backoff(Backoff::new(
                Duration::from_millis(1),
                Duration::from_millis(100),
                2.0,
            ));
        src.next_frame().unwrap().unwrap();
        assert_eq!(src.backoff().attempt(), 0);
        // Loss, then 3 failed opens, then success: 4 delays of 1, 2, 4, 8 ms.
        let t = Instant::now();
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!(f.index, 1);
        assert!(t.elapsed() >= Duration::from_millis(15));
        assert_eq!(src.backoff().attempt(), 0);
        // The next loss starts again from the initial delay.
        let mut probe = src.backoff().clone();
        assert_eq!(probe.next_delay(), Duration::from_millis(1));
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let s = script(vec![0, u32::MAX], vec![2]);
        let mut src = Reconnecting::new(opener(s.clone()))
            .unwrap()
            .with_backoff(fast())
            .with_max_attempts(Some(3));
        assert!(src.next_frame().unwrap().is_some());
        assert!(src.next_frame().unwrap().is_some());
        assert!(src.next_frame().unwrap().is_none());
        let why = src.gave_up().expect("gave up").to_string();
        assert!(why.contains("testcam"), "{why}");
        assert!(why.contains("no such device"), "{why}");
        assert!(why.contains("3 reconnect attempts"), "{why}");
        assert_eq!(s.lock().unwrap().failed_opens, 3);
        // It stays ended.
        assert!(src.next_frame().unwrap().is_none());
        assert_eq!(src.health().reconnects, 0);
    }

    #[test]
    fn first_open_failure_is_reported_at_once() {
        let s = script(vec![1], vec![]);
        let err = Reconnecting::new(opener(s)).err().expect("fails");
        assert!(err.to_string().contains("no such device"), "{err}");
    }

    #[test]
    fn stop_flag_ends_a_long_wait_quickly() {
        let s = script(vec![0, u32::MAX], vec![1]);
        let stop = Arc::new(AtomicBool::new(false));
        let mut src = Reconnecting::new(opener(s))
            .unwrap()
            .with_backoff(Backoff::new(
                Duration::from_secs(30),
                Duration::from_secs(30),
                2.0,
            ))
            .with_stop(stop.clone())
            .with_name("cam0");
        assert_eq!(src.info().name, "cam0");
        assert!(src.next_frame().unwrap().is_some());
        let setter = {
            let stop = src.stop_flag();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let t = Instant::now();
        assert!(src.next_frame().unwrap().is_none());
        let waited = t.elapsed();
        setter.join().unwrap();
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        assert!(src.gave_up().is_none());
        assert!(stop.load(Ordering::Relaxed));
    }

    #[test]
    fn stop_flag_set_before_reading_ends_at_once() {
        let s = script(vec![], vec![]);
        let mut src = Reconnecting::new(opener(s)).unwrap();
        src.stop_flag().store(true, Ordering::Relaxed);
        assert!(src.next_frame().unwrap().is_none());
    }

    #[test]
    fn delays_read_well() {
        assert_eq!(format_delay(Duration::from_millis(500)), "0.5 s");
        assert_eq!(format_delay(Duration::from_millis(20)), "20 ms");
        assert_eq!(format_delay(Duration::from_secs(12)), "12 s");
    }

    #[test]
    fn reconnecting_is_a_send_frame_source() {
        fn boxed<T: FrameSource + 'static>(t: T) -> Box<dyn FrameSource> {
            Box::new(t)
        }
        let s = script(vec![], vec![]);
        let mut b = boxed(Reconnecting::new(opener(s)).unwrap());
        assert_eq!(b.next_frame().unwrap().unwrap().index, 0);
    }
}

#[cfg(test)]
mod start_wait_tests {
    use super::*;

    fn unavailable() -> Error {
        Error::SourceOpen {
            source_name: "camera /dev/video9".into(),
            reason: "not found".into(),
        }
    }

    #[test]
    fn a_source_down_at_start_is_retried_until_it_comes() {
        let mut calls = 0;
        let mut open = || {
            calls += 1;
            if calls < 3 {
                Err(unavailable())
            } else {
                Ok(calls)
            }
        };
        let start = StartWait {
            limit: None,
            name: "camera /dev/video9".into(),
            stop: Arc::default(),
        };
        assert_eq!(open_retrying(&mut open, &start).unwrap(), 3);
    }

    #[test]
    fn the_wait_is_bounded_stopped_or_skipped() {
        // Zero: the first failure is the answer.
        let mut calls = 0;
        let mut open = || -> Result<()> {
            calls += 1;
            Err(unavailable())
        };
        let e = open_retrying(&mut open, &StartWait::none()).unwrap_err();
        assert!(e.to_string().contains("/dev/video9"), "{e}");
        assert_eq!(calls, 1);

        // A bounded wait: attempts while the next delay still fits in it.
        let mut calls = 0;
        let mut open = || -> Result<()> {
            calls += 1;
            Err(unavailable())
        };
        let start = StartWait {
            limit: Some(Duration::from_millis(1600)),
            ..StartWait::default()
        };
        assert!(open_retrying(&mut open, &start).is_err());
        assert!((2..=3).contains(&calls), "{calls} attempts");

        // A failure that cannot pass by itself is not retried.
        let mut calls = 0;
        let mut open = || -> Result<()> {
            calls += 1;
            Err(Error::option("--source", "bad"))
        };
        let start = StartWait {
            limit: None,
            ..StartWait::default()
        };
        assert!(open_retrying(&mut open, &start).is_err());
        assert_eq!(calls, 1);

        // Ctrl-C ends an unbounded wait.
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::Relaxed);
        });
        let mut open = || -> Result<()> { Err(unavailable()) };
        let start = StartWait {
            limit: None,
            name: "x".into(),
            stop,
        };
        let began = Instant::now();
        assert!(open_retrying(&mut open, &start).is_err());
        assert!(began.elapsed() < Duration::from_secs(5));
    }
}
