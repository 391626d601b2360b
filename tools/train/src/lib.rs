//! vigia-train: trains image classifiers and detectors with burn and exports ONNX that the vigia runtime loads.
//!
//! [`classify`] trains a small CNN or MLP classifier (`vigia-train classify`), [`detect`] a
//! YOLO-style detector (`vigia-train detect`); [`common`] holds what both use: command-line
//! groups, optimizers, run folders, checkpoints, the epoch loop's pieces, ONNX export, model
//! cards, parity with vigia's tract engine and charts. [`export`] turns a checkpoint of either
//! into ONNX (`vigia-train export`) and [`autolabel`] writes a YOLO-txt dataset from a teacher
//! detector run by the vigia runtime (`vigia-train autolabel`). [`reid`] learns a person
//! appearance embedding from a tracked video (`vigia-train reid`).

pub mod autolabel;
pub mod classify;
pub mod common;
pub mod detect;
pub mod export;
pub mod reid;
