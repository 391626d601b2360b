//! vigia: an edge vision runtime on tract.
//!
//! Data flows one way: source → [`preprocess`] → [`engine`] → [`decode`] + [`nms`] → sinks.
//! [`resolve`] turns a `--model` argument into a ready engine; [`detector`] and [`classifier`]
//! wire the stages for one model.

pub mod annotate;
pub mod board;
pub mod cache;
pub mod classifier;
pub mod decode;
pub mod detection;
pub mod detector;
pub mod engine;
#[cfg(feature = "ort")]
pub mod engine_ort;
pub mod error;
pub mod flops;
pub mod follow;
pub mod graph_rewrite;
pub mod half;
pub mod model;
pub mod mot;
pub mod nms;
pub mod pipeline;
pub mod preprocess;
pub mod resolve;
pub mod sink;
pub mod source;
pub mod track;

pub use detection::{BBox, Detection};
pub use error::{Error, Result};
