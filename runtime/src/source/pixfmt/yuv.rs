//! YUYV, NV12, I420 (BT.601 limited range, fixed point) and padded RGB24 frames to RGB8.
//!
//! Chroma is upsampled by sample replication (each U/V sample covers its 2x1 or 2x2 block), as
//! libyuv and ffmpeg's unscaled `yuv2rgb` path do. ffmpeg's default `yuyv422 -> rgb24` and
//! `yuv420p -> rgb24` conversions agree with these functions within 3 levels (ffmpeg truncates,
//! we round to nearest); for `nv12 -> rgb24` ffmpeg takes its generic scaler, which interpolates
//! chroma vertically with its bicubic filter, so there the two differ at sharp colour edges.
//! `tests/camera_formats.rs` measures both.

use image::RgbImage;

use super::{check_len, check_not_empty, check_stride, fit, frame_error, size, PixelFormat};
use crate::error::Result;

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

#[cfg(test)]
mod tests {
    use super::super::{convert, preferred_format};
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
}
