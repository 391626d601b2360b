//! Webcams on macOS (AVFoundation) and Windows (Media Foundation) through the `nokhwa` crate
//! (`nokhwa` feature), with the `--source 0` syntax and the behaviour of the V4L2 cameras of
//! Linux: pooled RGB8 frames, timestamps from the first frame, corrupt frames skipped and
//! counted.
//!
//! A capture thread creates, streams and closes the camera (the backends' objects stay on the
//! thread that made them) and hands the raw buffers over a short channel; [`DesktopCamera`]
//! converts them with [`crate::source::pixfmt`], so nokhwa's own decoders (and their C code)
//! stay out of the build.

use std::cmp::Reverse;
use std::fmt;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::source::camera::CameraRequest;
use crate::source::pixfmt::{self, PixelFormat};
use crate::source::pool::FramePool;
use crate::source::Frame;

#[cfg(all(feature = "nokhwa", any(target_os = "macos", target_os = "windows")))]
pub use backend::DesktopCamera;

/// Undecodable frames in a row after which a camera is reported as failed (as for V4L2).
const MAX_BAD_IN_A_ROW: u32 = 60;

/// The camera number a `--source` names on macOS and Windows: `"0"` is the first camera.
pub fn camera_index(spec: &str) -> Result<u32> {
    let s = spec.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::option(
            "--source",
            format!(
                "{spec:?} is not a camera: on macOS and Windows a camera is a number (0 for the \
                 first)"
            ),
        ));
    }
    s.parse()
        .map_err(|_| Error::option("--source", format!("camera number {s} is too large")))
}

/// One way a camera can stream: pixel format, frame size and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Pixel format of the buffers.
    pub format: PixelFormat,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second (0 when unknown).
    pub fps: u32,
}

impl fmt::Display for Mode {
    /// `MJPG 1280x720 at 30 fps`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.format, self.width, self.height)?;
        if self.fps > 0 {
            write!(f, " at {} fps", self.fps)?;
        }
        Ok(())
    }
}

/// The offered mode closest to the request: nearest size (sum of the width and height
/// differences), then nearest rate, then the earliest format in `preference`, then the higher
/// rate and the larger frame. What the request leaves out does not count; modes with an empty
/// size or a format outside `preference` are never chosen.
pub fn choose_mode(
    offered: &[Mode],
    req: &CameraRequest,
    preference: &[PixelFormat],
) -> Option<Mode> {
    offered
        .iter()
        .filter(|m| m.width > 0 && m.height > 0)
        .filter_map(|&m| {
            let rank = preference.iter().position(|&f| f == m.format)?;
            let dw = req.width.map_or(0, |t| u64::from(m.width.abs_diff(t)));
            let dh = req.height.map_or(0, |t| u64::from(m.height.abs_diff(t)));
            let df = req.fps.filter(|&f| f > 0).map_or(0, |t| m.fps.abs_diff(t));
            let area = u64::from(m.width) * u64::from(m.height);
            Some(((dw + dh, df, rank, Reverse(m.fps), Reverse(area)), m))
        })
        .min_by_key(|&(key, _)| key)
        .map(|(_, m)| m)
}

/// Bytes per row of an uncompressed buffer whose rows are padded, inferred from its length:
/// `None` when the length shows no padding (or for MJPEG and I420, which backends do not pad
/// here), or when the would-be stride is not a multiple of 16 (trailing bytes, not padding).
fn row_stride(format: PixelFormat, width: u32, height: u32, len: usize) -> Option<usize> {
    let (w, h) = (width as usize, height as usize);
    let (row, rows) = match format {
        PixelFormat::Yuyv => (w.checked_mul(2)?, h),
        PixelFormat::Rgb24 => (w.checked_mul(3)?, h),
        // Both planes share the stride: h luma rows, then ceil(h / 2) rows of U, V pairs.
        PixelFormat::Nv12 => (w, h.checked_add(h.div_ceil(2))?),
        PixelFormat::Mjpeg | PixelFormat::I420 => return None,
    };
    if rows == 0 || !len.is_multiple_of(rows) {
        return None;
    }
    let stride = len / rows;
    (stride > row && stride.is_multiple_of(16)).then_some(stride)
}

