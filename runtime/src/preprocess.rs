//! Frame preprocessing: resize (letterbox, stretch or centre crop) and normalise into the input tensor.
//!
//! Resizing uses `fast_image_resize` with a bilinear convolution. For upscaling this is ordinary
//! bilinear interpolation (as OpenCV's `INTER_LINEAR`, which Ultralytics uses); for downscaling the
//! convolution kernel widens with the scale factor, so the result is antialiased (like Pillow), unlike
//! OpenCV's `INTER_LINEAR`, which samples only the two nearest source pixels per axis. Values can
//! therefore differ slightly from an OpenCV pipeline on downscaled frames; detections are unaffected
//! in practice.
//!
//! Normalisation and the layout change (HWC `u8` to NCHW or NHWC `f32`, RGB or BGR) happen in one pass
//! over the resized pixels, written straight into the caller's tensor buffer. Once warm, a
//! [`Preprocessor`] allocates nothing of its own per frame: the resized buffer is sized for the
//! model input at construction and reused.

use std::path::PathBuf;

use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::detection::BBox;
use crate::error::{Error, Result};
use crate::model::{ColorOrder, InputSpec, Layout, ResizeMode};

/// Affine map from source-image pixels to model-input pixels: input = src * scale + pad, per axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputTransform {
    /// Horizontal scale from source to input pixels.
    pub scale_x: f32,
    /// Vertical scale from source to input pixels.
    pub scale_y: f32,
    /// Horizontal offset in input pixels (negative when the source was cropped).
    pub pad_x: f32,
    /// Vertical offset in input pixels (negative when the source was cropped).
    pub pad_y: f32,
    /// Width of the source frame.
    pub src_width: u32,
    /// Height of the source frame.
    pub src_height: u32,
}

impl InputTransform {
    /// Maps a box from model-input pixels back to source pixels, clipped to the source image.
    pub fn to_source(&self, b: &BBox) -> BBox {
        let x = |v: f32| (v - self.pad_x) / self.scale_x;
        let y = |v: f32| (v - self.pad_y) / self.scale_y;
        BBox::new(x(b.x1), y(b.y1), x(b.x2), y(b.y2))
            .clip(self.src_width as f32, self.src_height as f32)
    }

    /// Maps a box from source pixels to model-input pixels (not clipped).
    pub fn to_input(&self, b: &BBox) -> BBox {
        let x = |v: f32| v * self.scale_x + self.pad_x;
        let y = |v: f32| v * self.scale_y + self.pad_y;
        BBox::new(x(b.x1), y(b.y1), x(b.x2), y(b.y2))
    }
}

/// Rectangle in whole pixels: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// Where a frame's pixels come from and go to for one input spec.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Geometry {
    /// Region of the source frame that is resized.
    crop: Rect,
    /// Region of the model input it lands in (the rest is padding).
    dst: Rect,
    transform: InputTransform,
}

/// Python's `int(round(v))` (ties to even), clamped to `lo..=hi`.
fn py_round(v: f64, lo: u32, hi: u32) -> u32 {
    let r = v.round_ties_even();
    if r.is_nan() {
        lo
    } else {
        r.clamp(lo as f64, hi as f64) as u32
    }
}

