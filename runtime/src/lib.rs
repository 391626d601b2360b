//! vigia: an edge vision runtime on tract.
//!
//! Data flows one way: source → [`preprocess`] → [`engine`] → [`decode`] + [`nms`] → sinks.
//! [`resolve`] turns a `--model` argument into a ready engine; [`detector`] and [`classifier`]
//! wire the stages for one model.

pub mod anchor_grid;
pub mod annotate;
pub mod board;
pub mod camera_set;
pub mod classifier;
pub mod decode;
pub mod detection;
pub mod detector;
pub mod engine;
pub mod error;
pub mod follow;
pub mod heatmap_peaks;
pub mod inference_turns;
pub mod kernels;
pub mod loaded_model;
pub mod model;
pub mod mot;
pub mod nms;
pub mod pipeline;
pub mod preprocess;
pub mod publish;
pub mod reid;
pub mod resolve;
#[cfg(feature = "serve")]
pub mod serve;
pub mod sink;
pub mod source;
pub mod track;

pub use detection::{BBox, Detection};
pub use error::{Error, Result};
