//! The camera pixel-format converters against ffmpeg: raw YUYV, NV12, I420 and MJPEG frames made
//! by ffmpeg at test time, converted by vigia, compared with ffmpeg's own `rgb24` conversion.
//!
//! Chroma: vigia replicates each chroma sample over its 2x1 / 2x2 block, like ffmpeg's unscaled
//! `yuv2rgb` path, which ffmpeg's default conversion takes for YUYV and I420 (there the two differ
//! by rounding only: ffmpeg truncates, vigia rounds). For NV12 ffmpeg's default takes its generic
//! scaler, which interpolates chroma vertically (bicubic), so NV12 is compared tightly with
//! ffmpeg's `-sws_flags neighbor` conversion and loosely with its default one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use image::RgbImage;
use vigia::source::pixfmt::{self, PixelFormat};

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip("skipping: ffmpeg is not on PATH");
    }
    ok
}

/// Runs ffmpeg quietly with `args`, panicking with its stderr on failure.
fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Mean and largest absolute difference between two RGB buffers.
#[derive(Debug, Clone, Copy)]
struct Diff {
    mean: f64,
    max: u8,
    /// Mean of vigia minus the reference (ffmpeg's YUV conversions truncate: about -1).
    bias: f64,
}

fn diff(a: &[u8], b: &[u8]) -> Diff {
    assert_eq!(a.len(), b.len(), "buffer sizes differ");
    let mut sum = 0u64;
    let mut signed = 0i64;
    let mut max = 0u8;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        sum += u64::from(d);
        signed += i64::from(*x) - i64::from(*y);
        max = max.max(d);
    }
    Diff {
        mean: sum as f64 / a.len() as f64,
        max,
        bias: signed as f64 / a.len() as f64,
    }
}

fn check(what: &str, got: &RgbImage, reference: &[u8], mean: f64, max: u8) -> Diff {
    let d = diff(got.as_raw(), reference);
    eprintln!(
        "{what}: mean {:.3}, max {}, bias {:+.3}",
        d.mean, d.max, d.bias
    );
    assert!(
        d.mean < mean && d.max <= max,
        "{what}: mean {:.3} (limit {mean}), max {} (limit {max})",
        d.mean,
        d.max
    );
    d
}

/// ffmpeg's conversion of a raw frame file to rgb24, with optional `-sws_flags`.
fn ffmpeg_rgb(raw: &Path, pix_fmt: &str, w: u32, h: u32, flags: Option<&str>) -> Vec<u8> {
    let out = raw.with_extension(format!("{pix_fmt}.{}.rgb", flags.unwrap_or("default")));
    let size = format!("{w}x{h}");
    let mut args = vec![
        "-f",
        "rawvideo",
        "-pix_fmt",
        pix_fmt,
        "-s",
        &size,
        "-i",
        raw.to_str().unwrap(),
    ];
    if let Some(f) = flags {
        args.extend(["-sws_flags", f]);
    }
    args.extend(["-f", "rawvideo", "-pix_fmt", "rgb24", out.to_str().unwrap()]);
    ffmpeg(&args);
    read(&out)
}

/// Tolerances of one picture: (mean, max) per comparison.
struct Limits {
    yuyv: (f64, u8),
    i420: (f64, u8),
    nv12_neighbor: (f64, u8),
    nv12_default: (f64, u8),
    mjpeg444: (f64, u8),
    mjpeg422: (f64, u8),
    mjpeg420: (f64, u8),
}

