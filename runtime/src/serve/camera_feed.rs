//! One camera's live feed: the pipeline publishes frames into a one-slot mailbox and returns at
//! once; an encoder thread JPEG-encodes the newest frame only while someone watches, and hands it
//! to the viewers through a `watch` channel, so a slow viewer skips frames instead of queueing
//! them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;
use tokio::sync::watch;

use crate::sink::live_preview::LivePreview;

/// The newest encoded frame of a camera, as the viewers see it.
#[derive(Clone, Default)]
pub struct Encoded {
    /// JPEG bytes of the newest successfully encoded frame.
    pub jpeg: Option<Bytes>,
    /// Sequence number of `jpeg` (0: none yet).
    pub seq: u64,
    /// Sequence number of the newest frame the encoder finished with, encoded or not.
    pub done: u64,
}

/// The newest published frame, not yet taken by the encoder.
struct Mailbox {
    frame: Option<RgbImage>,
    /// Sequence number of the newest published frame (0: none yet).
    seq: u64,
    /// A buffer the encoder gave back, reused by the next publish.
    spare: Option<RgbImage>,
}

/// State shared by the publisher, the encoder thread and the HTTP handlers.
pub struct FeedState {
    mailbox: Mutex<Mailbox>,
    mailbox_cv: Condvar,
    encoded: watch::Sender<Encoded>,
    stats: Mutex<Arc<serde_json::Value>>,
    /// Frames processed (stats published), drawn or not.
    processed: AtomicU64,
    /// Open MJPEG streams.
    viewers: AtomicUsize,
    /// `frame.jpg` requests waiting for an encoded frame.
    waiters: AtomicUsize,
    stop: AtomicBool,
    quality: u8,
}

/// Locks a mutex, ignoring poisoning (the protected data stays consistent on every path).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FeedState {
    /// Whether anyone wants encoded frames.
    fn wanted(&self) -> bool {
        self.viewers.load(Ordering::SeqCst) + self.waiters.load(Ordering::SeqCst) > 0
    }

    /// Wakes the encoder so that it encodes a pending frame for a new viewer.
    fn wake_encoder(&self) {
        let _mailbox = lock(&self.mailbox);
        self.mailbox_cv.notify_all();
    }

    /// Counts one MJPEG viewer for as long as the guard lives.
    pub fn viewer(self: &Arc<Self>) -> Watching {
        Watching::enter(self.clone(), |s| &s.viewers)
    }

    /// Counts one `frame.jpg` request for as long as the guard lives.
    pub fn waiter(self: &Arc<Self>) -> Watching {
        Watching::enter(self.clone(), |s| &s.waiters)
    }

    /// Open MJPEG streams.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::SeqCst)
    }

    /// Sequence number of the newest published frame (0: none yet).
    pub fn published(&self) -> u64 {
        lock(&self.mailbox).seq
    }

    /// Frames the camera's pipeline has processed, watched or not.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::SeqCst)
    }

    /// Replaces the stats and counts one processed frame.
    fn set_stats(&self, stats: serde_json::Value) {
        let old = std::mem::replace(&mut *lock(&self.stats), Arc::new(stats));
        self.processed.fetch_add(1, Ordering::SeqCst);
        drop(old);
    }

    /// The newest encoded frames, as they come.
    pub fn subscribe(&self) -> watch::Receiver<Encoded> {
        self.encoded.subscribe()
    }

    /// The newest stats object (`{}` before the first frame).
    pub fn stats(&self) -> Arc<serde_json::Value> {
        lock(&self.stats).clone()
    }
}

/// One counted viewer or waiter; the count drops with it.
pub struct Watching {
    state: Arc<FeedState>,
    counter: fn(&FeedState) -> &AtomicUsize,
}

impl Watching {
    fn enter(state: Arc<FeedState>, counter: fn(&FeedState) -> &AtomicUsize) -> Self {
        counter(&state).fetch_add(1, Ordering::SeqCst);
        state.wake_encoder();
        Watching { state, counter }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        (self.counter)(&self.state).fetch_sub(1, Ordering::SeqCst);
    }
}

