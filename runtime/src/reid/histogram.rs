//! Colour histograms per body third: the re-identification embedding that needs no model.
//!
//! A person box is cut into three horizontal bands (head and shoulders, torso, legs) over its
//! middle 70 % (less background). Each band gets a hue x saturation histogram of its coloured
//! pixels plus a brightness histogram of its grey ones, with soft (linear) binning so that small
//! colour shifts move weight between neighbouring bins instead of jumping. Each band is
//! normalized to sum 1 and square-rooted, so the cosine of two embeddings is the mean
//! Bhattacharyya coefficient of their bands.

use image::RgbImage;

use super::{crop_rect, l2_normalize, Embedder};
use crate::detection::BBox;
use crate::error::Result;

const HUE_BINS: usize = 8;
const SAT_BINS: usize = 3;
const GREY_BINS: usize = 8;
const BAND_DIM: usize = HUE_BINS * SAT_BINS + GREY_BINS;
const BANDS: usize = 3;
/// Default same-person similarity for histograms (`--reid-threshold` with `--reid hist`).
pub const HISTOGRAM_THRESHOLD: f32 = 0.93;
/// Pixels less saturated or darker than this count as grey.
const CHROMA_MIN: f32 = 0.2;
/// Fraction of the box width kept, centred.
const KEEP_WIDTH: f32 = 0.7;
/// At most this many sample columns and rows per crop (bounds the cost of large boxes).
const MAX_SAMPLES_X: u32 = 24;
const MAX_SAMPLES_Y: u32 = 60;

/// HSV colour histograms per body third (no model, about 5 µs per person).
#[derive(Debug, Default, Clone)]
pub struct HistogramEmbedder;

impl HistogramEmbedder {
    /// The embedder.
    pub fn new() -> Self {
        HistogramEmbedder
    }

    /// The embedding of one box, or `None` when the crop is too small or featureless.
    pub fn embed_one(&self, image: &RgbImage, b: &BBox) -> Option<Vec<f32>> {
        let (w, h) = image.dimensions();
        let inset = b.width() * (1.0 - KEEP_WIDTH) / 2.0;
        let inner = BBox::new(b.x1 + inset, b.y1, b.x2 - inset, b.y2);
        let (x0, y0, x1, y1) = crop_rect(&inner, w, h)?;
        let mut v = vec![0f32; BAND_DIM * BANDS];
        let (cw, ch) = (x1 - x0, y1 - y0);
        let (nx, ny) = (cw.min(MAX_SAMPLES_X), ch.min(MAX_SAMPLES_Y));
        for sy in 0..ny {
            let y = y0 + (sy * ch + ch / 2) / ny;
            let band = ((sy * BANDS as u32) / ny) as usize;
            let hist = &mut v[band * BAND_DIM..(band + 1) * BAND_DIM];
            for sx in 0..nx {
                let x = x0 + (sx * cw + cw / 2) / nx;
                let p = image.get_pixel(x, y).0;
                add_pixel(hist, p);
            }
        }
        for hist in v.chunks_mut(BAND_DIM) {
            let sum: f32 = hist.iter().sum();
            if sum > 0.0 {
                hist.iter_mut().for_each(|x| *x = (*x / sum).sqrt());
            }
        }
        l2_normalize(&mut v).then_some(v)
    }
}

/// Adds one RGB pixel to a band histogram with linear interpolation between bins.
fn add_pixel(hist: &mut [f32], p: [u8; 3]) {
    let (r, g, b) = (
        p[0] as f32 / 255.0,
        p[1] as f32 / 255.0,
        p[2] as f32 / 255.0,
    );
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let v = max;
    let s = if max > 0.0 { (max - min) / max } else { 0.0 };
    if s < CHROMA_MIN || v < CHROMA_MIN {
        // Grey: brightness bins, centres at (i + 0.5) / GREY_BINS.
        let (i0, i1, f) = linear_bins(v * GREY_BINS as f32 - 0.5, GREY_BINS, false);
        let base = HUE_BINS * SAT_BINS;
        hist[base + i0] += 1.0 - f;
        hist[base + i1] += f;
        return;
    }
    let d = max - min;
    let hue = if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    }; // 0..6
    let (h0, h1, fh) = linear_bins(hue / 6.0 * HUE_BINS as f32, HUE_BINS, true);
    let s_pos = (s - CHROMA_MIN) / (1.0 - CHROMA_MIN) * SAT_BINS as f32 - 0.5;
    let (s0, s1, fs) = linear_bins(s_pos, SAT_BINS, false);
    hist[h0 * SAT_BINS + s0] += (1.0 - fh) * (1.0 - fs);
    hist[h0 * SAT_BINS + s1] += (1.0 - fh) * fs;
    hist[h1 * SAT_BINS + s0] += fh * (1.0 - fs);
    hist[h1 * SAT_BINS + s1] += fh * fs;
}

