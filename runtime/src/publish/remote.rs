//! Commands from outside (MQTT `.../set` topics, the control API): what they ask for, how their
//! payloads parse, and the [`CommandHandler`] seam that applies them to a running camera.

use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::follow::TargetPolicy;
use crate::sink::preview_control::FollowControl;

/// Largest command payload accepted; bigger ones are rejected unread.
pub const MAX_COMMAND_BYTES: usize = 4096;

/// What a follow command asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FollowRequest {
    /// Follow whoever this policy picks (`id:7`, `point:0.5,0.5`, `largest`, ...).
    Target(TargetPolicy),
    /// Drop the lock and stop moving until a new target is set.
    Stop,
}

/// One command for one camera.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RemoteAction {
    /// `<camera>/follow/set`.
    Follow(FollowRequest),
    /// `<camera>/detect/set`: run detection (`ON`) or pause it (`OFF`).
    Detect(bool),
}

/// Applies commands to the running cameras.
pub trait CommandHandler: Send + Sync {
    /// Applies `action` to `camera`; returns the new state to report, or why it was refused.
    fn handle(&self, camera: &str, action: RemoteAction) -> Result<String, String>;
}

/// Follow requests waiting for the follower's next frame: the command thread puts, the
/// inference thread takes.
#[derive(Debug, Clone, Default)]
pub struct FollowInbox(Arc<Mutex<Vec<FollowRequest>>>);

impl FollowInbox {
    /// Queues a request for the next frame.
    pub fn put(&self, request: FollowRequest) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
    }

    /// The requests since the last call, oldest first.
    pub fn take(&self) -> Vec<FollowRequest> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The preview page's follow commands (`POST /api/follow`) join the same inbox.
impl FollowControl for FollowInbox {
    fn follow(&self, body: &[u8]) -> Result<String, String> {
        let RemoteAction::Follow(request) = parse_command("follow", body)? else {
            return Err("not a follow command".into());
        };
        self.put(request);
        Ok(match request {
            FollowRequest::Target(policy) => policy.to_string(),
            FollowRequest::Stop => "stop".into(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowPayload {
    target: String,
}

/// Parses the payload of `<camera>/<feature>/set`.
pub fn parse_command(feature: &str, payload: &[u8]) -> Result<RemoteAction, String> {
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "payload of {} bytes is larger than the {MAX_COMMAND_BYTES}-byte limit",
            payload.len()
        ));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| "payload is not UTF-8 text".to_string())?
        .trim();
    match feature {
        "follow" => parse_follow(text).map(RemoteAction::Follow),
        "detect" => parse_switch(text).map(RemoteAction::Detect),
        other => Err(format!(
            "unknown command `{other}/set`; commands are follow/set and detect/set"
        )),
    }
}

/// `{"target": "id:7" | "point:0.5,0.5" | "stop"}`, or the bare target string.
fn parse_follow(text: &str) -> Result<FollowRequest, String> {
    let target = if text.starts_with('{') {
        serde_json::from_str::<FollowPayload>(text)
            .map_err(|e| {
                format!("expected {{\"target\": \"id:7\" | \"point:X,Y\" | \"stop\"}}: {e}")
            })?
            .target
    } else {
        text.trim_matches('"').to_string()
    };
    if target.eq_ignore_ascii_case("stop") {
        return Ok(FollowRequest::Stop);
    }
    if target.is_empty() {
        return Err("empty target; expected id:N, point:X,Y, largest, center or stop".into());
    }
    target
        .parse::<TargetPolicy>()
        .map(FollowRequest::Target)
        .map_err(|e| match e {
            crate::Error::Option { reason, .. } => reason,
            other => other.to_string(),
        })
}

/// `ON`/`OFF` (any case), `true`/`false`, `1`/`0`.
fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim_matches('"').to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!(
            "expected ON or OFF, got `{}`",
            text.chars().take(40).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_payloads() {
        assert_eq!(
            parse_command("follow", br#"{"target": "id:7"}"#),
            Ok(RemoteAction::Follow(FollowRequest::Target(
                TargetPolicy::TrackId(7)
            )))
        );
        assert_eq!(
            parse_command("follow", b"point:0.5,0.25"),
            Ok(RemoteAction::Follow(FollowRequest::Target(
                TargetPolicy::Point { x: 0.5, y: 0.25 }
            )))
        );
        assert_eq!(
            parse_command("follow", br#"{"target":"STOP"}"#),
            Ok(RemoteAction::Follow(FollowRequest::Stop))
        );
        for bad in [
            &br#"{"target": 7}"#[..],
            br#"{"target": "id:x"}"#,
            br#"{"target": "id:1", "extra": 1}"#,
            b"{",
            b"",
            b"\xff\xfe",
        ] {
            assert!(parse_command("follow", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn detect_payloads_and_limits() {
        assert_eq!(
            parse_command("detect", b"ON"),
            Ok(RemoteAction::Detect(true))
        );
        assert_eq!(
            parse_command("detect", b" off\n"),
            Ok(RemoteAction::Detect(false))
        );
        let e = parse_command("detect", b"maybe").unwrap_err();
        assert!(e.contains("ON or OFF"), "{e}");
        let e = parse_command("zoom", b"ON").unwrap_err();
        assert!(e.contains("unknown command `zoom/set`"), "{e}");
        let huge = vec![b'a'; MAX_COMMAND_BYTES + 1];
        let e = parse_command("detect", &huge).unwrap_err();
        assert!(e.contains("limit"), "{e}");
    }
}