/// Writes `name.{yuyv,nv12,i420}` and `name.yuvj4xxp.jpg` of the picture that `input` (ffmpeg input arguments)
/// gives, and checks every converter on them.
fn check_picture(dir: &Path, name: &str, input: &[&str], w: u32, h: u32, limits: &Limits) {
    let path = |ext: &str| dir.join(format!("{name}.{ext}"));
    for (pix_fmt, ext) in [("yuyv422", "yuyv"), ("nv12", "nv12"), ("yuv420p", "i420")] {
        let out = path(ext);
        let mut args = input.to_vec();
        args.extend([
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            pix_fmt,
            out.to_str().unwrap(),
        ]);
        ffmpeg(&args);
    }
    for pix_fmt in ["yuvj422p", "yuvj444p", "yuvj420p"] {
        let jpg = path(&format!("{pix_fmt}.jpg"));
        let mut args = input.to_vec();
        args.extend([
            "-frames:v",
            "1",
            "-c:v",
            "mjpeg",
            "-huffman",
            "default",
            "-q:v",
            "2",
            "-pix_fmt",
            pix_fmt,
            "-f",
            "mjpeg",
            jpg.to_str().unwrap(),
        ]);
        ffmpeg(&args);
    }
    let mut out = RgbImage::new(1, 1);
    let yuyv = read(&path("yuyv"));
    assert_eq!(Some(yuyv.len()), PixelFormat::Yuyv.frame_bytes(w, h));
    pixfmt::yuyv_to_rgb(&yuyv, w, h, None, &mut out).unwrap();
    let reference = ffmpeg_rgb(&path("yuyv"), "yuyv422", w, h, None);
    let (m, x) = limits.yuyv;
    check(&format!("{name} YUYV vs ffmpeg"), &out, &reference, m, x);

    let i420 = read(&path("i420"));
    assert_eq!(Some(i420.len()), PixelFormat::I420.frame_bytes(w, h));
    pixfmt::i420_to_rgb(&i420, w, h, None, &mut out).unwrap();
    let i420_rgb = out.clone();
    let reference = ffmpeg_rgb(&path("i420"), "yuv420p", w, h, None);
    let (m, x) = limits.i420;
    check(&format!("{name} I420 vs ffmpeg"), &out, &reference, m, x);

    let nv12 = read(&path("nv12"));
    assert_eq!(Some(nv12.len()), PixelFormat::Nv12.frame_bytes(w, h));
    pixfmt::nv12_to_rgb(&nv12, w, h, None, &mut out).unwrap();
    // ffmpeg's NV12 and I420 of a photo may differ by a level (its scaler takes different
    // paths); the same samples interleaved must convert identically.
    let y_len = (w * h) as usize;
    let (u, v) = i420[y_len..].split_at((i420.len() - y_len) / 2);
    let mut nv12_of_i420 = i420[..y_len].to_vec();
    nv12_of_i420.extend(u.iter().zip(v).flat_map(|(u, v)| [*u, *v]));
    let mut same = RgbImage::new(1, 1);
    pixfmt::nv12_to_rgb(&nv12_of_i420, w, h, None, &mut same).unwrap();
    assert!(
        same.as_raw() == i420_rgb.as_raw(),
        "{name}: NV12 and I420 of the same samples differ"
    );
    let reference = ffmpeg_rgb(&path("nv12"), "nv12", w, h, Some("neighbor"));
    let (m, x) = limits.nv12_neighbor;
    check(
        &format!("{name} NV12 vs ffmpeg -sws_flags neighbor"),
        &out,
        &reference,
        m,
        x,
    );
    let reference = ffmpeg_rgb(&path("nv12"), "nv12", w, h, None);
    let (m, x) = limits.nv12_default;
    check(
        &format!("{name} NV12 vs ffmpeg default (bicubic chroma)"),
        &out,
        &reference,
        m,
        x,
    );

    // MJPEG as ffmpeg decodes it. The two decoders agree on 4:4:4; for 4:2:2 (what UVC cameras
    // send) the image crate's decoder interpolates chroma linearly, as ffmpeg does when told to
    // (`bilinear+full_chroma_int+accurate_rnd`); for 4:2:0 it interpolates vertically in its own
    // way, closest to ffmpeg's bicubic.
    for (pix_fmt, flags, (m, x)) in [
        ("yuvj444p", None, limits.mjpeg444),
        (
            "yuvj422p",
            Some("bilinear+full_chroma_int+accurate_rnd"),
            limits.mjpeg422,
        ),
        (
            "yuvj420p",
            Some("bicubic+full_chroma_int+accurate_rnd"),
            limits.mjpeg420,
        ),
    ] {
        let jpg = path(&format!("{pix_fmt}.jpg"));
        let jpeg = read(&jpg);
        let reference_path = path(&format!("{pix_fmt}.jpg.rgb"));
        let mut args = vec!["-i", jpg.to_str().unwrap()];
        if let Some(f) = flags {
            args.extend(["-sws_flags", f]);
        }
        args.extend([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            reference_path.to_str().unwrap(),
        ]);
        ffmpeg(&args);
        let reference = read(&reference_path);
        assert_eq!(pixfmt::mjpeg_dimensions(&jpeg), Some((w, h)));
        pixfmt::mjpeg_to_rgb(&jpeg, &mut out).unwrap();
        assert_eq!(out.dimensions(), (w, h));
        let how = flags.unwrap_or("default");
        check(
            &format!("{name} MJPEG {pix_fmt} vs ffmpeg {how}"),
            &out,
            &reference,
            m,
            x,
        );
        let with_tables = out.clone();

        // The same frame without Huffman tables, as UVC cameras send it.
        let (stripped, dht) = strip_dht(&jpeg);
        assert_eq!(
            dht,
            pixfmt::DEFAULT_DHT.to_vec(),
            "ffmpeg's -huffman default tables are the Annex K tables vigia inserts"
        );
        assert!(
            image::load_from_memory(&stripped).is_err(),
            "a JPEG without tables should need them inserted"
        );
        pixfmt::mjpeg_to_rgb(&stripped, &mut out).unwrap();
        assert!(
            out.as_raw() == with_tables.as_raw(),
            "{name} {pix_fmt}: MJPEG without DHT decodes unlike the full JPEG"
        );
    }
}

