//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The shared models and data folder (`../shared` next to the checkout), or `None` with a
/// printed reason when it is absent.
pub fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if p.join("models").is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared (models and data) not found next to the checkout");
        None
    }
}

/// Path of the `vigia` binary built for these tests.
pub fn vigia_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vigia"))
}

/// The bundled models folder of this checkout.
pub fn models_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"))
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
    let ok = Command::new("ffprobe").arg("-version").output().is_ok();
    if !ok {
        eprintln!("skipping: ffmpeg/ffprobe not installed");
    }
    ok
}

/// Runs the `vigia` binary with `args` and collects its output.
pub fn vigia(args: &[&str]) -> Output {
    Command::new(vigia_bin())
        .args(args)
        .output()
        .expect("run vigia")
}
