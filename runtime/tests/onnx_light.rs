//! Architecture coverage: the onnx model-zoo graphs (constant weights) load, optimize and
//! reproduce the reference evaluator's outputs.

mod common;

use prost::Message;
use vigia::engine::{Engine, ModelSource, OnnxGraph, TractEngine};

/// Reads an ONNX TensorProto holding f32 data.
fn read_tensor(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let t = tract_onnx::pb::TensorProto::decode(&bytes[..]).unwrap();
    let dims = t.dims.iter().map(|d| *d as usize).collect();
    let data = if !t.float_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    (dims, data)
}

#[test]
fn every_light_architecture_matches_its_reference_output() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = shared.join("models/onnx-light");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 9,
        "expected the 9 onnx-light graphs, found {names:?}"
    );
    for path in names {
        let graph = OnnxGraph::open(ModelSource::File(path.clone())).unwrap();
        let shape: Vec<usize> = graph.input_dims().iter().map(|d| d.unwrap_or(1)).collect();
        let (mut engine, _) = TractEngine::build(&graph, &shape)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let input = engine.input_mut();
        let n = input.len();
        for (i, v) in input.iter_mut().enumerate() {
            *v = i as f32 / n as f32;
        }
        engine.run().unwrap();
        let outputs = engine.outputs().unwrap();
        let got = outputs[0].iter().copied().collect::<Vec<f32>>();
        let reference = path.with_file_name(format!(
            "{}_output_0.pb",
            path.file_stem().unwrap().to_str().unwrap()
        ));
        let (dims, want) = read_tensor(&reference);
        assert_eq!(outputs[0].shape(), &dims[..], "{}", path.display());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / (w.abs() + 1e-4))
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-3,
            "{}: worst relative error {worst}",
            path.display()
        );
    }
}
