//! Argument groups shared by the subcommands.

use std::path::PathBuf;

use clap::Args;

/// Which model to run and how to build it.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model: an .onnx file, a model card (.toml) or a bundled name [default: the bundled model]
    #[arg(long, short)]
    pub model: Option<String>,
    /// Input size (square) to fix the graph to, overriding the card
    #[arg(long)]
    pub imgsz: Option<u32>,
    /// Threads for the engine's matrix kernels (tract) or intra-op pool (ort) [default: the
    /// profile's: 1, or the board's cores]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    /// Board profile (threads, input size, f16, cache): auto, rpi4, rpi5, jetson-nano,
    /// jetson-orin, generic-arm64, generic-x86 [default: auto; `vigia doctor` shows it]
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Run the graph in f16 (native on Cortex-A76/A78-class CPUs, emulated and slow elsewhere)
    #[arg(long, conflicts_with = "no_half")]
    pub half: bool,
    /// Run in f32 even where the profile picks f16
    #[arg(long)]
    pub no_half: bool,
    /// Cache of pre-decluttered models [default: $VIGIA_CACHE_DIR, $XDG_CACHE_HOME/vigia or
    /// ~/.cache/vigia]
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Build the model from ONNX at every start: no cache read or write
    #[arg(long)]
    pub no_cache: bool,
    /// Inference engine: auto (the GPU when this build has the `cuda` feature and finds a usable
    /// NVIDIA GPU, else tract), tract (CPU), cuda (GPU, or an error saying what is missing) or ort
    /// (ONNX Runtime, `ort` feature)
    #[arg(long, default_value = "auto", value_name = "auto|tract|cuda|ort")]
    pub engine: vigia::resolve::EngineKind,
    /// Convolution kernels (tract engine): vigia's where they apply, or tract's throughout
    #[arg(long, default_value = "vigia", value_name = "vigia|tract")]
    pub kernels: vigia::engine::passes::conv_kernels::Kernels,
    /// ONNX Runtime's execution provider for --engine ort: cpu, cuda or tensorrt (engines cached
    /// in the cache dir's tensorrt/); needs an onnxruntime-gpu build
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|tensorrt")]
    pub ort_ep: vigia::engine::choice::OrtProvider,
    /// ONNX Runtime library for --engine ort: libonnxruntime.so* or its folder [env: ORT_DYLIB_PATH]
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Inference workers, each with its own engine state, frames kept in order (detect, track, follow)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Only results on stdout and errors on stderr: no load line, no progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

impl ModelArgs {
    /// The board profile and the options that override it.
    pub fn overrides(&self) -> vigia::board::Overrides {
        vigia::board::Overrides {
            profile: self.profile.clone(),
            threads: self.threads,
            imgsz: self.imgsz,
            half: match (self.half, self.no_half) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            cache_dir: self.cache_dir.clone(),
            no_cache: self.no_cache,
        }
    }
}

/// Where frames come from.
#[derive(Args, Clone)]
pub struct SourceArgs {
    /// Source (same as --source)
    #[arg(value_name = "SOURCE", conflicts_with_all = ["source", "cameras"])]
    pub positional: Option<String>,
    /// Image, folder, glob ('imgs/*.jpg'), video file, rtsp:// or http:// stream, camera (0,
    /// /dev/video2), libcamera://0, csi://0, or synthetic://?scene=crossing; repeat it, as
    /// NAME=SOURCE to name each, to run several cameras on one model (detect, track)
    #[arg(long, short, value_name = "[NAME=]SOURCE")]
    pub source: Vec<String>,
    /// Cameras from a TOML file: [[camera]] tables with name, source and optionally
    /// source_wait and vid_stride (detect, track)
    #[arg(long, value_name = "FILE", conflicts_with = "source")]
    pub cameras: Option<PathBuf>,
    /// Keep every Nth frame of a video file
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub vid_stride: u64,
    /// Stop after this many frames (per camera)
    #[arg(long)]
    pub max_frames: Option<u64>,
    /// Camera capture size WxH (cameras only)
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pub camera_size: (u32, u32),
    /// Camera frame rate (cameras only)
    #[arg(long, default_value_t = 30)]
    pub camera_fps: u32,
    /// Frame rate of an image sequence (sets timestamps for tracking)
    #[arg(long)]
    pub image_fps: Option<f64>,
    /// How long a camera or stream that cannot be opened at start is retried (seconds; 30, 2m);
    /// 0 fails at once [default: until it comes, like a source lost while running]
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub source_wait: Option<f64>,
}

