//! Camera pixel formats to RGB8: YUYV, NV12, I420 (BT.601 limited range, fixed-point) and MJPEG.
//!
//! Chroma is upsampled by sample replication (each U/V sample covers its 2x1 or 2x2 block), as
//! libyuv and ffmpeg's unscaled `yuv2rgb` path do. ffmpeg's default `yuyv422 -> rgb24` and
//! `yuv420p -> rgb24` conversions agree with these functions within 3 levels (ffmpeg truncates,
//! we round to nearest); for `nv12 -> rgb24` ffmpeg takes its generic scaler, which interpolates
//! chroma vertically with its bicubic filter, so there the two differ at sharp colour edges.
//! `tests/camera_formats.rs` measures both.

use std::fmt;
use std::io::Cursor;
use std::path::PathBuf;

use image::{ImageDecoder, RgbImage};

use crate::error::{Error, Result};

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

// BT.601 limited range to RGB, 16.16 fixed point:
// R = 1.164383 (Y - 16) + 1.596027 (V - 128)
// G = 1.164383 (Y - 16) - 0.391762 (U - 128) - 0.812968 (V - 128)
// B = 1.164383 (Y - 16) + 2.017232 (U - 128)
const Y_GAIN: i32 = 76309;
const V_TO_R: i32 = 104597;
const U_TO_G: i32 = 25675;
const V_TO_G: i32 = 53279;
const U_TO_B: i32 = 132201;
const HALF: i32 = 1 << 15;

/// Chroma contributions to R, G, B of one U, V pair, rounding constant included.
#[inline(always)]
fn chroma(u: u8, v: u8) -> [i32; 3] {
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    [
        V_TO_R * e + HALF,
        -U_TO_G * d - V_TO_G * e + HALF,
        U_TO_B * d + HALF,
    ]
}

#[inline(always)]
fn clamp8(v: i32) -> u8 {
    (v >> 16).clamp(0, 255) as u8
}

/// Writes one RGB pixel from a luma sample and precomputed chroma terms.
#[inline(always)]
fn put(y: u8, c: [i32; 3], px: &mut [u8]) {
    let l = (i32::from(y) - 16) * Y_GAIN;
    px[0] = clamp8(l + c[0]);
    px[1] = clamp8(l + c[1]);
    px[2] = clamp8(l + c[2]);
}

fn frame_error(format: PixelFormat, width: u32, height: u32, reason: String) -> Error {
    Error::Image {
        path: PathBuf::from(format!("{format} {width}x{height} frame")),
        reason,
    }
}

