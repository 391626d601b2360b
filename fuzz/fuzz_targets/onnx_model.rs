//! ONNX bytes into the engine: parse, summarise, build a plan for a small input and run it once.
//! Panics inside tract must be caught at the engine boundary; one escaping here is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigia::engine::{Engine, ModelSource, OnnxGraph, TractEngine};

fuzz_target!(
    init: {
        // The engine catches tract's panics; keep the hook quiet (set VIGIA_FUZZ_VERBOSE to see them).
        if std::env::var_os("VIGIA_FUZZ_VERBOSE").is_none() {
            std::panic::set_hook(Box::new(|_| {}));
        }
    },
    |data: &[u8]| {
        let path = std::env::temp_dir().join(format!("vigia-fuzz-{}.onnx", std::process::id()));
        if std::fs::write(&path, data).is_err() {
            return;
        }
        let Ok(graph) = OnnxGraph::open(ModelSource::File(path)) else {
            return;
        };
        let _ = graph.summary();
        let dims = graph.input_dims();
        if dims.is_empty() || dims.len() > 5 {
            return;
        }
        // Unknown dims become 1; keep the input small so one run stays fast.
        let shape: Vec<usize> = dims.iter().map(|d| d.unwrap_or(1).clamp(1, 64)).collect();
        if shape.iter().product::<usize>() > 1 << 16 {
            return;
        }
        if let Ok((mut engine, _)) = TractEngine::build(&graph, &shape) {
            engine.input_mut().fill(0.5);
            if engine.run().is_ok() {
                let _ = engine.outputs();
            }
        }
    }
);
