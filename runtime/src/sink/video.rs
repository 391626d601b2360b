//! Annotated video: RGB frames piped into `ffmpeg` (H.264 in MP4 at the source's frame rate).
//!
//! The MP4 is written fragmented (`frag_keyframe+empty_moov`), so it stays playable up to the
//! last complete fragment even if vigia is killed; a normal stop closes ffmpeg's input and waits
//! for it to finish the file. ffmpeg runs in its own process group so Ctrl-C reaches only vigia.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::source::pipe::{own_process_group, spawn_error};

/// Writes frames into a video file through an `ffmpeg` process.
pub struct VideoWriter {
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    path: PathBuf,
    size: (u32, u32),
    frames: u64,
}

/// Containers the H.264 stream can be written into, by file extension.
const CONTAINERS: [&str; 8] = ["mp4", "mov", "m4v", "mkv", "avi", "ts", "m2ts", "flv"];

/// Refuses a `--save-video` path ffmpeg could not pick an H.264 container for (no extension,
/// or one like `.webm` or `.a`), before any frame is processed.
pub fn check_container(path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext {
        Some(e) if CONTAINERS.contains(&e.as_str()) => Ok(()),
        _ => Err(Error::Option {
            option: format!("--save-video {}", path.display()),
            reason: format!(
                "the name must end in a video container for H.264: .{}",
                CONTAINERS.join(", .")
            ),
        }),
    }
}

impl VideoWriter {
    /// Starts encoding `width` x `height` frames at `fps` into `path` (container from the extension).
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self> {
        let err =
            |reason: String| Error::output(format!("--save-video {}", path.display()), reason);
        if width == 0 || height == 0 {
            return Err(err("frame size unknown".into()));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create folder: {e}")))?;
        }
        // Fail now, with a clear message, if the file cannot be written.
        std::fs::File::create(path).map_err(|e| err(format!("cannot write: {e}")))?;
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            30.0
        };
        // H.264 in yuv420p needs even sizes: pad by one pixel when odd.
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{width}x{height}")])
            .args(["-r", &format!("{fps}")])
            .args(["-i", "-"])
            .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            ]);
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ext == "mp4" || ext == "mov" || ext == "m4v" {
            cmd.args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]);
        }
        own_process_group(
            cmd.arg(path)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        );
        let mut child = cmd.spawn().map_err(|e| spawn_error("ffmpeg", e))?;
        let stdin = child
            .stdin
            .take()
            .map(|s| BufWriter::with_capacity(1 << 20, s));
        Ok(VideoWriter {
            child,
            stdin,
            path: path.to_path_buf(),
            size: (width, height),
            frames: 0,
        })
    }

    /// Appends one frame (must have the size given at creation).
    pub fn write(&mut self, frame: &RgbImage) -> Result<()> {
        if frame.dimensions() != self.size {
            return Err(self.broken(&format!(
                "frame is {}x{}, the video is {}x{}",
                frame.width(),
                frame.height(),
                self.size.0,
                self.size.1
            )));
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.broken("already closed"));
        };
        if let Err(e) = stdin.write_all(frame.as_raw()) {
            return Err(self.broken(&format!("ffmpeg stopped accepting frames ({e})")));
        }
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Closes the input and waits for ffmpeg to finish the file.
    pub fn finish(mut self) -> Result<u64> {
        self.close()?;
        Ok(self.frames)
    }

    fn close(&mut self) -> Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
            drop(stdin);
            let status = self.child.wait().map_err(|e| self.broken(&e.to_string()))?;
            if !status.success() {
                return Err(self.broken(&format!("ffmpeg exited with {status}")));
            }
        }
        Ok(())
    }

    fn broken(&self, reason: &str) -> Error {
        Error::output(format!("--save-video {}", self.path.display()), reason)
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_h264_containers_are_accepted() {
        for ok in ["out.mp4", "a/b.MKV", "c.avi", "d.ts"] {
            assert!(check_container(Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in ["video", "video.a", "clip.webm", "x.gif"] {
            let e = check_container(Path::new(bad)).unwrap_err().to_string();
            assert!(
                e.contains(&format!("--save-video {bad}")) && e.contains(".mp4"),
                "{e}"
            );
        }
    }
}
