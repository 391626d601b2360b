//! Commands a preview viewer sends: `POST /api/follow` with `{"target": "point:0.41,0.62"}` (the
//! person clicked in the page), `id:N`, `largest`, ... or `stop`. Only the request handling lives
//! here; the server in `preview.rs` does the I/O.

/// Largest accepted command body, in bytes.
pub const MAX_COMMAND_BODY: usize = 1024;

/// Where the preview's follow commands go (the follower of this run).
pub trait FollowControl: Send + Sync {
    /// Applies a follow command body; returns the target now asked for (`point:0.41,0.62`,
    /// `stop`), or why the command was refused.
    fn follow(&self, body: &[u8]) -> Result<String, String>;
}

/// Status and JSON body answering a follow command with `body`, given the run's control (`None`
/// when the run follows nobody).
pub fn follow_response(control: Option<&dyn FollowControl>, body: &[u8]) -> (u16, String) {
    let reply = |status: u16, v: serde_json::Value| (status, v.to_string());
    let Some(control) = control else {
        return reply(
            409,
            serde_json::json!({
                "ok": false,
                "error": "this run follows nobody: start it with `vigia follow`",
            }),
        );
    };
    match control.follow(body) {
        Ok(target) => reply(200, serde_json::json!({ "ok": true, "target": target })),
        Err(error) => reply(400, serde_json::json!({ "ok": false, "error": error })),
    }
}

/// Whether a command body of `length` bytes (the `Content-Length`) is accepted: the status
/// refusing it otherwise (411 without a length, 413 above [`MAX_COMMAND_BODY`]).
pub fn check_body_length(length: Option<usize>) -> Result<usize, (u16, &'static str)> {
    match length {
        None => Err((411, "a follow command needs a Content-Length")),
        Some(n) if n > MAX_COMMAND_BODY => Err((413, "a follow command is at most 1024 bytes")),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl FollowControl for Echo {
        fn follow(&self, body: &[u8]) -> Result<String, String> {
            match body {
                b"bad" => Err("no such target".into()),
                other => Ok(String::from_utf8_lossy(other).into_owned()),
            }
        }
    }

    #[test]
    fn responses_say_what_happened() {
        let (status, body) = follow_response(Some(&Echo), b"point:0.5,0.5");
        assert_eq!(status, 200);
        assert!(body.contains(r#""target":"point:0.5,0.5""#), "{body}");
        let (status, body) = follow_response(Some(&Echo), b"bad");
        assert_eq!(status, 400);
        assert!(body.contains("no such target"), "{body}");
        let (status, body) = follow_response(None, b"stop");
        assert_eq!(status, 409);
        assert!(body.contains("vigia follow"), "{body}");
        assert_eq!(check_body_length(Some(20)), Ok(20));
        assert_eq!(check_body_length(None).unwrap_err().0, 411);
        assert_eq!(check_body_length(Some(5000)).unwrap_err().0, 413);
    }
}
