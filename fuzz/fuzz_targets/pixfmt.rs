//! Camera frame conversion with arbitrary sizes, strides and buffers: MJPEG, YUYV, NV12, I420
//! and RGB24 into RGB. Wrong sizes must be errors, never panics or out-of-bounds reads.
#![no_main]

use image::RgbImage;
use libfuzzer_sys::fuzz_target;
use vigia::source::pixfmt::{convert, missing_dht_offset, mjpeg_dimensions, PixelFormat};

const FORMATS: [PixelFormat; 5] = [
    PixelFormat::Mjpeg,
    PixelFormat::Yuyv,
    PixelFormat::Nv12,
    PixelFormat::I420,
    PixelFormat::Rgb24,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let format = FORMATS[usize::from(data[0]) % FORMATS.len()];
    // Sizes up to 4095 x 4095 (so that a header can claim far more than the buffer holds).
    let width = u32::from(u16::from_le_bytes([data[1], data[2]]) & 0x0fff);
    let height = u32::from(u16::from_le_bytes([data[3], data[4]]) & 0x0fff);
    let stride = match u16::from_le_bytes([data[5], data[6]]) {
        0 => None,
        s => Some(usize::from(s & 0x3fff)),
    };
    let src = &data[7..];
    // Reuse an output of another size, as the camera loop does after a format change.
    let mut out = RgbImage::new(3, 2);
    if convert(format, src, width, height, stride, &mut out).is_ok() && format != PixelFormat::Mjpeg
    {
        assert_eq!(out.dimensions(), (width, height));
    }
    let _ = mjpeg_dimensions(src);
    let _ = missing_dht_offset(src);
    let _ = format.frame_bytes(width, height);
    let _ = PixelFormat::from_fourcc([data[1], data[2], data[3], data[4]]);
});
