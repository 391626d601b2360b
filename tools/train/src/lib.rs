//! vigia-train: trains image classifiers and detectors with burn and exports ONNX that the vigia runtime loads.
//!
//! The pieces are usable on their own: [`data`] reads datasets, [`model`] holds the networks,
//! [`train`] runs the training loop, [`export`] writes the ONNX and its model card and checks them
//! against vigia's tract engine, [`plot`] draws the charts, and [`run`] ties them together as the
//! `vigia-train classify` command does; [`autolabel`] writes a YOLO-txt dataset from a teacher
//! detector run by the vigia runtime, and [`detect`] trains a YOLO-style detector on such a dataset.

pub mod autolabel;
pub mod data;
pub mod detect;
pub mod export;
pub mod model;
pub mod plot;
pub mod run;
pub mod train;
pub mod transfer;
