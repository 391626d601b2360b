//! The preview server of a running `vigia track`, over real sockets: loopback by default, the
//! token on every route but `/healthz`, 404 for unknown paths, and hostile clients (silent,
//! oversized, a viewer that never reads, more than the connection limit) that neither stop
//! the pipeline nor its clean exit.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Starts `vigia track` on a synthetic scene with the preview server; returns the child, the
/// address it printed and a receiver of its remaining stderr lines.
fn start(
    serve: &str,
    token: Option<&str>,
    jsonl: &std::path::Path,
) -> (Child, SocketAddr, mpsc::Receiver<String>) {
    let mut cmd = Command::new(common::vigia_bin());
    cmd.args([
        "track",
        "synthetic://?scene=crossing&frames=80&fps=30&width=320&height=240",
        "--serve",
        serve,
        "--save-json",
    ])
    .arg(jsonl);
    if let Some(t) = token {
        cmd.args(["--serve-token", t]);
    }
    common::spawn_with_preview(cmd)
}

/// Sends `raw` and returns the status code of the answer.
fn status(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

fn get(addr: SocketAddr, target: &str, extra: &str) -> u16 {
    status(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes(),
    )
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn the_preview_of_a_running_pipeline_is_guarded_and_cannot_stall_it() {
    let dir = common::temp_dir("preview-e2e");
    let jsonl = dir.join("frames.jsonl");
    let (mut child, addr, _err) = start("0", Some("s3cret"), &jsonl);
    assert!(
        addr.ip().is_loopback(),
        "a bare port binds loopback: {addr}"
    );

    // Token on every route but /healthz; unknown paths 404 (behind the token).
    assert_eq!(get(addr, "/healthz", ""), 200);
    for path in ["/", "/stats.json", "/frame.jpg", "/stream.mjpg"] {
        assert_eq!(get(addr, path, ""), 401, "{path}");
        assert_eq!(get(addr, &format!("{path}?token=wrong"), ""), 401, "{path}");
    }
    assert_eq!(get(addr, "/stats.json?token=s3cret", ""), 200);
    assert_eq!(
        get(addr, "/stats.json", "Authorization: Bearer s3cret\r\n"),
        200
    );
    assert_eq!(get(addr, "/", "Authorization: Bearer s3cret\r\n"), 200);
    assert_eq!(get(addr, "/nope?token=s3cret", ""), 404);
    assert_eq!(get(addr, "/nope", ""), 401);
    assert_eq!(status(addr, b"POST /?token=s3cret HTTP/1.1\r\n\r\n"), 405);
    assert_eq!(status(addr, b"\x16\x03\x01garbage\r\n\r\n"), 400);

    // Hostile clients: an oversized head (cut off with 431), a silent connection and a stream
    // viewer that never reads (kept open until the end).
    let mut big = b"GET /?token=s3cret HTTP/1.1\r\n".to_vec();
    for i in 0..400 {
        big.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(40)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&big);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let silent = TcpStream::connect(addr).unwrap();
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .write_all(b"GET /stream.mjpg?token=s3cret HTTP/1.1\r\n\r\n")
        .unwrap();

    // The pipeline goes on meanwhile and finishes every frame, then exits on its own while the
    // stalled viewer is still connected.
    let before = lines(&jsonl);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(240) {
            let _ = child.kill();
            panic!("the run did not finish with hostile clients connected");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(before < 80, "the checks ran while frames were processed");
    assert_eq!(lines(&jsonl), 80);
    drop((silent, stalled));
}

#[test]
fn the_preview_binds_the_address_it_is_given() {
    let dir = common::temp_dir("preview-any");
    let jsonl = dir.join("frames.jsonl");
    let (mut child, addr, _err) = start("0.0.0.0:0", None, &jsonl);
    assert!(addr.ip().is_unspecified(), "{addr}");
    let local = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    assert_eq!(get(local, "/stats.json", ""), 200, "no token: open");
    let _ = child.kill();
    let _ = child.wait();
}