/// Resize plan for a `w` x `h` frame (both non-zero) into the spec's input.
fn geometry(spec: &InputSpec, w: u32, h: u32) -> Geometry {
    let (tw, th) = (spec.width, spec.height);
    let full = Rect { x: 0, y: 0, w, h };
    let transform = |sx: f64, sy: f64, px: f64, py: f64| InputTransform {
        scale_x: sx as f32,
        scale_y: sy as f32,
        pad_x: px as f32,
        pad_y: py as f32,
        src_width: w,
        src_height: h,
    };
    match spec.resize {
        ResizeMode::Letterbox => {
            // Ultralytics LetterBox(auto=False, center=True).
            let r = (tw as f64 / w as f64).min(th as f64 / h as f64);
            let nw = py_round(w as f64 * r, 1, tw);
            let nh = py_round(h as f64 * r, 1, th);
            let dw = (tw - nw) as f64 / 2.0;
            let dh = (th - nh) as f64 / 2.0;
            let left = py_round(dw - 0.1, 0, tw - nw);
            let top = py_round(dh - 0.1, 0, th - nh);
            Geometry {
                crop: full,
                dst: Rect {
                    x: left,
                    y: top,
                    w: nw,
                    h: nh,
                },
                transform: transform(
                    nw as f64 / w as f64,
                    nh as f64 / h as f64,
                    left as f64,
                    top as f64,
                ),
            }
        }
        ResizeMode::Stretch => Geometry {
            crop: full,
            dst: Rect {
                x: 0,
                y: 0,
                w: tw,
                h: th,
            },
            transform: transform(tw as f64 / w as f64, th as f64 / h as f64, 0.0, 0.0),
        },
        ResizeMode::CenterCrop => {
            // Largest centred region with the input's aspect ratio (torchvision rounding).
            let (cw, ch) = if w as u64 * th as u64 > h as u64 * tw as u64 {
                (py_round(h as f64 * tw as f64 / th as f64, 1, w), h)
            } else {
                (w, py_round(w as f64 * th as f64 / tw as f64, 1, h))
            };
            let left = py_round((w - cw) as f64 / 2.0, 0, w - cw);
            let top = py_round((h - ch) as f64 / 2.0, 0, h - ch);
            let sx = tw as f64 / cw as f64;
            let sy = th as f64 / ch as f64;
            Geometry {
                crop: Rect {
                    x: left,
                    y: top,
                    w: cw,
                    h: ch,
                },
                dst: Rect {
                    x: 0,
                    y: 0,
                    w: tw,
                    h: th,
                },
                transform: transform(sx, sy, -(left as f64) * sx, -(top as f64) * sy),
            }
        }
    }
}

/// Per output channel `v * mul + add` coefficients and the normalised padding value.
#[derive(Debug, Clone, Copy)]
struct Norm {
    mul: [f32; 3],
    add: [f32; 3],
    pad: [f32; 3],
}

impl Norm {
    fn new(spec: &InputSpec) -> Self {
        let mut n = Norm {
            mul: [0.0; 3],
            add: [0.0; 3],
            pad: [0.0; 3],
        };
        for c in 0..3 {
            let std = spec.std[c] as f64;
            let mul = spec.scale as f64 / std;
            let add = -(spec.mean[c] as f64) / std;
            n.mul[c] = mul as f32;
            n.add[c] = add as f32;
            n.pad[c] = (spec.pad_value as f64 * mul + add) as f32;
        }
        n
    }
}

/// Resizes and normalises frames into a reused input tensor buffer.
pub struct Preprocessor {
    spec: InputSpec,
    resizer: Resizer,
    options: ResizeOptions,
    /// Resized RGB8 pixels (the content region only), reused across frames.
    resized: Vec<u8>,
    norm: Norm,
}