/// A JPEG without its DHT segments, and those segments.
fn strip_dht(jpeg: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut kept = jpeg[..2].to_vec();
    let mut dht = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i + 1] != 0xDA {
        assert_eq!(jpeg[i], 0xFF, "marker expected at {i}");
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        let seg = &jpeg[i..i + 2 + len];
        if jpeg[i + 1] == 0xC4 {
            dht.extend_from_slice(seg);
        } else {
            kept.extend_from_slice(seg);
        }
        i += 2 + len;
    }
    kept.extend_from_slice(&jpeg[i..]);
    (kept, dht)
}

#[test]
fn converters_match_ffmpeg_on_testsrc2() {
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("camera-formats-testsrc2");
    check_picture(
        &dir,
        "testsrc2",
        &["-f", "lavfi", "-i", "testsrc2=size=64x48"],
        64,
        48,
        &Limits {
            yuyv: (1.2, 4),
            i420: (0.9, 4),
            nv12_neighbor: (1.2, 4),
            nv12_default: (4.5, 64),
            mjpeg444: (0.1, 3),
            mjpeg422: (0.4, 5),
            mjpeg420: (3.2, 48),
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn converters_match_ffmpeg_on_a_photo() {
    if !have_ffmpeg() {
        return;
    }
    let shared = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    let photo = shared.join("data/images/person.jpg");
    if !photo.is_file() {
        common::skip(format!("skipping: {} not found", photo.display()));
        return;
    }
    let dir = common::temp_dir("camera-formats-photo");
    check_picture(
        &dir,
        "person",
        &["-i", photo.to_str().unwrap(), "-vf", "scale=320:212"],
        320,
        212,
        &Limits {
            yuyv: (1.8, 4),
            i420: (1.4, 4),
            nv12_neighbor: (1.8, 4),
            nv12_default: (2.0, 40),
            mjpeg444: (0.1, 4),
            mjpeg422: (0.4, 6),
            mjpeg420: (0.7, 24),
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn odd_sizes_and_padded_rows_match_ffmpeg() {
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("camera-formats-odd");
    // ffmpeg converts odd 4:2:0 sizes through its generic scaler, which places chroma
    // differently; so the odd frame is cut from an even one whose conversion matches ffmpeg,
    // and must convert to the same cut of the even picture.
    let (w, h) = (38u32, 24u32);
    let raw = dir.join("even.i420");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=38x24",
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        raw.to_str().unwrap(),
    ]);
    let even = read(&raw);
    let mut full = RgbImage::new(1, 1);
    pixfmt::i420_to_rgb(&even, w, h, None, &mut full).unwrap();
    let reference = ffmpeg_rgb(&raw, "yuv420p", w, h, None);
    check("38x24 I420 vs ffmpeg", &full, &reference, 1.0, 4);

    let (ow, oh) = (37usize, 23usize);
    let (cw, ch) = (19usize, 12usize);
    let (u_plane, v_plane) = even[38 * 24..].split_at(19 * 12);
    let mut odd_i420: Vec<u8> = even
        .chunks(38)
        .take(oh)
        .flat_map(|r| &r[..ow])
        .copied()
        .collect();
    let mut odd_nv12 = odd_i420.clone();
    for plane in [u_plane, v_plane] {
        odd_i420.extend(plane.chunks(19).take(ch).flat_map(|r| &r[..cw]));
    }
    for (u_row, v_row) in u_plane.chunks(19).zip(v_plane.chunks(19)).take(ch) {
        odd_nv12.extend(u_row.iter().zip(v_row).flat_map(|(u, v)| [*u, *v]));
    }
    let cut = image::imageops::crop_imm(&full, 0, 0, ow as u32, oh as u32).to_image();
    let mut out = RgbImage::new(1, 1);
    pixfmt::i420_to_rgb(&odd_i420, ow as u32, oh as u32, None, &mut out).unwrap();
    assert!(
        out.as_raw() == cut.as_raw(),
        "37x23 I420 is not the cut of 38x24"
    );
    pixfmt::nv12_to_rgb(&odd_nv12, ow as u32, oh as u32, None, &mut out).unwrap();
    assert!(
        out.as_raw() == cut.as_raw(),
        "37x23 NV12 is not the cut of 38x24"
    );

    // The same YUYV frame with 16 bytes of padding per row converts like the packed one.
    let yuyv = dir.join("pad.yuyv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48",
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuyv422",
        yuyv.to_str().unwrap(),
    ]);
    let packed = read(&yuyv);
    let padded: Vec<u8> = packed
        .chunks(128)
        .flat_map(|row| row.iter().copied().chain([0xEE; 16]))
        .collect();
    let mut a = RgbImage::new(1, 1);
    let mut b = RgbImage::new(1, 1);
    pixfmt::yuyv_to_rgb(&packed, 64, 48, None, &mut a).unwrap();
    pixfmt::yuyv_to_rgb(&padded, 64, 48, Some(144), &mut b).unwrap();
    assert!(
        a.as_raw() == b.as_raw(),
        "padded YUYV rows convert differently"
    );
    let err = pixfmt::yuyv_to_rgb(&padded[..padded.len() - 1], 64, 48, Some(144), &mut b)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected 6912 bytes, got 6911"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
