//! Video files, network streams and board cameras as pipe sources: the command lines for
//! `ffmpeg`, `rpicam-vid` and `gst-launch-1.0`, and `ffprobe` for a file's size, rate and length.

use std::path::Path;
use std::process::{Command, Stdio};

use super::pipe::{spawn_error, PipeSource, RawFormat};
use super::pool::FramePool;
use super::SourceInfo;
use crate::error::{Error, Result};

/// Extensions opened as video files.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "avi", "mkv", "mov", "webm", "m4v", "ts", "flv", "wmv", "mpg", "mpeg", "3gp", "mjpeg",
    "h264", "h265",
];

/// True when `p` has a video extension.
pub fn is_video_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// True for stream URLs ffmpeg reads (`rtsp://`, `rtmp://`, `http(s)://`, `udp://`, `srt://`).
pub fn is_stream_url(s: &str) -> bool {
    [
        "rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "srt://", "tcp://",
    ]
    .iter()
    .any(|p| s.to_ascii_lowercase().starts_with(p))
}

/// ffmpeg options that bound every network read of a stream URL, so that a server that stops
/// sending makes ffprobe and ffmpeg fail instead of waiting forever (RTSP names it `timeout`).
fn network_timeout_args(input: &str) -> [&'static str; 2] {
    let lower = input.to_ascii_lowercase();
    if lower.starts_with("rtsp") {
        ["-timeout", "5000000"]
    } else {
        ["-rw_timeout", "5000000"]
    }
}

/// Size, rate and frame count of the first video stream, from `ffprobe`.
pub fn probe(input: &str) -> Result<SourceInfo> {
    let mut cmd = Command::new("ffprobe");
    if is_stream_url(input) && !input.to_ascii_lowercase().starts_with("udp") {
        cmd.args(network_timeout_args(input));
    }
    let out = cmd
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,avg_frame_rate,r_frame_rate,nb_frames:format=duration",
            "-of",
            "json",
        ])
        .arg(input)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error("ffprobe", e))?;
    let bad = |reason: String| Error::SourceOpen {
        source_name: input.to_string(),
        reason,
    };
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg.trim();
        return Err(bad(if msg.is_empty() {
            "ffprobe cannot read it".into()
        } else {
            format!("not a readable video ({msg})")
        }));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| bad(format!("unexpected ffprobe output: {e}")))?;
    let stream = v["streams"]
        .get(0)
        .ok_or_else(|| bad("no video stream in it".into()))?;
    let width = stream["width"].as_u64().unwrap_or(0) as u32;
    let height = stream["height"].as_u64().unwrap_or(0) as u32;
    if width == 0 || height == 0 {
        return Err(bad("video stream has no frame size".into()));
    }
    let fps = [&stream["avg_frame_rate"], &stream["r_frame_rate"]]
        .iter()
        .filter_map(|r| r.as_str().and_then(parse_rate))
        .next();
    let frames = stream["nb_frames"]
        .as_str()
        .and_then(|n| n.parse::<u64>().ok())
        .or_else(|| {
            let d: f64 = v["format"]["duration"].as_str()?.parse().ok()?;
            Some((d * fps?).round() as u64)
        });
    Ok(SourceInfo {
        name: input.to_string(),
        width,
        height,
        fps,
        frames,
        live: is_stream_url(input),
    })
}

/// Parses an ffprobe rate such as `30000/1001`.
fn parse_rate(r: &str) -> Option<f64> {
    let (n, d) = r.split_once('/').unwrap_or((r, "1"));
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0.0 && d > 0.0).then_some(n / d)
}

