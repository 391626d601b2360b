//! USB cameras through V4L2 (Linux, `v4l` feature): format negotiation, mmap streaming, and
//! conversion of each buffer to RGB with [`crate::source::pixfmt`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::source::pixfmt::{self, PixelFormat};
use crate::source::pool::FramePool;
use crate::source::{Frame, FrameSource};

/// Size and rate asked of a camera; the driver picks the closest it supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CameraRequest {
    /// Frame width in pixels (`None`: the driver's current setting).
    pub width: Option<u32>,
    /// Frame height in pixels (`None`: the driver's current setting).
    pub height: Option<u32>,
    /// Frames per second (`None`: the driver's current setting).
    pub fps: Option<u32>,
}

/// The `/dev/video*` nodes of this machine, sorted by number.
pub fn list_video_devices() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    let mut nodes: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("video")?.parse::<u64>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

#[cfg_attr(not(all(target_os = "linux", feature = "v4l")), allow(dead_code))]
/// A device node with the name the kernel gives its camera, e.g. `/dev/video0 (HD Webcam C270)`.
fn describe_node(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| std::fs::read_to_string(format!("/sys/class/video4linux/{n}/name")).ok());
    match name {
        Some(name) if !name.trim().is_empty() => format!("{} ({})", path.display(), name.trim()),
        _ => path.display().to_string(),
    }
}

/// A camera spec that cannot name a camera (an argument error).
fn spec_error(reason: String) -> Error {
    Error::option("--source", reason)
}

/// A camera that cannot be opened or configured; `camera` names it (`camera /dev/video0 (C270)`).
fn open_error(camera: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::SourceOpen {
        source_name: camera.into(),
        reason: reason.into(),
    }
}

/// A camera that failed while streaming.
#[cfg_attr(not(all(target_os = "linux", feature = "v4l")), allow(dead_code))]
fn lost_error(camera: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::SourceLost {
        source_name: camera.into(),
        reason: reason.into(),
    }
}

#[cfg_attr(not(all(target_os = "linux", feature = "v4l")), allow(dead_code))]
/// The error for a camera that is not there, listing the cameras that are.
fn missing_camera(spec: &str, path: &Path) -> Error {
    let devices: Vec<String> = list_video_devices()
        .iter()
        .map(|d| describe_node(d))
        .collect();
    missing_camera_among(spec, path, &devices)
}

/// The error for a missing camera, given the descriptions of the devices present.
fn missing_camera_among(spec: &str, path: &Path, devices: &[String]) -> Error {
    let camera = if spec == path.to_string_lossy() {
        format!("camera {spec}")
    } else {
        format!("camera {spec} ({})", path.display())
    };
    if devices.is_empty() {
        open_error(
            camera,
            "not found: no /dev/video* devices found: is the camera plugged in and the uvcvideo \
             module loaded?",
        )
    } else {
        open_error(
            camera,
            format!("not found; video devices here: {}", devices.join(", ")),
        )
    }
}

/// The device node a camera spec names: `"2"` is `/dev/video2`, `"video2"` too, a path is itself.
pub fn camera_path(spec: &str) -> Result<PathBuf> {
    let spec_t = spec.trim();
    if spec_t.is_empty() || spec_t.contains('\0') {
        return Err(spec_error(format!(
            "{spec:?} is not a camera: give a number (0) or a device path (/dev/video0)"
        )));
    }
    if spec_t.bytes().all(|b| b.is_ascii_digit()) {
        return match spec_t.parse::<u32>() {
            Ok(n) => Ok(PathBuf::from(format!("/dev/video{n}"))),
            Err(_) => Err(spec_error(format!("camera number {spec_t} is too large"))),
        };
    }
    if let Some(n) = spec_t.strip_prefix("video") {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(PathBuf::from(format!("/dev/{spec_t}")));
        }
    }
    Ok(PathBuf::from(spec_t))
}

/// Opens a USB camera (`"0"`, `"/dev/video2"`), negotiating its best format and the requested
/// size and rate; frame buffers come from a private pool.
pub fn open_camera(spec: &str, req: &CameraRequest) -> Result<Box<dyn FrameSource>> {
    open_camera_pooled(spec, req, FramePool::new(4))
}