/// The pipeline's handle on one camera's feed.
#[derive(Clone)]
pub struct PreviewFeed {
    state: Arc<FeedState>,
}

impl LivePreview for PreviewFeed {
    fn wants_frames(&self) -> bool {
        self.state.wanted()
    }

    fn publish_stats(&self, stats: serde_json::Value) {
        self.state.set_stats(stats);
    }

    fn publish(&self, frame: &RgbImage, stats: serde_json::Value) {
        let s = &*self.state;
        s.set_stats(stats);
        let mut mailbox = lock(&s.mailbox);
        let reused = mailbox.frame.take().or_else(|| mailbox.spare.take());
        let buf = match reused {
            Some(mut b) if b.dimensions() == frame.dimensions() && b.len() == frame.len() => {
                b.copy_from_slice(frame);
                b
            }
            _ => frame.clone(),
        };
        mailbox.frame = Some(buf);
        mailbox.seq += 1;
        if s.wanted() {
            s.mailbox_cv.notify_all();
        }
    }
}

/// A camera's feed with its encoder thread; dropping it stops the thread.
pub struct CameraFeed {
    state: Arc<FeedState>,
    encoder: Option<JoinHandle<()>>,
}

impl CameraFeed {
    /// Starts the encoder thread of a camera's feed, encoding at JPEG `quality` (1 to 100).
    pub fn start(camera: &str, quality: u8) -> std::io::Result<CameraFeed> {
        let (encoded, _) = watch::channel(Encoded::default());
        let state = Arc::new(FeedState {
            mailbox: Mutex::new(Mailbox {
                frame: None,
                seq: 0,
                spare: None,
            }),
            mailbox_cv: Condvar::new(),
            encoded,
            stats: Mutex::new(Arc::new(serde_json::Value::Object(Default::default()))),
            processed: AtomicU64::new(0),
            viewers: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            quality: quality.clamp(1, 100),
        });
        let enc_state = state.clone();
        let encoder = thread::Builder::new()
            .name(format!("vigia-jpeg-{camera}"))
            .spawn(move || encoder_loop(&enc_state))?;
        Ok(CameraFeed {
            state,
            encoder: Some(encoder),
        })
    }

    /// The state the HTTP handlers read.
    pub fn state(&self) -> &Arc<FeedState> {
        &self.state
    }

    /// The pipeline's handle for publishing frames.
    pub fn handle(&self) -> PreviewFeed {
        PreviewFeed {
            state: self.state.clone(),
        }
    }
}

impl Drop for CameraFeed {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.state.wake_encoder();
        if let Some(h) = self.encoder.take() {
            let _ = h.join();
        }
    }
}

/// Encodes the newest frame whenever someone wants it, until the feed stops.
fn encoder_loop(s: &FeedState) {
    let mut capacity = 0usize;
    loop {
        let (frame, seq) = {
            let mut mailbox = lock(&s.mailbox);
            loop {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                if mailbox.frame.is_some() && s.wanted() {
                    break;
                }
                mailbox = match s.mailbox_cv.wait_timeout(mailbox, Duration::from_secs(1)) {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                };
            }
            (mailbox.frame.take(), mailbox.seq)
        };
        let Some(frame) = frame else { continue };
        let mut jpeg = Vec::with_capacity(capacity);
        let encoded = catch_unwind(AssertUnwindSafe(|| {
            JpegEncoder::new_with_quality(&mut jpeg, s.quality).encode_image(&frame)
        }));
        let ok = matches!(encoded, Ok(Ok(()))) && !jpeg.is_empty();
        capacity = capacity.max(jpeg.len());
        s.encoded.send_modify(|e| {
            if ok {
                e.jpeg = Some(Bytes::from(jpeg));
                e.seq = seq;
            }
            e.done = seq;
        });
        let mut mailbox = lock(&s.mailbox);
        if mailbox.spare.is_none() {
            mailbox.spare = Some(frame);
        }
    }
}
