//! The preview server's access check (`serve::check_access`) on arbitrary query strings and
//! `Authorization` headers, with and without a token. HTTP parsing itself is hyper's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigia::serve::{check_access, Refusal};

const TOKEN: &str = "s3cr/t+x";

fuzz_target!(|data: &[u8]| {
    // The bytes before the first NUL are the query, the rest the Authorization header.
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let query = std::str::from_utf8(&data[..split]).ok();
    let auth = data.get(split + 1..);
    for is_command in [false, true] {
        let open = check_access(None, is_command, query, auth);
        let guarded = check_access(Some(TOKEN), is_command, query, auth);
        // Without a token, reads are open and commands refused.
        assert_eq!(open.is_ok(), !is_command);
        // With one, a refusal is always 401.
        assert!(matches!(guarded, Ok(()) | Err(Refusal::Unauthorized)));
        // Commands never take the token from the query.
        if is_command && guarded.is_ok() {
            assert!(auth.is_some());
        }
    }
});
