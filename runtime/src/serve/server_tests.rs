//! The server over real loopback sockets: routes, status codes, the token, limits, slow and
//! stalled clients, several cameras, and shutdown.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use image::RgbImage;
use serde_json::json;

use super::{PreviewConfig, PreviewFeed, PreviewServer};
use crate::sink::live_preview::LivePreview;
use crate::sink::preview_control::FollowControl;

/// Starts a server on a free loopback port with `cameras`.
fn server_with(token: Option<&str>, max_clients: usize, cameras: &[&str]) -> PreviewServer {
    PreviewServer::start(PreviewConfig {
        addr: "127.0.0.1:0".into(),
        token: token.map(String::from),
        max_clients,
        jpeg_quality: 80,
        cameras: cameras.iter().map(|c| c.to_string()).collect(),
    })
    .expect("preview server starts")
}

fn server(token: Option<&str>, max_clients: usize) -> PreviewServer {
    server_with(token, max_clients, &["cam"])
}

fn feed(srv: &PreviewServer) -> PreviewFeed {
    srv.feed("cam").expect("camera cam")
}

/// A client socket with generous timeouts, so that a broken server fails the test instead of
/// hanging it.
fn connect(srv: &PreviewServer) -> TcpStream {
    let c = TcpStream::connect(srv.local_addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

struct Response {
    status: u16,
    /// The head, lower-cased (HTTP header names are case-insensitive).
    head: String,
    body: Vec<u8>,
}

fn parse_response(buf: &[u8]) -> Response {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head,
        body: buf[end..].to_vec(),
    }
}

/// Sends raw bytes, then reads the response until the server closes.
fn exchange(srv: &PreviewServer, raw: &[u8]) -> Response {
    let mut c = connect(srv);
    let _ = c.write_all(raw);
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    parse_response(&buf)
}

fn get(srv: &PreviewServer, target: &str) -> Response {
    exchange(
        srv,
        format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

fn post(srv: &PreviewServer, target: &str, auth: Option<&str>, body: &str) -> Response {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    exchange(
        srv,
        format!(
            "POST {target} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// A gradient with a white box whose position depends on `i`.
fn pattern(w: u32, h: u32, i: u32) -> RgbImage {
    let x0 = (i * 7) % w.saturating_sub(16).max(1);
    RgbImage::from_fn(w, h, |x, y| {
        if x >= x0 && x < x0 + 16 && y >= h / 3 && y < h / 3 + 16 {
            image::Rgb([255, 255, 255])
        } else {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 90])
        }
    })
}

/// Polls `cond` for up to 10 s.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Reads one MJPEG stream part by part, undoing the chunked transfer coding.
struct PartReader {
    conn: TcpStream,
    /// Raw bytes received and not yet decoded.
    raw: Vec<u8>,
    /// Decoded body bytes not yet taken.
    buf: Vec<u8>,
    chunked: bool,
}

impl PartReader {
    fn read_more(&mut self) {
        let mut chunk = [0u8; 16384];
        let n = self.conn.read(&mut chunk).expect("stream read");
        assert!(n > 0, "stream closed early");
        self.raw.extend_from_slice(&chunk[..n]);
    }

    /// Moves decoded body bytes from `raw` to `buf`, reading at least one more.
    fn decode_more(&mut self) {
        if !self.chunked {
            if self.raw.is_empty() {
                self.read_more();
            }
            self.buf.append(&mut self.raw);
            return;
        }
        loop {
            if let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") {
                let size_line = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .expect("chunk size");
                assert!(size > 0, "stream ended");
                if self.raw.len() >= line_end + 2 + size + 2 {
                    let data = &self.raw[line_end + 2..line_end + 2 + size];
                    self.buf.extend_from_slice(data);
                    self.raw.drain(..line_end + 2 + size + 2);
                    return;
                }
            }
            self.read_more();
        }
    }

    fn fill_until(&mut self, pat: &[u8]) -> usize {
        loop {
            if let Some(p) = self.buf.windows(pat.len()).position(|w| w == pat) {
                return p + pat.len();
            }
            self.decode_more();
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            self.decode_more();
        }
        self.buf.drain(..n).collect()
    }

    fn open(srv: &PreviewServer, target: &str) -> PartReader {
        let mut conn = connect(srv);
        conn.write_all(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let mut r = PartReader {
            conn,
            raw: Vec::new(),
            buf: Vec::new(),
            chunked: false,
        };
        let end = loop {
            if let Some(p) = r.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            r.read_more();
        };
        let head = String::from_utf8_lossy(&r.raw[..end]).to_lowercase();
        r.raw.drain(..end);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains("content-type: multipart/x-mixed-replace; boundary=frame"),
            "{head}"
        );
        r.chunked = head.contains("transfer-encoding: chunked");
        assert_eq!(r.take(9), b"--frame\r\n");
        r
    }

    fn next_part(&mut self) -> Vec<u8> {
        let end = self.fill_until(b"\r\n\r\n");
        let head = String::from_utf8_lossy(&self.take(end)).to_string();
        assert!(head.contains("Content-Type: image/jpeg"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("part has a Content-Length");
        let jpeg = self.take(len);
        assert_eq!(self.take(11), b"\r\n--frame\r\n");
        jpeg
    }
}

#[test]
fn routes_and_status_codes() {
    let srv = server(None, 8);
    let page = get(&srv, "/");
    assert_eq!(page.status, 200);
    assert!(page.head.contains("content-type: text/html"));
    assert!(page
        .head
        .contains("content-security-policy: default-src 'self'"));
    assert!(page.head.contains("cache-control: no-store"));
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("<title>vigia live</title>"));
    assert!(html.contains(r#"<img id="stream""#));
    assert!(html.contains("stream.mjpg") && html.contains("stats.json"));
    assert!(html.contains("const TOKEN = null;"));
    assert!(
        html.contains(r#"const CAMERAS = [{"follow":false,"name":"cam"}];"#),
        "{html}"
    );

    let health = get(&srv, "/healthz");
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok"[..]));
    let stats = get(&srv, "/stats.json");
    assert_eq!((stats.status, stats.body.as_slice()), (200, &b"{}"[..]));
    assert_eq!(get(&srv, "/frame.jpg").status, 503);

    feed(&srv).publish(&pattern(64, 48, 0), json!({"fps": 12.5, "frame": 1}));
    for path in ["/stats.json", "/cameras/cam/stats.json"] {
        let stats = get(&srv, path);
        assert!(
            stats.head.contains("content-type: application/json"),
            "{path}"
        );
        let v: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
        assert_eq!(v, json!({"fps": 12.5, "frame": 1}), "{path}");
    }
    for path in ["/frame.jpg", "/cameras/cam/frame.jpg"] {
        let frame = get(&srv, path);
        assert_eq!(frame.status, 200, "{path}");
        assert!(frame.head.contains("content-type: image/jpeg"));
        let img = image::load_from_memory_with_format(&frame.body, image::ImageFormat::Jpeg)
            .expect("frame.jpg decodes");
        assert_eq!((img.width(), img.height()), (64, 48));
    }

    assert_eq!(get(&srv, "/missing").status, 404);
    assert_eq!(get(&srv, "/stats.json/x").status, 404);
    let unknown = get(&srv, "/cameras/door/stats.json");
    assert_eq!(unknown.status, 404);
    assert!(
        String::from_utf8_lossy(&unknown.body).contains(r#"no camera named "door"; cameras: cam"#)
    );
    let wrong_method = exchange(&srv, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(wrong_method.status, 405);
    assert!(
        wrong_method.head.contains("allow: get"),
        "{}",
        wrong_method.head
    );
    assert_eq!(
        exchange(&srv, b"DELETE /healthz HTTP/1.1\r\n\r\n").status,
        405
    );
    assert_eq!(
        exchange(&srv, b"GET /api/follow HTTP/1.1\r\n\r\n").status,
        405
    );
    for bad in [
        &b"garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"POST /api/follow HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    ] {
        let status = exchange(&srv, bad).status;
        assert!(
            (400..500).contains(&status),
            "{status} for {}",
            String::from_utf8_lossy(bad)
        );
    }
    // Tolerated forms: bare LF, absolute form, HTTP/1.0.
    assert_eq!(exchange(&srv, b"GET /healthz HTTP/1.1\n\n").status, 200);
    assert_eq!(
        exchange(&srv, b"GET http://robot/healthz HTTP/1.1\r\n\r\n").status,
        200
    );
    assert_eq!(
        exchange(&srv, b"GET /healthz?x=1 HTTP/1.0\r\n\r\n").status,
        200
    );
}

#[test]
fn token_guards_every_route_but_healthz() {
    let token = "s3cr/t+x";
    let srv = server(Some(token), 8);
    assert_eq!(get(&srv, "/healthz").status, 200);
    for path in [
        "/",
        "/stream.mjpg",
        "/frame.jpg",
        "/stats.json",
        "/api/cameras",
        "/cameras/cam/stream.mjpg",
        "/cameras/cam/stats.json",
    ] {
        let r = get(&srv, path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.head.contains("www-authenticate: bearer"));
    }
    assert_eq!(get(&srv, "/stats.json?token=wrong").status, 401);
    assert_eq!(get(&srv, "/stats.json?token=s3cr/t").status, 401);
    assert_eq!(get(&srv, "/stats.json?token=s3cr%2Ft%2Bx").status, 200);
    assert_eq!(get(&srv, "/stats.json?a=1&token=s3cr/t%2Bx").status, 200);
    let bearer = exchange(
        &srv,
        b"GET /stats.json HTTP/1.1\r\nauthorization: Bearer s3cr/t+x\r\n\r\n",
    );
    assert_eq!(bearer.status, 200);
    let wrong = exchange(
        &srv,
        b"GET /stats.json HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n",
    );
    assert_eq!(wrong.status, 401);
    let page = get(&srv, "/?token=s3cr%2Ft%2Bx");
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains(r#"const TOKEN = "s3cr/t+x";"#), "{html}");
    assert!(
        html.contains(r#"<img src="/cameras/cam/stream.mjpg?token=s3cr%2Ft%2Bx""#),
        "{html}"
    );
    assert_eq!(get(&srv, "/frame.jpg?token=s3cr%2Ft%2Bx").status, 503);
}

/// Records the follow commands it gets.
#[derive(Default)]
struct Commands(std::sync::Mutex<Vec<String>>);

impl FollowControl for Commands {
    fn follow(&self, body: &[u8]) -> Result<String, String> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let target = v["target"].as_str().ok_or("no target")?.to_string();
        self.0.lock().unwrap().push(target.clone());
        Ok(target)
    }
}

#[test]
fn follow_commands_need_the_token_in_a_header_and_reach_their_camera() {
    let open = server_with(None, 8, &["a", "b"]);
    let r = post(&open, "/api/follow", Some("x"), r#"{"target":"stop"}"#);
    assert_eq!(r.status, 403, "commands need a configured token");

    let srv = server_with(Some("tok"), 8, &["a", "b"]);
    let commands = Arc::new(Commands::default());
    assert!(srv.set_follow_control("b", commands.clone()));
    assert!(!srv.set_follow_control("nope", commands.clone()));
    let body = r#"{"target":"point:0.5,0.25"}"#;
    assert_eq!(post(&srv, "/api/cameras/b/follow", None, body).status, 401);
    assert_eq!(
        post(&srv, "/api/cameras/b/follow?token=tok", None, body).status,
        401,
        "a token in the query does not authorize a command"
    );
    let r = post(&srv, "/api/cameras/b/follow", Some("tok"), body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.head.contains("content-type: application/json"));
    assert_eq!(*commands.0.lock().unwrap(), ["point:0.5,0.25"]);
    // Camera a follows nobody; the short URL is camera a's.
    for path in ["/api/cameras/a/follow", "/api/follow"] {
        let r = post(&srv, path, Some("tok"), body);
        assert_eq!(r.status, 409, "{path}");
        assert!(String::from_utf8_lossy(&r.body).contains("vigia follow"));
    }
    assert_eq!(
        post(&srv, "/api/cameras/zz/follow", Some("tok"), body).status,
        404
    );
    let bad = post(&srv, "/api/cameras/b/follow", Some("tok"), "{nope");
    assert_eq!(bad.status, 400);
    let huge = "x".repeat(5000);
    assert_eq!(
        post(&srv, "/api/cameras/b/follow", Some("tok"), &huge).status,
        413
    );
    let chunked = exchange(
        &srv,
        b"POST /api/cameras/b/follow HTTP/1.1\r\nAuthorization: Bearer tok\r\n\
          Transfer-Encoding: chunked\r\n\r\n4\r\nstop\r\n0\r\n\r\n",
    );
    assert_eq!(chunked.status, 411);
    assert_eq!(
        commands.0.lock().unwrap().len(),
        1,
        "refused commands never arrive"
    );

    let list = get(&srv, "/api/cameras?token=tok");
    assert_eq!(list.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let cams = v["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 2);
    assert_eq!(cams[0]["name"], "a");
    assert_eq!(cams[0]["follow_url"], serde_json::Value::Null);
    assert_eq!(cams[1]["follow_url"], "/api/cameras/b/follow");
    assert_eq!(cams[1]["stream_url"], "/cameras/b/stream.mjpg");
    assert_eq!(cams[1]["frames"], 0);
}

#[test]
fn each_camera_streams_its_own_frames() {
    let srv = server_with(None, 8, &["left", "right side"]);
    let (left, right) = (srv.feed("left").unwrap(), srv.feed("right side").unwrap());
    assert!(srv.feed("other").is_none());
    left.publish(&pattern(32, 24, 0), json!({"frame": 1}));
    right.publish(&pattern(48, 40, 0), json!({"frame": 7}));
    let frame = |path: &str| {
        let r = get(&srv, path);
        assert_eq!(r.status, 200, "{path}");
        let img = image::load_from_memory(&r.body).unwrap();
        (img.width(), img.height())
    };
    assert_eq!(frame("/cameras/left/frame.jpg"), (32, 24));
    assert_eq!(frame("/cameras/right%20side/frame.jpg"), (48, 40));
    assert_eq!(frame("/frame.jpg"), (32, 24));
    let v: serde_json::Value =
        serde_json::from_slice(&get(&srv, "/cameras/right%20side/stats.json").body).unwrap();
    assert_eq!(v, json!({"frame": 7}));

    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                right.publish(&pattern(48, 40, i), json!({ "frame": i }));
                i += 1;
                thread::sleep(Duration::from_millis(15));
            }
        });
        let mut stream = PartReader::open(&srv, "/cameras/right%20side/stream.mjpg");
        assert!(right.wants_frames() && !left.wants_frames());
        for _ in 0..3 {
            let img = image::load_from_memory(&stream.next_part()).unwrap();
            assert_eq!((img.width(), img.height()), (48, 40));
        }
        let list: serde_json::Value =
            serde_json::from_slice(&get(&srv, "/api/cameras").body).unwrap();
        assert_eq!(list["cameras"][1]["viewers"], 1);
        assert_eq!(
            list["cameras"][1]["stream_url"],
            "/cameras/right%20side/stream.mjpg"
        );
        assert!(list["cameras"][1]["frames"].as_u64().unwrap() > 1);
        drop(stream);
        done.store(true, Ordering::SeqCst);
    });
    // The idle resend finds the closed connection.
    assert!(eventually(|| !right.wants_frames()));
}

#[test]
fn oversized_head_gets_431() {
    let srv = server(None, 8);
    let big = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(exchange(&srv, big.as_bytes()).status, 431);
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(6000)
    );
    assert_eq!(exchange(&srv, fits.as_bytes()).status, 200);
}

#[test]
fn slow_client_does_not_block_others_and_is_cut_off() {
    let srv = server(None, 8);
    let mut silent = connect(&srv);
    let mut partial = connect(&srv);
    partial.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let health = get(&srv, "/healthz");
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok"[..]));
    // After the 5 s head timeout both are closed (within the socket's 10 s read timeout).
    for c in [&mut silent, &mut partial] {
        let mut buf = Vec::new();
        c.read_to_end(&mut buf)
            .expect("server closes the slow connection");
        assert!(matches!(parse_response(&buf).status, 0 | 408));
    }
}

#[test]
fn connections_beyond_max_clients_get_503() {
    let srv = server(None, 2);
    let a = connect(&srv);
    let b = connect(&srv);
    assert!(eventually(|| get(&srv, "/healthz").status == 503));
    let busy = get(&srv, "/healthz");
    assert_eq!(busy.status, 503);
    assert!(busy.head.contains("retry-after"));
    drop((a, b));
    assert!(eventually(|| get(&srv, "/healthz").status == 200));
}

#[test]
fn stream_delivers_distinct_jpeg_parts() {
    let srv = server(None, 8);
    let feed = feed(&srv);
    assert!(!feed.wants_frames());
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                feed.publish(&pattern(160, 120, i), json!({ "frame": i }));
                i += 1;
                thread::sleep(Duration::from_millis(15));
            }
        });
        let mut stream = PartReader::open(&srv, "/stream.mjpg");
        assert!(feed.wants_frames());
        let mut parts: Vec<Vec<u8>> = Vec::new();
        while parts.len() < 4 {
            let jpeg = stream.next_part();
            let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
                .expect("part decodes");
            assert_eq!((img.width(), img.height()), (160, 120));
            assert!(!parts.contains(&jpeg), "a frame was sent twice");
            parts.push(jpeg);
        }
        drop(stream);
        done.store(true, Ordering::SeqCst);
    });
    assert!(eventually(|| !feed.wants_frames()));
}

#[test]
fn publisher_never_blocks_on_a_stalled_viewer() {
    let srv = server(None, 8);
    let feed = feed(&srv);
    let mut stalled = connect(&srv);
    stalled
        .write_all(b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
        .unwrap();
    assert!(eventually(|| feed.wants_frames()));
    // Incompressible frames fill the stalled socket's buffers quickly.
    let mut seed = 0x2545_f491_u32;
    let mut noise = RgbImage::from_fn(640, 480, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        image::Rgb([seed as u8, (seed >> 8) as u8, (seed >> 16) as u8])
    });
    for i in 0..200u32 {
        noise.put_pixel(i % 640, 0, image::Rgb([i as u8, 0, 0]));
        feed.publish(&noise, json!({ "frame": i }));
        if i % 20 == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    // Everyone else is still served while the stalled viewer stays connected.
    assert_eq!(get(&srv, "/healthz").status, 200);
    let mut live = PartReader::open(&srv, "/stream.mjpg");
    feed.publish(&noise, json!({ "frame": 200 }));
    let img = image::load_from_memory(&live.next_part()).unwrap();
    assert_eq!((img.width(), img.height()), (640, 480));
    assert_eq!(get(&srv, "/frame.jpg").status, 200);
    let stats: serde_json::Value = serde_json::from_slice(&get(&srv, "/stats.json").body).unwrap();
    assert_eq!(stats, json!({ "frame": 200 }));
    drop(live);
    // The stalled viewer, still connected and not reading, is cut off by the write deadline
    // once its socket buffers are full, and stops counting as a viewer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 201u32;
    while feed.wants_frames() && Instant::now() < deadline {
        noise.put_pixel(i % 640, 1, image::Rgb([i as u8, 0, 0]));
        feed.publish(&noise, json!({ "frame": i }));
        i += 1;
        thread::sleep(Duration::from_millis(10));
    }
    assert!(!feed.wants_frames(), "the stalled viewer was not cut off");
    drop(stalled);
}

#[test]
fn bind_errors_name_the_address_and_bare_ports_bind_loopback() {
    let first = server(None, 8);
    let taken = first.local_addr().to_string();
    let err = PreviewServer::start(PreviewConfig {
        addr: taken.clone(),
        ..PreviewConfig::default()
    })
    .err()
    .expect("second bind fails")
    .to_string();
    assert!(
        err.contains(&format!("--serve {taken}: address already in use")),
        "{err}"
    );
    for bare in [":0", "0"] {
        let srv = PreviewServer::start(PreviewConfig {
            addr: bare.into(),
            ..PreviewConfig::default()
        })
        .unwrap();
        assert!(srv.local_addr().ip().is_loopback(), "{bare}");
    }
    for (addr, max_clients, token, cameras) in [
        ("no such address", 8, None, 1),
        ("99999", 8, None, 1),
        ("", 8, None, 1),
        ("127.0.0.1:0", 0, None, 1),
        ("127.0.0.1:0", 8, Some(""), 1),
        ("127.0.0.1:0", 8, Some("two words"), 1),
        ("127.0.0.1:0", 8, None, 0),
    ] {
        let err = PreviewServer::start(PreviewConfig {
            addr: addr.into(),
            token: token.map(String::from),
            max_clients,
            jpeg_quality: 80,
            cameras: vec!["cam".to_string(); cameras],
        })
        .err()
        .unwrap_or_else(|| panic!("{addr:?} {max_clients} {token:?} must fail"))
        .to_string();
        assert!(err.contains(&format!("--serve {addr}")), "{err}");
    }
}

#[test]
fn dropping_the_server_ends_streams_and_frees_the_port() {
    let srv = server(None, 8);
    let feed = feed(&srv);
    let addr = srv.local_addr();
    let mut viewer = connect(&srv);
    viewer
        .write_all(b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
        .unwrap();
    assert!(eventually(|| feed.wants_frames()));
    drop(srv);
    let mut rest = Vec::new();
    viewer
        .read_to_end(&mut rest)
        .expect("the stream ends when the server stops");
    assert!(TcpStream::connect(addr).is_err(), "listener still open");
    // A feed kept by a pipeline after the server stopped takes frames without trouble.
    feed.publish(&pattern(8, 8, 0), json!({}));
}

#[test]
fn garbage_input_never_takes_the_server_down() {
    let srv = server(None, 8);
    let mut seed = 0x9e37_79b9_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for round in 0..40 {
        let len = (next() % 3000) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            bytes.extend_from_slice(b"\r\n\r\n");
        }
        // Send the bytes, then end the request so that incomplete heads end at once.
        let mut c = connect(&srv);
        let _ = c.write_all(&bytes);
        let _ = c.shutdown(Shutdown::Write);
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        let r = parse_response(&buf);
        assert!(
            r.status == 0 || (400..500).contains(&r.status),
            "status {}",
            r.status
        );
    }
    assert_eq!(get(&srv, "/healthz").status, 200);
    // Odd frames are published without trouble.
    let feed = feed(&srv);
    feed.publish(&RgbImage::new(0, 0), json!(null));
    feed.publish(&RgbImage::new(1, 1), json!([1, 2]));
    assert_eq!(get(&srv, "/frame.jpg").status, 200);
    assert_eq!(get(&srv, "/stats.json").body, b"[1,2]");
}
