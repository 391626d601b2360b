//! Frame sources behind one trait: image files, folders and globs, video files and streams
//! (through an `ffmpeg` pipe), cameras, and a synthetic scene.

pub mod camera;
// Compiled for tests everywhere: its format choice and frame decoding are tested on Linux.
#[cfg(any(
    test,
    all(feature = "nokhwa", any(target_os = "macos", target_os = "windows"))
))]
pub mod desktop_camera;
pub mod images;
pub mod pipe;
pub mod pixfmt;
pub mod pool;
pub mod reconnect;
pub mod synthetic;
pub mod video;

use image::RgbImage;

use crate::error::Result;

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Index in the source (0-based, counting every decoded frame, also those skipped by a stride).
    pub index: u64,
    /// Seconds since the start of the source (presentation time for files, capture time for live).
    pub timestamp: f64,
    /// Pixels, RGB8.
    pub image: RgbImage,
    /// Where the frame came from (file path for image sources, the source name otherwise).
    pub origin: String,
}

/// What is known about a source before reading it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceInfo {
    /// The `--source` string or a description.
    pub name: String,
    /// Frame size, when fixed and known.
    pub width: u32,
    pub height: u32,
    /// Frames per second, when known.
    pub fps: Option<f64>,
    /// Total frames, when known (files).
    pub frames: Option<u64>,
    /// Live sources drop stale frames; files process every frame.
    pub live: bool,
}

/// Counters a source keeps about trouble it met and survived.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SourceHealth {
    /// Frames that could not be decoded and were skipped.
    pub corrupt_frames: u64,
    /// Times a live source was reopened after failing.
    pub reconnects: u64,
}

/// A stream of frames.
pub trait FrameSource: Send {
    /// What the source is.
    fn info(&self) -> &SourceInfo;
    /// The next frame; `Ok(None)` at the clean end of the source.
    fn next_frame(&mut self) -> Result<Option<Frame>>;
    /// Trouble met so far.
    fn health(&self) -> SourceHealth {
        SourceHealth::default()
    }
}

impl FrameSource for Box<dyn FrameSource> {
    fn info(&self) -> &SourceInfo {
        (**self).info()
    }
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        (**self).next_frame()
    }
    fn health(&self) -> SourceHealth {
        (**self).health()
    }
}

/// How to open a source.
#[derive(Clone)]
pub struct SourceOptions {
    /// Keep every Nth frame of a video file.
    pub vid_stride: u64,
    /// Frame rate assigned to image sequences (their timestamps), if any.
    pub image_fps: Option<f64>,
    /// Size and rate requested from cameras.
    pub capture: video::CaptureSize,
    /// Set to end the source (Ctrl-C); also interrupts reconnect waits.
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Recycled frame buffers.
    pub pool: pool::FramePool,
    /// How long a live source that cannot be opened at start is retried (zero: fail at once;
    /// `None`: until `stop`).
    pub start_wait: Option<std::time::Duration>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            vid_stride: 1,
            image_fps: None,
            capture: video::CaptureSize::default(),
            stop: Default::default(),
            pool: pool::FramePool::new(8),
            start_wait: Some(std::time::Duration::ZERO),
        }
    }
}

/// The kind of source a `--source` string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// `synthetic://...`
    Synthetic,
    /// `0`, `/dev/video2`
    Camera,
    /// `libcamera://0`
    PiCamera(u32),
    /// `csi://0`
    JetsonCsi(u32),
    /// `rtsp://`, `http://`, ...
    Stream,
    /// A video file.
    VideoFile,
    /// An image, folder or glob.
    Images,
}

/// Classifies a `--source` string (Ultralytics conventions).
pub fn classify_source(spec: &str) -> Result<SourceKind> {
    let lower = spec.to_ascii_lowercase();
    let index = |rest: &str| {
        rest.trim_matches('/').parse::<u32>().map_err(|_| {
            crate::Error::option(
                "--source",
                format!(
                    "{spec}: expected a camera number after the scheme, e.g. {}0",
                    &spec[..spec.len() - rest.len()]
                ),
            )
        })
    };
    Ok(if lower.starts_with("synthetic://") {
        SourceKind::Synthetic
    } else if let Some(rest) = lower.strip_prefix("libcamera://") {
        SourceKind::PiCamera(if rest.is_empty() { 0 } else { index(rest)? })
    } else if let Some(rest) = lower.strip_prefix("csi://") {
        SourceKind::JetsonCsi(if rest.is_empty() { 0 } else { index(rest)? })
    } else if video::is_stream_url(spec) {
        SourceKind::Stream
    } else if spec.chars().all(|c| c.is_ascii_digit()) && !spec.is_empty()
        || lower.starts_with("/dev/video")
    {
        SourceKind::Camera
    } else if video::is_video_path(std::path::Path::new(spec)) {
        SourceKind::VideoFile
    } else {
        SourceKind::Images
    })
}

