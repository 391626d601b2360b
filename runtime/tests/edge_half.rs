//! f16 inference (tract's `f32_to_f16`) finds what f32 finds on the reference image.
//!
//! x86-64 has no f16 matrix kernels in tract, so f16 runs through tract's generic (emulated)
//! kernels here: correct but slow, hence the small input size. On Cortex-A76/A78 boards the same
//! graph runs on tract's native FP16 kernels.

mod common;

use vigia::decode::DecodeParams;
use vigia::detector::Detector;
use vigia::model::Task;
use vigia::resolve::{load_model, LoadOptions};
use vigia::source::images::load_rgb;
use vigia::Detection;

/// Input size of this check: small enough for emulated f16 on x86, large enough for the person.
const SIZE: u32 = 160;

fn detect(half: bool) -> Vec<Detection> {
    let model = load_model(
        Some(
            &common::models_dir()
                .join("nanodet-m-416.onnx")
                .display()
                .to_string(),
        ),
        Some(Task::Detect),
        &LoadOptions {
            imgsz: Some(SIZE),
            half,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let mut det = Detector::new(model);
    let img = load_rgb(&common::models_dir().join("samples/person.jpg")).unwrap();
    let params = DecodeParams {
        conf: 0.2,
        ..DecodeParams::default()
    };
    det.detect(&img, &params).unwrap().to_vec()
}

#[test]
fn f16_detections_match_f32_on_the_sample_image() {
    let f32_dets = detect(false);
    let f16_dets = detect(true);
    assert!(
        f32_dets.iter().any(|d| d.class_id == 0),
        "f32 finds the person at {SIZE}x{SIZE}: {f32_dets:?}"
    );
    // Every clear f32 detection has an f16 twin of the same class, box within 2 px, score
    // within 0.02 (f16 keeps about 3 significant digits).
    for a in f32_dets.iter().filter(|d| d.score >= 0.3) {
        let twin = f16_dets
            .iter()
            .filter(|b| b.class_id == a.class_id)
            .map(|b| {
                let d = [
                    (a.bbox.x1 - b.bbox.x1).abs(),
                    (a.bbox.y1 - b.bbox.y1).abs(),
                    (a.bbox.x2 - b.bbox.x2).abs(),
                    (a.bbox.y2 - b.bbox.y2).abs(),
                ];
                (
                    d.into_iter().fold(0f32, f32::max),
                    (a.score - b.score).abs(),
                )
            })
            .min_by(|x, y| x.0.total_cmp(&y.0));
        let Some((px, score)) = twin else {
            panic!("f16 lost {a:?}; f16 found {f16_dets:?}");
        };
        assert!(
            px <= 2.0,
            "box moved {px:.2} px in f16: {a:?} vs {f16_dets:?}"
        );
        assert!(
            score <= 0.02,
            "score moved {score:.4} in f16: {a:?} vs {f16_dets:?}"
        );
    }
}
