//! MJPEG frames to RGB8 with a pure-Rust JPEG decoder, inserting the default Huffman tables that
//! many UVC cameras leave out.

use std::io::Cursor;

use image::{ImageDecoder, RgbImage};

use crate::error::{Error, Result};
use std::path::PathBuf;

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