impl std::fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessor")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Preprocessor {
    /// A preprocessor for inputs described by `spec`.
    pub fn new(spec: &InputSpec) -> Self {
        let capacity = spec.width as usize * spec.height as usize * 3;
        Preprocessor {
            spec: spec.clone(),
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
            resized: Vec::with_capacity(capacity),
            norm: Norm::new(spec),
        }
    }

    /// The input spec this preprocessor fills.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    fn model_error(&self, reason: String) -> Error {
        Error::Model {
            model: self.spec.name.clone().unwrap_or_else(|| "input".into()),
            reason,
        }
    }

    /// Writes `frame` (RGB8) into `out` (len == spec.len(), layout per spec) and returns the transform applied.
    pub fn run(&mut self, frame: &RgbImage, out: &mut [f32]) -> Result<InputTransform> {
        let (tw, th) = (self.spec.width, self.spec.height);
        if tw == 0 || th == 0 {
            return Err(self.model_error(format!("input size {tw}x{th} is empty")));
        }
        if out.len() != self.spec.len() {
            return Err(self.model_error(format!(
                "input buffer holds {} values but the {:?} {}x{} input needs {}",
                out.len(),
                self.spec.layout,
                tw,
                th,
                self.spec.len()
            )));
        }
        let (w, h) = frame.dimensions();
        if w == 0 || h == 0 {
            return Err(frame_error(format!("frame is empty ({w}x{h})")));
        }
        let g = geometry(&self.spec, w, h);
        let raw: &[u8] = frame.as_raw();
        let view = if (g.crop.w, g.crop.h) == (g.dst.w, g.dst.h) {
            // No resize needed: read the (cropped) frame in place.
            let stride = w as usize * 3;
            let start = g.crop.y as usize * stride + g.crop.x as usize * 3;
            SrcView {
                data: raw.get(start..).unwrap_or(&[]),
                stride,
            }
        } else {
            let n = g.dst.w as usize * g.dst.h as usize * 3;
            self.resized.resize(n, 0);
            let src = ImageRef::new(w, h, raw, PixelType::U8x3)
                .map_err(|e| frame_error(format!("{w}x{h} RGB frame: {e}")))?;
            let mut dst =
                Image::from_slice_u8(g.dst.w, g.dst.h, &mut self.resized[..n], PixelType::U8x3)
                    .map_err(|e| frame_error(format!("resize buffer: {e}")))?;
            let resized = if g.crop == (Rect { x: 0, y: 0, w, h }) {
                self.resizer.resize(&src, &mut dst, &self.options)
            } else {
                // A cropped view (no copy). Unlike `ResizeOptions::crop`, whose filter also reads
                // pixels just outside the crop box, this matches torchvision's crop-then-resize.
                let cropped = CroppedImage::new(&src, g.crop.x, g.crop.y, g.crop.w, g.crop.h)
                    .map_err(|e| frame_error(format!("centre crop {:?}: {e}", g.crop)))?;
                self.resizer.resize(&cropped, &mut dst, &self.options)
            };
            resized.map_err(|e| frame_error(format!("resize {w}x{h}: {e}")))?;
            SrcView {
                data: &self.resized[..n],
                stride: g.dst.w as usize * 3,
            }
        };
        let needed = (g.dst.h as usize - 1) * view.stride + g.dst.w as usize * 3;
        if view.data.len() < needed {
            return Err(frame_error(format!(
                "pixel buffer holds {} bytes, {} needed",
                view.data.len(),
                needed
            )));
        }
        write_tensor(&view, g.dst, &self.spec, &self.norm, out);
        Ok(g.transform)
    }
}

fn frame_error(reason: String) -> Error {
    Error::Image {
        path: PathBuf::from("<frame>"),
        reason,
    }
}

/// RGB8 rows: row `y` of the content region starts at `y * stride`.
struct SrcView<'a> {
    data: &'a [u8],
    stride: usize,
}

