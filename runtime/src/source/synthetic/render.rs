//! Drawing a synthetic scene: textured background, figures back to front, pillars on top.

use image::{Rgb, RgbImage};

use super::scene::{figure_parts, mix, SyntheticScene};
use crate::detection::BBox;

impl SyntheticScene {
    /// Draws `frame`.
    pub fn render(&self, frame: u64) -> RgbImage {
        let mut img = self.background.clone();
        for (i, b) in self.layout(frame) {
            draw_person(&mut img, &b, self.actors[i].color);
        }
        for p in &self.pillars {
            draw_pillar(&mut img, p);
        }
        img
    }
}

/// Pixel range `[lo, hi)` whose centres lie inside `[a, b)`, clamped to `0..n`.
fn span(a: f32, b: f32, n: u32) -> (u32, u32) {
    let lo = (a - 0.5).ceil().max(0.0).min(n as f32) as u32;
    let hi = (b - 0.5).ceil().max(0.0).min(n as f32) as u32;
    (lo, hi)
}

fn fill(img: &mut RgbImage, r: &BBox, color: [u8; 3]) {
    let (x0, x1) = span(r.x1, r.x2, img.width());
    let (y0, y1) = span(r.y1, r.y2, img.height());
    for y in y0..y1 {
        for x in x0..x1 {
            img.put_pixel(x, y, Rgb(color));
        }
    }
}

fn shade(c: [u8; 3], f: f32) -> [u8; 3] {
    c.map(|v| (v as f32 * f).clamp(0.0, 255.0) as u8)
}

fn draw_person(img: &mut RgbImage, b: &BBox, color: [u8; 3]) {
    let [head, torso, left, right] = figure_parts(b);
    fill(img, &torso, color);
    fill(img, &left, shade(color, 0.55));
    fill(img, &right, shade(color, 0.55));
    let (cx, cy) = ((head.x1 + head.x2) / 2.0, (head.y1 + head.y2) / 2.0);
    let r = (head.x2 - head.x1) / 2.0;
    let (x0, x1) = span(head.x1, head.x2, img.width());
    let (y0, y1) = span(head.y1, head.y2, img.height());
    for y in y0..y1 {
        for x in x0..x1 {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= r * r {
                img.put_pixel(x, y, Rgb([232, 190, 160]));
            }
        }
    }
}

fn draw_pillar(img: &mut RgbImage, p: &BBox) {
    let (x0, x1) = span(p.x1, p.x2, img.width());
    let (y0, y1) = span(p.y1, p.y2, img.height());
    let width = (x1 - x0).max(1) as f32;
    for y in y0..y1 {
        for x in x0..x1 {
            // Rounded shading across the pillar, with mortar lines.
            let u = (x - x0) as f32 / width;
            let light = 0.65 + 0.35 * (std::f32::consts::PI * u).sin();
            let mortar = if y % 24 == 0 { 0.75 } else { 1.0 };
            img.put_pixel(x, y, Rgb(shade([150, 145, 140], light * mortar)));
        }
    }
}

pub(super) fn render_background(width: u32, height: u32, seed: u64) -> RgbImage {
    let horizon = height as f32 * 0.4;
    let salt = mix(seed, 0xB6);
    RgbImage::from_fn(width, height, |x, y| {
        let n = (mix(salt, (y as u64) << 32 | x as u64) >> 59) as f32 - 16.0;
        let base = if (y as f32) < horizon {
            // Wall with a brick pattern.
            let row = y / 16;
            let shift = if row % 2 == 0 { 0 } else { 16 };
            let joint = y % 16 == 0 || (x + shift) % 32 == 0;
            if joint {
                [150.0, 140.0, 130.0]
            } else {
                [185.0, 120.0, 95.0]
            }
        } else {
            // Floor tiles, darker towards the camera.
            let t = (y as f32 - horizon) / (height as f32 - horizon);
            let tile = ((x / 40) + (y / 40)) % 2 == 0;
            let v = if tile { 120.0 } else { 100.0 } - 20.0 * t;
            [v, v + 10.0, v - 5.0]
        };
        Rgb(base.map(|c| (c + n).clamp(0.0, 255.0) as u8))
    })
}
