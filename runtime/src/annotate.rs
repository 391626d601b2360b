//! Drawing results on frames: boxes, labels and a fixed colour palette.
//!
//! Everything here is clipped to the image and never panics, whatever the coordinates (off-image,
//! infinite or NaN), the text (empty, non-ASCII) or the image size (down to 1x1).

use font8x8::{UnicodeFonts, BASIC_FONTS, LATIN_FONTS};
use image::RgbImage;

use crate::detection::{BBox, Detection};

/// Kenneth Kelly's 22 colours of maximum contrast, without white and black, in his order.
const PALETTE: [[u8; 3]; 20] = [
    [0xF3, 0xC3, 0x00], // vivid yellow
    [0x87, 0x56, 0x92], // strong purple
    [0xF3, 0x84, 0x00], // vivid orange
    [0xA1, 0xCA, 0xF1], // very light blue
    [0xBE, 0x00, 0x32], // vivid red
    [0xC2, 0xB2, 0x80], // greyish yellow
    [0x84, 0x84, 0x82], // medium grey
    [0x00, 0x88, 0x56], // vivid green
    [0xE6, 0x8F, 0xAC], // strong purplish pink
    [0x00, 0x67, 0xA5], // strong blue
    [0xF9, 0x93, 0x79], // strong yellowish pink
    [0x60, 0x4E, 0x97], // strong violet
    [0xF6, 0xA6, 0x00], // vivid orange yellow
    [0xB3, 0x44, 0x6C], // strong purplish red
    [0xDC, 0xD3, 0x00], // vivid greenish yellow
    [0x88, 0x2D, 0x17], // strong reddish brown
    [0x8D, 0xB6, 0x00], // vivid yellowish green
    [0x65, 0x45, 0x22], // deep yellowish brown
    [0xE2, 0x58, 0x22], // vivid reddish orange
    [0x2B, 0x3D, 0x26], // dark olive green
];

/// A fixed, distinct colour per class (or track) index (Ultralytics-like palette of 20 colours).
pub fn palette(index: usize) -> [u8; 3] {
    PALETTE[index % PALETTE.len()]
}

/// Black or white, whichever reads better on `bg` (by Rec. 601 luma).
pub fn contrast_color(bg: [u8; 3]) -> [u8; 3] {
    let luma = 0.299 * bg[0] as f32 + 0.587 * bg[1] as f32 + 0.114 * bg[2] as f32;
    if luma >= 140.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// Fills the pixels `x0..x1` x `y0..y1` (exclusive ends), clipped to the image.
fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, x1) = (x0.clamp(0, w), x1.clamp(0, w));
    let (y0, y1) = (y0.clamp(0, h), y1.clamp(0, h));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let stride = w as usize * 3;
    let buf: &mut [u8] = img;
    for row in buf
        .chunks_exact_mut(stride)
        .skip(y0 as usize)
        .take((y1 - y0) as usize)
    {
        for px in row[x0 as usize * 3..x1 as usize * 3].chunks_exact_mut(3) {
            px.copy_from_slice(&color);
        }
    }
}

/// Converts a box corner to a whole pixel index, saturating far outside the image.
fn to_px(v: f32, limit: u32) -> i64 {
    let l = limit as f64 + 1.0e6;
    (v as f64).round().clamp(-l, l) as i64
}

/// Inclusive pixel bounds (left, top, right, bottom) of a box, or None when a coordinate is NaN.
fn pixel_bounds(img: &RgbImage, b: &BBox) -> Option<(i64, i64, i64, i64)> {
    if [b.x1, b.y1, b.x2, b.y2].iter().any(|v| v.is_nan()) {
        return None;
    }
    let (w, h) = img.dimensions();
    let (l, r) = (to_px(b.x1.min(b.x2), w), to_px(b.x1.max(b.x2), w) - 1);
    let (t, btm) = (to_px(b.y1.min(b.y2), h), to_px(b.y1.max(b.y2), h) - 1);
    Some((l, t, r.max(l), btm.max(t)))
}

