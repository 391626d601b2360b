//! Helpers shared by vigia-train's tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared/data/video/vtest.avi` when it and ffmpeg are present; else prints why and `None`.
pub fn vtest() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/video/vtest.avi");
    let ffmpeg = std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok();
    if p.is_file() && ffmpeg {
        Some(p)
    } else {
        eprintln!("skipping: vtest.avi or ffmpeg missing");
        None
    }
}
