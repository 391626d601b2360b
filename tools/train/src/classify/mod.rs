//! The image classifier (`vigia-train classify`): datasets ([`data`]), the CNN and MLP
//! ([`model`]), the recipe ([`config`]), checkpoint state ([`checkpoint`]), evaluation
//! ([`eval`]), the training loop ([`train`]), transfer learning ([`transfer`]), ONNX export and
//! the checks in vigia ([`export`]) and the command itself ([`run`]).

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod export;
pub mod model;
pub mod run;
pub mod train;
pub mod transfer;
