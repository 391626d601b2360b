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
