//! Preview server request heads: parsing, token check and routing (the pure part of the
//! connection handler), with and without a token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigia::sink::preview::{route_request, Route};

fuzz_target!(|data: &[u8]| {
    let open = route_request(data, None);
    let guarded = route_request(data, Some("s3cr/t+x"));
    // A token only ever refuses more (the same route, or 401), except follow commands, which
    // are refused (403) without one.
    let command = open == Route::Refuse(403) && guarded == Route::Follow;
    assert!(
        guarded == open || guarded == Route::Refuse(401) || command,
        "{open:?} vs {guarded:?}"
    );
});
