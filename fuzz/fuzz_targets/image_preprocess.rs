//! Image file bytes through the image source's decoder, then into the preprocessing of each
//! resize mode and layout (the first byte picks the mode and the input size).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigia::model::{ColorOrder, InputSpec, Layout, ResizeMode};
use vigia::preprocess::Preprocessor;
use vigia::source::images::load_rgb;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let path = std::env::temp_dir().join(format!("vigia-fuzz-{}.img", std::process::id()));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let Ok(frame) = load_rgb(&path) else {
        return;
    };
    let spec = InputSpec {
        name: None,
        layout: if sel & 1 == 0 {
            Layout::Nchw
        } else {
            Layout::Nhwc
        },
        width: 8 + u32::from(sel >> 4) * 4,
        height: 8 + u32::from((sel >> 2) & 3) * 12,
        color: if sel & 2 == 0 {
            ColorOrder::Rgb
        } else {
            ColorOrder::Bgr
        },
        scale: 1.0 / 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        resize: match sel % 3 {
            0 => ResizeMode::Letterbox,
            1 => ResizeMode::Stretch,
            _ => ResizeMode::CenterCrop,
        },
        pad_value: 114,
    };
    let mut out = vec![0f32; spec.len()];
    Preprocessor::new(&spec)
        .run(&frame, &mut out)
        .expect("a decoded image preprocesses");
    assert!(out.iter().all(|v| v.is_finite()));
});
