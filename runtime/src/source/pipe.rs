//! Sources fed by an external process writing raw frames to a pipe: `ffmpeg` (files, RTSP,
//! HTTP), `rpicam-vid` (Raspberry Pi cameras, I420) and `gst-launch-1.0` (Jetson CSI cameras).
//!
//! The process runs in its own process group so a Ctrl-C aimed at vigia does not kill it
//! mid-frame; vigia stops it when done.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;

use super::pixfmt::i420_to_rgb;
use super::pool::FramePool;
use super::{Frame, FrameSource, SourceHealth, SourceInfo};
use crate::error::{Error, Result};

/// Raw pixel layout the process writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Packed RGB, 3 bytes per pixel.
    Rgb24,
    /// Planar YUV 4:2:0 (Y, then U and V at quarter size).
    I420,
}

impl RawFormat {
    /// Bytes of one `w` x `h` frame.
    pub fn frame_bytes(self, w: u32, h: u32) -> usize {
        let (w, h) = (w as usize, h as usize);
        match self {
            RawFormat::Rgb24 => w * h * 3,
            RawFormat::I420 => w * h + 2 * (w.div_ceil(2) * h.div_ceil(2)),
        }
    }
}

/// A live source that delivers no frame for this long is stopped and reported as stalled (its
/// reconnecting wrapper then reopens it with backoff).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The same limit before the first frame, which also covers connecting and probing the stream.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);

/// Watches a live capture process and kills it when frames stop coming.
struct StallWatch {
    started: Instant,
    /// Milliseconds after `started` of the last frame, `u64::MAX` before the first.
    last_ms: AtomicU64,
    stalled: AtomicBool,
    /// Set (under the lock) once the process is reaped, so that its id is never signalled again.
    done: Mutex<bool>,
}

impl StallWatch {
    fn new() -> Self {
        StallWatch {
            started: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            stalled: AtomicBool::new(false),
            done: Mutex::new(false),
        }
    }

    fn frame_arrived(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(ms.min(u64::MAX - 1), Ordering::Relaxed);
    }

    fn set_done(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// The limit in force and how long the source has gone without a frame.
    fn silence(&self) -> (Duration, Duration) {
        let now = self.started.elapsed();
        match self.last_ms.load(Ordering::Relaxed) {
            u64::MAX => (FIRST_FRAME_TIMEOUT, now),
            ms => (STALL_TIMEOUT, now.saturating_sub(Duration::from_millis(ms))),
        }
    }

    /// Polls until the process is done or stalls; a stalled process group is killed, which
    /// ends the blocked read with end of stream.
    fn run(&self, pgid: u32) {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
            if *done {
                return;
            }
            let (limit, silent) = self.silence();
            if silent >= limit {
                self.stalled.store(true, Ordering::Relaxed);
                #[cfg(unix)]
                if let Ok(pgid) = i32::try_from(pgid) {
                    // SAFETY: plain syscall; the group is ours and not yet reaped (`done` is false
                    // and cannot become true while this lock is held).
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                }
                // The process and its children; its id stays ours while `done` is false.
                #[cfg(windows)]
                let _ = Command::new("taskkill")
                    .args(["/F", "/T", "/PID", &pgid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                return;
            }
        }
    }
}

/// Starts the process of `cmd` in a process group of its own, out of reach of a Ctrl-C aimed at
/// vigia.
pub(crate) fn own_process_group(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }
}

/// What the decoding process said on stderr: error count and the last lines.
#[derive(Debug, Default)]
struct StderrLog {
    errors: u64,
    tail: VecDeque<String>,
}

/// Frames read from a child process's stdout.
pub struct PipeSource {
    child: Child,
    stdout: BufReader<ChildStdout>,
    program: String,
    info: SourceInfo,
    format: RawFormat,
    raw: Vec<u8>,
    pool: FramePool,
    stride: u64,
    next_index: u64,
    delivered: u64,
    started: Instant,
    log: Arc<Mutex<StderrLog>>,
    finished: bool,
    /// Live sources only: stops the process when frames stop coming.
    watch: Option<Arc<StallWatch>>,
}

impl PipeSource {
    /// Starts `cmd` (whose stdout carries raw frames described by `info` and `format`).
    /// `stride` keeps every Nth frame.
    pub fn spawn(
        mut cmd: Command,
        info: SourceInfo,
        format: RawFormat,
        stride: u64,
        pool: FramePool,
    ) -> Result<Self> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        if info.width == 0 || info.height == 0 {
            return Err(Error::SourceOpen {
                source_name: info.name.clone(),
                reason: "frame size unknown".into(),
            });
        }
        own_process_group(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let mut child = cmd.spawn().map_err(|e| spawn_error(&program, e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(StderrLog::default()));
        let log2 = log.clone();
        std::thread::Builder::new()
            .name("vigia-src-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    let mut log = log2.lock().unwrap_or_else(|p| p.into_inner());
                    log.errors += decode_errors_in(&line);
                    log.tail.push_back(line);
                    if log.tail.len() > 8 {
                        log.tail.pop_front();
                    }
                }
            })
            .map_err(|e| Error::thread_spawn("capture log", e))?;
        let watch = if info.live {
            let watch = Arc::new(StallWatch::new());
            let w = watch.clone();
            let pgid = child.id();
            std::thread::Builder::new()
                .name("vigia-src-watch".into())
                .spawn(move || w.run(pgid))
                .map_err(|e| Error::thread_spawn("stall watch", e))?;
            Some(watch)
        } else {
            None
        };
        let frame_bytes = format.frame_bytes(info.width, info.height);
        Ok(PipeSource {
            child,
            stdout: BufReader::with_capacity(frame_bytes.min(1 << 22), stdout),
            program,
            info,
            format,
            raw: vec![
                0;
                if format == RawFormat::Rgb24 {
                    0
                } else {
                    frame_bytes
                }
            ],
            pool,
            stride: stride.max(1),
            next_index: 0,
            delivered: 0,
            started: Instant::now(),
            log,
            finished: false,
            watch,
        })
    }