/// Draws a rectangle outline of `thickness` pixels, clipped to the image.
///
/// The box covers pixels `round(x1)..round(x2)` (end exclusive, at least one pixel) and the outline
/// grows inwards, so a box along the image border stays fully visible. `thickness` 0 counts as 1.
pub fn draw_rect(img: &mut RgbImage, b: &BBox, color: [u8; 3], thickness: u32) {
    let Some((l, t, r, btm)) = pixel_bounds(img, b) else {
        return;
    };
    let th = thickness.max(1) as i64;
    fill_rect(img, l, t, r + 1, (t + th).min(btm + 1), color);
    fill_rect(img, l, (btm + 1 - th).max(t), r + 1, btm + 1, color);
    fill_rect(img, l, t, (l + th).min(r + 1), btm + 1, color);
    fill_rect(img, (r + 1 - th).max(l), t, r + 1, btm + 1, color);
}

/// The 8x8 bitmap of `c` (rows top to bottom, bit 0 leftmost), `?` when the font lacks it.
fn glyph(c: char) -> [u8; 8] {
    BASIC_FONTS
        .get(c)
        .or_else(|| LATIN_FONTS.get(c))
        .unwrap_or(font8x8::legacy::BASIC_LEGACY[b'?' as usize])
}

/// Size in pixels (width, height) of a label drawn by [`draw_label`], background included.
pub fn label_size(text: &str, scale: u32) -> (u32, u32) {
    let s = scale.max(1);
    let n = text.chars().count().min(u32::MAX as usize) as u32;
    if n == 0 {
        return (0, 0);
    }
    (
        n.saturating_mul(8).saturating_add(2).saturating_mul(s),
        10u32.saturating_mul(s),
    )
}

/// Draws `text` with the 8x8 bitmap font at integer `scale`, with a filled background box, top-left at (x, y), clipped.
///
/// The background has a margin of `scale` pixels around the glyphs; empty text draws nothing.
pub fn draw_label(
    img: &mut RgbImage,
    x: i32,
    y: i32,
    text: &str,
    fg: [u8; 3],
    bg: [u8; 3],
    scale: u32,
) {
    let (lw, lh) = label_size(text, scale);
    if lw == 0 {
        return;
    }
    let s = scale.max(1) as i64;
    let (x, y) = (x as i64, y as i64);
    fill_rect(img, x, y, x + lw as i64, y + lh as i64, bg);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let gy = y + s;
    for (i, c) in text.chars().enumerate() {
        let gx = x + s + i as i64 * 8 * s;
        if gx >= w {
            break;
        }
        if gx + 8 * s <= 0 || gy >= h || gy + 8 * s <= 0 {
            continue;
        }
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..8 {
                if (bits >> col) & 1 == 1 {
                    let px = gx + col * s;
                    let py = gy + row as i64 * s;
                    fill_rect(img, px, py, px + s, py + s, fg);
                }
            }
        }
    }
}

/// Box thickness and font scale suited to an image of `w` x `h` pixels.
fn style_for(w: u32, h: u32) -> (u32, u32) {
    let base = (w as u64 + h as u64) / 2;
    let thickness = ((base + 150) / 300).max(1) as u32;
    let scale = ((base + 320) / 640).max(1) as u32;
    (thickness, scale)
}

