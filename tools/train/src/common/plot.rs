//! PNG charts drawn with the `image` crate: training curves and the confusion matrix.

use std::path::Path;

use anyhow::{Context, Result};
use font8x8::{UnicodeFonts, BASIC_FONTS};
use image::{Rgb, RgbImage};

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
const BLUE: Rgb<u8> = Rgb([31, 119, 180]);
const ORANGE: Rgb<u8> = Rgb([255, 127, 14]);

/// Draws `text` with the 8x8 font, scaled by `scale`, top-left at (x, y).
fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, scale: i64, color: Rgb<u8>) {
    for (k, ch) in s.chars().enumerate() {
        let Some(glyph) = BASIC_FONTS.get(ch) else {
            continue;
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if (bits >> col) & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(
                                img,
                                x + (k as i64 * 8 + col) * scale + dx,
                                y + row as i64 * scale + dy,
                                color,
                            );
                        }
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Line from (x0, y0) to (x1, y1), `w` pixels thick.
fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), w: i64, c: Rgb<u8>) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        for dy in -(w / 2)..=(w / 2) {
            for dx in -(w / 2)..=(w / 2) {
                put(img, x.round() as i64 + dx, y.round() as i64 + dy, c);
            }
        }
    }
}

/// One panel: several series over epochs 1..=n, with y range `lo..hi`.
#[allow(clippy::too_many_arguments)]
fn panel(
    img: &mut RgbImage,
    ox: i64,
    oy: i64,
    w: i64,
    h: i64,
    title: &str,
    series: &[(&str, &[f64], Rgb<u8>)],
    (lo, hi): (f64, f64),
) {
    text(img, ox, oy - 24, title, 2, BLACK);
    let n = series.iter().map(|s| s.1.len()).max().unwrap_or(0).max(2);
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let y = oy + h - (h as f64 * k as f64 / 4.0) as i64;
        line(
            img,
            (ox as f64, y as f64),
            ((ox + w) as f64, y as f64),
            1,
            GRID,
        );
        text(img, ox - 56, y - 4, &format!("{v:6.3}"), 1, BLACK);
    }
    line(
        img,
        (ox as f64, oy as f64),
        (ox as f64, (oy + h) as f64),
        1,
        BLACK,
    );
    line(
        img,
        (ox as f64, (oy + h) as f64),
        ((ox + w) as f64, (oy + h) as f64),
        1,
        BLACK,
    );
    let px = |i: usize| ox as f64 + w as f64 * i as f64 / (n - 1) as f64;
    let py = |v: f64| oy as f64 + h as f64 * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
    text(img, ox, oy + h + 8, "epoch 1", 1, BLACK);
    let last = format!("{n}");
    text(
        img,
        ox + w - 8 * last.len() as i64,
        oy + h + 8,
        &last,
        1,
        BLACK,
    );
    for (si, (name, vals, color)) in series.iter().enumerate() {
        for i in 1..vals.len() {
            line(
                img,
                (px(i - 1), py(vals[i - 1])),
                (px(i), py(vals[i])),
                3,
                *color,
            );
        }
        if vals.len() == 1 {
            line(img, (px(0), py(vals[0])), (px(0), py(vals[0])), 5, *color);
        }
        let ly = oy + 8 + si as i64 * 14;
        line(
            img,
            ((ox + w - 150) as f64, (ly + 4) as f64),
            ((ox + w - 130) as f64, (ly + 4) as f64),
            3,
            *color,
        );
        text(img, ox + w - 124, ly, name, 1, BLACK);
    }
}

/// Loss and a 0..1 score per epoch (train and validation) as a two-panel PNG; `score` titles the
/// right panel (e.g. "accuracy", "mAP@0.5"). A series may be empty.
pub fn curves(
    path: &Path,
    score: &str,
    train_loss: &[f64],
    val_loss: &[f64],
    train_acc: &[f64],
    val_acc: &[f64],
) -> Result<()> {
    let mut img = RgbImage::from_pixel(1000, 420, WHITE);
    let max_loss = train_loss
        .iter()
        .chain(val_loss)
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-3);
    panel(
        &mut img,
        70,
        50,
        400,
        320,
        "loss",
        &[
            ("train", train_loss, BLUE),
            ("validation", val_loss, ORANGE),
        ],
        (0.0, max_loss * 1.05),
    );
    let min_acc = train_acc
        .iter()
        .chain(val_acc)
        .copied()
        .fold(1.0f64, f64::min)
        .min(0.9);
    panel(
        &mut img,
        570,
        50,
        400,
        320,
        score,
        &[("train", train_acc, BLUE), ("validation", val_acc, ORANGE)],
        ((min_acc - 0.02).max(0.0), 1.0),
    );
    img.save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Confusion matrix (rows: true class, columns: predicted) as a PNG with counts.
pub fn confusion(path: &Path, matrix: &[Vec<usize>], labels: &[String]) -> Result<()> {
    let n = matrix.len().max(1);
    let cell = (640 / n).clamp(12, 48) as i64;
    let margin = 90i64;
    let size = (margin + cell * n as i64 + 20) as u32;
    let mut img = RgbImage::from_pixel(size, size + 10, WHITE);
    text(
        &mut img,
        margin,
        8,
        "confusion (row: true, col: predicted)",
        1,
        BLACK,
    );
    for (r, row) in matrix.iter().enumerate() {
        let total: usize = row.iter().sum::<usize>().max(1);
        for (c, &v) in row.iter().enumerate() {
            let f = v as f64 / total as f64;
            let shade = (255.0 * (1.0 - f)) as u8;
            let color = if r == c {
                Rgb([shade, shade.saturating_add(40).max(shade), 255])
            } else {
                Rgb([255, shade, shade])
            };
            let (x0, y0) = (margin + c as i64 * cell, margin + r as i64 * cell);
            for y in y0..y0 + cell - 1 {
                for x in x0..x0 + cell - 1 {
                    put(&mut img, x, y, color);
                }
            }
            if cell >= 24 && v > 0 {
                let s = v.to_string();
                let ink = if f > 0.5 { WHITE } else { BLACK };
                text(
                    &mut img,
                    x0 + (cell - 8 * s.len() as i64) / 2,
                    y0 + cell / 2 - 4,
                    &s,
                    1,
                    ink,
                );
            }
        }
        let name: String = labels
            .get(r)
            .map(|s| s.chars().take(10).collect())
            .unwrap_or_default();
        text(
            &mut img,
            4,
            margin + r as i64 * cell + cell / 2 - 4,
            &name,
            1,
            BLACK,
        );
        let short: String = name.chars().take((cell / 8).max(1) as usize).collect();
        text(
            &mut img,
            margin + r as i64 * cell + 2,
            margin - 14,
            &short,
            1,
            BLACK,
        );
    }
    img.save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}
