//! Where a person wears strong colours: the share of the upper body covered by each hue.
//!
//! Embeddings learnt from a few minutes of video (and colour histograms, which pool whole
//! body thirds) can take two people for one when they share a colour: a man in a jacket with
//! red shoulders and a navy chest, and a woman in a red jacket. What tells them apart at a
//! glance is how much of the body the colour covers. [`ColourShares`] measures it: over the
//! head-to-hip part of the box (its top 5/8) and the middle 40 % of its width, where the
//! pixels are the person rather than the background, the fraction of pixels of each of six
//! strong hues (saturation above 0.55, brightness above 0.25). A difference of 0.15 of that
//! region in one hue is a different person; grey, black and white clothes say nothing here,
//! so the test only ever refuses, never vouches.

use image::RgbImage;
use serde::Serialize;

use crate::detection::BBox;

/// Hue sectors of 60 degrees, centred on these colours.
pub const HUE_NAMES: [&str; HUES] = ["red", "yellow", "green", "cyan", "blue", "magenta"];
/// Number of hue sectors.
pub const HUES: usize = 6;
/// Part of the box height measured, from the top (head to hip).
const TOP_PART: f32 = 0.625;
/// Part of the box width measured, centred (the body, not the background beside it).
const MIDDLE_PART: f32 = 0.4;
/// A pixel is strongly coloured above this saturation ((max - min) / max) ...
const SATURATION_MIN: u32 = 55;
/// ... and above this brightness (max of R, G, B, out of 100).
const BRIGHTNESS_MIN: u32 = 25;
/// At most this many sample columns and rows per crop (bounds the cost of large boxes).
const MAX_SAMPLES_X: u32 = 16;
const MAX_SAMPLES_Y: u32 = 40;
/// Least share of the measured region inside the frame for a measurement.
const MIN_INSIDE: f32 = 0.8;
/// Default least difference in one hue's share that tells two people apart
/// (`--reid-colour-veto`).
pub const DEFAULT_COLOUR_VETO: f32 = 0.15;

/// Share of the upper body's middle covered by each strong hue (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColourShares(pub [f32; HUES]);

impl ColourShares {
    /// The shares of person box `b` in `image`, or `None` when the measured region is too
    /// small or mostly outside the frame.
    pub fn of_box(image: &RgbImage, b: &BBox) -> Option<ColourShares> {
        let finite = b.x1.is_finite() && b.y1.is_finite() && b.x2.is_finite() && b.y2.is_finite();
        if !finite || b.width() <= 0.0 || b.height() <= 0.0 {
            return None;
        }
        let inset = b.width() * (1.0 - MIDDLE_PART) / 2.0;
        let region = BBox::new(
            b.x1 + inset,
            b.y1,
            b.x2 - inset,
            b.y1 + b.height() * TOP_PART,
        );
        let (w, h) = image.dimensions();
        let inside = region.clip(w as f32, h as f32);
        if inside.width() * inside.height() < MIN_INSIDE * region.width() * region.height() {
            return None;
        }
        let (x0, y0, x1, y1) = super::crop_rect(&inside, w, h).or_else(|| small_rect(&inside))?;
        let (cw, ch) = (x1 - x0, y1 - y0);
        let (nx, ny) = (cw.min(MAX_SAMPLES_X), ch.min(MAX_SAMPLES_Y));
        let mut counts = [0u32; HUES];
        for sy in 0..ny {
            let y = y0 + (sy * ch + ch / 2) / ny;
            for sx in 0..nx {
                let x = x0 + (sx * cw + cw / 2) / nx;
                if let Some(hue) = strong_hue(image.get_pixel(x, y).0) {
                    counts[hue] += 1;
                }
            }
        }
        let n = (nx * ny) as f32;
        Some(ColourShares(counts.map(|c| c as f32 / n)))
    }

    /// The hue whose shares differ most between `self` and `other`, and the difference.
    pub fn largest_difference(&self, other: &ColourShares) -> (usize, f32) {
        (0..HUES)
            .map(|k| (k, (self.0[k] - other.0[k]).abs()))
            .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a })
    }
}

/// The pixel rectangle of a region narrower than a re-identification crop (the middle of a
/// small box): at least 2 x 4 pixels, with its corners inside the frame.
fn small_rect(r: &BBox) -> Option<(u32, u32, u32, u32)> {
    let (x0, y0) = (r.x1.floor().max(0.0) as u32, r.y1.floor().max(0.0) as u32);
    let (x1, y1) = (r.x2.ceil().max(0.0) as u32, r.y2.ceil().max(0.0) as u32);
    (x1 >= x0 + 2 && y1 >= y0 + 4).then_some((x0, y0, x1, y1))
}

