//! int8 models quantized by ONNX Runtime (targets/int8/make_int8.py) run on tract and agree with
//! ONNX Runtime: QOperator format (QLinearConv) and QDQ format (tract dequantizes and runs the
//! Conv in float).

use std::path::PathBuf;

use vigia::engine::{Engine, ModelSource, OnnxGraph, TractEngine};

fn int8_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../targets/int8"))
}

fn check(format: &str, tolerance: f32) {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(int8_dir().join("mnist-int8-reference.json")).unwrap(),
    )
    .unwrap();
    let path = int8_dir().join(format!("mnist-int8-{format}.onnx"));
    let graph = OnnxGraph::open(ModelSource::File(path)).unwrap();
    let (mut engine, _) = TractEngine::build(&graph, &[1, 1, 28, 28]).unwrap();
    let digits = reference["digits"].as_array().unwrap();
    let mut correct = 0;
    for (i, digit) in digits.iter().enumerate() {
        let pixels: Vec<f32> = digit["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        engine.input_mut().copy_from_slice(&pixels);
        engine.run().unwrap();
        let ours: Vec<f32> = engine.outputs().unwrap()[0].iter().copied().collect();
        let ort: Vec<f32> = reference[format][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let worst = ours
            .iter()
            .zip(&ort)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= tolerance,
            "{format} digit {i}: logits differ from ONNX Runtime by {worst}: {ours:?} vs {ort:?}"
        );
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        assert_eq!(
            argmax(&ours),
            argmax(&ort),
            "{format} digit {i}: class differs"
        );
        correct += usize::from(argmax(&ours) as u64 == digit["label"].as_u64().unwrap());
    }
    assert!(correct >= 18, "{format}: {correct}/20 digits right");
}

#[test]
fn qoperator_int8_model_runs_and_matches_onnxruntime() {
    check("qoperator", 0.05);
}

#[test]
fn qdq_int8_model_runs_and_matches_onnxruntime() {
    check("qdq", 0.05);
}
