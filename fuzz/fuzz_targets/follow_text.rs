//! Follow text inputs: the serial line protocol's checksum decoder and the `--follow-out`,
//! `--mavlink` and `--target` option parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigia::follow::{verify_line, OutputSpec, TargetPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.split_inclusive('\n') {
        if let Some(body) = verify_line(line) {
            assert!(line.starts_with(body));
        }
    }
    let _ = text.parse::<OutputSpec>();
    let _ = text.parse::<TargetPolicy>();
});