/// Rejects an empty frame size.
fn check_not_empty(format: PixelFormat, width: u32, height: u32) -> Result<()> {
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
fn fit(out: &mut RgbImage, width: u32, height: u32) {
    if out.dimensions() != (width, height) {
        *out = RgbImage::new(width, height);
    }
}

/// Computes `a * b + c` or reports the frame as too large for this machine.
fn size(
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

fn check_stride(
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

fn check_len(
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

/// Converts a YUYV 4:2:2 frame (BT.601 limited range) to RGB; `stride` is the bytes per row
/// (at least `2 * width`), `None` for unpadded rows.
pub fn yuyv_to_rgb(
    src: &[u8],
    width: u32,
    height: u32,
    stride: Option<usize>,
    out: &mut RgbImage,
) -> Result<()> {
    let fmt = PixelFormat::Yuyv;
    check_not_empty(fmt, width, height)?;
    if width & 1 == 1 {
        return Err(frame_error(
            fmt,
            width,
            height,
            format!("YUYV needs an even width, got {width}"),
        ));
    }
    let (w, h) = (width as usize, height as usize);
    let row = size(fmt, width, height, w, 2, 0)?;
    let stride = stride.unwrap_or(row);
    check_stride(fmt, width, height, "row", stride, row)?;
    let expected = size(fmt, width, height, stride, h, 0)?;
    check_len(fmt, width, height, expected, src.len())?;
    fit(out, width, height);
    let out_row = w * 3;
    for (src_row, dst_row) in src
        .chunks(stride)
        .zip(out.as_mut().chunks_exact_mut(out_row))
    {
        for (s, d) in src_row[..row]
            .chunks_exact(4)
            .zip(dst_row.chunks_exact_mut(6))
        {
            let c = chroma(s[1], s[3]);
            put(s[0], c, &mut d[..3]);
            put(s[2], c, &mut d[3..]);
        }
    }
    Ok(())
}

/// One output row of a 4:2:0 frame from its luma row and the U, V samples of its chroma row
/// (`uv` yields `(u, v)` per chroma column).
#[inline(always)]
fn row_420(y_row: &[u8], mut uv: impl Iterator<Item = (u8, u8)>, dst: &mut [u8]) {
    let mut pairs = y_row.chunks_exact(2);
    let mut px = dst.chunks_exact_mut(6);
    for (y, d) in (&mut pairs).zip(&mut px) {
        let (u, v) = uv.next().unwrap_or((128, 128));
        let c = chroma(u, v);
        put(y[0], c, &mut d[..3]);
        put(y[1], c, &mut d[3..]);
    }
    if let (&[y], Some((u, v))) = (pairs.remainder(), uv.next()) {
        let d = px.into_remainder();
        put(y, chroma(u, v), &mut d[..3]);
    }
}

/// Converts an NV12 frame (Y plane, then interleaved U, V at half resolution; BT.601 limited
/// range) to RGB; `stride` is the bytes per row of both planes, `None` for unpadded rows.
pub fn nv12_to_rgb(
    src: &[u8],
    width: u32,
    height: u32,
    stride: Option<usize>,
    out: &mut RgbImage,
) -> Result<()> {
    let fmt = PixelFormat::Nv12;
    check_not_empty(fmt, width, height)?;
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let y_stride = stride.unwrap_or(w);
    let uv_stride = stride.unwrap_or(2 * cw);
    check_stride(fmt, width, height, "Y plane", y_stride, w)?;
    check_stride(fmt, width, height, "UV plane", uv_stride, 2 * cw)?;
    let y_size = size(fmt, width, height, y_stride, h, 0)?;
    let expected = size(fmt, width, height, uv_stride, ch, y_size)?;
    check_len(fmt, width, height, expected, src.len())?;
    fit(out, width, height);
    let (y_plane, uv_plane) = src.split_at(y_size);
    let out_row = w * 3;
    for (r, dst_row) in out.as_mut().chunks_exact_mut(out_row).enumerate() {
        let y_row = &y_plane[r * y_stride..][..w];
        let uv_row = &uv_plane[(r / 2) * uv_stride..][..2 * cw];
        row_420(y_row, uv_row.chunks_exact(2).map(|p| (p[0], p[1])), dst_row);
    }
    Ok(())
}

/// Converts an I420 frame (planar Y, U, V, chroma at half resolution; BT.601 limited range;
/// what `rpicam-vid --codec yuv420` emits) to RGB; `stride` is the bytes per Y row, the chroma
/// rows taking half of it (V4L2 `YU12` convention), `None` for unpadded rows.
pub fn i420_to_rgb(
    src: &[u8],
    width: u32,
    height: u32,
    stride: Option<usize>,
    out: &mut RgbImage,
) -> Result<()> {
    let fmt = PixelFormat::I420;
    check_not_empty(fmt, width, height)?;
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let y_stride = stride.unwrap_or(w);
    let c_stride = stride.map_or(cw, |s| s.div_ceil(2));
    check_stride(fmt, width, height, "Y plane", y_stride, w)?;
    check_stride(fmt, width, height, "chroma plane", c_stride, cw)?;
    let y_size = size(fmt, width, height, y_stride, h, 0)?;
    let c_size = size(fmt, width, height, c_stride, ch, 0)?;
    let expected = size(fmt, width, height, c_size, 2, y_size)?;
    check_len(fmt, width, height, expected, src.len())?;
    fit(out, width, height);
    let (y_plane, chroma_planes) = src.split_at(y_size);
    let (u_plane, v_plane) = chroma_planes.split_at(c_size);
    let out_row = w * 3;
    for (r, dst_row) in out.as_mut().chunks_exact_mut(out_row).enumerate() {
        let y_row = &y_plane[r * y_stride..][..w];
        let u_row = &u_plane[(r / 2) * c_stride..][..cw];
        let v_row = &v_plane[(r / 2) * c_stride..][..cw];
        row_420(
            y_row,
            u_row.iter().copied().zip(v_row.iter().copied()),
            dst_row,
        );
    }
    Ok(())
}

/// Copies a packed RGB24 frame into `out`, dropping row padding; `stride` is the bytes per row.
pub fn rgb24_to_rgb(
    src: &[u8],
    width: u32,
    height: u32,
    stride: Option<usize>,
    out: &mut RgbImage,
) -> Result<()> {
    let fmt = PixelFormat::Rgb24;
    check_not_empty(fmt, width, height)?;
    let (w, h) = (width as usize, height as usize);
    let row = size(fmt, width, height, w, 3, 0)?;
    let stride = stride.unwrap_or(row);
    check_stride(fmt, width, height, "row", stride, row)?;
    let expected = size(fmt, width, height, stride, h, 0)?;
    check_len(fmt, width, height, expected, src.len())?;
    fit(out, width, height);
    for (s, d) in src.chunks(stride).zip(out.as_mut().chunks_exact_mut(row)) {
        d.copy_from_slice(&s[..row]);
    }
    Ok(())
}

// The default Huffman tables of ITU-T T.81 Annex K.3 (tables K.3 to K.6), which MJPEG frames
// from many UVC cameras leave out (the OpenDML "AVI1" convention).
const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_LUMA_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_CHROMA_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
#[rustfmt::skip]
const AC_LUMA_VALS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
#[rustfmt::skip]
const AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// Length of the DHT segment holding the four default tables, marker included.
const DHT_LEN: usize = 2 + 2 + 4 * 17 + 12 + 12 + 162 + 162;

/// Appends one table (class/id byte, code counts, symbols) to the segment under construction.
const fn append_table(
    mut seg: [u8; DHT_LEN],
    mut at: usize,
    class_id: u8,
    bits: &[u8; 16],
    vals: &[u8],
) -> ([u8; DHT_LEN], usize) {
    seg[at] = class_id;
    at += 1;
    let mut i = 0;
    while i < 16 {
        seg[at] = bits[i];
        at += 1;
        i += 1;
    }
    let mut i = 0;
    while i < vals.len() {
        seg[at] = vals[i];
        at += 1;
        i += 1;
    }
    (seg, at)
}

const fn build_default_dht() -> [u8; DHT_LEN] {
    let mut seg = [0u8; DHT_LEN];
    seg[0] = 0xFF;
    seg[1] = 0xC4;
    seg[2] = ((DHT_LEN - 2) >> 8) as u8;
    seg[3] = ((DHT_LEN - 2) & 0xFF) as u8;
    let (seg, at) = append_table(seg, 4, 0x00, &DC_LUMA_BITS, &DC_LUMA_VALS);
    let (seg, at) = append_table(seg, at, 0x01, &DC_CHROMA_BITS, &DC_CHROMA_VALS);
    let (seg, at) = append_table(seg, at, 0x10, &AC_LUMA_BITS, &AC_LUMA_VALS);
    let (seg, at) = append_table(seg, at, 0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALS);
    assert!(at == DHT_LEN);
    seg
}

/// The DHT segment (marker included) with the four default Huffman tables of JPEG Annex K.3,
/// as libjpeg and ffmpeg assume for MJPEG frames that carry none.
pub const DEFAULT_DHT: [u8; DHT_LEN] = build_default_dht();

/// Largest MJPEG frame decoded, in pixels (64 MP): a corrupt header cannot make the decoder
/// allocate more than 192 MB.
pub const MAX_MJPEG_PIXELS: u64 = 1 << 26;

/// Walks the marker segments of a JPEG header up to the first SOS, calling `visit` with each
/// marker byte and its offset (of the 0xFF); stops early when `visit` returns `Some`.
fn walk_markers<T>(jpeg: &[u8], mut visit: impl FnMut(u8, usize) -> Option<T>) -> Option<T> {
    if jpeg.len() < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
        return None;
    }
    let mut i = 2;
    loop {
        if *jpeg.get(i)? != 0xFF {
            return None;
        }
        let mut j = i + 1;
        while *jpeg.get(j)? == 0xFF {
            j += 1;
        }
        let marker = jpeg[j];
        if let Some(found) = visit(marker, i) {
            return Some(found);
        }
        match marker {
            0xDA | 0xD9 => return None,
            0x01 | 0xD0..=0xD8 => i = j + 1,
            _ => {
                let len = usize::from(u16::from_be_bytes([*jpeg.get(j + 1)?, *jpeg.get(j + 2)?]));
                if len < 2 {
                    return None;
                }
                i = j + 1 + len;
            }
        }
    }
}

/// Where default Huffman tables must go: the offset of the first SOS marker when no DHT segment
/// precedes it; `None` when the frame has tables or its header cannot be walked (the decoder
/// then reports the problem).
pub fn missing_dht_offset(jpeg: &[u8]) -> Option<usize> {
    let mut has_dht = false;
    walk_markers(jpeg, |marker, at| match marker {
        0xC4 => {
            has_dht = true;
            None
        }
        0xDA if !has_dht => Some(at),
        _ => None,
    })
}

/// Width and height from a JPEG's frame header (SOFn), without decoding it.
pub fn mjpeg_dimensions(jpeg: &[u8]) -> Option<(u32, u32)> {
    walk_markers(jpeg, |marker, at| match marker {
        0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
            // The fill bytes are skipped by the walker only for the marker, so find it again.
            let mut j = at + 1;
            while *jpeg.get(j)? == 0xFF {
                j += 1;
            }
            let h = u16::from_be_bytes([*jpeg.get(j + 4)?, *jpeg.get(j + 5)?]);
            let w = u16::from_be_bytes([*jpeg.get(j + 6)?, *jpeg.get(j + 7)?]);
            Some((u32::from(w), u32::from(h)))
        }
        _ => None,
    })
}

fn mjpeg_error(reason: String) -> Error {
    Error::Image {
        path: PathBuf::from("MJPEG frame"),
        reason,
    }
}

/// Decodes one MJPEG frame into `out` (resized to the JPEG's size when it differs), inserting
/// the default Huffman tables when the frame has none.
pub fn mjpeg_to_rgb(jpeg: &[u8], out: &mut RgbImage) -> Result<()> {
    match missing_dht_offset(jpeg) {
        Some(at) => {
            let mut fixed = Vec::with_capacity(jpeg.len() + DHT_LEN);
            fixed.extend_from_slice(&jpeg[..at]);
            fixed.extend_from_slice(&DEFAULT_DHT);
            fixed.extend_from_slice(&jpeg[at..]);
            decode_jpeg(&fixed, out)
        }
        None => decode_jpeg(jpeg, out),
    }
}

fn decode_jpeg(jpeg: &[u8], out: &mut RgbImage) -> Result<()> {
    let decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(jpeg))
        .map_err(|e| mjpeg_error(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(mjpeg_error(format!("empty frame size {w}x{h}")));
    }
    if u64::from(w) * u64::from(h) > MAX_MJPEG_PIXELS {
        return Err(mjpeg_error(format!(
            "frame size {w}x{h} is above the limit of {MAX_MJPEG_PIXELS} pixels"
        )));
    }
    if decoder.color_type() == image::ColorType::Rgb8 {
        if out.dimensions() != (w, h) {
            *out = RgbImage::new(w, h);
        }
        decoder
            .read_image(out.as_mut())
            .map_err(|e| mjpeg_error(e.to_string()))
    } else {
        let img =
            image::DynamicImage::from_decoder(decoder).map_err(|e| mjpeg_error(e.to_string()))?;
        *out = img.into_rgb8();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 limited-range encoding of an RGB colour (the inverse of the converters).
    fn yuv_of(rgb: [u8; 3]) -> [u8; 3] {
        let [r, g, b] = rgb.map(f64::from);
        let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
        let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
        let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
        [y, u, v].map(|x| x.round().clamp(0.0, 255.0) as u8)
    }

    fn close(a: &[u8], b: &[u8], tol: u8) -> bool {
        a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= tol)
    }

    /// A test picture as 2x2 blocks of one colour each, so 4:2:0 and 4:2:2 hold it exactly.
    fn blocks(w: usize, h: usize) -> Vec<[u8; 3]> {
        let palette = [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 255, 255],
            [0, 0, 0],
            [200, 120, 40],
            [30, 160, 220],
            [128, 128, 128],
        ];
        (0..w * h)
            .map(|i| palette[((i % w) / 2 + 3 * ((i / w) / 2)) % palette.len()])
            .collect()
    }

    fn encode(format: PixelFormat, pix: &[[u8; 3]], w: usize, h: usize, pad: usize) -> Vec<u8> {
        let yuv: Vec<[u8; 3]> = pix.iter().map(|p| yuv_of(*p)).collect();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let at = |x: usize, y: usize| yuv[y.min(h - 1) * w + x.min(w - 1)];
        let mut out = Vec::new();
        match format {
            PixelFormat::Yuyv => {
                for y in 0..h {
                    for x in (0..w).step_by(2) {
                        let (a, b) = (at(x, y), at(x + 1, y));
                        out.extend_from_slice(&[a[0], a[1], b[0], a[2]]);
                    }
                    out.resize(out.len() + pad, 0xAA);
                }
            }
            PixelFormat::Nv12 | PixelFormat::I420 => {
                for y in 0..h {
                    out.extend((0..w).map(|x| at(x, y)[0]));
                    out.resize(out.len() + pad, 0xAA);
                }
                // Chroma rows padded to the stride the converters derive from `w + pad`.
                if format == PixelFormat::Nv12 {
                    let uv_pad = if pad > 0 { w + pad - 2 * cw } else { 0 };
                    for cy in 0..ch {
                        for cx in 0..cw {
                            out.extend_from_slice(&[at(2 * cx, 2 * cy)[1], at(2 * cx, 2 * cy)[2]]);
                        }
                        out.resize(out.len() + uv_pad, 0xAA);
                    }
                } else {
                    let c_pad = if pad > 0 {
                        (w + pad).div_ceil(2) - cw
                    } else {
                        0
                    };
                    for k in 1..3 {
                        for cy in 0..ch {
                            out.extend((0..cw).map(|cx| at(2 * cx, 2 * cy)[k]));
                            out.resize(out.len() + c_pad, 0xAA);
                        }
                    }
                }
            }
            _ => unreachable!(),
        }
        out
    }

    #[test]
    fn reference_colours() {
        let mut out = RgbImage::new(2, 1);
        let cases = [
            ([16, 128, 128], [0, 0, 0]),
            ([235, 128, 128], [255, 255, 255]),
            ([126, 128, 128], [128, 128, 128]),
            ([81, 90, 240], [255, 0, 0]),
            ([145, 54, 34], [0, 255, 0]),
            ([41, 240, 110], [0, 0, 255]),
            ([0, 0, 0], [0, 135, 0]),
            ([255, 255, 255], [255, 125, 255]),
        ];
        for ([y, u, v], rgb) in cases {
            yuyv_to_rgb(&[y, u, y, v], 2, 1, None, &mut out).unwrap();
            assert!(
                close(&out.as_raw()[..3], &rgb, 1),
                "YUV {y},{u},{v} gave {:?}, want {rgb:?}",
                &out.as_raw()[..3]
            );
            assert_eq!(out.as_raw()[..3], out.as_raw()[3..]);
        }
    }

    #[test]
    fn fixed_point_matches_float_formula() {
        let mut out = RgbImage::new(2, 1);
        for y in (0..=255).step_by(3) {
            for u in (0..=255).step_by(5) {
                for v in (0..=255).step_by(7) {
                    yuyv_to_rgb(&[y, u, y, v], 2, 1, None, &mut out).unwrap();
                    let (yf, d, e) = (
                        1.164383 * (f64::from(y) - 16.0),
                        f64::from(u) - 128.0,
                        f64::from(v) - 128.0,
                    );
                    let want = [
                        yf + 1.596027 * e,
                        yf - 0.391762 * d - 0.812968 * e,
                        yf + 2.017232 * d,
                    ]
                    .map(|x| x.round().clamp(0.0, 255.0) as u8);
                    assert!(close(&out.as_raw()[..3], &want, 1), "{y} {u} {v}");
                }
            }
        }
    }

    #[test]
    fn all_formats_round_trip_block_picture() {
        for (w, h) in [(8usize, 6usize), (10, 4), (7, 5), (1, 1), (3, 2), (5, 1)] {
            let pix = blocks(w, h);
            let want: Vec<u8> = pix.iter().flatten().copied().collect();
            for fmt in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::I420] {
                if fmt == PixelFormat::Yuyv && w % 2 == 1 {
                    continue;
                }
                for pad in [0usize, 6] {
                    let data = encode(fmt, &pix, w, h, pad);
                    let stride = (pad > 0).then(|| {
                        if fmt == PixelFormat::Yuyv {
                            2 * w + pad
                        } else {
                            w + pad
                        }
                    });
                    let mut out = RgbImage::new(1, 1);
                    convert(fmt, &data, w as u32, h as u32, stride, &mut out)
                        .unwrap_or_else(|e| panic!("{fmt} {w}x{h} pad {pad}: {e}"));
                    assert_eq!(out.dimensions(), (w as u32, h as u32));
                    assert!(
                        close(out.as_raw(), &want, 2),
                        "{fmt} {w}x{h} pad {pad}: {:?} vs {:?}",
                        out.as_raw(),
                        want
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let mut out = RgbImage::new(4, 2);
        let err = yuyv_to_rgb(&[0; 15], 4, 2, None, &mut out).unwrap_err();
        assert!(
            err.to_string().contains("expected 16 bytes, got 15"),
            "{err}"
        );
        let err = yuyv_to_rgb(&[0; 64], 3, 2, None, &mut out).unwrap_err();
        assert!(err.to_string().contains("even width, got 3"), "{err}");
        let err = yuyv_to_rgb(&[0; 64], 4, 2, Some(7), &mut out).unwrap_err();
        assert!(
            err.to_string().contains("shorter than a row (8 bytes)"),
            "{err}"
        );
        let err = yuyv_to_rgb(&[0; 17], 4, 2, Some(10), &mut out).unwrap_err();
        assert!(
            err.to_string().contains("expected 20 bytes, got 17"),
            "{err}"
        );
        let err = nv12_to_rgb(&[0; 11], 4, 2, None, &mut out).unwrap_err();
        assert!(
            err.to_string().contains("expected 12 bytes, got 11"),
            "{err}"
        );
        let err = i420_to_rgb(&[0; 11], 4, 2, None, &mut out).unwrap_err();
        assert!(
            err.to_string().contains("expected 12 bytes, got 11"),
            "{err}"
        );
        // 5x3: Y 15, chroma 3x2 twice.
        let err = i420_to_rgb(&[0; 26], 5, 3, None, &mut out).unwrap_err();
        assert!(
            err.to_string().contains("expected 27 bytes, got 26"),
            "{err}"
        );
        let err = nv12_to_rgb(&[0; 26], 5, 3, None, &mut out).unwrap_err();
        assert!(
            err.to_string().contains("expected 27 bytes, got 26"),
            "{err}"
        );
        let err = i420_to_rgb(&[0; 100], 8, 2, Some(4), &mut out).unwrap_err();
        assert!(err.to_string().contains("stride"), "{err}");
        let err = rgb24_to_rgb(&[0; 23], 4, 2, None, &mut out).unwrap_err();
        assert!(
            err.to_string().contains("expected 24 bytes, got 23"),
            "{err}"
        );
        let err = nv12_to_rgb(&[], 0, 2, None, &mut out).unwrap_err();
        assert!(err.to_string().contains("empty frame size"), "{err}");
        assert!(err.to_string().contains("NV12 0x2 frame"), "{err}");
        // Sizes that overflow the address space are reported, not wrapped.
        let err = yuyv_to_rgb(&[0; 8], u32::MAX - 1, u32::MAX, None, &mut out).unwrap_err();
        assert!(!err.to_string().is_empty());
        // Longer buffers are fine (drivers may round sizeimage up).
        yuyv_to_rgb(&[128; 40], 4, 2, None, &mut out).unwrap();
    }

    #[test]
    fn output_buffer_is_reused_when_the_size_matches() {
        let mut out = RgbImage::new(4, 2);
        let before = out.as_raw().as_ptr();
        i420_to_rgb(&[100; 12], 4, 2, None, &mut out).unwrap();
        assert_eq!(out.as_raw().as_ptr(), before);
        i420_to_rgb(&[100; 24], 4, 4, None, &mut out).unwrap();
        assert_eq!(out.dimensions(), (4, 4));
    }

    #[test]
    fn rgb24_copy_drops_padding() {
        let src: Vec<u8> = [1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0].to_vec();
        let mut out = RgbImage::new(1, 1);
        rgb24_to_rgb(&src, 2, 2, Some(8), &mut out).unwrap();
        assert_eq!(out.as_raw(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn fourcc_round_trip_and_preference() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
            assert_eq!(f.to_string().as_bytes(), f.fourcc());
        }
        assert_eq!(PixelFormat::from_fourcc(*b"JPEG"), Some(PixelFormat::Mjpeg));
        assert_eq!(PixelFormat::from_fourcc(*b"I420"), Some(PixelFormat::I420));
        assert_eq!(PixelFormat::from_fourcc(*b"GREY"), None);
        use PixelFormat::*;
        assert_eq!(preferred_format(&[Yuyv, Mjpeg]), Some(Mjpeg));
        assert_eq!(preferred_format(&[Nv12, Yuyv]), Some(Yuyv));
        assert_eq!(preferred_format(&[Rgb24, I420, Nv12]), Some(Nv12));
        assert_eq!(preferred_format(&[Rgb24]), Some(Rgb24));
        assert_eq!(preferred_format(&[]), None);
        assert_eq!(Yuyv.frame_bytes(640, 480), Some(614_400));
        assert_eq!(I420.frame_bytes(5, 3), Some(27));
        assert_eq!(Mjpeg.frame_bytes(5, 3), None);
    }

    #[test]
    fn default_dht_is_well_formed() {
        assert_eq!(DEFAULT_DHT.len(), 420);
        assert_eq!(&DEFAULT_DHT[..4], &[0xFF, 0xC4, 0x01, 0xA2]);
        let mut at = 4;
        let mut ids = Vec::new();
        while at < DEFAULT_DHT.len() {
            ids.push(DEFAULT_DHT[at]);
            let n: usize = DEFAULT_DHT[at + 1..at + 17]
                .iter()
                .map(|&b| usize::from(b))
                .sum();
            at += 17 + n;
        }
        assert_eq!(at, DEFAULT_DHT.len());
        assert_eq!(ids, [0x00, 0x01, 0x10, 0x11]);
    }

    /// Removes every DHT segment of a baseline JPEG.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while i + 4 <= jpeg.len() && jpeg[i + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    fn test_jpeg() -> (RgbImage, Vec<u8>) {
        let img = RgbImage::from_fn(48, 32, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        (img, jpeg)
    }

    #[test]
    fn mjpeg_decodes_with_and_without_huffman_tables() {
        let (img, jpeg) = test_jpeg();
        // The image crate's encoder uses the standard tables, so stripping them loses nothing.
        let stripped = strip_dht(&jpeg);
        assert!(stripped.len() < jpeg.len());
        assert!(missing_dht_offset(&jpeg).is_none());
        assert!(missing_dht_offset(&stripped).is_some());
        assert_eq!(mjpeg_dimensions(&jpeg), Some((48, 32)));
        assert_eq!(mjpeg_dimensions(&stripped), Some((48, 32)));
        assert_eq!(mjpeg_dimensions(&jpeg[..10]), None);
        assert_eq!(mjpeg_dimensions(b"GIF89a"), None);
        assert!(
            image::load_from_memory(&stripped).is_err(),
            "the decoder alone should refuse a JPEG without tables"
        );
        let mut full = RgbImage::new(1, 1);
        mjpeg_to_rgb(&jpeg, &mut full).unwrap();
        assert_eq!(full.dimensions(), (48, 32));
        let mut fixed = RgbImage::new(48, 32);
        mjpeg_to_rgb(&stripped, &mut fixed).unwrap();
        assert_eq!(full.as_raw(), fixed.as_raw());
        let err: f64 = full
            .as_raw()
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / full.as_raw().len() as f64;
        assert!(err < 3.0, "mean error {err}");
    }

    #[test]
    fn mjpeg_with_avi1_header_and_no_tables() {
        let (_, jpeg) = test_jpeg();
        let stripped = strip_dht(&jpeg);
        // Replace the JFIF APP0 by the AVI1 APP0 that UVC cameras write.
        assert_eq!(&stripped[2..4], &[0xFF, 0xE0]);
        let len = usize::from(u16::from_be_bytes([stripped[4], stripped[5]]));
        let mut avi = stripped[..2].to_vec();
        avi.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
        avi.extend_from_slice(b"AVI1\0\0\0\0\0\0\0\0\0\0");
        avi.extend_from_slice(&stripped[4 + len..]);
        let mut a = RgbImage::new(1, 1);
        let mut b = RgbImage::new(1, 1);
        mjpeg_to_rgb(&avi, &mut a).unwrap();
        mjpeg_to_rgb(&jpeg, &mut b).unwrap();
        assert_eq!(a.as_raw(), b.as_raw());
    }

    #[test]
    fn broken_mjpeg_is_an_error() {
        let (_, jpeg) = test_jpeg();
        let mut out = RgbImage::new(1, 1);
        for bad in [
            &[][..],
            &[0xFF, 0xD8][..],
            &jpeg[..40],
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01][..],
            b"not a jpeg at all",
        ] {
            let err = mjpeg_to_rgb(bad, &mut out).unwrap_err();
            assert!(err.to_string().contains("MJPEG frame"), "{err}");
        }
        // Any prefix or corruption: an error or a picture, never a panic.
        for cut in (0..jpeg.len()).step_by(37) {
            let _ = mjpeg_to_rgb(&jpeg[..cut], &mut out);
        }
        let mut noisy = jpeg.clone();
        for i in (200..noisy.len()).step_by(13) {
            noisy[i] ^= 0x5A;
        }
        let _ = mjpeg_to_rgb(&noisy, &mut out);
    }

    #[test]
    fn grey_jpeg_becomes_rgb() {
        let img = image::GrayImage::from_fn(16, 8, |x, _| image::Luma([(x * 16) as u8]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&img)
            .unwrap();
        let mut out = RgbImage::new(1, 1);
        mjpeg_to_rgb(&jpeg, &mut out).unwrap();
        assert_eq!(out.dimensions(), (16, 8));
        let p = out.get_pixel(8, 4);
        assert!(
            p[0] == p[1] && p[1] == p[2] && p[0].abs_diff(128) < 6,
            "{p:?}"
        );
    }
}
