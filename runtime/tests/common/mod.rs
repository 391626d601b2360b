//! Helpers shared by the end-to-end tests of the library and of the `vigia` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout's root (the folder holding the workspace `Cargo.lock`).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|d| d.join("Cargo.lock").is_file() && d.join("models").is_dir())
        .unwrap_or(here)
        .to_path_buf()
}

/// The shared models and data folder (`../shared` next to the checkout), or `None` with a
/// printed reason when it is absent.
pub fn shared() -> Option<PathBuf> {
    let p = repo_root().join("../shared");
    if p.join("models").is_dir() {
        Some(p)
    } else {
        skip("skipping: ../shared (models and data) not found next to the checkout");
        None
    }
}

/// The bundled models folder of this checkout.
pub fn models_dir() -> PathBuf {
    repo_root().join("models")
}

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigia-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Whether ffmpeg and ffprobe are installed (prints why a test is skipped when they are not).
pub fn have_ffmpeg() -> bool {
    let ok = Command::new("ffprobe").arg("-version").output().is_ok()
        && Command::new("ffmpeg").arg("-version").output().is_ok();
    if !ok {
        skip("skipping: ffmpeg/ffprobe not installed (apt install ffmpeg)");
    }
    ok
}

/// Reports a skipped test on one line that `cargo test` shows even for passing tests (written to
/// stderr directly, which the test harness does not capture).
pub fn skip(reason: impl std::fmt::Display) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "{test}: {reason}");
}