/// The hue sector of a strongly coloured pixel, `None` for greys, blacks and whites.
fn strong_hue([r, g, b]: [u8; 3]) -> Option<usize> {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let chroma = max - min;
    if (max as u32) * 100 <= BRIGHTNESS_MIN * 255
        || (chroma as u32) * 100 <= SATURATION_MIN * max as u32
    {
        return None;
    }
    // Hue in sixths of the circle, scaled by `chroma` (0 = red, 2 = green, 4 = blue).
    let h6 = if max == r {
        (g - b).rem_euclid(6 * chroma)
    } else if max == g {
        b - r + 2 * chroma
    } else {
        r - g + 4 * chroma
    };
    // Sectors centred on the six colours: shift by half a sector, then divide.
    Some((((2 * h6 + chroma) / (2 * chroma)) % HUES as i32) as usize)
}

/// A running mean of [`ColourShares`]: the plain mean of the first views (the first crops of
/// someone walking in weigh no more than the later ones), then an exponential average.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColourAverage {
    shares: ColourShares,
    views: u32,
}

/// Views over which the mean is plain; later views get about this reciprocal weight.
const PLAIN_VIEWS: u32 = 10;
/// Views a person's shares must come from before they are compared.
pub const MIN_COLOUR_VIEWS: u32 = 3;

impl ColourAverage {
    /// An average made elsewhere: `shares` as the mean of `views` views.
    pub fn from_mean(shares: ColourShares, views: u32) -> Self {
        ColourAverage { shares, views }
    }

    /// Adds one view.
    pub fn add(&mut self, s: &ColourShares) {
        self.add_weighted(s, 1);
    }

    /// Adds another average as `views` views (merging two galleries of one person).
    pub fn merge(&mut self, other: &ColourAverage) {
        if other.views > 0 {
            self.add_weighted(&other.shares, other.views);
        }
    }

    fn add_weighted(&mut self, s: &ColourShares, views: u32) {
        // An exponential average of weight 1 / PLAIN_VIEWS counts like a plain mean of that
        // many views.
        let mine = self.views.min(PLAIN_VIEWS) as f32;
        let theirs = views.min(PLAIN_VIEWS) as f32;
        let w = theirs / (mine + theirs);
        for (a, x) in self.shares.0.iter_mut().zip(s.0) {
            *a += w * (x - *a);
        }
        self.views = self.views.saturating_add(views);
    }

    /// The averaged shares.
    pub fn shares(&self) -> &ColourShares {
        &self.shares
    }

    /// Views added so far.
    pub fn views(&self) -> u32 {
        self.views
    }

    /// The colour that tells `self` (the person looked for) and `other` (a candidate) apart
    /// by at least `veto` of the measured region, when both have enough views.
    pub fn conflict(&self, other: &ColourAverage, veto: f32) -> Option<ColourConflict> {
        if self.views < MIN_COLOUR_VIEWS || other.views < MIN_COLOUR_VIEWS {
            return None;
        }
        let (hue, d) = self.shares.largest_difference(&other.shares);
        (d >= veto).then_some(ColourConflict {
            hue: HUE_NAMES[hue],
            target: self.shares.0[hue],
            candidate: other.shares.0[hue],
        })
    }
}

