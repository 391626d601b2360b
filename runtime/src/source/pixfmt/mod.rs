//! Camera pixel formats to RGB8: YUYV, NV12, I420 and RGB24 ([`yuv`]) and MJPEG ([`mjpeg`]).

mod mjpeg;
mod yuv;

use std::fmt;
use std::path::PathBuf;

use image::RgbImage;

use crate::error::{Error, Result};
pub use mjpeg::{
    missing_dht_offset, mjpeg_dimensions, mjpeg_to_rgb, DEFAULT_DHT, MAX_MJPEG_PIXELS,
};
pub use yuv::{i420_to_rgb, nv12_to_rgb, rgb24_to_rgb, yuyv_to_rgb};

/// A pixel format a camera or capture process can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion JPEG: one JPEG per frame, often without Huffman tables.
    Mjpeg,
    /// YUV 4:2:2 packed as Y0 U Y1 V.
    Yuyv,
    /// YUV 4:2:0: the Y plane, then one plane of interleaved U, V.
    Nv12,
    /// YUV 4:2:0 planar: Y, then U, then V (V4L2 `YU12`, ffmpeg `yuv420p`).
    I420,
    /// Packed 8-bit R, G, B.
    Rgb24,
}

impl PixelFormat {
    /// Every format vigia can convert, in order of preference.
    pub const ALL: [PixelFormat; 5] = [
        PixelFormat::Mjpeg,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::I420,
        PixelFormat::Rgb24,
    ];

    /// The V4L2 four-character code of the format.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::I420 => *b"YU12",
            PixelFormat::Rgb24 => *b"RGB3",
        }
    }

    /// The format with this four-character code (V4L2 codes, plus the common aliases `JPEG`,
    /// `YUY2` and `I420`), if vigia can convert it.
    pub fn from_fourcc(code: [u8; 4]) -> Option<PixelFormat> {
        match &code {
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            b"YUYV" | b"YUY2" => Some(PixelFormat::Yuyv),
            b"NV12" => Some(PixelFormat::Nv12),
            b"YU12" | b"I420" => Some(PixelFormat::I420),
            b"RGB3" => Some(PixelFormat::Rgb24),
            _ => None,
        }
    }

    /// Bytes of one uncompressed frame without row padding, `None` for MJPEG or on overflow.
    pub fn frame_bytes(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match self {
            PixelFormat::Mjpeg => None,
            PixelFormat::Yuyv => w.checked_mul(2)?.checked_mul(h),
            PixelFormat::Nv12 | PixelFormat::I420 => w
                .checked_mul(h)?
                .checked_add(cw.checked_mul(ch)?.checked_mul(2)?),
            PixelFormat::Rgb24 => w.checked_mul(3)?.checked_mul(h),
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.fourcc();
        f.write_str(std::str::from_utf8(&code).unwrap_or("????"))
    }
}

/// Picks the format to ask a camera for among those it offers: MJPEG, then YUYV, NV12, I420, RGB24.
///
/// MJPEG comes first because a USB 2.0 camera can only send 720p and above at full frame rate
/// compressed (1280x720 YUYV at 30 fps is 55 MB/s, above what USB 2.0 carries, so drivers
/// offer it at 5-10 fps), and decoding a JPEG in pure Rust costs a few milliseconds, far less
/// than losing two thirds of the frames. YUYV is the uncompressed format every UVC camera
/// offers and converts cheaply without artefacts; NV12 and I420 come from ISPs and CSI
/// bridges; RGB24 is last since over V4L2 it is mostly an emulated, bandwidth-hungry format.
pub fn preferred_format(offered: &[PixelFormat]) -> Option<PixelFormat> {
    PixelFormat::ALL
        .iter()
        .copied()
        .find(|f| offered.contains(f))
}

/// Converts one frame of `format` into `out` (resized when its size differs; MJPEG takes the
/// size from the JPEG). `stride` is the bytes per row of the first plane, `None` when rows are
/// not padded.
pub fn convert(
    format: PixelFormat,
    src: &[u8],
    width: u32,
    height: u32,
    stride: Option<usize>,
    out: &mut RgbImage,
) -> Result<()> {
    match format {
        PixelFormat::Mjpeg => mjpeg_to_rgb(src, out),
        PixelFormat::Yuyv => yuyv_to_rgb(src, width, height, stride, out),
        PixelFormat::Nv12 => nv12_to_rgb(src, width, height, stride, out),
        PixelFormat::I420 => i420_to_rgb(src, width, height, stride, out),
        PixelFormat::Rgb24 => rgb24_to_rgb(src, width, height, stride, out),
    }
}

fn frame_error(format: PixelFormat, width: u32, height: u32, reason: String) -> Error {
    Error::Image {
        path: PathBuf::from(format!("{format} {width}x{height} frame")),
        reason,
    }
}

/// Rejects an empty frame size.
pub(super) fn check_not_empty(format: PixelFormat, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(frame_error(
            format,
            width,
            height,
            "empty frame size".into(),
        ));
    }
    Ok(())
}

/// Makes `out` exactly `width` x `height`, reusing its buffer when the size already matches.
pub(super) fn fit(out: &mut RgbImage, width: u32, height: u32) {
    if out.dimensions() != (width, height) {
        *out = RgbImage::new(width, height);
    }
}

/// Computes `a * b + c` or reports the frame as too large for this machine.
pub(super) fn size(
    format: PixelFormat,
    width: u32,
    height: u32,
    a: usize,
    b: usize,
    c: usize,
) -> Result<usize> {
    a.checked_mul(b)
        .and_then(|x| x.checked_add(c))
        .ok_or_else(|| frame_error(format, width, height, "frame too large".into()))
}

pub(super) fn check_stride(
    format: PixelFormat,
    width: u32,
    height: u32,
    what: &str,
    stride: usize,
    row: usize,
) -> Result<()> {
    if stride < row {
        return Err(frame_error(
            format,
            width,
            height,
            format!("{what} stride of {stride} bytes is shorter than a row ({row} bytes)"),
        ));
    }
    Ok(())
}

pub(super) fn check_len(
    format: PixelFormat,
    width: u32,
    height: u32,
    expected: usize,
    got: usize,
) -> Result<()> {
    if got < expected {
        return Err(frame_error(
            format,
            width,
            height,
            format!("buffer too short: expected {expected} bytes, got {got}"),
        ));
    }
    Ok(())
}