/// A camera that cannot be opened or configured; `camera` names it (`camera 0 (C920)`).
fn open_error(camera: &str, reason: impl Into<String>) -> Error {
    Error::SourceOpen {
        source_name: camera.to_string(),
        reason: reason.into(),
    }
}

/// A camera that failed while streaming.
fn lost_error(camera: &str, reason: impl Into<String>) -> Error {
    Error::SourceLost {
        source_name: camera.to_string(),
        reason: reason.into(),
    }
}

/// The error for camera `index` when it is not among `cameras` (number and name of each).
fn missing_camera(index: u32, cameras: &[(u32, String)]) -> Error {
    let camera = format!("camera {index}");
    if cameras.is_empty() {
        return open_error(
            &camera,
            "not found: no cameras found: is one connected, and is camera access allowed in the \
             system's privacy settings?",
        );
    }
    let list: Vec<String> = cameras
        .iter()
        .map(|(i, name)| format!("{i} ({name})"))
        .collect();
    open_error(
        &camera,
        format!("not found; cameras here: {}", list.join(", ")),
    )
}

/// Turns raw camera buffers into frames: conversion into pooled images, corrupt buffers skipped
/// and counted, indices, timestamps since the first frame.
struct FrameDecoder {
    /// The camera in error messages (`camera 0 (FaceTime HD Camera)`).
    camera: String,
    /// The source name carried by each frame.
    origin: String,
    pool: FramePool,
    next_index: u64,
    corrupt: u64,
    bad_in_a_row: u32,
    first_time: Option<f64>,
    last_timestamp: f64,
    opened: Instant,
}

impl FrameDecoder {
    fn new(camera: String, origin: String, pool: FramePool) -> Self {
        FrameDecoder {
            camera,
            origin,
            pool,
            next_index: 0,
            corrupt: 0,
            bad_in_a_row: 0,
            first_time: None,
            last_timestamp: 0.0,
            opened: Instant::now(),
        }
    }

    /// Counts an undecodable buffer; an error once too many come in a row.
    fn bad(&mut self, why: &str) -> Result<Option<Frame>> {
        self.corrupt += 1;
        self.bad_in_a_row += 1;
        if self.bad_in_a_row >= MAX_BAD_IN_A_ROW {
            self.bad_in_a_row = 0;
            return Err(lost_error(
                &self.camera,
                format!("{MAX_BAD_IN_A_ROW} frames in a row could not be decoded (last: {why})"),
            ));
        }
        Ok(None)
    }

    /// The frame in one buffer; `None` when it was corrupt (counted and skipped). `format` is
    /// `None` for a format vigia cannot read; `capture_time` is the backend's capture time in
    /// seconds on any fixed clock, when it gives one.
    fn decode(
        &mut self,
        data: &[u8],
        format: Option<PixelFormat>,
        width: u32,
        height: u32,
        capture_time: Option<f64>,
    ) -> Result<Option<Frame>> {
        let index = self.next_index;
        self.next_index += 1;
        let Some(format) = format else {
            return self.bad("a buffer in a pixel format vigia cannot read");
        };
        if width == 0 || height == 0 {
            return self.bad(&format!("an empty {width}x{height} frame"));
        }
        if format == PixelFormat::Mjpeg {
            match pixfmt::mjpeg_dimensions(data) {
                Some(dims) if dims == (width, height) => {}
                Some((jw, jh)) => {
                    return self.bad(&format!("a {jw}x{jh} JPEG in a {width}x{height} stream"))
                }
                None => return self.bad("no JPEG frame header"),
            }
        }
        let stride = row_stride(format, width, height, data.len());
        let mut image = self.pool.take(width, height);
        if let Err(e) = pixfmt::convert(format, data, width, height, stride, &mut image) {
            self.pool.give(image);
            return self.bad(&e.to_string());
        }
        self.bad_in_a_row = 0;
        let timestamp = match capture_time.filter(|t| t.is_finite() && *t > 0.0) {
            Some(t) => t - *self.first_time.get_or_insert(t),
            None => self.opened.elapsed().as_secs_f64(),
        }
        .max(self.last_timestamp);
        self.last_timestamp = timestamp;
        Ok(Some(Frame {
            index,
            timestamp,
            image,
            origin: self.origin.clone(),
        }))
    }
}