/// Opens a USB camera like [`open_camera`], taking frame buffers from `pool` so that a pipeline
/// that gives them back allocates nothing per frame.
pub fn open_camera_pooled(
    spec: &str,
    req: &CameraRequest,
    pool: FramePool,
) -> Result<Box<dyn FrameSource>> {
    #[cfg(all(target_os = "linux", feature = "v4l"))]
    {
        let path = camera_path(spec)?;
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(missing_camera(spec, &path));
        }
        Ok(Box::new(v4l_camera::CameraSource::open(&path, req, pool)?))
    }
    #[cfg(all(feature = "nokhwa", any(target_os = "macos", target_os = "windows")))]
    {
        use crate::source::desktop_camera::{camera_index, DesktopCamera};
        let index = camera_index(spec)?;
        Ok(Box::new(DesktopCamera::open(index, req, pool)?))
    }
    #[cfg(not(any(
        all(target_os = "linux", feature = "v4l"),
        all(feature = "nokhwa", any(target_os = "macos", target_os = "windows"))
    )))]
    {
        let path = camera_path(spec)?;
        let _ = (req, pool);
        if cfg!(target_os = "linux") {
            return Err(Error::FeatureMissing {
                feature: "v4l",
                what: format!("camera {}", path.display()),
            });
        }
        Err(open_error(
            format!("camera {}", path.display()),
            "USB cameras are read through V4L2 on Linux; on macOS and Windows build with the \
             `nokhwa` feature, or use a video file, a stream or an ffmpeg pipe from the camera",
        ))
    }
}

/// A frame size a camera offers for one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeRange {
    /// One fixed size.
    Discrete(u32, u32),
    /// Any size within bounds, in steps.
    Stepwise {
        /// Narrowest width.
        min_width: u32,
        /// Widest width.
        max_width: u32,
        /// Width increment.
        step_width: u32,
        /// Lowest height.
        min_height: u32,
        /// Highest height.
        max_height: u32,
        /// Height increment.
        step_height: u32,
    },
}

/// `value` clamped to `[min, max]` and rounded to the nearest `min + k * step`.
fn snap(value: u32, min: u32, max: u32, step: u32) -> u32 {
    let max = max.max(min);
    let v = value.clamp(min, max);
    let step = step.max(1);
    let k = (v - min + step / 2) / step;
    min.saturating_add(k.saturating_mul(step)).min(max)
}

/// The offered size closest to the request (sum of the width and height differences, ties to
/// the larger frame); `None` when the request names no size or nothing is offered.
pub fn choose_size(offered: &[SizeRange], req: &CameraRequest) -> Option<(u32, u32)> {
    if req.width.is_none() && req.height.is_none() {
        return None;
    }
    let candidates = offered.iter().map(|r| match *r {
        SizeRange::Discrete(w, h) => (w, h),
        SizeRange::Stepwise {
            min_width,
            max_width,
            step_width,
            min_height,
            max_height,
            step_height,
        } => {
            // A missing dimension follows from the other at 4:3.
            let tw = req
                .width
                .unwrap_or_else(|| req.height.unwrap_or(0).saturating_mul(4) / 3);
            let th = req
                .height
                .unwrap_or_else(|| req.width.unwrap_or(0).saturating_mul(3) / 4);
            (
                snap(tw, min_width, max_width, step_width),
                snap(th, min_height, max_height, step_height),
            )
        }
    });
    candidates.min_by_key(|&(w, h)| {
        let dw = req.width.map_or(0, |t| u64::from(w.abs_diff(t)));
        let dh = req.height.map_or(0, |t| u64::from(h.abs_diff(t)));
        (dw + dh, std::cmp::Reverse(u64::from(w) * u64::from(h)))
    })
}

/// Undecodable frames in a row after which a camera is reported as failed.
const MAX_BAD_IN_A_ROW: u32 = 60;

/// Turns captured buffers into frames: conversion into pooled images, skipping and counting
/// corrupt buffers, indices and timestamps.
#[cfg_attr(not(all(target_os = "linux", feature = "v4l")), allow(dead_code))]
struct BufferDecoder {
    origin: String,
    path: PathBuf,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: Option<usize>,
    pool: FramePool,
    next_index: u64,
    corrupt: u64,
    bad_in_a_row: u32,
    first_time: Option<f64>,
    last_timestamp: f64,
    opened: Instant,
}

