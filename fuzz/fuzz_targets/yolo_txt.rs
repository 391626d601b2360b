//! YOLO txt labels (`--save-txt`): every line through the label parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigia::sink::labels::parse_line;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok((_, [cx, cy, w, h], conf)) = parse_line(line) {
            assert!([cx, cy, w, h].iter().all(|v| v.is_finite()));
            assert!(conf.is_none_or(f32::is_finite));
        }
    }
});