/// Normalises the content region into `out` and fills the rest with the padding value.
fn write_tensor(src: &SrcView, dst: Rect, spec: &InputSpec, n: &Norm, out: &mut [f32]) {
    let (tw, th) = (spec.width as usize, spec.height as usize);
    let (left, top, rw, rh) = (
        dst.x as usize,
        dst.y as usize,
        dst.w as usize,
        dst.h as usize,
    );
    let src_row = |y: usize| &src.data[(y - top) * src.stride..(y - top) * src.stride + rw * 3];
    if spec.color == ColorOrder::Gray {
        // One channel: NCHW and NHWC share the same row-major layout.
        let (m, a, pad) = (n.mul[0], n.add[0], n.pad[0]);
        for (y, row) in out.chunks_exact_mut(tw).enumerate() {
            if y < top || y >= top + rh {
                row.fill(pad);
                continue;
            }
            row[..left].fill(pad);
            row[left + rw..].fill(pad);
            for (o, px) in row[left..left + rw]
                .iter_mut()
                .zip(src_row(y).chunks_exact(3))
            {
                *o = luma(px) as f32 * m + a;
            }
        }
        return;
    }
    match spec.layout {
        Layout::Nchw => {
            let plane = tw * th;
            let (p0, rest) = out.split_at_mut(plane);
            let (p1, p2) = rest.split_at_mut(plane);
            // Output plane, multiplier, offset and padding for source channels R, G, B.
            let (planes, ks): ([&mut [f32]; 3], [usize; 3]) = match spec.color {
                ColorOrder::Rgb | ColorOrder::Gray => ([p0, p1, p2], [0, 1, 2]),
                ColorOrder::Bgr => ([p2, p1, p0], [2, 1, 0]),
            };
            let [pr, pg, pb] = planes;
            let (mr, mg, mb) = (n.mul[ks[0]], n.mul[ks[1]], n.mul[ks[2]]);
            let (ar, ag, ab) = (n.add[ks[0]], n.add[ks[1]], n.add[ks[2]]);
            let pad = [n.pad[ks[0]], n.pad[ks[1]], n.pad[ks[2]]];
            for (y, ((rr, gr), br)) in pr
                .chunks_exact_mut(tw)
                .zip(pg.chunks_exact_mut(tw))
                .zip(pb.chunks_exact_mut(tw))
                .enumerate()
            {
                if y < top || y >= top + rh {
                    rr.fill(pad[0]);
                    gr.fill(pad[1]);
                    br.fill(pad[2]);
                    continue;
                }
                for (row, p) in [&mut *rr, &mut *gr, &mut *br].into_iter().zip(pad) {
                    row[..left].fill(p);
                    row[left + rw..].fill(p);
                }
                let content = rr[left..left + rw]
                    .iter_mut()
                    .zip(&mut gr[left..left + rw])
                    .zip(&mut br[left..left + rw])
                    .zip(src_row(y).chunks_exact(3));
                for (((r, g), b), px) in content {
                    *r = px[0] as f32 * mr + ar;
                    *g = px[1] as f32 * mg + ag;
                    *b = px[2] as f32 * mb + ab;
                }
            }
        }
        Layout::Nhwc => {
            let (m, a) = (n.mul, n.add);
            for (y, row) in out.chunks_exact_mut(tw * 3).enumerate() {
                if y < top || y >= top + rh {
                    fill_pixels(row, n.pad);
                    continue;
                }
                fill_pixels(&mut row[..left * 3], n.pad);
                fill_pixels(&mut row[(left + rw) * 3..], n.pad);
                let content = row[left * 3..(left + rw) * 3]
                    .chunks_exact_mut(3)
                    .zip(src_row(y).chunks_exact(3));
                match spec.color {
                    ColorOrder::Rgb | ColorOrder::Gray => {
                        for (o, px) in content {
                            o[0] = px[0] as f32 * m[0] + a[0];
                            o[1] = px[1] as f32 * m[1] + a[1];
                            o[2] = px[2] as f32 * m[2] + a[2];
                        }
                    }
                    ColorOrder::Bgr => {
                        for (o, px) in content {
                            o[0] = px[2] as f32 * m[0] + a[0];
                            o[1] = px[1] as f32 * m[1] + a[1];
                            o[2] = px[0] as f32 * m[2] + a[2];
                        }
                    }
                }
            }
        }
    }
}

