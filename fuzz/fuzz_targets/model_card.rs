//! Model-card TOML: parse and validate; a valid card's input spec then drives preprocessing of
//! a small frame and a round trip through `to_toml`.
#![no_main]

use image::RgbImage;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vigia::model::ModelCard;
use vigia::preprocess::Preprocessor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(card) = ModelCard::from_toml(text, Path::new("fuzz.toml")) else {
        return;
    };
    let again = ModelCard::from_toml(&card.to_toml(), Path::new("again.toml"))
        .expect("a valid card written out parses again");
    assert_eq!(again.input.shape(), card.input.shape());
    // Cards allow inputs up to 8192 x 8192; preprocess only the small ones here.
    if card.input.len() <= 1 << 20 {
        let frame = RgbImage::from_fn(37, 23, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = vec![0f32; card.input.len()];
        let _ = Preprocessor::new(&card.input).run(&frame, &mut out);
    }
});
