//! Choosing whom to follow from the preview (`POST /api/follow`, what a click in the page sends),
//! over real sockets against a running `vigia follow` on vtest.avi: the token is required in a
//! header, bad commands are refused with the reason, and a good one reaches the follower.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Starts `vigia ARGS... --serve 127.0.0.1:0`; returns the child, the preview address and its
/// stderr lines.
fn start(args: &[&str]) -> (Child, SocketAddr, mpsc::Receiver<String>) {
    let mut cmd = Command::new(common::vigia_bin());
    cmd.args(args).args(["--serve", "127.0.0.1:0"]);
    common::spawn_with_preview(cmd)
}

/// Sends `raw`; returns the status code and the body of the answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

fn post(addr: SocketAddr, headers: &str, body: &str) -> (u16, String) {
    let raw = format!(
        "POST /api/follow HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, raw.as_bytes())
}

/// Waits for a stderr line containing `needle`; returns the lines seen.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = vec![];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "no stderr line with {needle:?} within {within:?}:\n{}",
        seen.join("\n")
    );
}

#[test]
fn a_follow_command_from_the_preview_reaches_the_follower() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !common::have_ffmpeg() {
        return;
    }
    let video = shared.join("data/video/vtest.avi");
    let (mut child, addr, rx) = start(&[
        "follow",
        video.to_str().unwrap(),
        "--serve-token",
        "s3cret",
        "--target",
        "id:999",
    ]);
    let auth = "Authorization: Bearer s3cret\r\n";
    // No token, or the token only in the query (what a cross-site form could send): refused.
    let (status, _) = post(addr, "", r#"{"target":"largest"}"#);
    assert_eq!(status, 401);
    let raw = "POST /api/follow?token=s3cret HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(exchange(addr, raw.as_bytes()).0, 401);
    let (status, _) = exchange(addr, b"GET /api/follow?token=s3cret HTTP/1.1\r\n\r\n");
    assert_eq!(status, 405);
    // Bad commands say why.
    let (status, body) = post(addr, auth, r#"{"target":"nowhere"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("point:X,Y"), "{body}");
    let (status, body) = post(addr, auth, r#"{"target":"point:1.5,0.2"}"#);
    assert_eq!(status, 400, "{body}");
    let big = format!("{{\"target\":\"{}\"}}", "x".repeat(2000));
    assert_eq!(post(addr, auth, &big).0, 413);
    let raw = format!("POST /api/follow HTTP/1.1\r\n{auth}\r\n");
    assert_eq!(exchange(addr, raw.as_bytes()).0, 411);
    // A good one is taken by the follower, which then locks onto the person it names.
    let (status, body) = post(addr, auth, r#"{"target":"largest"}"#);
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["target"], "largest");
    wait_for(&rx, "new target largest", Duration::from_secs(60));
    wait_for(&rx, "-> locked", Duration::from_secs(120));
    let (status, body) = post(addr, auth, "stop");
    assert_eq!((status, body.contains("\"stop\"")), (200, true), "{body}");
    wait_for(&rx, "follow: stopped", Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn without_a_follower_or_a_token_the_command_is_refused_with_the_reason() {
    let scene = "synthetic://?scene=crossing&frames=100000&fps=30&width=320&height=240";
    let (mut child, addr, _rx) = start(&["track", scene, "--serve-token", "t0k"]);
    let (status, body) = post(addr, "Authorization: Bearer t0k\r\n", "largest");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("vigia follow"), "{body}");
    let _ = child.kill();
    let _ = child.wait();
    let (mut child, addr, _rx) = start(&["track", scene]);
    let (status, body) = post(addr, "", "largest");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--serve-token"), "{body}");
    let _ = child.kill();
    let _ = child.wait();
}