/// Draws every detection: box in its class colour and a label "name 0.87" (or "#id name 0.87" when a track id is given) above the box (inside if at the top edge). Thickness and font scale grow with image size.
pub fn draw_detections(
    img: &mut RgbImage,
    dets: &[Detection],
    label_of: &dyn Fn(usize) -> String,
    track_ids: Option<&[u64]>,
) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return;
    }
    let (thickness, scale) = style_for(w, h);
    for (i, d) in dets.iter().enumerate() {
        let Some((l, t, _, _)) = pixel_bounds(img, &d.bbox) else {
            continue;
        };
        let color = palette(d.class_id);
        draw_rect(img, &d.bbox, color, thickness);
        let name = label_of(d.class_id);
        let text = match track_ids.and_then(|ids| ids.get(i)) {
            Some(id) => format!("#{id} {name} {:.2}", d.score),
            None => format!("{name} {:.2}", d.score),
        };
        let (lw, lh) = label_size(&text, scale);
        let (lw, lh) = (lw as i64, lh as i64);
        // Above the box; inside it when there is no room above. Kept on the image horizontally.
        let top = t.clamp(0, h as i64);
        let ly = if top - lh >= 0 { top - lh } else { top };
        let lx = l.min(w as i64 - lw).max(0);
        let clamp_i32 = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        draw_label(
            img,
            clamp_i32(lx),
            clamp_i32(ly),
            &text,
            contrast_color(color),
            color,
            scale,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    const RED: [u8; 3] = [255, 0, 0];

    fn count_non_black(img: &RgbImage) -> usize {
        img.pixels().filter(|p| p.0 != [0, 0, 0]).count()
    }

    #[test]
    fn rect_colours_exactly_the_border() {
        let mut img = RgbImage::new(32, 32);
        draw_rect(&mut img, &BBox::new(10.0, 10.0, 20.0, 20.0), RED, 1);
        // Pixels 10..=19 on each side: 4 * 10 - 4 corners.
        assert_eq!(count_non_black(&img), 36);
        for (x, y) in [
            (10, 10),
            (19, 10),
            (10, 19),
            (19, 19),
            (15, 10),
            (10, 15),
            (19, 15),
        ] {
            assert_eq!(img.get_pixel(x, y).0, RED, "({x},{y}) should be drawn");
        }
        for (x, y) in [
            (11, 11),
            (15, 15),
            (18, 18),
            (9, 10),
            (20, 15),
            (15, 9),
            (15, 20),
        ] {
            assert_eq!(
                img.get_pixel(x, y).0,
                [0, 0, 0],
                "({x},{y}) should be black"
            );
        }
    }

    #[test]
    fn thick_rect_grows_inwards() {
        let mut img = RgbImage::new(32, 32);
        draw_rect(&mut img, &BBox::new(10.0, 10.0, 20.0, 20.0), RED, 3);
        // 10x10 box minus its 4x4 interior.
        assert_eq!(count_non_black(&img), 100 - 16);
        assert_eq!(img.get_pixel(12, 15).0, RED);
        assert_eq!(img.get_pixel(13, 15).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(9, 15).0, [0, 0, 0]);
        // Thickness larger than the box fills it.
        let mut img = RgbImage::new(8, 8);
        draw_rect(&mut img, &BBox::new(2.0, 2.0, 5.0, 5.0), RED, 10);
        assert_eq!(count_non_black(&img), 9);
    }

    #[test]
    fn label_changes_pixels_in_its_area_only() {
        let mut img = RgbImage::new(64, 32);
        draw_label(&mut img, 4, 6, "Hi", [255; 3], [0, 0, 200], 1);
        let (lw, lh) = label_size("Hi", 1);
        assert_eq!((lw, lh), (18, 10));
        for (x, y, p) in img.enumerate_pixels() {
            let inside = (4..4 + lw).contains(&x) && (6..6 + lh).contains(&y);
            if !inside {
                assert_eq!(p.0, [0, 0, 0], "({x},{y}) outside the label");
            } else {
                assert_ne!(p.0, [0, 0, 0], "({x},{y}) inside the label");
            }
        }
        // Some glyph pixels are white, the margin is background.
        assert!(img.pixels().any(|p| p.0 == [255; 3]));
        assert_eq!(img.get_pixel(4, 6).0, [0, 0, 200]);
        // Scale 2 doubles the size; empty text draws nothing.
        assert_eq!(label_size("Hi", 2), (36, 20));
        let mut img = RgbImage::new(16, 16);
        draw_label(&mut img, 0, 0, "", [255; 3], [255; 3], 1);
        assert_eq!(count_non_black(&img), 0);
    }

    #[test]
    fn off_image_nan_and_tiny_images_do_not_panic() {
        let boxes = [
            BBox::new(-50.0, -50.0, -10.0, -10.0),
            BBox::new(100.0, 100.0, 200.0, 200.0),
            BBox::new(-5.0, -5.0, 500.0, 500.0),
            BBox::new(f32::NAN, 0.0, 10.0, 10.0),
            BBox::new(0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY),
            BBox::new(f32::MIN, f32::MIN, f32::MAX, f32::MAX),
            BBox::new(5.0, 5.0, 2.0, 2.0),
        ];
        for (w, h) in [(1, 1), (3, 2), (40, 30)] {
            let mut img = RgbImage::new(w, h);
            for b in &boxes {
                draw_rect(&mut img, b, RED, 4);
                draw_rect(&mut img, b, RED, u32::MAX);
            }
            for (x, y) in [(0, 0), (-100, -100), (i32::MAX, i32::MAX), (i32::MIN, 0)] {
                draw_label(&mut img, x, y, "person 0.99 ßé€", [255; 3], RED, 3);
                draw_label(&mut img, x, y, "", [255; 3], RED, 0);
                draw_label(&mut img, x, y, "x", [255; 3], RED, u32::MAX);
            }
            let dets: Vec<Detection> = boxes
                .iter()
                .enumerate()
                .map(|(i, b)| Detection {
                    bbox: *b,
                    score: 0.5,
                    class_id: i * 7,
                })
                .collect();
            draw_detections(&mut img, &dets, &|c| format!("c{c}"), None);
            draw_detections(&mut img, &dets, &|_| String::new(), Some(&[1, 2]));
        }
        // Fully off-image boxes leave the image untouched.
        let mut img = RgbImage::new(20, 20);
        draw_rect(&mut img, &boxes[0], RED, 2);
        draw_rect(&mut img, &boxes[1], RED, 2);
        draw_rect(&mut img, &boxes[3], RED, 2);
        assert_eq!(count_non_black(&img), 0);
    }

    #[test]
    fn detections_get_class_colour_and_a_label_above() {
        let mut img = RgbImage::new(200, 200);
        let det = Detection {
            bbox: BBox::new(50.0, 80.0, 150.0, 180.0),
            score: 0.87,
            class_id: 3,
        };
        draw_detections(&mut img, &[det], &|_| "dog".into(), Some(&[7]));
        let color = palette(3);
        assert_eq!(img.get_pixel(50, 120).0, color);
        assert_eq!(img.get_pixel(100, 100).0, [0, 0, 0]);
        // The label "#7 dog 0.87" sits right above the box, starting at its left edge.
        let (lw, lh) = label_size("#7 dog 0.87", 1);
        assert_eq!(img.get_pixel(50, 80 - lh).0, color);
        assert_eq!(img.get_pixel(50 + lw - 1, 79).0, color);
        assert_eq!(img.get_pixel(50, 80 - lh - 1).0, [0, 0, 0]);
        assert!(img
            .enumerate_pixels()
            .any(|(_, y, p)| y < 80 && p.0 == contrast_color(color)));
        // At the top edge the label goes inside the box.
        let mut img = RgbImage::new(200, 200);
        let det = Detection {
            bbox: BBox::new(10.0, 0.0, 100.0, 100.0),
            ..det
        };
        draw_detections(&mut img, &[det], &|_| "dog".into(), None);
        let (lw, lh) = label_size("dog 0.87", 1);
        assert_eq!(img.get_pixel(10 + lw - 1, lh - 1).0, color);
    }

    #[test]
    fn palette_is_distinct_and_text_contrasts() {
        for i in 0..20 {
            for j in 0..i {
                assert_ne!(palette(i), palette(j));
            }
        }
        assert_eq!(palette(23), palette(3));
        assert_eq!(contrast_color([255, 255, 0]), [0, 0, 0]);
        assert_eq!(contrast_color([0, 0, 128]), [255, 255, 255]);
        assert_eq!(style_for(640, 640), (2, 1));
        assert_eq!(style_for(1920, 1080), (5, 2));
        assert_eq!(style_for(1, 1), (1, 1));
    }

    #[test]
    fn rect_on_image_edges_stays_visible() {
        let mut img = RgbImage::from_pixel(10, 10, Rgb([0, 0, 0]));
        draw_rect(&mut img, &BBox::new(0.0, 0.0, 10.0, 10.0), RED, 1);
        assert_eq!(count_non_black(&img), 36);
        assert_eq!(img.get_pixel(9, 9).0, RED);
    }
}