/// The two bins around continuous position `pos` (bin centres at integers) and the weight of
/// the second; circular wraps around, otherwise the ends are clamped.
fn linear_bins(pos: f32, bins: usize, circular: bool) -> (usize, usize, f32) {
    if circular {
        let p = pos.rem_euclid(bins as f32);
        let i0 = (p.floor() as usize).min(bins - 1);
        return (i0, (i0 + 1) % bins, p - i0 as f32);
    }
    let p = pos.clamp(0.0, (bins - 1) as f32);
    let i0 = (p.floor() as usize).min(bins - 1);
    let i1 = (i0 + 1).min(bins - 1);
    (i0, i1, p - i0 as f32)
}

impl Embedder for HistogramEmbedder {
    fn name(&self) -> &str {
        "hist"
    }

    fn dim(&self) -> usize {
        BAND_DIM * BANDS
    }

    fn match_threshold(&self) -> f32 {
        HISTOGRAM_THRESHOLD
    }

    fn embed(
        &mut self,
        image: &RgbImage,
        boxes: &[BBox],
        out: &mut Vec<Option<Vec<f32>>>,
    ) -> Result<()> {
        out.clear();
        out.extend(boxes.iter().map(|b| self.embed_one(image, b)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reid::cosine;
    use image::Rgb;

    /// A 200x200 grey frame with a "person" at `x`: shirt colour on top, trousers below.
    fn person(x: u32, shirt: [u8; 3], trousers: [u8; 3], noise: u8) -> RgbImage {
        let mut img = RgbImage::from_pixel(200, 200, Rgb([128, 128, 128]));
        for y in 40..160 {
            for xx in x..x + 40 {
                let base = if y < 100 { shirt } else { trousers };
                let n = ((xx * 7 + y * 13) % (noise as u32 + 1)) as u8;
                let px = base.map(|c| c.saturating_add(n));
                img.put_pixel(xx, y, Rgb(px));
            }
        }
        img
    }

    fn embed(img: &RgbImage, x: u32) -> Vec<f32> {
        HistogramEmbedder
            .embed_one(img, &BBox::new(x as f32, 40.0, x as f32 + 40.0, 160.0))
            .expect("embedding")
    }

    #[test]
    fn same_clothes_match_and_different_clothes_do_not() {
        let red_blue = embed(&person(20, [200, 30, 30], [30, 30, 160], 0), 20);
        let red_blue_moved_noisy = embed(&person(120, [205, 40, 35], [35, 30, 170], 12), 120);
        let green_blue = embed(&person(60, [30, 170, 40], [30, 30, 160], 0), 60);
        let blue_red = embed(&person(60, [30, 30, 160], [200, 30, 30], 0), 60);
        let same = cosine(&red_blue, &red_blue_moved_noisy);
        assert!(same > 0.95, "same clothes: {same}");
        let shirt = cosine(&red_blue, &green_blue);
        assert!(shirt < 0.8 && shirt > 0.3, "different shirt: {shirt}");
        // Same colours in other places: the bands tell them apart.
        let swapped = cosine(&red_blue, &blue_red);
        assert!(swapped < 0.5, "swapped: {swapped}");
        assert!((cosine(&red_blue, &red_blue) - 1.0).abs() < 1e-5);
        assert_eq!(red_blue.len(), HistogramEmbedder.dim());
    }

    #[test]
    fn border_tiny_and_outside_boxes() {
        let img = person(0, [200, 30, 30], [30, 30, 160], 0);
        let mut e = HistogramEmbedder::new();
        let mut out = Vec::new();
        let boxes = [
            BBox::new(-20.0, 40.0, 40.0, 160.0),
            BBox::new(10.0, 10.0, 13.0, 16.0),
            BBox::new(300.0, 0.0, 400.0, 100.0),
            BBox::new(f32::NAN, 0.0, 1.0, 1.0),
        ];
        e.embed(&img, &boxes, &mut out).unwrap();
        assert_eq!(out.len(), 4);
        let v = out[0].as_ref().expect("a border crop still embeds");
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(out[1..].iter().all(Option::is_none));
    }

    #[test]
    fn grey_people_are_told_apart_by_brightness() {
        let dark = embed(&person(20, [20, 20, 20], [20, 20, 20], 0), 20);
        let light = embed(&person(20, [230, 230, 230], [230, 230, 230], 0), 20);
        assert!(cosine(&dark, &light) < 0.2);
    }
}