    /// Reaps the process; the error to report when the stall watch stopped it.
    fn stall_error(&mut self) -> Option<Error> {
        let watch = self.watch.as_ref()?;
        if !watch.stalled.load(Ordering::Relaxed) {
            return None;
        }
        let (limit, _) = watch.silence();
        self.finished = true;
        watch.set_done();
        let _ = self.child.wait();
        Some(Error::SourceStalled {
            source_name: self.info.name.clone(),
            seconds: limit.as_secs(),
            stopped: self.program.clone(),
        })
    }

    /// Reads one raw frame into `image` (RGB) or the raw buffer; false at end of stream.
    fn read_frame(&mut self, image: &mut RgbImage) -> std::io::Result<bool> {
        let buf: &mut [u8] = match self.format {
            RawFormat::Rgb24 => image,
            RawFormat::I420 => &mut self.raw,
        };
        let mut filled = 0;
        while filled < buf.len() {
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) => return Ok(false),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reaps the process and reports an early or failed end.
    fn finish(&mut self) -> Result<()> {
        self.finished = true;
        if let Some(w) = &self.watch {
            w.set_done();
        }
        let status = self.child.wait().ok();
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let tail: Vec<&str> = log.tail.iter().map(String::as_str).collect();
        let ok = status.is_some_and(|s| s.success());
        if self.next_index == 0 {
            return Err(Error::SourceLost {
                source_name: self.info.name.clone(),
                reason: format!(
                    "{} produced no frame ({}){}",
                    self.program,
                    status.map(|s| s.to_string()).unwrap_or_default(),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", tail.join(" | "))
                    }
                ),
            });
        }
        let early = self.info.frames.is_some_and(|n| self.next_index + 1 < n);
        if !ok || early {
            eprintln!(
                "vigia: {} ended {}after {} frame(s){}{}",
                self.info.name,
                if early { "early " } else { "with an error " },
                self.next_index,
                self.info
                    .frames
                    .map(|n| format!(" of {n} expected"))
                    .unwrap_or_default(),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", tail.join(" | "))
                }
            );
        }
        Ok(())
    }
}

impl FrameSource for PipeSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.finished {
            return Ok(None);
        }
        let mut image = self.pool.take(self.info.width, self.info.height);
        loop {
            let got = self.read_frame(&mut image).map_err(|e| Error::Io {
                path: self.info.name.clone().into(),
                source: e,
            })?;
            if !got {
                self.pool.give(image);
                if let Some(e) = self.stall_error() {
                    return Err(e);
                }
                self.finish()?;
                return Ok(None);
            }
            if let Some(w) = &self.watch {
                w.frame_arrived();
            }
            let index = self.next_index;
            self.next_index += 1;
            if !index.is_multiple_of(self.stride) {
                continue;
            }
            if self.format == RawFormat::I420 {
                i420_to_rgb(
                    &self.raw,
                    self.info.width,
                    self.info.height,
                    None,
                    &mut image,
                )?;
            }
            self.delivered += 1;
            let timestamp = match (self.info.live, self.info.fps) {
                (false, Some(fps)) if fps > 0.0 => index as f64 / fps,
                _ => self.started.elapsed().as_secs_f64(),
            };
            return Ok(Some(Frame {
                index,
                timestamp,
                image,
                origin: self.info.name.clone(),
            }));
        }
    }

    fn health(&self) -> SourceHealth {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        SourceHealth {
            corrupt_frames: log.errors,
            reconnects: 0,
        }
    }
}

