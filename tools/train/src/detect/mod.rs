//! The YOLO-style detector (`vigia-train detect`): datasets ([`data`]), the network with its
//! in-graph decode ([`model`]), assignment and CIoU/BCE loss ([`loss`]), mAP@0.5 ([`metrics`]),
//! validation ([`eval`]), the training loop ([`train`]), ONNX export in the runtime's `yolov8`
//! layout ([`export`]) and the command itself ([`run`]).

pub mod data;
pub mod eval;
pub mod export;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod run;
pub mod train;
