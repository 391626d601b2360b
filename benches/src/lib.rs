//! Shared helpers for the benchmarks: where the models and data are, engines filled with a real
//! preprocessed image, frames of the shared video, and synthetic detections for the tracker.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use vigia::engine::{Engine, ModelSource, OnnxGraph, TractEngine};
use vigia::preprocess::Preprocessor;
use vigia::resolve::{load_model, LoadOptions, LoadedModel};
use vigia::source::pool::FramePool;
use vigia::source::video::open_ffmpeg;
use vigia::source::FrameSource;
use vigia::{BBox, Detection};

/// `../shared` next to the checkout, if present.
pub fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    p.join("models").is_dir().then_some(p)
}

/// The checkout's bundled `models/` folder.
pub fn models_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"))
}

/// The bundled sample photo (people, a dog and a horse).
pub fn sample_image() -> RgbImage {
    image::open(models_dir().join("samples/person.jpg"))
        .expect("models/samples/person.jpg")
        .to_rgb8()
}

/// Sets tract's thread count, only when it changes (a new pool per change).
pub fn use_threads(n: usize) {
    static CURRENT: AtomicUsize = AtomicUsize::new(0);
    if CURRENT.swap(n, Ordering::SeqCst) != n {
        vigia::engine::set_threads(n);
    }
}

/// Loads `model` (path, card or bundled name) through the normal resolver.
pub fn load(model: &Path, imgsz: Option<u32>) -> vigia::Result<LoadedModel> {
    load_model(
        model.to_str(),
        None,
        &LoadOptions {
            imgsz,
            ..LoadOptions::default()
        },
    )
}

/// An engine for `model` with its input filled: the sample photo preprocessed as the model's
/// card says, or, for graphs whose input is not an RGB image, the ramp `i / n` at the declared
/// shape (unknown dims 1).
pub fn engine_with_input(model: &Path, imgsz: Option<u32>) -> Box<dyn Engine> {
    match load(model, imgsz) {
        Ok(mut m) => {
            let mut pre = Preprocessor::new(&m.card.input);
            pre.run(&sample_image(), m.engine.input_mut())
                .expect("preprocess");
            m.engine
        }
        Err(load_error) => {
            let graph = OnnxGraph::open(ModelSource::File(model.to_path_buf()))
                .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
            let shape: Vec<usize> = graph.input_dims().iter().map(|d| d.unwrap_or(1)).collect();
            let (engine, _) = TractEngine::build(&graph, &shape)
                .unwrap_or_else(|e| panic!("{}: {load_error}; {e}", model.display()));
            let mut engine: Box<dyn Engine> = Box::new(engine);
            let input = engine.input_mut();
            let n = input.len();
            for (i, v) in input.iter_mut().enumerate() {
                *v = i as f32 / n as f32;
            }
            engine
        }
    }
}

/// The first `n` frames of the shared pedestrian video (`vtest.avi`, 768x576), decoded once by
/// ffmpeg, or `None` when `../shared` is absent.
pub fn vtest_frames(n: usize) -> Option<Vec<RgbImage>> {
    let video = shared()?.join("data/video/vtest.avi");
    let mut src = open_ffmpeg(video.to_str()?, 1, FramePool::new(2)).expect("ffmpeg on vtest.avi");
    let frames = (0..n)
        .map(|_| src.next_frame().expect("frame").expect("frame").image)
        .collect();
    Some(frames)
}

/// `n` detections of people walking in a grid, moved by `frame` steps (deterministic).
pub fn walking_people(n: usize, frame: u32) -> Vec<Detection> {
    (0..n)
        .map(|i| {
            let col = (i % 10) as f32;
            let row = (i / 10) as f32;
            let dx = frame as f32 * (1.0 + (i % 3) as f32 * 0.5);
            let x = 20.0 + col * 180.0 + dx;
            let y = 20.0 + row * 100.0 + (frame as f32 * 0.3);
            Detection {
                bbox: BBox::new(x, y, x + 40.0, y + 90.0),
                score: 0.5 + (i % 5) as f32 * 0.1,
                class_id: 0,
            }
        })
        .collect()
}
