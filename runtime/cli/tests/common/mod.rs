//! Helpers of the `vigia` binary's end-to-end tests: the library tests' helpers plus the binary.
#![allow(dead_code)]

#[path = "../../../tests/common/mod.rs"]
mod shared_helpers;

use std::path::PathBuf;
use std::process::{Command, Output};

pub use shared_helpers::*;

/// Path of the `vigia` binary built for these tests.
pub fn vigia_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vigia"))
}

/// Runs the `vigia` binary with `args` and collects its output.
pub fn vigia(args: &[&str]) -> Output {
    Command::new(vigia_bin())
        .args(args)
        .output()
        .expect("run vigia")
}

/// A `Command` for the `vigia` binary, to add arguments to.
pub fn vigia_cmd() -> Command {
    Command::new(vigia_bin())
}

/// Spawns `cmd` (a `vigia` run with `--serve`) with stderr piped; returns the child, the preview
/// address it printed and a receiver of its remaining stderr lines.
pub fn spawn_with_preview(
    mut cmd: Command,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the preview address is printed");
        if let Some(rest) = line.strip_prefix("vigia: live preview at http://") {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    (child, addr, rx)
}

/// Largest difference between two engines' raw outputs after their last runs, relative to the
/// largest magnitude of `reference`'s; the outputs must have the same shapes.
pub fn max_rel_output_diff(
    reference: &dyn vigia::engine::Engine,
    other: &dyn vigia::engine::Engine,
) -> f32 {
    let (oa, ob) = (reference.outputs().unwrap(), other.outputs().unwrap());
    assert_eq!(oa.len(), ob.len());
    let mut worst = 0f32;
    for (x, y) in oa.iter().zip(&ob) {
        assert_eq!(x.shape(), y.shape());
        assert!(y.iter().all(|v| v.is_finite()));
        let scale = x.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let diff = x
            .iter()
            .zip(y.iter())
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        worst = worst.max(diff / scale);
    }
    worst
}

/// A child process killed when dropped, also when a test fails before its end.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
