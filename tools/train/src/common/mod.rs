//! What the classifier and the detector share: command-line groups ([`args`]), optimizers and
//! schedules ([`optim`]), run folders ([`run_dir`]), checkpoints ([`checkpoint`]), the epoch
//! loop's pieces ([`fit`]), the seeded generator ([`rng`]), host copies of tensors ([`tensor`]),
//! ONNX export ([`onnx`]), model cards ([`card`]), parity with vigia's engine ([`parity`]) and
//! charts ([`plot`]).

pub mod args;
pub mod card;
pub mod checkpoint;
pub mod fit;
pub mod onnx;
pub mod optim;
pub mod parity;
pub mod plot;
pub mod rng;
pub mod run_dir;
pub mod tensor;