/// Thresholds of detection decoding.
#[derive(Args, Clone)]
pub struct DecodeArgs {
    /// Minimum confidence
    #[arg(long, default_value_t = 0.25, value_parser = unit_interval)]
    pub conf: f32,
    /// IoU threshold of non-maximum suppression
    #[arg(long, default_value_t = 0.45, value_parser = unit_interval)]
    pub iou: f32,
    /// Keep only these classes: names or ids, comma separated (person,car or 0,2)
    #[arg(long)]
    pub classes: Option<String>,
    /// Maximum detections per frame
    #[arg(long, default_value_t = 300)]
    pub max_det: usize,
    /// NMS across classes instead of per class
    #[arg(long)]
    pub agnostic_nms: bool,
}

/// What to write.
#[derive(Args, Clone, Default)]
pub struct OutputArgs {
    /// Annotated results into this folder: images under their names, videos as <name>.mp4
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// Annotated video file (H.264 MP4 through ffmpeg, source frame rate)
    #[arg(long, value_name = "FILE")]
    pub save_video: Option<PathBuf>,
    /// JSON lines file, one object per frame (default: stdout)
    #[arg(long, value_name = "FILE")]
    pub save_json: Option<PathBuf>,
    /// YOLO txt labels into this folder (class cx cy w h, normalised)
    #[arg(long, value_name = "DIR")]
    pub save_txt: Option<PathBuf>,
    /// Append confidences to YOLO txt lines
    #[arg(long)]
    pub save_conf: bool,
    /// Live preview server address (127.0.0.1:8080; a bare port binds loopback)
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
    /// Token the preview requires (?token=... or Authorization: Bearer ...)
    #[arg(long, requires = "serve")]
    pub serve_token: Option<String>,
    /// Print per-stage latency and FPS every N seconds
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "5")]
    pub stats: Option<f64>,
    #[command(flatten)]
    pub mqtt: super::mqtt::MqttArgs,
}

/// A probability-like value in 0..1.
pub fn unit_interval(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0..1"))
    }
}

/// A share in (0, 1], or `off`.
pub fn share_or_off(s: &str) -> Result<ShareOrOff, String> {
    if matches!(s.trim(), "off" | "none") {
        return Ok(ShareOrOff(None));
    }
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a share in (0, 1] or `off`"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(ShareOrOff(Some(v)))
    } else {
        Err(format!("{v} is outside (0, 1]"))
    }
}

/// A share in (0, 1], or `None` for `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareOrOff(pub Option<f32>);

/// Seconds, as `30`, `30s`, `2m` or `1.5h`.
pub fn seconds(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (seconds, or with s, m or h)"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v * scale)
    } else {
        Err(format!("'{s}' must be a duration >= 0"))
    }
}

/// `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width in '{s}'"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height in '{s}'"))?;
    if w == 0 || h == 0 || w > 8192 || h > 8192 {
        return Err(format!("'{s}' is out of range"));
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_refuse_nonsense() {
        assert_eq!(seconds("30"), Ok(30.0));
        assert_eq!(seconds("30s"), Ok(30.0));
        assert_eq!(seconds(" 2m "), Ok(120.0));
        assert_eq!(seconds("1.5h"), Ok(5400.0));
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").unwrap_err().contains("soon"));
        assert!(seconds("nan").is_err());
    }
}