#[cfg(all(feature = "nokhwa", any(target_os = "macos", target_os = "windows")))]
mod backend {
    use std::any::Any;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::time::Duration;

    use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
    use nokhwa::utils::{
        ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    };
    use nokhwa::{Buffer, Camera, NokhwaError};

    use super::{
        choose_mode, lost_error, missing_camera, open_error, FrameDecoder, Mode, PixelFormat,
    };
    use crate::error::{Error, Result};
    use crate::source::camera::CameraRequest;
    use crate::source::pool::FramePool;
    use crate::source::{Frame, FrameSource, SourceHealth, SourceInfo};

    /// Formats vigia reads, most wanted first. AVFoundation converts any camera format to YUYV
    /// itself; Media Foundation hands out what the camera sends, where MJPEG keeps the full
    /// frame rate at 720p and above on USB 2.0.
    #[cfg(target_os = "macos")]
    const PREFERENCE: &[PixelFormat] = &[PixelFormat::Yuyv, PixelFormat::Mjpeg];
    #[cfg(target_os = "windows")]
    const PREFERENCE: &[PixelFormat] = &[PixelFormat::Mjpeg, PixelFormat::Yuyv, PixelFormat::Nv12];

    /// What a camera that fails to open may need.
    #[cfg(target_os = "macos")]
    const OPEN_HINT: &str = " (is another program using it?)";
    #[cfg(target_os = "windows")]
    const OPEN_HINT: &str = " (is another program using it, and is camera access allowed for \
                              desktop apps in Settings > Privacy & security > Camera?)";

    /// Every format nokhwa knows, so that opening succeeds and the formats can be listed.
    const ALL_FORMATS: &[FrameFormat] = &[
        FrameFormat::MJPEG,
        FrameFormat::YUYV,
        FrameFormat::NV12,
        FrameFormat::GRAY,
        FrameFormat::RAWRGB,
        FrameFormat::RAWBGR,
    ];

    /// How long the user has to answer the camera access prompt (macOS; Windows has none).
    #[cfg(target_os = "macos")]
    const ACCESS_TIMEOUT: Duration = Duration::from_secs(60);
    #[cfg(target_os = "windows")]
    const ACCESS_TIMEOUT: Duration = Duration::from_secs(5);
    /// How long opening the camera and starting its stream may take.
    const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
    /// A camera silent this long is reported as failed (the reconnect wrapper reopens it).
    const CAPTURE_TIMEOUT: Duration = Duration::from_secs(5);
    /// How long closing waits for the capture thread to release the camera.
    const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

    /// What the capture thread tells its camera.
    enum Msg {
        /// Camera access is settled (macOS asks the user once); opening starts.
        Authorized,
        /// The camera streams in this mode.
        Opened { name: String, mode: Mode },
        /// One raw buffer.
        Frame(Buffer),
        /// The thread ended on this error.
        Failed(Error),
    }

    /// The pixel format of a nokhwa frame format, if vigia reads it.
    fn pixel_format(f: FrameFormat) -> Option<PixelFormat> {
        match f {
            FrameFormat::MJPEG => Some(PixelFormat::Mjpeg),
            FrameFormat::YUYV => Some(PixelFormat::Yuyv),
            FrameFormat::NV12 => Some(PixelFormat::Nv12),
            FrameFormat::RAWRGB => Some(PixelFormat::Rgb24),
            _ => None,
        }
    }