/// Opens any `--source`: `0`, `/dev/video2`, `file.mp4`, `dir/`, `'imgs/*.jpg'`, `rtsp://...`,
/// `libcamera://0`, `csi://0`, `synthetic://...`. Live sources reconnect with backoff, and are
/// waited for at start within `opts.start_wait`.
pub fn open_source(spec: &str, opts: &SourceOptions) -> Result<Box<dyn FrameSource>> {
    use reconnect::{Reconnecting, StartWait};
    let live = |src: Box<dyn FrameSource>| -> Box<dyn FrameSource> { src };
    let start = |name: String| StartWait {
        limit: opts.start_wait,
        name,
        stop: opts.stop.clone(),
    };
    Ok(match classify_source(spec)? {
        SourceKind::Synthetic => Box::new(synthetic::SyntheticSource::open(spec)?),
        SourceKind::Images => Box::new(images::ImageSource::open(spec, opts.image_fps)?),
        SourceKind::VideoFile => Box::new(video::open_ffmpeg(
            spec,
            opts.vid_stride,
            opts.pool.clone(),
        )?),
        SourceKind::Stream => {
            let (s, pool) = (spec.to_string(), opts.pool.clone());
            live(Box::new(
                Reconnecting::new_waiting(
                    move || video::open_ffmpeg(&s, 1, pool.clone()),
                    &start(format!("stream {spec}")),
                )?
                .with_stop(opts.stop.clone())
                .with_name(spec),
            ))
        }
        SourceKind::Camera => {
            let (s, pool) = (spec.to_string(), opts.pool.clone());
            let req = camera::CameraRequest {
                width: Some(opts.capture.width),
                height: Some(opts.capture.height),
                fps: Some(opts.capture.fps),
            };
            live(Box::new(
                Reconnecting::new_waiting(
                    move || camera::open_camera_pooled(&s, &req, pool.clone()),
                    &start(format!("camera {spec}")),
                )?
                .with_stop(opts.stop.clone())
                .with_name(spec),
            ))
        }
        SourceKind::PiCamera(n) => {
            let (size, pool) = (opts.capture, opts.pool.clone());
            live(Box::new(
                Reconnecting::new_waiting(
                    move || {
                        video::open_board_camera(
                            &format!("libcamera://{n}"),
                            video::rpicam_command(n, size),
                            pipe::RawFormat::I420,
                            size,
                            pool.clone(),
                        )
                    },
                    &start(format!("camera libcamera://{n}")),
                )?
                .with_stop(opts.stop.clone()),
            ))
        }
        SourceKind::JetsonCsi(n) => {
            let (size, pool) = (opts.capture, opts.pool.clone());
            live(Box::new(
                Reconnecting::new_waiting(
                    move || {
                        video::open_board_camera(
                            &format!("csi://{n}"),
                            video::jetson_csi_command(n, size),
                            pipe::RawFormat::Rgb24,
                            size,
                            pool.clone(),
                        )
                    },
                    &start(format!("camera csi://{n}")),
                )?
                .with_stop(opts.stop.clone()),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_strings_are_classified_like_ultralytics() {
        assert_eq!(classify_source("0").unwrap(), SourceKind::Camera);
        assert_eq!(classify_source("/dev/video2").unwrap(), SourceKind::Camera);
        assert_eq!(classify_source("clip.MP4").unwrap(), SourceKind::VideoFile);
        assert_eq!(
            classify_source("rtsp://cam/live").unwrap(),
            SourceKind::Stream
        );
        assert_eq!(classify_source("imgs/*.jpg").unwrap(), SourceKind::Images);
        assert_eq!(classify_source("dir/").unwrap(), SourceKind::Images);
        assert_eq!(
            classify_source("libcamera://1").unwrap(),
            SourceKind::PiCamera(1)
        );
        assert_eq!(classify_source("csi://").unwrap(), SourceKind::JetsonCsi(0));
        assert_eq!(
            classify_source("synthetic://?scene=crossing").unwrap(),
            SourceKind::Synthetic
        );
        let e = classify_source("csi://x").unwrap_err().to_string();
        assert!(e.contains("--source") && e.contains("csi://0"), "{e}");
    }
}
