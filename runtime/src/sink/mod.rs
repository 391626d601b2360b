//! Outputs: annotated video or images, JSON lines, YOLO txt labels, MOTChallenge tracks and the
//! live preview, combined into one [`Outputs`] stage run on the pipeline's output thread.

pub mod frame_record;
pub mod jsonl;
pub mod labels;
pub mod live_preview;
pub mod preview_control;
pub mod stage_set;
pub mod video;

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::annotate::draw_detections;
use crate::error::{Error, Result};
use crate::model::Labels;
use crate::mot::write_mot_line;
use crate::pipeline::{FrameResult, OutputStage, PipelineStats};
use frame_record::FrameRecord;
use jsonl::{JsonLinesWriter, RecordFile};
use labels::YoloTxtWriter;
use live_preview::LivePreview;
use video::VideoWriter;

/// Which outputs a run writes.
#[derive(Default)]
pub struct OutputOptions {
    /// JSON lines (`-` = stdout).
    pub json: Option<PathBuf>,
    /// Annotated video file.
    pub video: Option<PathBuf>,
    /// Folder for annotated copies of image frames.
    pub images: Option<PathBuf>,
    /// Folder for YOLO txt labels.
    pub txt: Option<PathBuf>,
    /// Append confidences to YOLO txt lines.
    pub txt_conf: bool,
    /// MOTChallenge tracks file.
    pub mot: Option<PathBuf>,
    /// Live preview of this camera (the `serve` module's feed).
    pub preview: Option<Box<dyn LivePreview>>,
    /// Frames per second of the source (for the video).
    pub fps: Option<f64>,
    /// True when frames come from a video or stream (txt names get the frame index).
    pub is_video: bool,
    /// The camera's name on JSON lines, when the process runs named or several cameras.
    pub camera: Option<String>,
}

/// Every output of a run, written frame by frame.
pub struct Outputs {
    labels: Labels,
    json: Option<JsonLinesWriter>,
    video_path: Option<PathBuf>,
    video: Option<VideoWriter>,
    images: Option<PathBuf>,
    txt: Option<YoloTxtWriter>,
    /// The MOT file and the buffer one frame's lines are gathered in.
    mot: Option<(RecordFile, Vec<u8>)>,
    preview: Option<Box<dyn LivePreview>>,
    fps: Option<f64>,
    is_video: bool,
    camera: Option<String>,
    canvas: RgbImage,
}

impl Outputs {
    /// Opens every requested output now, so unwritable paths fail before any work.
    pub fn open(opts: OutputOptions, labels: Labels) -> Result<Self> {
        let json = opts
            .json
            .as_deref()
            .map(|p| JsonLinesWriter::create(p, "--save-json"))
            .transpose()?;
        if let Some(v) = &opts.video {
            // Probe the container and writability now; the encoder starts with the first
            // frame's size.
            video::check_container(v)?;
            check_writable(v, "--save-video")?;
        }
        if let Some(d) = &opts.images {
            std::fs::create_dir_all(d)
                .map_err(|e| create_error("--save", d, "cannot create folder", e))?;
        }
        let txt = opts
            .txt
            .as_deref()
            .map(|d| YoloTxtWriter::create(d, opts.txt_conf))
            .transpose()?;
        let mot = match &opts.mot {
            Some(p) => {
                check_writable(p, "--save-mot")?;
                let f = RecordFile::create(p)
                    .map_err(|e| create_error("--save-mot", p, "cannot write", e))?;
                Some((f, Vec::new()))
            }
            None => None,
        };
        Ok(Outputs {
            labels,
            json,
            video_path: opts.video,
            video: None,
            images: opts.images,
            txt,
            mot,
            preview: opts.preview,
            fps: opts.fps,
            is_video: opts.is_video,
            camera: opts.camera,
            canvas: RgbImage::new(0, 0),
        })
    }

    fn needs_canvas(&self) -> bool {
        self.video_path.is_some()
            || self.images.is_some()
            || self.preview.as_ref().is_some_and(|p| p.wants_frames())
    }
}

