//! The cached pre-decluttered model: written once, read back, identical outputs; a damaged
//! entry is ignored and rebuilt.

mod common;

use std::path::{Path, PathBuf};

use vigia::engine::cache::{CacheUse, ModelCache};
use vigia::model::Task;
use vigia::resolve::{load_model, LoadOptions, LoadedModel};
use vigia::source::images::load_rgb;

fn nanodet() -> String {
    common::models_dir()
        .join("nanodet-m-416.onnx")
        .display()
        .to_string()
}

fn load(cache: Option<&Path>) -> LoadedModel {
    load_model(
        Some(&nanodet()),
        Some(Task::Detect),
        &LoadOptions {
            cache_dir: cache.map(Path::to_path_buf),
            ..LoadOptions::default()
        },
    )
    .unwrap()
}

/// Raw outputs of the model on the sample image, through the real preprocessing.
fn outputs(mut model: LoadedModel) -> Vec<Vec<f32>> {
    let img = load_rgb(&common::models_dir().join("samples/person.jpg")).unwrap();
    let mut pre = vigia::preprocess::Preprocessor::new(&model.card.input);
    pre.run(&img, model.engine.input_mut()).unwrap();
    model.engine.run().unwrap();
    model
        .engine
        .outputs()
        .unwrap()
        .iter()
        .map(|o| o.iter().copied().collect())
        .collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn cached_model_gives_identical_outputs_and_damaged_entries_are_rebuilt() {
    let dir = common::temp_dir("edge-cache");
    let reference = outputs(load(None));

    let cold = load(Some(&dir));
    assert_eq!(cold.report.cache, CacheUse::Stored);
    let files = entries(&dir);
    assert_eq!(
        files.len(),
        1,
        "one entry, no temporary files left: {files:?}"
    );
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("nanodet-m-416-") && name.ends_with(".nnef.tar"),
        "{name}"
    );
    assert_eq!(outputs(cold), reference, "cold build with cache on");

    let cached = load(Some(&dir));
    assert_eq!(cached.report.cache, CacheUse::Hit);
    assert_eq!(
        cached.report.parse_ms, 0.0,
        "no ONNX parsing on a cache hit"
    );
    assert_eq!(outputs(cached), reference, "model read from the cache");

    // A truncated entry (e.g. a full disk) is reported, ignored and written again.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 3]).unwrap();
    let rebuilt = load(Some(&dir));
    assert_eq!(rebuilt.report.cache, CacheUse::Stored);
    assert_eq!(outputs(rebuilt), reference, "rebuilt after a damaged entry");
    // Rewritten whole (tar timestamps differ, so not byte-identical) and readable again.
    assert!(std::fs::read(&files[0]).unwrap().len() > bytes.len() / 2);
    assert_eq!(load(Some(&dir)).report.cache, CacheUse::Hit);

    // Garbage that is not even gzip.
    std::fs::write(&files[0], b"not a model").unwrap();
    assert_eq!(load(Some(&dir)).report.cache, CacheUse::Stored);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cache_keys_follow_model_shape_and_precision() {
    let a = ModelCache::key(b"onnx bytes", &[1, 3, 416, 416], false);
    assert_eq!(a.len(), 32);
    assert_eq!(a, ModelCache::key(b"onnx bytes", &[1, 3, 416, 416], false));
    assert_ne!(a, ModelCache::key(b"onnx bytez", &[1, 3, 416, 416], false));
    assert_ne!(a, ModelCache::key(b"onnx bytes", &[1, 3, 320, 320], false));
    assert_ne!(a, ModelCache::key(b"onnx bytes", &[1, 3, 416, 416], true));
}

#[test]
fn unwritable_cache_dir_is_a_warning_not_an_error() {
    let dir = common::temp_dir("edge-cache-ro");
    // A file where the directory should be: the cache cannot be created.
    let blocked = dir.join("not-a-dir");
    std::fs::write(&blocked, b"x").unwrap();
    let model = load(Some(&blocked.join("cache")));
    assert_eq!(model.report.cache, CacheUse::Failed);
    let _ = std::fs::remove_dir_all(&dir);
}