/// Opens a video file or stream through `ffmpeg`, decoding to RGB frames.
pub fn open_ffmpeg(input: &str, stride: u64, pool: FramePool) -> Result<PipeSource> {
    if !is_stream_url(input) && !Path::new(input).is_file() {
        return Err(Error::SourceOpen {
            source_name: input.to_string(),
            reason: "no such file".into(),
        });
    }
    let info = probe(input)?;
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
    if info.live {
        cmd.args(["-fflags", "nobuffer", "-flags", "low_delay"]);
        if input.to_ascii_lowercase().starts_with("rtsp") {
            cmd.args(["-rtsp_transport", "tcp"]);
        }
        if !input.to_ascii_lowercase().starts_with("udp") {
            cmd.args(network_timeout_args(input));
        }
    }
    cmd.arg("-i")
        .arg(input)
        .args(["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    PipeSource::spawn(cmd, info, RawFormat::Rgb24, stride, pool)
}

/// Requested capture settings for cameras.
#[derive(Debug, Clone, Copy)]
pub struct CaptureSize {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl Default for CaptureSize {
    fn default() -> Self {
        CaptureSize {
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

/// The `rpicam-vid` command for a Raspberry Pi camera module (`libcamera://N`), raw I420 on stdout.
pub fn rpicam_command(camera: u32, size: CaptureSize) -> Command {
    let mut cmd = Command::new("rpicam-vid");
    cmd.args(["-t", "0", "--nopreview", "--codec", "yuv420", "--flush"])
        .args(["--camera", &camera.to_string()])
        .args(["--width", &size.width.to_string()])
        .args(["--height", &size.height.to_string()])
        .args(["--framerate", &size.fps.to_string()])
        .args(["-o", "-"]);
    cmd
}

/// The `gst-launch-1.0` pipeline for a Jetson CSI camera (`csi://N`), raw RGB on stdout.
pub fn jetson_csi_command(sensor: u32, size: CaptureSize) -> Command {
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q").args(
        format!(
            "nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={w},height={h},framerate={f}/1 \
             ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=RGB ! fdsink fd=1",
            w = size.width,
            h = size.height,
            f = size.fps
        )
        .split_whitespace(),
    );
    cmd
}

/// Opens a board camera through its capture process.
pub fn open_board_camera(
    name: &str,
    cmd: Command,
    format: RawFormat,
    size: CaptureSize,
    pool: FramePool,
) -> Result<PipeSource> {
    let info = SourceInfo {
        name: name.to_string(),
        width: size.width,
        height: size.height,
        fps: Some(size.fps as f64),
        frames: None,
        live: true,
    };
    PipeSource::spawn(cmd, info, format, 1, pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_kinds() {
        assert_eq!(parse_rate("10/1"), Some(10.0));
        assert!((parse_rate("30000/1001").unwrap() - 29.97).abs() < 0.01);
        assert_eq!(parse_rate("0/0"), None);
        assert!(is_stream_url("RTSP://cam/1"));
        assert!(!is_stream_url("file.mp4"));
        assert!(is_video_path(Path::new("a/b.MKV")));
    }

    #[test]
    fn board_camera_commands() {
        let c = rpicam_command(1, CaptureSize::default());
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.windows(2).any(|w| w == ["--camera", "1"]));
        assert!(args.windows(2).any(|w| w == ["--codec", "yuv420"]));
        let g = jetson_csi_command(0, CaptureSize::default());
        let args: Vec<_> = g
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"sensor-id=0".to_string()));
        assert!(args.contains(&"fdsink".to_string()));
    }

    #[test]
    fn missing_and_unreadable_files_are_clear_errors() {
        let e = open_ffmpeg("/nonexistent/clip.mp4", 1, FramePool::new(1))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/nonexistent/clip.mp4") && e.contains("no such file"),
            "{e}"
        );
        let p = std::env::temp_dir().join(format!("vigia-notvideo-{}.mp4", std::process::id()));
        std::fs::write(&p, b"not a video at all").unwrap();
        if Command::new("ffprobe").arg("-version").output().is_ok() {
            let e = open_ffmpeg(p.to_str().unwrap(), 1, FramePool::new(1))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("not a readable video"), "{e}");
        }
        std::fs::remove_file(&p).ok();
    }
}