/// Two people told apart by a colour: its share of the upper body in each.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ColourConflict {
    /// The hue (`red`, `yellow`, `green`, `cyan`, `blue`, `magenta`).
    pub hue: &'static str,
    /// Its share of the upper body of the person looked for.
    pub target: f32,
    /// Its share of the upper body of the candidate.
    pub candidate: f32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    const RED: Rgb<u8> = Rgb([200, 30, 30]);
    const NAVY: Rgb<u8> = Rgb([20, 22, 45]);
    const DENIM: Rgb<u8> = Rgb([60, 80, 140]);
    const GREY: Rgb<u8> = Rgb([128, 128, 128]);

    /// A person 40 x 120 at (20, 10) on a grey frame: `top` from the head down to
    /// `split` (a share of the height), `bottom` from there to the hip, jeans below.
    fn person(top: Rgb<u8>, split: f32, bottom: Rgb<u8>) -> (RgbImage, BBox) {
        let mut img = RgbImage::from_pixel(100, 160, GREY);
        for y in 10..130 {
            let at = (y - 10) as f32 / 120.0;
            let c = if at < split {
                top
            } else if at < 0.6 {
                bottom
            } else {
                DENIM
            };
            for x in 20..60 {
                img.put_pixel(x, y, c);
            }
        }
        (img, BBox::new(20.0, 10.0, 60.0, 130.0))
    }

    fn average(s: ColourShares, n: u32) -> ColourAverage {
        let mut a = ColourAverage::default();
        for _ in 0..n {
            a.add(&s);
        }
        a
    }

    #[test]
    fn hues_fall_in_their_sectors_and_greys_in_none() {
        assert_eq!(strong_hue([200, 30, 30]), Some(0));
        assert_eq!(strong_hue([200, 30, 60]), Some(0));
        assert_eq!(strong_hue([200, 200, 30]), Some(1));
        assert_eq!(strong_hue([30, 200, 30]), Some(2));
        assert_eq!(strong_hue([30, 200, 200]), Some(3));
        assert_eq!(strong_hue([30, 30, 200]), Some(4));
        assert_eq!(strong_hue([200, 30, 200]), Some(5));
        assert_eq!(strong_hue([255, 0, 40]), Some(0));
        for grey in [[128, 128, 128], [10, 10, 40], [250, 240, 230], [0, 0, 0]] {
            assert_eq!(strong_hue(grey), None, "{grey:?}");
        }
    }

    #[test]
    fn red_shoulders_and_a_red_jacket_are_told_apart() {
        let (img, b) = person(RED, 0.2, NAVY);
        let shoulders = ColourShares::of_box(&img, &b).unwrap();
        let (img, b) = person(RED, 0.6, RED);
        let jacket = ColourShares::of_box(&img, &b).unwrap();
        // Red covers 0.2 / 0.625 of the region on him, nearly all of it on her (the top of
        // the jeans shows at the hip); navy is too dark to count.
        assert!((shoulders.0[0] - 0.32).abs() < 0.05, "{shoulders:?}");
        assert!(jacket.0[0] >= 0.9, "{jacket:?}");
        assert!(shoulders.0[4] < 0.1, "{shoulders:?}");
        assert!([1, 2, 3, 5].iter().all(|&k| shoulders.0[k] == 0.0));
        let (him, her) = (average(shoulders, 5), average(jacket, 5));
        let c = him.conflict(&her, DEFAULT_COLOUR_VETO).unwrap();
        assert_eq!(c.hue, "red");
        assert!(c.target < 0.4 && c.candidate >= 0.9, "{c:?}");
        // The same look again is no conflict, nor are too few views.
        assert_eq!(
            him.conflict(&average(shoulders, 3), DEFAULT_COLOUR_VETO),
            None
        );
        assert_eq!(him.conflict(&average(jacket, 2), DEFAULT_COLOUR_VETO), None);
    }

    #[test]
    fn boxes_outside_the_frame_or_degenerate_give_nothing() {
        let (img, _) = person(RED, 0.2, NAVY);
        assert!(ColourShares::of_box(&img, &BBox::new(90.0, -80.0, 130.0, 40.0)).is_none());
        assert!(ColourShares::of_box(&img, &BBox::new(200.0, 0.0, 240.0, 120.0)).is_none());
        assert!(ColourShares::of_box(&img, &BBox::new(f32::NAN, 0.0, 10.0, 10.0)).is_none());
        assert!(ColourShares::of_box(&img, &BBox::new(10.0, 10.0, 10.0, 50.0)).is_none());
        // A small box still inside the frame is measured.
        let s = ColourShares::of_box(&img, &BBox::new(20.0, 10.0, 30.0, 40.0)).unwrap();
        assert!(s.0[0] > 0.0, "{s:?}");
    }

    #[test]
    fn the_average_weighs_the_first_views_alike_then_follows_changes() {
        let red = ColourShares([1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let none = ColourShares::default();
        let mut a = ColourAverage::default();
        a.add(&red);
        a.add(&none);
        assert!((a.shares().0[0] - 0.5).abs() < 1e-6);
        for _ in 0..50 {
            a.add(&none);
        }
        assert!(a.shares().0[0] < 0.01, "{a:?}");
        assert_eq!(a.views(), 52);
        let mut b = average(red, 20);
        b.merge(&average(none, 20));
        assert!((b.shares().0[0] - 0.5).abs() < 1e-6, "{b:?}");
        b.merge(&ColourAverage::default());
        assert_eq!(b.views(), 40);
    }
}