impl OutputStage for Outputs {
    fn write(&mut self, r: &FrameResult, stats: &PipelineStats, fps: f64) -> Result<()> {
        if let Some(j) = &mut self.json {
            j.write(&FrameRecord::new(r, &self.labels, self.camera.as_deref()))?;
        }
        if let Some(t) = &self.txt {
            let name =
                YoloTxtWriter::file_name(&r.frame.origin, self.is_video.then_some(r.frame.index));
            let (w, h) = r.frame.image.dimensions();
            if r.tracks.is_empty() {
                t.write(&name, &r.detections, w, h)?;
            } else {
                let dets = track_boxes(&r.tracks);
                t.write(&name, &dets, w, h)?;
            }
        }
        if let Some((f, buf)) = &mut self.mot {
            // One frame's lines in one write: the file never ends in a partial line.
            buf.clear();
            for t in &r.tracks {
                write_mot_line(buf, r.frame.index + 1, t).expect("writing to memory");
            }
            if !buf.is_empty() {
                f.append(buf)?;
            }
        }
        let drawn = self.needs_canvas();
        if drawn {
            // Annotate a copy into a reused canvas; the frame buffer goes back to the pool.
            self.canvas.clone_from(&r.frame.image);
            let labels = &self.labels;
            if r.tracks.is_empty() {
                draw_detections(&mut self.canvas, &r.detections, &|c| labels.name(c), None);
            } else {
                let dets = track_boxes(&r.tracks);
                let ids: Vec<u64> = r.tracks.iter().map(|t| t.id).collect();
                draw_detections(&mut self.canvas, &dets, &|c| labels.name(c), Some(&ids));
            }
            if let Some(path) = &self.video_path {
                if self.video.is_none() {
                    let (w, h) = self.canvas.dimensions();
                    self.video = Some(VideoWriter::create(path, w, h, self.fps.unwrap_or(30.0))?);
                }
                if let Some(v) = &mut self.video {
                    v.write(&self.canvas)?;
                }
            }
            if let Some(dir) = &self.images {
                let name = Path::new(&r.frame.origin)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("frame_{}.jpg", r.frame.index));
                let target = dir.join(name);
                self.canvas
                    .save(&target)
                    .map_err(|e| create_error("--save", &target, "cannot write", e))?;
            }
        }
        if let Some(p) = &self.preview {
            let stats = serde_json::json!({
                "frame": r.frame.index,
                "fps": (fps * 10.0).round() / 10.0,
                "objects": if r.tracks.is_empty() { r.detections.len() } else { r.tracks.len() },
                "inference_ms": (stats.inference.mean_ms() * 10.0).round() / 10.0,
                "preprocess_ms": (stats.preprocess.mean_ms() * 10.0).round() / 10.0,
                "output_ms": (stats.output.mean_ms() * 10.0).round() / 10.0,
            });
            if drawn {
                p.publish(&self.canvas, stats);
            } else {
                p.publish_stats(stats);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(v) = self.video.take() {
            v.finish()?;
        }
        Ok(())
    }
}

/// Tracks as detections (box, score, class) for writers that take detections.
fn track_boxes(tracks: &[crate::track::Track]) -> Vec<crate::Detection> {
    tracks
        .iter()
        .map(|t| crate::Detection {
            bbox: t.bbox,
            score: t.score,
            class_id: t.class_id,
        })
        .collect()
}

/// An output file or folder that cannot be created or written, naming the option that asked for it.
pub(crate) fn create_error(
    option: &str,
    path: &Path,
    doing: &str,
    e: impl std::fmt::Display,
) -> Error {
    Error::output(
        format!("{option} {}", path.display()),
        format!("{doing}: {e}"),
    )
}

/// Fails early, naming `option`, when `path` cannot be created.
fn check_writable(path: &Path, option: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| create_error(option, dir, "cannot create folder", e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
        .map_err(|e| create_error(option, path, "cannot write", e))
}