impl Drop for PipeSource {
    fn drop(&mut self) {
        if let Some(w) = &self.watch {
            w.set_done();
        }
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Damaged-data reports in decoder output (ffmpeg conceals or drops the frame): codec-tagged
/// lines such as `[msmpeg4 @ 0x..] ac-tex damaged` and explicit errors; a "Last message
/// repeated N times" line counts N.
fn decode_errors_in(line: &str) -> u64 {
    let l = line.trim().to_ascii_lowercase();
    if let Some(rest) = l.strip_prefix("last message repeated ") {
        return rest
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
    }
    let tagged = l.starts_with('[') && l.contains(" @ ");
    let bad = [
        "error",
        "corrupt",
        "damaged",
        "invalid",
        "overflow",
        "concealing",
        "missing",
    ];
    u64::from(tagged || bad.iter().any(|b| l.contains(b)))
}

/// A clear message when the frame process cannot be started.
pub fn spawn_error(program: &str, e: std::io::Error) -> Error {
    let reason = if e.kind() == std::io::ErrorKind::NotFound {
        match program {
            "ffmpeg" | "ffprobe" => format!(
                "{program} not found on PATH: video files and streams are decoded by ffmpeg; \
                 install it (Debian/Ubuntu/Raspberry Pi OS: `sudo apt install ffmpeg`, macOS: \
                 `brew install ffmpeg`)"
            ),
            "rpicam-vid" => "rpicam-vid not found: install `rpicam-apps` (Raspberry Pi OS)".into(),
            "gst-launch-1.0" => {
                "gst-launch-1.0 not found: install GStreamer (JetPack ships it)".into()
            }
            _ => format!("{program} not found on PATH"),
        }
    } else {
        format!("cannot start {program}: {e}")
    };
    Error::Program {
        program: program.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_error_lines_are_counted() {
        assert_eq!(
            decode_errors_in("[msmpeg4 @ 0x5654] ac-tex damaged at 39 12"),
            1
        );
        assert_eq!(decode_errors_in("    Last message repeated 3 times"), 3);
        assert_eq!(decode_errors_in("Error while decoding stream #0:0"), 1);
        assert_eq!(decode_errors_in("Press [q] to stop"), 0);
    }

    #[test]
    fn frame_sizes() {
        assert_eq!(RawFormat::Rgb24.frame_bytes(4, 2), 24);
        assert_eq!(RawFormat::I420.frame_bytes(4, 2), 8 + 2 * 2);
        assert_eq!(RawFormat::I420.frame_bytes(3, 3), 9 + 2 * 4);
    }

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let info = SourceInfo {
            name: "x.mp4".into(),
            width: 4,
            height: 4,
            ..Default::default()
        };
        let e = PipeSource::spawn(
            Command::new("ffmpeg-definitely-missing"),
            info,
            RawFormat::Rgb24,
            1,
            FramePool::new(2),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("ffmpeg-definitely-missing not found"), "{e}");
        let e = spawn_error("ffmpeg", std::io::ErrorKind::NotFound.into()).to_string();
        assert!(e.contains("apt install ffmpeg"), "{e}");
    }

    #[test]
    fn reads_raw_frames_from_a_process_and_applies_the_stride() {
        // 5 frames of 2x1 RGB, bytes 0..30.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "printf '\\000\\001\\002\\003\\004\\005\\006\\007\\010\\011\\012\\013\\014\\015\\016\\017\\020\\021\\022\\023\\024\\025\\026\\027\\030\\031\\032\\033\\034\\035'"]);
        let info = SourceInfo {
            name: "test".into(),
            width: 2,
            height: 1,
            fps: Some(10.0),
            frames: Some(5),
            live: false,
        };
        let mut src = PipeSource::spawn(cmd, info, RawFormat::Rgb24, 2, FramePool::new(4)).unwrap();
        let mut got = vec![];
        while let Some(f) = src.next_frame().unwrap() {
            got.push((f.index, f.timestamp, f.image.as_raw()[0]));
        }
        assert_eq!(got, vec![(0, 0.0, 0), (2, 0.2, 12), (4, 0.4, 24)]);
    }
}