/// ITU-R 601 luma of an RGB8 pixel in 16-bit fixed point, as Pillow's `convert("L")`.
fn luma(px: &[u8]) -> u8 {
    ((px[0] as u32 * 19595 + px[1] as u32 * 38470 + px[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Fills interleaved 3-channel values with one pixel value.
fn fill_pixels(dst: &mut [f32], px: [f32; 3]) {
    for o in dst.chunks_exact_mut(3) {
        o.copy_from_slice(&px);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn spec(layout: Layout, color: ColorOrder, resize: ResizeMode, w: u32, h: u32) -> InputSpec {
        InputSpec {
            name: None,
            layout,
            width: w,
            height: h,
            color,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            resize,
            pad_value: 114,
        }
    }

    fn solid(w: u32, h: u32, px: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(w, h, Rgb(px))
    }

    /// Value of channel `c` at (x, y) of a tensor in the spec's layout.
    fn at(spec: &InputSpec, out: &[f32], c: usize, x: usize, y: usize) -> f32 {
        let (w, h) = (spec.width as usize, spec.height as usize);
        match spec.layout {
            Layout::Nchw => out[c * w * h + y * w + x],
            Layout::Nhwc => out[(y * w + x) * 3 + c],
        }
    }

    fn expected(spec: &InputSpec, c: usize, v: u8) -> f32 {
        ((v as f64 * spec.scale as f64 - spec.mean[c] as f64) / spec.std[c] as f64) as f32
    }

    #[test]
    fn letterbox_bus_geometry_matches_ultralytics() {
        let s = spec(
            Layout::Nchw,
            ColorOrder::Rgb,
            ResizeMode::Letterbox,
            640,
            640,
        );
        let mut p = Preprocessor::new(&s);
        let mut out = vec![0.0; s.len()];
        let t = p.run(&solid(810, 1080, [10, 20, 30]), &mut out).unwrap();
        assert!((t.scale_x - 640.0 / 1080.0).abs() < 1e-6, "{t:?}");
        assert!((t.scale_y - 640.0 / 1080.0).abs() < 1e-6, "{t:?}");
        assert!((t.scale_x - 0.5926).abs() < 1e-4);
        assert_eq!((t.pad_x, t.pad_y), (80.0, 0.0));
        assert_eq!((t.src_width, t.src_height), (810, 1080));
        // Content 80..560, padding either side.
        let pad = expected(&s, 0, 114);
        assert_eq!(at(&s, &out, 0, 79, 300), pad);
        assert_eq!(at(&s, &out, 0, 560, 300), pad);
        assert!((at(&s, &out, 2, 80, 300) - 30.0 / 255.0).abs() < 1e-6);
        assert!((at(&s, &out, 1, 559, 639) - 20.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn letterbox_odd_padding_rounds_like_ultralytics() {
        let s = spec(
            Layout::Nchw,
            ColorOrder::Rgb,
            ResizeMode::Letterbox,
            100,
            100,
        );
        // dh = 1.5 -> top = round(1.4) = 1, bottom = 2.
        let g = geometry(&s, 100, 97);
        assert_eq!(
            g.dst,
            Rect {
                x: 0,
                y: 1,
                w: 100,
                h: 97
            }
        );
        // dh = 0.5 -> top = round(0.4) = 0, bottom = 1.
        let g = geometry(&s, 100, 99);
        assert_eq!(
            g.dst,
            Rect {
                x: 0,
                y: 0,
                w: 100,
                h: 99
            }
        );
        // Extreme aspect: the content never collapses to zero pixels.
        let g = geometry(&s, 1, 10_000);
        assert_eq!((g.dst.w, g.dst.h), (1, 100));
    }

    #[test]
    fn to_source_inverts_the_mapping() {
        for (mode, w, h) in [
            (ResizeMode::Letterbox, 810, 1080),
            (ResizeMode::Letterbox, 1280, 720),
            (ResizeMode::Stretch, 1280, 720),
            (ResizeMode::CenterCrop, 400, 300),
        ] {
            let s = spec(Layout::Nchw, ColorOrder::Rgb, mode, 640, 640);
            let t = geometry(&s, w, h).transform;
            let b = BBox::new(100.25, 50.5, 300.75, 280.0);
            let back = t.to_source(&t.to_input(&b));
            for (u, v) in [
                (b.x1, back.x1),
                (b.y1, back.y1),
                (b.x2, back.x2),
                (b.y2, back.y2),
            ] {
                assert!((u - v).abs() < 1e-3, "{mode:?}: {b:?} -> {back:?}");
            }
        }
        // Boxes reaching into the padding are clipped to the source image.
        let s = spec(
            Layout::Nchw,
            ColorOrder::Rgb,
            ResizeMode::Letterbox,
            640,
            640,
        );
        let t = geometry(&s, 810, 1080).transform;
        let b = t.to_source(&BBox::new(0.0, -10.0, 640.0, 700.0));
        assert_eq!(b, BBox::new(0.0, 0.0, 810.0, 1080.0));
    }

    #[test]
    fn solid_colour_normalises_per_layout_and_colour_order() {
        let px = [200u8, 100, 50];
        for layout in [Layout::Nchw, Layout::Nhwc] {
            for color in [ColorOrder::Rgb, ColorOrder::Bgr] {
                for mode in [
                    ResizeMode::Letterbox,
                    ResizeMode::Stretch,
                    ResizeMode::CenterCrop,
                ] {
                    let mut s = spec(layout, color, mode, 48, 32);
                    s.mean = [0.485, 0.456, 0.406];
                    s.std = [0.229, 0.224, 0.225];
                    let mut p = Preprocessor::new(&s);
                    let mut out = vec![f32::NAN; s.len()];
                    // 96x64 has the input's aspect: no padding in any mode.
                    p.run(&solid(96, 64, px), &mut out).unwrap();
                    for c in 0..3 {
                        let src_c = match color {
                            ColorOrder::Rgb => c,
                            ColorOrder::Bgr => 2 - c,
                            ColorOrder::Gray => unreachable!("only RGB and BGR are iterated"),
                        };
                        let e = expected(&s, c, px[src_c]);
                        for (x, y) in [(0, 0), (47, 31), (20, 10), (5, 30)] {
                            let v = at(&s, &out, c, x, y);
                            assert!(
                                (v - e).abs() < 1e-5,
                                "{layout:?} {color:?} {mode:?} c{c} ({x},{y}): {v} vs {e}"
                            );
                        }
                    }
                    assert!(out.iter().all(|v| v.is_finite()));
                }
            }
        }
    }

    #[test]
    fn letterbox_padding_equals_normalised_pad_value() {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let mut s = spec(layout, ColorOrder::Bgr, ResizeMode::Letterbox, 64, 64);
            s.mean = [0.1, 0.2, 0.3];
            s.std = [0.5, 0.25, 2.0];
            let mut p = Preprocessor::new(&s);
            let mut out = vec![f32::NAN; s.len()];
            // 100x50 -> 64x32 content, top = round(16 - 0.1) = 16.
            let t = p.run(&solid(100, 50, [0, 0, 0]), &mut out).unwrap();
            assert_eq!((t.pad_x, t.pad_y), (0.0, 16.0));
            for c in 0..3 {
                let pad = expected(&s, c, 114);
                let black = expected(&s, c, 0);
                for x in 0..64 {
                    for y in 0..64 {
                        let v = at(&s, &out, c, x, y);
                        let e = if (16..48).contains(&y) { black } else { pad };
                        assert!((v - e).abs() < 1e-5, "{layout:?} c{c} ({x},{y}): {v}");
                    }
                }
            }
            // A second frame of a different size reuses the buffers and repaints the padding.
            let t = p.run(&solid(50, 100, [0, 0, 0]), &mut out).unwrap();
            assert_eq!((t.pad_x, t.pad_y), (16.0, 0.0));
            assert!((at(&s, &out, 1, 5, 20) - expected(&s, 1, 114)).abs() < 1e-5);
            assert!((at(&s, &out, 1, 30, 5) - expected(&s, 1, 0)).abs() < 1e-5);
        }
    }

    #[test]
    fn center_crop_takes_the_central_region() {
        let s = spec(
            Layout::Nchw,
            ColorOrder::Rgb,
            ResizeMode::CenterCrop,
            224,
            224,
        );
        let g = geometry(&s, 400, 300);
        assert_eq!(
            g.crop,
            Rect {
                x: 50,
                y: 0,
                w: 300,
                h: 300
            }
        );
        let t = g.transform;
        assert!((t.scale_x - 224.0 / 300.0).abs() < 1e-6);
        assert!((t.pad_x + 50.0 * 224.0 / 300.0).abs() < 1e-4);
        assert_eq!(t.pad_y, 0.0);
        // Red outside the central 300 columns, green inside: the output is all green.
        let img = RgbImage::from_fn(400, 300, |x, _| {
            if (50..350).contains(&x) {
                Rgb([0, 255, 0])
            } else {
                Rgb([255, 0, 0])
            }
        });
        let mut p = Preprocessor::new(&s);
        let mut out = vec![0.0; s.len()];
        p.run(&img, &mut out).unwrap();
        let plane = 224 * 224;
        assert!(out[..plane].iter().all(|v| *v == 0.0), "red leaked in");
        assert!(out[plane..2 * plane]
            .iter()
            .all(|v| (*v - 1.0).abs() < 1e-6));
        // Tall frames crop rows instead.
        let g = geometry(&s, 300, 400);
        assert_eq!(
            g.crop,
            Rect {
                x: 0,
                y: 50,
                w: 300,
                h: 300
            }
        );
    }

    #[test]
    fn stretch_scales_each_axis() {
        let s = spec(Layout::Nhwc, ColorOrder::Rgb, ResizeMode::Stretch, 416, 416);
        let mut p = Preprocessor::new(&s);
        let mut out = vec![0.0; s.len()];
        let t = p.run(&solid(640, 424, [1, 2, 3]), &mut out).unwrap();
        assert!((t.scale_x - 0.65).abs() < 1e-6);
        assert!((t.scale_y - 416.0 / 424.0).abs() < 1e-6);
        assert_eq!((t.pad_x, t.pad_y), (0.0, 0.0));
        assert!((at(&s, &out, 2, 415, 415) - 3.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn bad_buffers_and_empty_frames_are_errors() {
        let s = spec(Layout::Nchw, ColorOrder::Rgb, ResizeMode::Letterbox, 32, 32);
        let mut p = Preprocessor::new(&s);
        let mut short = vec![0.0; s.len() - 1];
        let e = p
            .run(&solid(10, 10, [0; 3]), &mut short)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3071") && e.contains("3072"), "{e}");
        let mut out = vec![0.0; s.len()];
        for (w, h) in [(0, 0), (0, 10), (10, 0)] {
            let e = p
                .run(&RgbImage::new(w, h), &mut out)
                .unwrap_err()
                .to_string();
            assert!(e.contains("empty"), "{e}");
        }
        // Tiny frames work in every mode.
        for mode in [
            ResizeMode::Letterbox,
            ResizeMode::Stretch,
            ResizeMode::CenterCrop,
        ] {
            let s = spec(Layout::Nhwc, ColorOrder::Rgb, mode, 32, 24);
            let mut p = Preprocessor::new(&s);
            let mut out = vec![f32::NAN; s.len()];
            for (w, h) in [(1, 1), (1, 500), (500, 1)] {
                p.run(&solid(w, h, [9, 9, 9]), &mut out).unwrap();
                assert!(out.iter().all(|v| v.is_finite()), "{mode:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn gray_input_is_one_luma_plane_in_either_layout() {
        let mut img = solid(28, 20, [200, 200, 200]);
        img.put_pixel(3, 4, Rgb([255, 0, 0]));
        img.put_pixel(5, 6, Rgb([0, 0, 255]));
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let mut s = spec(layout, ColorOrder::Gray, ResizeMode::Stretch, 28, 20);
            s.mean = [0.5, 0.0, 0.0];
            s.std = [0.25, 1.0, 1.0];
            assert_eq!(s.len(), 28 * 20);
            let mut p = Preprocessor::new(&s);
            let mut out = vec![f32::NAN; s.len()];
            p.run(&img, &mut out).unwrap();
            let norm = |v: f32| (v / 255.0 - 0.5) / 0.25;
            assert!((out[0] - norm(200.0)).abs() < 1e-5, "{layout:?}");
            assert!((out[4 * 28 + 3] - norm(76.0)).abs() < 1e-5, "{layout:?}");
            assert!((out[6 * 28 + 5] - norm(29.0)).abs() < 1e-5, "{layout:?}");
        }
        // Letterbox padding fills the single plane with the padding grey.
        let s = spec(Layout::Nchw, ColorOrder::Gray, ResizeMode::Letterbox, 8, 8);
        let mut p = Preprocessor::new(&s);
        let mut out = vec![f32::NAN; s.len()];
        p.run(&solid(8, 4, [10, 10, 10]), &mut out).unwrap();
        assert_eq!(out[0], expected(&s, 0, 114));
        assert!((out[3 * 8 + 4] - 10.0 / 255.0).abs() < 1e-6);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn letterboxing_the_bus_fixture_is_identity() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/models/yolo/fixtures/bus-letterbox-640.png"
        );
        if !std::path::Path::new(path).exists() {
            eprintln!("skipping: {path} not found (../shared is absent)");
            return;
        }
        let img = image::open(path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (640, 640));
        let s = spec(
            Layout::Nchw,
            ColorOrder::Rgb,
            ResizeMode::Letterbox,
            640,
            640,
        );
        let mut p = Preprocessor::new(&s);
        let mut out = vec![0.0; s.len()];
        let t = p.run(&img, &mut out).unwrap();
        assert_eq!(
            (t.scale_x, t.scale_y, t.pad_x, t.pad_y),
            (1.0, 1.0, 0.0, 0.0)
        );
        let plane = 640 * 640;
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                let v = out[c * plane + i];
                assert!((v - px[c] as f32 / 255.0).abs() < 1e-6, "pixel {i} c{c}");
            }
        }
        // The fixture's own padding columns are grey 114.
        assert_eq!(img.get_pixel(10, 320), &Rgb([114, 114, 114]));
    }
}