    fn mode_of(f: &CameraFormat) -> Option<Mode> {
        Some(Mode {
            format: pixel_format(f.format())?,
            width: f.width(),
            height: f.height(),
            fps: f.frame_rate(),
        })
    }

    fn panic_text(payload: &(dyn Any + Send)) -> &str {
        payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("no message")
    }

    /// The cameras the backend lists, as numbers and names.
    fn cameras_present() -> std::result::Result<Vec<(u32, String)>, NokhwaError> {
        Ok(nokhwa::query(ApiBackend::Auto)?
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let n = c.index().as_index().unwrap_or(i as u32);
                (n, c.human_name())
            })
            .collect())
    }

    /// The error for camera `index` that the backend could not open.
    fn open_failed(index: u32, e: &NokhwaError) -> Error {
        match cameras_present() {
            Ok(cameras) => match cameras.iter().find(|(i, _)| *i == index) {
                Some((_, name)) => open_error(
                    &format!("camera {index} ({name})"),
                    format!("{e}{OPEN_HINT}"),
                ),
                None => missing_camera(index, &cameras),
            },
            Err(q) => open_error(
                &format!("camera {index}"),
                format!("{e}; listing the cameras failed too: {q}{OPEN_HINT}"),
            ),
        }
    }

    /// Waits for camera access, asking the user the first time (macOS).
    #[cfg(target_os = "macos")]
    fn authorize(camera: &str) -> Result<()> {
        if nokhwa::nokhwa_check() {
            return Ok(());
        }
        let (tx, rx) = bounded(1);
        nokhwa::nokhwa_initialize(move |granted| {
            let _ = tx.try_send(granted);
        });
        let remedy = "allow it for this program (or the terminal running it) in System Settings \
                      > Privacy & Security > Camera";
        match rx.recv_timeout(ACCESS_TIMEOUT) {
            Ok(true) => Ok(()),
            Ok(false) => Err(open_error(
                camera,
                format!("camera access is denied: {remedy}"),
            )),
            Err(_) => Err(open_error(
                camera,
                format!(
                    "camera access was not granted within {} s: {remedy}",
                    ACCESS_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    #[cfg(target_os = "windows")]
    fn authorize(_camera: &str) -> Result<()> {
        Ok(())
    }

    /// The capture thread: opens camera `index`, then sends its frames until the receiver is
    /// gone or the camera fails. Panics in the backend become errors.
    fn capture(index: u32, req: CameraRequest, tx: Sender<Msg>) {
        let mut streaming = false;
        let result = catch_unwind(AssertUnwindSafe(|| {
            stream(index, &req, &tx, &mut streaming)
        }));
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(payload) => {
                let reason = format!("the camera backend panicked: {}", panic_text(&*payload));
                let camera = format!("camera {index}");
                if streaming {
                    lost_error(&camera, reason)
                } else {
                    open_error(&camera, reason)
                }
            }
        };
        let _ = tx.send(Msg::Failed(error));
    }

    fn stream(
        index: u32,
        req: &CameraRequest,
        tx: &Sender<Msg>,
        streaming: &mut bool,
    ) -> Result<()> {
        authorize(&format!("camera {index}"))?;
        if tx.send(Msg::Authorized).is_err() {
            return Ok(());
        }
        let any_format = RequestedFormat::with_formats(RequestedFormatType::None, ALL_FORMATS);
        let mut camera = Camera::new(CameraIndex::Index(index), any_format)
            .map_err(|e| open_failed(index, &e))?;
        let name = camera.info().human_name();
        let label = format!("camera {index} ({name})");

        let offered = camera
            .compatible_camera_formats()
            .map_err(|e| open_error(&label, format!("cannot list its formats: {e}")))?;
        let modes: Vec<Mode> = offered.iter().filter_map(mode_of).collect();
        let Some(mode) = choose_mode(&modes, req, PREFERENCE) else {
            let mut list: Vec<String> = offered.iter().map(|f| f.format().to_string()).collect();
            list.sort();
            list.dedup();
            let readable: Vec<String> = PREFERENCE.iter().map(|f| f.to_string()).collect();
            return Err(open_error(
                &label,
                format!(
                    "it offers {} which vigia cannot read here (it reads {})",
                    if list.is_empty() {
                        "no video formats".to_string()
                    } else {
                        format!("only {}", list.join(", "))
                    },
                    readable.join(", ")
                ),
            ));
        };
        let Some(wanted) = offered.iter().copied().find(|f| mode_of(f) == Some(mode)) else {
            return Err(open_error(&label, format!("it no longer offers {mode}")));
        };
        let exact = [wanted.format()];
        camera
            .set_camera_requset(RequestedFormat::with_formats(
                RequestedFormatType::Exact(wanted),
                &exact,
            ))
            .map_err(|e| open_error(&label, format!("cannot set {mode}: {e}")))?;
        camera
            .open_stream()
            .map_err(|e| open_error(&label, format!("cannot start streaming: {e}{OPEN_HINT}")))?;
        let mode = mode_of(&camera.camera_format()).unwrap_or(mode);
        if tx.send(Msg::Opened { name, mode }).is_err() {
            return Ok(());
        }
        *streaming = true;
        loop {
            let buffer = camera
                .frame()
                .map_err(|e| lost_error(&label, format!("capture failed: {e}")))?;
            if tx.send(Msg::Frame(buffer)).is_err() {
                return Ok(());
            }
        }
    }

    /// A macOS or Windows webcam streaming through nokhwa on a capture thread of its own. The
    /// backends have no read timeout: a camera that stops sending leaves its thread waiting in
    /// the backend, while [`FrameSource::next_frame`] reports it lost after 5 s.
    pub struct DesktopCamera {
        rx: Receiver<Msg>,
        /// Disconnected once the capture thread has ended (and released the camera).
        done: Receiver<()>,
        camera: String,
        info: SourceInfo,
        decoder: FrameDecoder,
    }

    impl DesktopCamera {
        /// Opens camera `spec_index` (0 is the first), asking for the mode closest to `req`;
        /// frame buffers come from `pool`.
        pub fn open(spec_index: u32, req: &CameraRequest, pool: FramePool) -> Result<Self> {
            let camera = format!("camera {spec_index}");
            let (tx, rx) = bounded(2);
            let (done_tx, done) = bounded::<()>(0);
            let req = *req;
            std::thread::Builder::new()
                .name(camera.clone())
                .spawn(move || {
                    let _done = done_tx;
                    capture(spec_index, req, tx);
                })
                .map_err(|e| Error::thread_spawn(&camera, e))?;

            let wait = |timeout: Duration, doing: &str| match rx.recv_timeout(timeout) {
                Ok(Msg::Failed(e)) => Err(e),
                Ok(m) => Ok(m),
                Err(RecvTimeoutError::Timeout) => Err(open_error(
                    &camera,
                    format!("{doing} took more than {} s", timeout.as_secs()),
                )),
                Err(RecvTimeoutError::Disconnected) => {
                    Err(open_error(&camera, "its capture thread ended unexpectedly"))
                }
            };
            let Msg::Authorized = wait(ACCESS_TIMEOUT, "waiting for camera access")? else {
                return Err(open_error(&camera, "its capture thread skipped a step"));
            };
            let Msg::Opened { name, mode } = wait(OPEN_TIMEOUT, "opening it")? else {
                return Err(open_error(&camera, "its capture thread skipped a step"));
            };

            let info = SourceInfo {
                name: format!("{spec_index} ({name}, {mode})"),
                width: mode.width,
                height: mode.height,
                fps: (mode.fps > 0).then(|| f64::from(mode.fps)),
                frames: None,
                live: true,
            };
            let camera = format!("camera {spec_index} ({name})");
            let decoder = FrameDecoder::new(camera.clone(), info.name.clone(), pool);
            Ok(DesktopCamera {
                rx,
                done,
                camera,
                info,
                decoder,
            })
        }
    }

    impl FrameSource for DesktopCamera {
        fn info(&self) -> &SourceInfo {
            &self.info
        }

        fn next_frame(&mut self) -> Result<Option<Frame>> {
            loop {
                let buffer = match self.rx.recv_timeout(CAPTURE_TIMEOUT) {
                    Ok(Msg::Frame(buffer)) => buffer,
                    Ok(Msg::Failed(e)) => return Err(e),
                    Ok(Msg::Authorized | Msg::Opened { .. }) => continue,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(lost_error(
                            &self.camera,
                            format!("no frame for {} s", CAPTURE_TIMEOUT.as_secs()),
                        ))
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(lost_error(&self.camera, "its capture thread ended"))
                    }
                };
                let size = buffer.resolution();
                let time = buffer.capture_timestamp().map(|t| t.as_secs_f64());
                let format = pixel_format(buffer.source_frame_format());
                let decoded = self.decoder.decode(
                    buffer.buffer(),
                    format,
                    size.width(),
                    size.height(),
                    time,
                )?;
                if let Some(frame) = decoded {
                    return Ok(Some(frame));
                }
            }
        }

        fn health(&self) -> SourceHealth {
            SourceHealth {
                corrupt_frames: self.decoder.corrupt,
                reconnects: 0,
            }
        }
    }

    impl Drop for DesktopCamera {
        /// Lets the capture thread see that nobody reads any more, and gives it a moment to
        /// release the camera so that a reconnect can open it again.
        fn drop(&mut self) {
            self.rx = crossbeam_channel::never();
            let _ = self.done.recv_timeout(CLOSE_TIMEOUT);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn desktop_camera_is_send() {
            fn send<T: Send>() {}
            send::<DesktopCamera>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(format: PixelFormat, width: u32, height: u32, fps: u32) -> Mode {
        Mode {
            format,
            width,
            height,
            fps,
        }
    }

    fn req(width: Option<u32>, height: Option<u32>, fps: Option<u32>) -> CameraRequest {
        CameraRequest { width, height, fps }
    }

    #[test]
    fn specs_are_camera_numbers() {
        assert_eq!(camera_index("0").unwrap(), 0);
        assert_eq!(camera_index(" 2 ").unwrap(), 2);
        for bad in ["", "/dev/video0", "video1", "-1", "99999999999999999999"] {
            let e = camera_index(bad).unwrap_err().to_string();
            assert!(e.contains("--source"), "{bad}: {e}");
        }
        let e = camera_index("/dev/video0").unwrap_err().to_string();
        assert!(e.contains("a number (0 for the first)"), "{e}");
    }

    #[test]
    fn mode_choice_follows_the_request() {
        use PixelFormat::{Mjpeg, Nv12, Yuyv};
        let offered = [
            mode(Yuyv, 640, 480, 30),
            mode(Yuyv, 1280, 720, 10),
            mode(Mjpeg, 1280, 720, 30),
            mode(Mjpeg, 1920, 1080, 30),
            mode(Nv12, 1280, 720, 30),
            mode(Mjpeg, 0, 0, 30),
        ];
        let mjpeg_first = [Mjpeg, Yuyv, Nv12];
        let yuyv_first = [Yuyv, Mjpeg];
        let pick = |r: CameraRequest, pref: &[PixelFormat]| choose_mode(&offered, &r, pref);
        // Size, then rate, then format.
        assert_eq!(
            pick(req(Some(1280), Some(720), Some(30)), &mjpeg_first),
            Some(mode(Mjpeg, 1280, 720, 30))
        );
        assert_eq!(
            pick(req(Some(1280), Some(720), Some(30)), &yuyv_first),
            Some(mode(Mjpeg, 1280, 720, 30)),
            "a 30 fps request passes over YUYV at 10 fps"
        );
        assert_eq!(
            pick(req(Some(1280), Some(720), Some(10)), &yuyv_first),
            Some(mode(Yuyv, 1280, 720, 10))
        );
        assert_eq!(
            pick(req(Some(1200), Some(700), None), &[Nv12]),
            Some(mode(Nv12, 1280, 720, 30))
        );
        assert_eq!(
            pick(req(Some(600), None, None), &mjpeg_first),
            Some(mode(Yuyv, 640, 480, 30))
        );
        // Nothing asked: the highest rate, the preferred format, the largest frame.
        assert_eq!(
            pick(CameraRequest::default(), &mjpeg_first),
            Some(mode(Mjpeg, 1920, 1080, 30))
        );
        assert_eq!(
            pick(CameraRequest::default(), &yuyv_first),
            Some(mode(Yuyv, 640, 480, 30))
        );
        // Unreadable formats and empty sizes are never chosen.
        assert_eq!(pick(CameraRequest::default(), &[]), None);
        assert_eq!(
            choose_mode(
                &[mode(Mjpeg, 0, 0, 30)],
                &CameraRequest::default(),
                &mjpeg_first
            ),
            None
        );
    }

    #[test]
    fn modes_read_like_v4l2_formats() {
        assert_eq!(
            mode(PixelFormat::Mjpeg, 1280, 720, 30).to_string(),
            "MJPG 1280x720 at 30 fps"
        );
        assert_eq!(
            mode(PixelFormat::Yuyv, 640, 480, 0).to_string(),
            "YUYV 640x480"
        );
    }

    #[test]
    fn padded_rows_are_recognised() {
        use PixelFormat::{Mjpeg, Nv12, Rgb24, Yuyv};
        assert_eq!(row_stride(Yuyv, 640, 480, 640 * 2 * 480), None);
        assert_eq!(row_stride(Yuyv, 636, 4, 1280 * 4), Some(1280));
        assert_eq!(row_stride(Rgb24, 10, 2, 48 * 2), Some(48));
        assert_eq!(row_stride(Nv12, 20, 3, 32 * 5), Some(32));
        // Trailing bytes that are no whole padding, and formats without rows.
        assert_eq!(row_stride(Yuyv, 8, 2, 8 * 2 * 2 + 1), None);
        assert_eq!(row_stride(Yuyv, 8, 2, 17 * 2), None);
        assert_eq!(row_stride(Mjpeg, 8, 2, 4096), None);
        assert_eq!(row_stride(Yuyv, 8, 0, 64), None);
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    fn decoder() -> FrameDecoder {
        FrameDecoder::new(
            "camera 1 (Test Cam)".into(),
            "1 (Test Cam)".into(),
            FramePool::new(2),
        )
    }

    #[test]
    fn corrupt_buffers_are_skipped_and_counted() {
        let mut d = decoder();
        let good = jpeg(32, 16);
        let mj = Some(PixelFormat::Mjpeg);
        let f = d
            .decode(&good, mj, 32, 16, Some(100.0))
            .unwrap()
            .expect("a frame");
        assert_eq!(
            (f.index, f.timestamp, f.origin.as_str()),
            (0, 0.0, "1 (Test Cam)")
        );
        let p = f.image.get_pixel(5, 5);
        assert!(p[0].abs_diff(200) < 4 && p[1].abs_diff(30) < 4, "{p:?}");
        // Truncated, garbage, wrong size, unreadable format, empty size: skipped, counted.
        assert!(d
            .decode(&good[..good.len() / 3], mj, 32, 16, None)
            .unwrap()
            .is_none());
        assert!(d.decode(b"garbage", mj, 32, 16, None).unwrap().is_none());
        assert!(d.decode(&jpeg(16, 16), mj, 32, 16, None).unwrap().is_none());
        assert!(d.decode(&good, None, 32, 16, None).unwrap().is_none());
        assert!(d.decode(&good, mj, 0, 16, None).unwrap().is_none());
        assert_eq!(d.corrupt, 5);
        let f = d
            .decode(&good, mj, 32, 16, Some(100.5))
            .unwrap()
            .expect("a frame");
        assert_eq!(f.index, 6, "skipped buffers keep their indices");
        assert!((f.timestamp - 0.5).abs() < 1e-9, "{}", f.timestamp);
        assert_eq!(d.bad_in_a_row, 0);
    }

    #[test]
    fn too_many_bad_buffers_in_a_row_fail_the_camera() {
        let mut d = decoder();
        let yuyv = Some(PixelFormat::Yuyv);
        for _ in 0..MAX_BAD_IN_A_ROW - 1 {
            assert!(d.decode(&[0; 5], yuyv, 4, 2, None).unwrap().is_none());
        }
        let err = d.decode(&[0; 5], yuyv, 4, 2, None).unwrap_err().to_string();
        assert!(
            err.starts_with("source camera 1 (Test Cam) lost: 60 frames"),
            "{err}"
        );
        assert!(err.contains("expected 16 bytes, got 5"), "{err}");
        let f = d
            .decode(&[128; 16], yuyv, 4, 2, None)
            .unwrap()
            .expect("a frame");
        assert_eq!(f.image.dimensions(), (4, 2));
    }

    #[test]
    fn padded_yuyv_decodes_like_unpadded() {
        let mut d = decoder();
        let yuyv = Some(PixelFormat::Yuyv);
        // 4x2 grey pixels: 8 bytes a row, padded to 16.
        let row = [235u8, 128, 235, 128, 81, 90, 81, 240];
        let plain: Vec<u8> = [row, row].concat();
        let padded: Vec<u8> = [&row[..], &[0; 8], &row[..], &[0; 8]].concat();
        let a = d.decode(&plain, yuyv, 4, 2, None).unwrap().unwrap();
        let b = d.decode(&padded, yuyv, 4, 2, None).unwrap().unwrap();
        assert_eq!(a.image, b.image);
        assert_eq!(a.image.get_pixel(0, 1), &image::Rgb([255, 255, 255]));
    }

    #[test]
    fn timestamps_start_at_zero_and_never_go_back() {
        let mut d = decoder();
        let buf = [100u8; 6];
        let nv12 = Some(PixelFormat::Nv12);
        let t: Vec<f64> = [50.0, 50.04, 50.02, 50.08]
            .iter()
            .map(|&s| {
                d.decode(&buf, nv12, 2, 2, Some(s))
                    .unwrap()
                    .unwrap()
                    .timestamp
            })
            .collect();
        assert!(t[0] == 0.0 && (t[1] - 0.04).abs() < 1e-9 && t[2] == t[1]);
        assert!((t[3] - 0.08).abs() < 1e-9, "{t:?}");
        // Without capture times the clock since opening is used.
        let mut d = decoder();
        let a = d.decode(&buf, nv12, 2, 2, None).unwrap().unwrap().timestamp;
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = d.decode(&buf, nv12, 2, 2, None).unwrap().unwrap().timestamp;
        assert!(b > a, "{a} {b}");
    }

    #[test]
    fn missing_cameras_list_the_cameras_present() {
        let cameras = [
            (0, "FaceTime HD Camera".to_string()),
            (1, "C920".to_string()),
        ];
        assert_eq!(
            missing_camera(2, &cameras).to_string(),
            "cannot open source camera 2: not found; cameras here: 0 (FaceTime HD Camera), 1 (C920)"
        );
        let e = missing_camera(0, &[]).to_string();
        assert!(
            e.starts_with("cannot open source camera 0: not found: no cameras found"),
            "{e}"
        );
    }
}