#[cfg_attr(not(all(target_os = "linux", feature = "v4l")), allow(dead_code))]
impl BufferDecoder {
    fn new(
        origin: String,
        path: &Path,
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: Option<usize>,
        pool: FramePool,
    ) -> Self {
        BufferDecoder {
            origin,
            path: path.to_path_buf(),
            format,
            width,
            height,
            stride,
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
                format!("camera {}", self.path.display()),
                format!("{MAX_BAD_IN_A_ROW} frames in a row could not be decoded (last: {why})"),
            ));
        }
        Ok(None)
    }

    /// The frame in one captured buffer; `None` when it was corrupt (counted and skipped).
    /// `driver_time` is the buffer's capture time in seconds, 0 when the driver gives none.
    fn decode(
        &mut self,
        data: &[u8],
        flagged_corrupt: bool,
        driver_time: f64,
    ) -> Result<Option<Frame>> {
        let index = self.next_index;
        self.next_index += 1;
        let (w, h) = (self.width, self.height);
        if flagged_corrupt {
            return self.bad("the driver flagged the buffer as corrupt");
        }
        if self.format == PixelFormat::Mjpeg {
            match pixfmt::mjpeg_dimensions(data) {
                Some(dims) if dims == (w, h) => {}
                Some((jw, jh)) => {
                    return self.bad(&format!("a {jw}x{jh} JPEG in a {w}x{h} stream"))
                }
                None => return self.bad("no JPEG frame header"),
            }
        }
        let mut image = self.pool.take(w, h);
        if let Err(e) = pixfmt::convert(self.format, data, w, h, self.stride, &mut image) {
            self.pool.give(image);
            return self.bad(&e.to_string());
        }
        self.bad_in_a_row = 0;
        let timestamp = if driver_time > 0.0 {
            driver_time - *self.first_time.get_or_insert(driver_time)
        } else {
            self.opened.elapsed().as_secs_f64()
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

#[cfg(all(target_os = "linux", feature = "v4l"))]
mod v4l_camera {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use v4l::buffer::{Flags as BufferFlags, Type};
    use v4l::capability::Flags as CapFlags;
    use v4l::framesize::FrameSizeEnum;
    use v4l::io::mmap::Stream;
    use v4l::io::traits::CaptureStream;
    use v4l::video::capture::Parameters;
    use v4l::video::Capture;
    use v4l::{Device, Format, FourCC};

    use super::{choose_size, lost_error, open_error, BufferDecoder, CameraRequest, SizeRange};
    use crate::error::{Error, Result};
    use crate::source::pixfmt::{self, PixelFormat};
    use crate::source::pool::FramePool;
    use crate::source::{Frame, FrameSource, SourceHealth, SourceInfo};

    /// Buffers queued to the driver.
    const BUFFERS: u32 = 4;
    /// A camera silent this long is reported as failed (the reconnect wrapper reopens it).
    const CAPTURE_TIMEOUT: Duration = Duration::from_secs(5);

    /// A V4L2 capture device streaming through mmap buffers.
    pub struct CameraSource {
        // Declared before the device so that streaming stops before the device closes.
        stream: Stream<'static>,
        _device: Device,
        path: PathBuf,
        info: SourceInfo,
        decoder: BufferDecoder,
    }

    fn fourcc_text(f: FourCC) -> String {
        f.repr
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '?'
                }
            })
            .collect::<String>()
            .trim_end()
            .to_string()
    }

    /// What a failed dequeue is reported as (a failure while streaming, not while opening).
    const CAPTURE_FAILED: &str = "capture failed";

    /// An I/O error of the device, with the usual remedies spelled out.
    fn io_error(path: &Path, doing: &str, e: &io::Error) -> Error {
        // Linux errno values: EACCES, EBUSY, ENODEV, ENOTTY, ENOSPC.
        let hint = match e.raw_os_error() {
            Some(13) => {
                ": add your user to the video group (sudo usermod -aG video $USER) and log in again"
            }
            Some(16) => ": another program is using the camera",
            Some(19) => ": the camera was unplugged",
            Some(25) => ": it is not a V4L2 video device",
            Some(28) => {
                ": the USB bus has no bandwidth left for this stream (ask for a smaller size or \
                 fps, or plug the camera into another USB controller)"
            }
            _ => "",
        };
        let camera = format!("camera {}", path.display());
        let reason = format!("{doing}: {e}{hint}");
        if doing == CAPTURE_FAILED {
            lost_error(camera, reason)
        } else {
            open_error(camera, reason)
        }
    }

    fn sizes_offered(dev: &Device, fourcc: FourCC) -> Vec<SizeRange> {
        dev.enum_framesizes(fourcc)
            .unwrap_or_default()
            .into_iter()
            .map(|s| match s.size {
                FrameSizeEnum::Discrete(d) => SizeRange::Discrete(d.width, d.height),
                FrameSizeEnum::Stepwise(s) => SizeRange::Stepwise {
                    min_width: s.min_width,
                    max_width: s.max_width,
                    step_width: s.step_width,
                    min_height: s.min_height,
                    max_height: s.max_height,
                    step_height: s.step_height,
                },
            })
            .collect()
    }

    impl CameraSource {
        /// Opens and configures the device at `path` and starts nothing yet (streaming begins
        /// with the first frame).
        pub fn open(path: &Path, req: &CameraRequest, pool: FramePool) -> Result<CameraSource> {
            use std::os::unix::fs::FileTypeExt;
            let shown = path.display();
            let meta = std::fs::metadata(path).map_err(|e| io_error(path, "cannot open", &e))?;
            if !meta.file_type().is_char_device() {
                return Err(open_error(
                    format!("camera {shown}"),
                    "not a device node (a camera is /dev/videoN)",
                ));
            }
            let device = Device::with_path(path).map_err(|e| io_error(path, "cannot open", &e))?;
            let caps = device
                .query_caps()
                .map_err(|e| io_error(path, "VIDIOC_QUERYCAP failed", &e))?;
            if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE) {
                let what = if caps.capabilities.contains(CapFlags::META_CAPTURE) {
                    "is a metadata node, not a video node (UVC cameras create two nodes per \
                     camera: try the one numbered just below)"
                } else if caps.capabilities.contains(CapFlags::VIDEO_CAPTURE_MPLANE) {
                    "is a multi-planar capture device, which vigia does not read (use an ffmpeg \
                     or GStreamer pipe)"
                } else {
                    "cannot capture video"
                };
                return Err(open_error(
                    format!("camera {shown} ({}, driver {})", caps.card, caps.driver),
                    format!("it {what}"),
                ));
            }
            if !caps.capabilities.contains(CapFlags::STREAMING) {
                return Err(open_error(
                    format!("camera {shown} ({})", caps.card),
                    "it does not support streaming I/O",
                ));
            }

            let formats = device
                .enum_formats()
                .map_err(|e| io_error(path, "cannot list its formats", &e))?;
            let offered: Vec<PixelFormat> = formats
                .iter()
                .filter_map(|f| PixelFormat::from_fourcc(f.fourcc.repr))
                .collect();
            let Some(chosen) = pixfmt::preferred_format(&offered) else {
                let list: Vec<String> = formats.iter().map(|f| fourcc_text(f.fourcc)).collect();
                let readable: Vec<String> =
                    PixelFormat::ALL.iter().map(|f| f.to_string()).collect();
                return Err(open_error(
                    format!("camera {shown} ({})", caps.card),
                    format!(
                        "it offers {} which vigia cannot read (it reads {})",
                        if list.is_empty() {
                            "no video formats".to_string()
                        } else {
                            format!("only {}", list.join(", "))
                        },
                        readable.join(", ")
                    ),
                ));
            };

            let fourcc = FourCC::new(&chosen.fourcc());
            let current = device
                .format()
                .map_err(|e| io_error(path, "cannot read its format", &e))?;
            let (w, h) = choose_size(&sizes_offered(&device, fourcc), req)
                .or_else(|| req.width.zip(req.height))
                .unwrap_or((current.width, current.height));
            let actual = device
                .set_format(&Format::new(w, h, fourcc))
                .map_err(|e| io_error(path, &format!("cannot set {chosen} {w}x{h}"), &e))?;
            let format = PixelFormat::from_fourcc(actual.fourcc.repr).ok_or_else(|| {
                open_error(
                    format!("camera {shown}"),
                    format!(
                        "asked for {chosen}, the driver chose {}, which vigia cannot read",
                        fourcc_text(actual.fourcc)
                    ),
                )
            })?;
            if actual.width == 0 || actual.height == 0 {
                return Err(open_error(
                    format!("camera {shown}"),
                    format!(
                        "the driver set an empty frame size {}x{}",
                        actual.width, actual.height
                    ),
                ));
            }
            let stride = (actual.stride > 0 && format != PixelFormat::Mjpeg)
                .then_some(actual.stride as usize);

            if let Some(fps) = req.fps.filter(|&f| f > 0) {
                // Some drivers have no frame rate control; they keep their own rate.
                let _ = device.set_params(&Parameters::with_fps(fps));
            }
            let fps = device.params().ok().and_then(|p| {
                let i = p.interval;
                (i.numerator > 0 && i.denominator > 0)
                    .then(|| f64::from(i.denominator) / f64::from(i.numerator))
            });

            let mut stream = Stream::with_buffers(&device, Type::VideoCapture, BUFFERS)
                .map_err(|e| io_error(path, "cannot map capture buffers", &e))?;
            stream.set_timeout(CAPTURE_TIMEOUT);

            let rate = fps.map_or(String::new(), |f| format!(" at {f:.0} fps"));
            let info = SourceInfo {
                name: format!(
                    "{shown} ({}, {format} {}x{}{rate})",
                    caps.card, actual.width, actual.height
                ),
                width: actual.width,
                height: actual.height,
                fps,
                frames: None,
                live: true,
            };
            let decoder = BufferDecoder::new(
                info.name.clone(),
                path,
                format,
                actual.width,
                actual.height,
                stride,
                pool,
            );
            Ok(CameraSource {
                stream,
                _device: device,
                path: path.to_path_buf(),
                info,
                decoder,
            })
        }
    }

    impl FrameSource for CameraSource {
        fn info(&self) -> &SourceInfo {
            &self.info
        }

        fn next_frame(&mut self) -> Result<Option<Frame>> {
            loop {
                let (buf, meta) = CaptureStream::next(&mut self.stream)
                    .map_err(|e| io_error(&self.path, CAPTURE_FAILED, &e))?;
                let used = (meta.bytesused as usize).min(buf.len());
                let data = if used == 0 { buf } else { &buf[..used] };
                let flagged = meta.flags.contains(BufferFlags::ERROR);
                let time = meta.timestamp.sec as f64 + meta.timestamp.usec as f64 * 1e-6;
                if let Some(frame) = self.decoder.decode(data, flagged, time)? {
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

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn device_errors_carry_remedies() {
            let p = Path::new("/dev/video0");
            let e = io_error(p, "cannot open", &io::Error::from_raw_os_error(13));
            assert!(e.to_string().contains("video group"), "{e}");
            let e = io_error(p, "cannot open", &io::Error::from_raw_os_error(16));
            assert!(e.to_string().contains("another program"), "{e}");
            let e = io_error(p, "capture failed", &io::Error::from_raw_os_error(28));
            assert!(e.to_string().contains("USB bus"), "{e}");
            assert_eq!(fourcc_text(FourCC::new(b"Y16 ")), "Y16");
            assert_eq!(fourcc_text(FourCC::new(&[0x47, 0x52, 0x01, 0x59])), "GR?Y");
        }

        #[test]
        fn camera_source_is_send() {
            fn send<T: Send>() {}
            send::<CameraSource>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_clean_error(spec: &str, must: &[&str]) -> String {
        let err = match open_camera(spec, &CameraRequest::default()) {
            Ok(_) => panic!("{spec}: opened a camera on a machine without cameras"),
            Err(e) => e.to_string(),
        };
        eprintln!("{spec}: {err}");
        assert!(err.contains(spec.trim()), "{spec}: {err}");
        for m in must {
            assert!(err.contains(m), "{spec}: {err:?} lacks {m:?}");
        }
        err
    }

    #[test]
    fn spec_to_device_path() {
        assert_eq!(camera_path("0").unwrap(), PathBuf::from("/dev/video0"));
        assert_eq!(camera_path(" 12 ").unwrap(), PathBuf::from("/dev/video12"));
        assert_eq!(camera_path("video3").unwrap(), PathBuf::from("/dev/video3"));
        assert_eq!(
            camera_path("/dev/video2").unwrap(),
            PathBuf::from("/dev/video2")
        );
        assert!(camera_path("").is_err());
        assert!(camera_path("a\0b").is_err());
        assert!(camera_path("99999999999999999999").is_err());
    }

    #[test]
    fn missing_camera_names_the_devices_present() {
        let devices = [
            "/dev/video0 (HD Webcam C270)".to_string(),
            "/dev/video1".into(),
        ];
        let err = missing_camera_among("2", Path::new("/dev/video2"), &devices).to_string();
        assert_eq!(
            err,
            "cannot open source camera 2 (/dev/video2): not found; video devices here: \
             /dev/video0 (HD Webcam C270), /dev/video1"
        );
        let err = missing_camera_among("/dev/video2", Path::new("/dev/video2"), &[]).to_string();
        assert!(
            err.contains("camera /dev/video2: not found: no /dev/video*"),
            "{err}"
        );
    }

    #[test]
    fn devices_are_listed_in_numeric_order() {
        let devices = list_video_devices();
        let numbers: Vec<u64> = devices
            .iter()
            .map(|p| {
                p.file_name().unwrap().to_str().unwrap()["video".len()..]
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{devices:?}");
    }

    #[cfg(all(target_os = "linux", feature = "v4l"))]
    #[test]
    fn missing_cameras_list_the_devices_present() {
        let devices = list_video_devices();
        for spec in ["0", "7", "/dev/video7", "video7"] {
            let path = camera_path(spec).unwrap();
            if devices.contains(&path) {
                continue;
            }
            let err = assert_clean_error(spec, &["not found"]);
            if devices.is_empty() {
                assert!(
                    err.contains(
                        "no /dev/video* devices found: is the camera plugged in and the \
                         uvcvideo module loaded?"
                    ),
                    "{err}"
                );
            } else {
                for d in &devices {
                    assert!(err.contains(&d.display().to_string()), "{err}");
                }
            }
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
    }

    #[cfg(all(target_os = "linux", feature = "v4l"))]
    #[test]
    fn non_camera_paths_fail_cleanly() {
        assert_clean_error("/dev/null", &["/dev/null", "not a V4L2 video device"]);
        let dir = std::env::temp_dir().join(format!("vigia-camera-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fake-video0");
        std::fs::write(&file, b"not a camera").unwrap();
        let f = file.to_str().unwrap();
        assert_clean_error(f, &[f, "not a device node"]);
        assert_clean_error(dir.to_str().unwrap(), &["not a device node"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(not(any(
        all(target_os = "linux", feature = "v4l"),
        all(feature = "nokhwa", any(target_os = "macos", target_os = "windows"))
    )))]
    #[test]
    fn builds_without_v4l_say_so() {
        let err = assert_clean_error("0", &["/dev/video0"]);
        assert!(err.contains("v4l") || err.contains("V4L2"), "{err}");
    }

    #[cfg(all(feature = "nokhwa", any(target_os = "macos", target_os = "windows")))]
    #[test]
    fn desktop_cameras_are_numbers() {
        assert_clean_error("/dev/video0", &["a number (0 for the first)"]);
    }

    fn decoder(format: PixelFormat, w: u32, h: u32) -> BufferDecoder {
        BufferDecoder::new(
            "cam".into(),
            Path::new("/dev/video9"),
            format,
            w,
            h,
            None,
            FramePool::new(2),
        )
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn corrupt_mjpeg_buffers_are_skipped_and_counted() {
        let mut d = decoder(PixelFormat::Mjpeg, 32, 16);
        let good = jpeg(32, 16);
        let f = d.decode(&good, false, 100.0).unwrap().expect("a frame");
        assert_eq!((f.index, f.timestamp, f.origin.as_str()), (0, 0.0, "cam"));
        let p = f.image.get_pixel(5, 5);
        assert!(p[0].abs_diff(200) < 4 && p[1].abs_diff(30) < 4, "{p:?}");
        // Truncated, garbage, wrong size, flagged by the driver: skipped, counted.
        assert!(d
            .decode(&good[..good.len() / 3], false, 100.1)
            .unwrap()
            .is_none());
        assert!(d.decode(b"garbage", false, 100.2).unwrap().is_none());
        assert!(d.decode(&jpeg(16, 16), false, 100.3).unwrap().is_none());
        assert!(d.decode(&good, true, 100.4).unwrap().is_none());
        assert_eq!(d.corrupt, 4);
        let f = d.decode(&good, false, 100.5).unwrap().expect("a frame");
        assert_eq!(f.index, 5, "skipped buffers keep their indices");
        assert!((f.timestamp - 0.5).abs() < 1e-9, "{}", f.timestamp);
        assert_eq!(d.bad_in_a_row, 0);
    }

    #[test]
    fn too_many_bad_buffers_in_a_row_fail_the_camera() {
        let mut d = decoder(PixelFormat::Yuyv, 4, 2);
        for _ in 0..MAX_BAD_IN_A_ROW - 1 {
            assert!(d.decode(&[0; 5], false, 0.0).unwrap().is_none());
        }
        let err = d.decode(&[0; 5], false, 0.0).unwrap_err().to_string();
        assert!(err.contains("/dev/video9"), "{err}");
        assert!(err.contains("expected 16 bytes, got 5"), "{err}");
        assert_eq!(d.corrupt, u64::from(MAX_BAD_IN_A_ROW));
        // The next good buffer decodes again.
        let f = d.decode(&[128; 16], false, 0.0).unwrap().expect("a frame");
        assert_eq!(f.image.dimensions(), (4, 2));
    }

    #[test]
    fn timestamps_never_go_back() {
        let mut d = decoder(PixelFormat::Nv12, 2, 2);
        let buf = [100u8; 6];
        let t: Vec<f64> = [50.0, 50.04, 50.02, 50.08]
            .iter()
            .map(|&s| d.decode(&buf, false, s).unwrap().unwrap().timestamp)
            .collect();
        assert!((t[1] - 0.04).abs() < 1e-9 && t[2] == t[1] && (t[3] - 0.08).abs() < 1e-9);
        // Without driver times the clock since opening is used.
        let mut d = decoder(PixelFormat::I420, 2, 2);
        let a = d.decode(&buf, false, 0.0).unwrap().unwrap().timestamp;
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = d.decode(&buf, false, 0.0).unwrap().unwrap().timestamp;
        assert!(b > a, "{a} {b}");
    }

    #[test]
    fn size_choice_follows_the_request() {
        let offered = [
            SizeRange::Discrete(640, 480),
            SizeRange::Discrete(1280, 720),
            SizeRange::Discrete(1920, 1080),
            SizeRange::Discrete(320, 240),
        ];
        let req = |w, h| CameraRequest {
            width: w,
            height: h,
            fps: None,
        };
        assert_eq!(choose_size(&offered, &req(None, None)), None);
        assert_eq!(
            choose_size(&offered, &req(Some(1280), Some(720))),
            Some((1280, 720))
        );
        assert_eq!(
            choose_size(&offered, &req(Some(1200), Some(700))),
            Some((1280, 720))
        );
        assert_eq!(
            choose_size(&offered, &req(Some(640), None)),
            Some((640, 480))
        );
        assert_eq!(
            choose_size(&offered, &req(None, Some(1000))),
            Some((1920, 1080))
        );
        assert_eq!(choose_size(&[], &req(Some(640), Some(480))), None);
        let step = [SizeRange::Stepwise {
            min_width: 160,
            max_width: 1920,
            step_width: 16,
            min_height: 120,
            max_height: 1080,
            step_height: 8,
        }];
        assert_eq!(
            choose_size(&step, &req(Some(1000), Some(563))),
            Some((1008, 560))
        );
        assert_eq!(
            choose_size(&step, &req(Some(4000), Some(3000))),
            Some((1920, 1080))
        );
        assert_eq!(choose_size(&step, &req(Some(640), None)), Some((640, 480)));
        assert_eq!(snap(5, 0, 10, 0), 5);
        assert_eq!(snap(7, 10, 2, 3), 10);
    }
}
