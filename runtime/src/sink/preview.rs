//! Live preview server for headless boards (`--serve 127.0.0.1:8080`): an HTML page, an MJPEG
//! stream, the latest frame as JPEG and the latest stats as JSON, over a small HTTP/1.1 server
//! built on `std::net`; with `--serve-token`, `POST /api/follow` chooses whom a follower follows
//! (a click in the page; see [`super::preview_control`]).
//!
//! The publisher (the pipeline) never waits for viewers: [`PreviewServer::publish`] copies the
//! frame into a one-slot mailbox and returns; a dedicated encoder thread JPEG-encodes the newest
//! frame only while someone watches, and every stream connection sends the newest encoded frame
//! it has not sent yet, so a slow viewer skips frames instead of queueing them.
//!
//! Limits (this runs on robots): loopback unless an address is given, optional bearer token,
//! request heads of at most 8 KiB read within 5 s, a bounded number of concurrent connections,
//! one thread per connection, write timeouts on every response.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

use super::preview_control::{check_body_length, follow_response, FollowControl};
use crate::{Error, Result};

/// Largest accepted request head (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one response (or one stream part) may take to write before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `/frame.jpg` waits for the encoder to encode the newest frame.
const FRAME_WAIT: Duration = Duration::from_secs(2);
/// How often an idle stream connection checks whether its client went away.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// How long the accept thread reads a rejected client's request before answering 503.
const REJECT_READ: Duration = Duration::from_millis(100);
/// How long a closing connection drains what the client still sends (avoids resets).
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes drained from a closing connection.
const LINGER_BYTES: usize = 64 * 1024;

/// Headers sent with every response.
const COMMON_HEADERS: &str = "Cache-Control: no-store\r\nConnection: close\r\n\
    X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";

/// Settings of the preview server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewConfig {
    /// Address to bind: `"127.0.0.1:8080"`, `"0.0.0.0:8080"`, or a bare port (`":8080"`, `"8080"`) on loopback.
    pub addr: String,
    /// Token every route but `/healthz` requires (`?token=...` or `Authorization: Bearer ...`).
    pub token: Option<String>,
    /// Most concurrent connections; further ones get 503.
    pub max_clients: usize,
    /// JPEG quality of the stream, 1 to 100.
    pub jpeg_quality: u8,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        PreviewConfig {
            addr: "127.0.0.1:8080".to_string(),
            token: None,
            max_clients: 8,
            jpeg_quality: 80,
        }
    }
}

/// A running preview server; dropping it stops the server threads.
pub struct PreviewServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
    encoder: Option<JoinHandle<()>>,
}

/// The newest published frame, not yet taken by the encoder.
struct Mailbox {
    /// Newest published frame, if the encoder has not taken it yet.
    frame: Option<RgbImage>,
    /// Sequence number of the newest published frame (0: none yet).
    seq: u64,
    /// A buffer the encoder gave back, reused by the next publish.
    spare: Option<RgbImage>,
}

/// The newest encoded frame.
struct Latest {
    /// JPEG bytes of the newest successfully encoded frame.
    jpeg: Option<Arc<Vec<u8>>>,
    /// Sequence number of `jpeg` (0: none yet).
    seq: u64,
    /// Sequence number of the newest frame the encoder finished with, encoded or not.
    done: u64,
}

/// State shared by the publisher, the encoder and the connection threads.
struct Shared {
    mailbox: Mutex<Mailbox>,
    mailbox_cv: Condvar,
    latest: Mutex<Latest>,
    latest_cv: Condvar,
    stats: Mutex<Arc<serde_json::Value>>,
    /// Open `/stream.mjpg` connections.
    viewers: AtomicUsize,
    /// `/frame.jpg` requests waiting for an encoded frame.
    waiters: AtomicUsize,
    /// Open connections of any kind.
    clients: AtomicUsize,
    stop: AtomicBool,
    token: Option<String>,
    max_clients: usize,
    quality: u8,
    /// Where `POST /api/follow` commands go (`None`: the run follows nobody).
    follow: Mutex<Option<Arc<dyn FollowControl>>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Whether anyone wants encoded frames.
    fn wanted(&self) -> bool {
        self.viewers.load(Ordering::SeqCst) + self.waiters.load(Ordering::SeqCst) > 0
    }

    /// Wakes the encoder so that it encodes a pending frame for a new viewer.
    fn wake_encoder(&self) {
        let _mailbox = lock(&self.mailbox);
        self.mailbox_cv.notify_all();
    }
}

/// Locks a mutex, ignoring poisoning (the protected data stays consistent on every path).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on a condition variable for at most `timeout`, ignoring poisoning.
fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    match cv.wait_timeout(guard, timeout) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

/// Counts one holder in an atomic counter for as long as it lives.
struct Enter<'a>(&'a AtomicUsize);

impl<'a> Enter<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Enter(counter)
    }
}

impl Drop for Enter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One taken connection slot, given back when the connection thread ends.
struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PreviewServer {
    /// Binds the address and starts the accept and encoder threads.
    pub fn start(cfg: PreviewConfig) -> Result<PreviewServer> {
        let option = format!("--serve {}", cfg.addr);
        let invalid = |reason: String| Error::Option {
            option: option.clone(),
            reason,
        };
        if cfg.max_clients == 0 {
            return Err(invalid("max_clients must be at least 1".into()));
        }
        if let Some(t) = &cfg.token {
            if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    "the token must be non-empty, without spaces or control characters".into(),
                ));
            }
        }
        let addr = bind_address(&cfg.addr).map_err(&invalid)?;
        let listener =
            TcpListener::bind(addr.as_str()).map_err(|e| invalid(bind_reason(&addr, &e)))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| invalid(format!("cannot read the bound address: {e}")))?;
        let shared = Arc::new(Shared {
            mailbox: Mutex::new(Mailbox {
                frame: None,
                seq: 0,
                spare: None,
            }),
            mailbox_cv: Condvar::new(),
            latest: Mutex::new(Latest {
                jpeg: None,
                seq: 0,
                done: 0,
            }),
            latest_cv: Condvar::new(),
            stats: Mutex::new(Arc::new(serde_json::Value::Object(Default::default()))),
            viewers: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            clients: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            token: cfg.token.clone(),
            max_clients: cfg.max_clients,
            quality: cfg.jpeg_quality.clamp(1, 100),
            follow: Mutex::new(None),
        });
        let enc_shared = shared.clone();
        let encoder = thread::Builder::new()
            .name("vigia-preview-jpeg".into())
            .spawn(move || encoder_loop(&enc_shared))
            .map_err(|e| invalid(format!("cannot start the encoder thread: {e}")))?;
        let acc_shared = shared.clone();
        let acceptor = thread::Builder::new()
            .name("vigia-preview-accept".into())
            .spawn(move || accept_loop(listener, acc_shared));
        let acceptor = match acceptor {
            Ok(h) => h,
            Err(e) => {
                shared.stop.store(true, Ordering::SeqCst);
                shared.wake_encoder();
                let _ = encoder.join();
                return Err(invalid(format!("cannot start the accept thread: {e}")));
            }
        };
        Ok(PreviewServer {
            shared,
            local_addr,
            acceptor: Some(acceptor),
            encoder: Some(encoder),
        })
    }

    /// The address the server listens on (with the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Publishes the newest annotated frame and a stats JSON object; never blocks the caller.
    pub fn publish(&self, frame: &RgbImage, stats: serde_json::Value) {
        let s = &*self.shared;
        let old_stats = std::mem::replace(&mut *lock(&s.stats), Arc::new(stats));
        let mut mailbox = lock(&s.mailbox);
        let reused = mailbox.frame.take().or_else(|| mailbox.spare.take());
        let buf = match reused {
            Some(mut b) if b.dimensions() == frame.dimensions() && b.len() == frame.len() => {
                b.copy_from_slice(frame);
                b
            }
            _ => frame.clone(),
        };
        mailbox.frame = Some(buf);
        mailbox.seq += 1;
        if s.wanted() {
            s.mailbox_cv.notify_all();
        }
        drop(mailbox);
        drop(old_stats);
    }

    /// Sends `POST /api/follow` commands (a click on a person in the page) to `control`.
    pub fn set_follow_control(&self, control: Arc<dyn FollowControl>) {
        *lock(&self.shared.follow) = Some(control);
    }

    /// Whether any client is watching the stream or waiting for a frame (so callers can skip drawing).
    pub fn has_viewers(&self) -> bool {
        self.shared.wanted()
    }
}

impl Drop for PreviewServer {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::SeqCst);
        s.wake_encoder();
        {
            let _latest = lock(&s.latest);
            s.latest_cv.notify_all();
        }
        // Wake the blocking accept with a connection of our own.
        let woke =
            TcpStream::connect_timeout(&wake_address(self.local_addr), Duration::from_secs(1))
                .is_ok();
        if let Some(h) = self.encoder.take() {
            let _ = h.join();
        }
        if let Some(h) = self.acceptor.take() {
            if woke {
                let _ = h.join();
            }
        }
    }
}

/// Turns the `--serve` value into a bindable address; a bare port binds loopback.
fn bind_address(addr: &str) -> std::result::Result<String, String> {
    let a = addr.trim();
    if a.is_empty() {
        return Err("empty address (use e.g. 127.0.0.1:8080)".into());
    }
    let port = a.strip_prefix(':').unwrap_or(a);
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return match port.parse::<u16>() {
            Ok(p) => Ok(format!("127.0.0.1:{p}")),
            Err(_) => Err(format!("port {port} is out of range")),
        };
    }
    Ok(a.to_string())
}

/// Says why binding failed, in words a user can act on.
fn bind_reason(addr: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            let low_port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p < 1024);
            if low_port {
                "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".into()
            } else {
                "permission denied".into()
            }
        }
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        _ => e.to_string(),
    }
}

/// The address Drop connects to so that the accept thread wakes up.
fn wake_address(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// Encodes the newest frame whenever someone wants it, until the server stops.
fn encoder_loop(s: &Shared) {
    let mut capacity = 0usize;
    loop {
        let (frame, seq) = {
            let mut mailbox = lock(&s.mailbox);
            loop {
                if s.stopped() {
                    return;
                }
                if mailbox.frame.is_some() && s.wanted() {
                    break;
                }
                mailbox = wait_timeout(&s.mailbox_cv, mailbox, Duration::from_secs(1));
            }
            (mailbox.frame.take(), mailbox.seq)
        };
        let Some(frame) = frame else { continue };
        let mut jpeg = Vec::with_capacity(capacity);
        let encoded = catch_unwind(AssertUnwindSafe(|| {
            JpegEncoder::new_with_quality(&mut jpeg, s.quality).encode_image(&frame)
        }));
        let ok = matches!(encoded, Ok(Ok(()))) && !jpeg.is_empty();
        capacity = capacity.max(jpeg.len());
        {
            let mut latest = lock(&s.latest);
            if ok {
                latest.jpeg = Some(Arc::new(jpeg));
                latest.seq = seq;
            }
            latest.done = seq;
        }
        s.latest_cv.notify_all();
        let mut mailbox = lock(&s.mailbox);
        if mailbox.spare.is_none() {
            mailbox.spare = Some(frame);
        }
    }
}

/// Accepts connections, hands each to its own thread, turns away those beyond `max_clients`.
fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    for conn in listener.incoming() {
        if s.stopped() {
            break;
        }
        let stream = match conn {
            Ok(stream) => stream,
            Err(_) => {
                // Out of file descriptors or an aborted handshake: do not spin.
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if s.clients.fetch_add(1, Ordering::SeqCst) >= s.max_clients {
            s.clients.fetch_sub(1, Ordering::SeqCst);
            reject_busy(stream);
            continue;
        }
        let slot = ClientSlot(s.clone());
        // If the thread cannot start, the closure (slot and stream) is dropped: slot given back.
        let _ = thread::Builder::new()
            .name("vigia-preview-conn".into())
            .spawn(move || {
                let slot = slot;
                let _ = catch_unwind(AssertUnwindSafe(|| handle_connection(&slot.0, stream)));
            });
    }
}

/// Answers 503 to a connection beyond the limit, without giving it a thread.
fn reject_busy(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(REJECT_READ));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
    let body = b"busy: too many preview clients\n";
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\n{COMMON_HEADERS}\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// More than [`MAX_HEAD`] bytes without the end of the head.
    TooLarge,
    /// The head did not arrive within [`HEAD_TIMEOUT`].
    Timeout,
    /// The client closed or the socket failed.
    Closed,
}

/// Reads one request head (up to and including the empty line) within the time limit.
fn read_head(stream: &mut TcpStream) -> std::result::Result<(Vec<u8>, Vec<u8>), HeadError> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Timeout);
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Closed);
        }
        let room = (MAX_HEAD + 1 - head.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => {
                head.extend_from_slice(&chunk[..n]);
                if let Some(end) = head_end(&head) {
                    if end > MAX_HEAD {
                        return Err(HeadError::TooLarge);
                    }
                    let rest = head.split_off(end);
                    return Ok((head, rest));
                }
                if head.len() > MAX_HEAD {
                    return Err(HeadError::TooLarge);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::Timeout)
            }
            Err(_) => return Err(HeadError::Closed),
        }
    }
}

/// Byte length of the head (through its empty line), once complete; leading empty lines are skipped.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut seen_content = false;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if seen_content {
                return Some(i + 1);
            }
        } else {
            seen_content = true;
        }
        line_start = i + 1;
    }
    None
}

/// The parts of a request the server looks at.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    query: String,
    bearer: Option<String>,
    content_length: Option<usize>,
}

/// Parses a request head; `None` when it is malformed.
fn parse_request(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let request_line = lines.next()?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || method.len() > 16
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
        || target.is_empty()
        || target.len() > MAX_HEAD
        || !target.bytes().all(|b| b.is_ascii_graphic())
    {
        return None;
    }
    // Absolute form (`GET http://host/path`), as proxies send it.
    let origin = if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else if target.starts_with('/') {
        target
    } else {
        return None;
    };
    let origin = origin.split('#').next().unwrap_or(origin);
    let (path, query) = origin.split_once('?').unwrap_or((origin, ""));
    let mut bearer = None;
    let mut content_length = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.trim().parse::<usize>().ok()?);
        }
        if name.eq_ignore_ascii_case("authorization") {
            if let Some((scheme, cred)) = value.trim().split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") {
                    bearer = Some(cred.trim().to_string());
                }
            }
        }
    }
    Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        bearer,
        content_length,
    })
}

/// Whether a byte may appear in a header name (RFC 9110 `tchar`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The percent-decoded value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v))
}

/// Decodes `%XX` escapes and `+`; `None` for invalid escapes or UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Compares secrets without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request carries the configured token (always true without one).
fn authorized(token: Option<&str>, req: &Request) -> bool {
    let Some(token) = token else { return true };
    let by_query = query_param(&req.query, "token")
        .is_some_and(|t| same_secret(t.as_bytes(), token.as_bytes()));
    let by_header = req
        .bearer
        .as_deref()
        .is_some_and(|t| same_secret(t.as_bytes(), token.as_bytes()));
    by_query || by_header
}

/// Reads, routes and answers one request, then closes the connection.
fn handle_connection(s: &Shared, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (head, read_ahead) = match read_head(&mut stream) {
        Ok(read) => read,
        Err(HeadError::TooLarge) => {
            let _ = respond_text(&mut stream, 431, "request head larger than 8 KiB");
            return linger_close(stream);
        }
        Err(HeadError::Timeout) => {
            let _ = respond_text(&mut stream, 408, "request head not received within 5 s");
            return linger_close(stream);
        }
        Err(HeadError::Closed) => return,
    };
    let (status, extra, body): (u16, &str, &[u8]) = match route_request(&head, s.token.as_deref()) {
        Route::Page => return finish(serve_page(s, &mut stream), stream),
        Route::Stream => return finish(serve_stream(s, &mut stream), stream),
        Route::Frame => return finish(serve_frame(s, &mut stream), stream),
        Route::Stats => return finish(serve_stats(s, &mut stream), stream),
        Route::Follow => return finish(serve_follow(s, &mut stream, &head, read_ahead), stream),
        Route::Health => (200, "", b"ok"),
        Route::Refuse(400) => (400, "", b"malformed request\n"),
        Route::Refuse(405) if head_path_is(&head, FOLLOW_PATH) => (
            405,
            "Allow: POST\r\n",
            b"method not allowed: POST a follow command\n",
        ),
        Route::Refuse(405) => (405, "Allow: GET\r\n", b"method not allowed\n"),
        Route::Refuse(403) => (
            403,
            "",
            b"follow commands need --serve-token, sent as Authorization: Bearer ...\n",
        ),
        Route::Refuse(401) => (
            401,
            "WWW-Authenticate: Bearer realm=\"vigia\"\r\n",
            b"unauthorized: add ?token=... or Authorization: Bearer ...\n",
        ),
        Route::Refuse(status) => (status, "", b"not found\n"),
    };
    let _ = respond(
        &mut stream,
        status,
        "text/plain; charset=utf-8",
        extra,
        body,
    );
    linger_close(stream);
}

/// Whether the request head asks for `path`.
fn head_path_is(head: &[u8], path: &str) -> bool {
    parse_request(head).is_some_and(|r| r.path == path)
}

/// `POST /api/follow`: reads the body (its start may have come with the head) and hands it to
/// the run's follow control.
fn serve_follow(
    s: &Shared,
    stream: &mut TcpStream,
    head: &[u8],
    mut body: Vec<u8>,
) -> io::Result<()> {
    let length = parse_request(head).and_then(|r| r.content_length);
    let length = match check_body_length(length) {
        Ok(n) => n,
        Err((status, message)) => return respond_text(stream, status, message),
    };
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut chunk = [0u8; 1024];
    while body.len() < length {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return respond_text(stream, 408, "follow command body not received within 5 s");
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return respond_text(stream, 408, "follow command body not received within 5 s")
            }
            Err(e) => return Err(e),
        }
    }
    body.truncate(length);
    let control = lock(&s.follow).clone();
    let (status, reply) = follow_response(control.as_deref(), &body);
    respond(stream, status, "application/json", "", reply.as_bytes())
}

/// Ends a served route: the result only matters to the client, which is gone on error.
fn finish(_served: io::Result<()>, stream: TcpStream) {
    linger_close(stream);
}

/// Path of the follow command.
const FOLLOW_PATH: &str = "/api/follow";

/// Where a request goes: one of the routes, or the status it is refused with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the viewer page.
    Page,
    /// `GET /stream.mjpg`: the MJPEG stream.
    Stream,
    /// `GET /frame.jpg`: the newest frame.
    Frame,
    /// `GET /stats.json`: the newest stats.
    Stats,
    /// `GET /healthz`: liveness, open without the token.
    Health,
    /// `POST /api/follow` with the token in an `Authorization: Bearer` header: whom to follow.
    Follow,
    /// Refused: 400 malformed, 405 wrong method, 401 missing or wrong token, 403 follow commands
    /// without a configured token, 404 unknown path.
    Refuse(u16),
}

/// Routes one complete request head (no I/O); `token` is the configured `--serve-token`.
pub fn route_request(head: &[u8], token: Option<&str>) -> Route {
    let Some(req) = parse_request(head) else {
        return Route::Refuse(400);
    };
    if req.path == FOLLOW_PATH {
        // A command: only with a configured token, and only from a header (a cross-site form
        // can carry a query string, not a header).
        return match (req.method.as_str(), token) {
            ("POST", None) => Route::Refuse(403),
            ("POST", Some(t)) => {
                let by_header = req
                    .bearer
                    .as_deref()
                    .is_some_and(|b| same_secret(b.as_bytes(), t.as_bytes()));
                if by_header {
                    Route::Follow
                } else {
                    Route::Refuse(401)
                }
            }
            _ => Route::Refuse(405),
        };
    }
    if req.method != "GET" {
        return Route::Refuse(405);
    }
    if req.path == "/healthz" {
        return Route::Health;
    }
    if !authorized(token, &req) {
        return Route::Refuse(401);
    }
    match req.path.as_str() {
        "/" => Route::Page,
        "/stream.mjpg" => Route::Stream,
        "/frame.jpg" => Route::Frame,
        "/stats.json" => Route::Stats,
        _ => Route::Refuse(404),
    }
}

/// Closes the sending side and drains what the client still sends, so it reads the response
/// instead of a connection reset.
fn linger_close(mut stream: TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    let mut buf = [0u8; 4096];
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Reason phrase of the status codes this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes a whole response with a body of known length.
fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra_headers: &str,
    body: &[u8],
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {extra_headers}{COMMON_HEADERS}\r\n",
        reason(status),
        body.len()
    );
    let deadline = Instant::now() + WRITE_TIMEOUT;
    write_all_by(stream, head.as_bytes(), deadline)?;
    write_all_by(stream, body, deadline)
}

/// Writes a short plain-text response.
fn respond_text(stream: &mut TcpStream, status: u16, message: &str) -> io::Result<()> {
    let body = format!("{message}\n");
    respond(
        stream,
        status,
        "text/plain; charset=utf-8",
        "",
        body.as_bytes(),
    )
}

/// Writes all of `data` before `deadline`, or fails with `TimedOut`.
fn write_all_by(stream: &mut TcpStream, mut data: &[u8], deadline: Instant) -> io::Result<()> {
    while !data.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `GET /`: the viewer page, with the token (if any) carried into its stream and stats URLs.
fn serve_page(s: &Shared, stream: &mut TcpStream) -> io::Result<()> {
    let token = match &s.token {
        // JSON string, with `<` escaped so that it cannot close the script element.
        Some(t) => serde_json::Value::String(t.clone())
            .to_string()
            .replace('<', "\\u003c"),
        None => "null".to_string(),
    };
    // The no-script fallback gets the token in its URL; percent-encoding leaves nothing to escape in HTML.
    let stream_url = match &s.token {
        Some(t) => format!("/stream.mjpg?token={}", percent_encode(t)),
        None => "/stream.mjpg".to_string(),
    };
    let page = PAGE
        .replace("__VIGIA_TOKEN__", &token)
        .replace("__VIGIA_STREAM_URL__", &stream_url);
    respond(
        stream,
        200,
        "text/html; charset=utf-8",
        "Content-Security-Policy: default-src 'self'; script-src 'unsafe-inline'; \
         style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'\r\n",
        page.as_bytes(),
    )
}

/// `GET /stats.json`: the latest stats object (`{}` before the first frame).
fn serve_stats(s: &Shared, stream: &mut TcpStream) -> io::Result<()> {
    let stats = lock(&s.stats).clone();
    let body = serde_json::to_vec(&*stats).unwrap_or_else(|_| b"{}".to_vec());
    respond(stream, 200, "application/json", "", &body)
}

/// `GET /frame.jpg`: the newest frame as one JPEG (503 before the first frame).
fn serve_frame(s: &Shared, stream: &mut TcpStream) -> io::Result<()> {
    let jpeg = {
        let _waiting = Enter::new(&s.waiters);
        let published = {
            let mailbox = lock(&s.mailbox);
            s.mailbox_cv.notify_all();
            mailbox.seq
        };
        if published == 0 {
            None
        } else {
            let deadline = Instant::now() + FRAME_WAIT;
            let mut latest = lock(&s.latest);
            while latest.done < published && !s.stopped() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                latest = wait_timeout(&s.latest_cv, latest, left);
            }
            latest.jpeg.clone()
        }
    };
    match jpeg {
        Some(jpeg) => respond(stream, 200, "image/jpeg", "", &jpeg),
        None => respond_text(stream, 503, "no frame yet"),
    }
}

/// What a stream connection got while waiting.
enum Next {
    /// A newer encoded frame.
    Frame(u64, Arc<Vec<u8>>),
    /// Nothing new for a while.
    Idle,
    /// The server is stopping.
    Stop,
}

/// Waits up to `timeout` for an encoded frame newer than `last`.
fn next_frame(s: &Shared, last: u64, timeout: Duration) -> Next {
    let deadline = Instant::now() + timeout;
    let mut latest = lock(&s.latest);
    loop {
        if s.stopped() {
            return Next::Stop;
        }
        if latest.seq > last {
            if let Some(jpeg) = &latest.jpeg {
                return Next::Frame(latest.seq, jpeg.clone());
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Next::Idle;
        }
        latest = wait_timeout(&s.latest_cv, latest, left);
    }
}

/// Whether the client of an idle stream has closed its side (or the socket failed).
fn peer_gone(stream: &mut TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut buf = [0u8; 512];
    let gone = match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    };
    stream.set_nonblocking(false).is_err() || gone
}

/// `GET /stream.mjpg`: an MJPEG stream of the newest frames until the client goes away.
fn serve_stream(s: &Shared, stream: &mut TcpStream) -> io::Result<()> {
    let _viewer = Enter::new(&s.viewers);
    s.wake_encoder();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
         {COMMON_HEADERS}\r\n--frame\r\n"
    );
    write_all_by(stream, head.as_bytes(), Instant::now() + WRITE_TIMEOUT)?;
    let mut last = 0;
    loop {
        match next_frame(s, last, IDLE_CHECK) {
            Next::Stop => return Ok(()),
            Next::Idle => {
                if peer_gone(stream) {
                    return Ok(());
                }
            }
            Next::Frame(seq, jpeg) => {
                last = seq;
                let part = format!(
                    "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    jpeg.len()
                );
                let deadline = Instant::now() + WRITE_TIMEOUT;
                write_all_by(stream, part.as_bytes(), deadline)?;
                write_all_by(stream, &jpeg, deadline)?;
                // Ending each part with the next boundary lets browsers show it at once.
                write_all_by(stream, b"\r\n--frame\r\n", deadline)?;
            }
        }
    }
}

/// The viewer page; `__VIGIA_TOKEN__` becomes a JSON string or `null`, `__VIGIA_STREAM_URL__`
/// the stream URL for browsers without JavaScript.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vigia live</title>
<style>
  :root { color-scheme: dark; }
  * { box-sizing: border-box; }
  body { margin: 0; background: #101214; color: #d8dde3; font: 14px/1.4 system-ui, sans-serif; }
  header { display: flex; align-items: center; gap: 14px; padding: 10px 16px;
           background: #181b1f; border-bottom: 1px solid #2a2f35; }
  h1 { margin: 0; font-size: 18px; font-weight: 600; letter-spacing: .02em; }
  #state { display: inline-flex; align-items: center; gap: 6px; color: #9aa4ae; }
  #state::before { content: ""; width: 9px; height: 9px; border-radius: 50%; background: #777; }
  #state.live::before { background: #3ccf6e; }
  #state.down::before { background: #e5484d; }
  #summary { margin-left: auto; color: #9aa4ae; font-variant-numeric: tabular-nums; white-space: pre; }
  #summary b { color: #e8edf2; font-weight: 600; }
  main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; align-items: flex-start; }
  #view { flex: 1 1 420px; min-width: 0; }
  #stream { display: block; width: 100%; height: auto; min-height: 120px; background: #000;
            border: 1px solid #2a2f35; border-radius: 4px; }
  #panel { flex: 0 1 260px; min-width: 220px; background: #181b1f; border: 1px solid #2a2f35;
           border-radius: 4px; padding: 8px 10px; }
  #panel h2 { margin: 0 0 6px; font-size: 13px; font-weight: 600; color: #9aa4ae;
              text-transform: uppercase; letter-spacing: .06em; }
  table { width: 100%; border-collapse: collapse; }
  th, td { padding: 3px 6px; border-bottom: 1px solid #23282e; vertical-align: top; }
  th { text-align: left; font-weight: normal; color: #aab3bd; }
  td { text-align: right; color: #f0f3f6; font-variant-numeric: tabular-nums; word-break: break-word; }
  tr.group th { color: #6cb6ff; font-weight: 600; padding-top: 8px; }
  .empty { color: #777; }
  #follow { margin-bottom: 10px; }
  #follow p { margin: 4px 0; color: #9aa4ae; }
  #follow-reply.ok { color: #3ccf6e; }
  #follow-reply.err { color: #e5484d; }
  #follow button { background: #2a2f35; color: #e8edf2; border: 1px solid #3a4048; border-radius: 3px;
                   padding: 4px 10px; cursor: pointer; }
  #follow button:disabled { opacity: .5; cursor: default; }
  #stream.clickable { cursor: crosshair; }
</style>
</head>
<body>
<header>
  <h1>vigia live</h1>
  <span id="state">connecting</span>
  <span id="summary"></span>
</header>
<main>
  <section id="view">
    <img id="stream" alt="live stream">
    <noscript><img src="__VIGIA_STREAM_URL__" alt="live stream"></noscript>
  </section>
  <aside id="panel">
    <section id="follow">
      <h2>follow</h2>
      <p id="follow-hint">click a person in the picture to follow them; Esc stops</p>
      <button id="follow-stop" type="button">Stop following</button>
      <p id="follow-reply"></p>
    </section>
    <h2>stats</h2>
    <table><tbody id="stats"><tr><th class="empty">waiting for the first frame</th></tr></tbody></table>
  </aside>
</main>
<script>
"use strict";
const TOKEN = __VIGIA_TOKEN__;
function withToken(path) {
  if (!TOKEN) return path;
  return path + (path.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(TOKEN);
}
function fmt(v) {
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2);
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (v === null || v === undefined) return "\u2013";
  if (Array.isArray(v)) {
    if (v.every(x => x === null || typeof x !== "object")) return v.length ? v.map(fmt).join(", ") : "none";
    return v.length + (v.length === 1 ? " item" : " items");
  }
  return String(v);
}
function label(k) { return String(k).replace(/_/g, " "); }
function flatten(obj, prefix, depth, out) {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? prefix + "." + k : k;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      out.push({ key: key, name: label(k), depth: depth, group: true });
      flatten(v, key, depth + 1, out);
    } else {
      out.push({ key: key, name: label(k), depth: depth, value: fmt(v) });
    }
  }
  return out;
}
function render(stats) {
  const body = document.getElementById("stats");
  const rows = (stats && typeof stats === "object" && !Array.isArray(stats))
    ? flatten(stats, "", 0, []) : [{ key: "value", name: "value", depth: 0, value: fmt(stats) }];
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.key = r.key;
    const th = document.createElement("th");
    th.textContent = r.name;
    th.style.paddingLeft = (6 + 14 * r.depth) + "px";
    tr.appendChild(th);
    if (r.group) {
      tr.className = "group";
      th.colSpan = 2;
    } else {
      const td = document.createElement("td");
      td.textContent = r.value;
      tr.appendChild(td);
    }
    frag.appendChild(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.className = "empty";
    th.textContent = "waiting for the first frame";
    tr.appendChild(th);
    frag.appendChild(tr);
  }
  body.replaceChildren(frag);
  const summary = document.getElementById("summary");
  summary.replaceChildren();
  const fps = stats && stats.fps, frame = stats && (stats.frame !== undefined ? stats.frame : stats.frame_index);
  function part(before, value, after) {
    const b = document.createElement("b");
    b.textContent = fmt(value);
    summary.append(before, b, after);
  }
  if (typeof fps === "number") part("", fps, " fps   ");
  if (typeof frame === "number") part("frame ", frame, "");
}
function setState(text, cls) {
  const el = document.getElementById("state");
  el.textContent = text;
  el.className = cls;
}
let busy = false, down = false;
async function poll() {
  if (busy) return;
  busy = true;
  try {
    const r = await fetch(withToken("/stats.json"), { cache: "no-store" });
    if (r.status === 401) throw new Error("unauthorized: open the page with ?token=...");
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    setState("live", "live");
    // Back after an outage (server restarted): the old stream is dead, open a new one.
    if (down) startStream();
    down = false;
  } catch (e) {
    setState("offline (" + e.message + ")", "down");
    down = true;
  } finally {
    busy = false;
  }
}
const img = document.getElementById("stream");
let retry = 0;
function startStream() {
  img.src = withToken("/stream.mjpg?t=" + Date.now());
}
img.addEventListener("error", () => {
  clearTimeout(retry);
  retry = setTimeout(startStream, 1000);
});
// Follow: a click on the picture asks to follow whoever stands at that point (a normalized
// `point:X,Y`); the follower keeps them by their look. Needs the token, sent as a header.
const followReply = document.getElementById("follow-reply");
const followStop = document.getElementById("follow-stop");
function showReply(text, cls) {
  followReply.textContent = text;
  followReply.className = cls;
}
async function sendFollow(target) {
  if (!TOKEN) return;
  try {
    const r = await fetch("/api/follow", {
      method: "POST",
      cache: "no-store",
      headers: { "Authorization": "Bearer " + TOKEN, "Content-Type": "application/json" },
      body: JSON.stringify({ target: target }),
    });
    const j = await r.json().catch(() => ({}));
    if (r.ok) showReply(j.target === "stop" ? "stopped" : "following " + j.target, "ok");
    else showReply(j.error || ("refused (" + r.status + ")"), "err");
  } catch (e) {
    showReply("no answer: " + e.message, "err");
  }
}
if (TOKEN) {
  img.classList.add("clickable");
  img.addEventListener("click", ev => {
    const r = img.getBoundingClientRect();
    if (!r.width || !r.height) return;
    const x = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
    const y = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
    sendFollow("point:" + x.toFixed(3) + "," + y.toFixed(3));
  });
  followStop.addEventListener("click", () => sendFollow("stop"));
  document.addEventListener("keydown", ev => { if (ev.key === "Escape") sendFollow("stop"); });
} else {
  followStop.disabled = true;
  document.getElementById("follow-hint").textContent =
    "to choose a person by clicking, run vigia follow with --serve-token";
}
// Start the endless stream after the page has loaded, so that "load" fires.
window.addEventListener("load", () => setTimeout(startStream, 0));
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Starts a server on a free loopback port.
    fn server(token: Option<&str>, max_clients: usize) -> PreviewServer {
        PreviewServer::start(PreviewConfig {
            addr: "127.0.0.1:0".into(),
            token: token.map(String::from),
            max_clients,
            jpeg_quality: 80,
        })
        .expect("preview server starts")
    }

    /// A client socket with generous timeouts, so that a broken server fails the test instead of hanging it.
    fn connect(srv: &PreviewServer) -> TcpStream {
        let c = TcpStream::connect(srv.local_addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    struct Response {
        status: u16,
        head: String,
        body: Vec<u8>,
    }

    fn parse_response(buf: &[u8]) -> Response {
        let end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(buf.len(), |p| p + 4);
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
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

    /// Reads one MJPEG stream from its response head through `parts` JPEG parts.
    struct PartReader {
        conn: TcpStream,
        buf: Vec<u8>,
    }

    impl PartReader {
        fn fill_until(&mut self, pat: &[u8]) -> usize {
            loop {
                if let Some(p) = self.buf.windows(pat.len()).position(|w| w == pat) {
                    return p + pat.len();
                }
                let mut chunk = [0u8; 8192];
                let n = self.conn.read(&mut chunk).expect("stream read");
                assert!(n > 0, "stream closed early");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        fn take(&mut self, n: usize) -> Vec<u8> {
            while self.buf.len() < n {
                let mut chunk = [0u8; 8192];
                let got = self.conn.read(&mut chunk).expect("stream read");
                assert!(got > 0, "stream closed early");
                self.buf.extend_from_slice(&chunk[..got]);
            }
            self.buf.drain(..n).collect()
        }

        fn open(srv: &PreviewServer, target: &str) -> PartReader {
            let mut conn = connect(srv);
            conn.write_all(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes())
                .unwrap();
            let mut r = PartReader {
                conn,
                buf: Vec::new(),
            };
            let end = r.fill_until(b"\r\n\r\n");
            let head = String::from_utf8_lossy(&r.take(end)).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.contains("Content-Type: multipart/x-mixed-replace; boundary=frame"),
                "{head}"
            );
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
        assert!(page.head.contains("Content-Type: text/html"));
        let html = String::from_utf8_lossy(&page.body);
        assert!(html.contains("<title>vigia live</title>"));
        assert!(html.contains(r#"<img id="stream""#));
        assert!(html.contains("/stream.mjpg") && html.contains("/stats.json"));
        assert!(html.contains("const TOKEN = null;"));

        let health = get(&srv, "/healthz");
        assert_eq!((health.status, health.body.as_slice()), (200, &b"ok"[..]));
        let stats = get(&srv, "/stats.json");
        assert_eq!((stats.status, stats.body.as_slice()), (200, &b"{}"[..]));
        assert_eq!(get(&srv, "/frame.jpg").status, 503);

        srv.publish(&pattern(64, 48, 0), json!({"fps": 12.5, "frame": 1}));
        let stats = get(&srv, "/stats.json");
        assert!(stats.head.contains("Content-Type: application/json"));
        let v: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
        assert_eq!(v, json!({"fps": 12.5, "frame": 1}));
        let frame = get(&srv, "/frame.jpg");
        assert_eq!(frame.status, 200);
        assert!(frame.head.contains("Content-Type: image/jpeg"));
        let img = image::load_from_memory_with_format(&frame.body, image::ImageFormat::Jpeg)
            .expect("frame.jpg decodes");
        assert_eq!((img.width(), img.height()), (64, 48));

        assert_eq!(get(&srv, "/missing").status, 404);
        assert_eq!(get(&srv, "/stats.json/x").status, 404);
        let post = exchange(&srv, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(post.status, 405);
        assert!(post.head.contains("Allow: GET"));
        assert_eq!(
            exchange(&srv, b"DELETE /healthz HTTP/1.1\r\n\r\n").status,
            405
        );
        assert_eq!(exchange(&srv, b"HEAD / HTTP/1.1\r\n\r\n").status, 405);
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET /  HTTP/1.1\r\n\r\n",
            b"GET noslash HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
            b"\x00\x01\x02\r\n\r\n",
        ] {
            assert_eq!(
                exchange(&srv, bad).status,
                400,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Tolerated forms: leading empty line, bare LF, absolute form, HTTP/1.0.
        assert_eq!(
            exchange(&srv, b"\r\nGET /healthz HTTP/1.1\r\n\r\n").status,
            200
        );
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
        for path in ["/", "/stream.mjpg", "/frame.jpg", "/stats.json", "/missing"] {
            let r = get(&srv, path);
            assert_eq!(r.status, 401, "{path}");
            assert!(r.head.contains("WWW-Authenticate: Bearer"));
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
            html.contains(r#"<img src="/stream.mjpg?token=s3cr%2Ft%2Bx""#),
            "{html}"
        );
        assert_eq!(get(&srv, "/frame.jpg?token=s3cr%2Ft%2Bx").status, 503);

        // A token cannot break out of the page's script element.
        let srv = server(Some("a</script><b>"), 8);
        let html = get(&srv, "/?token=a%3C/script%3E%3Cb%3E").body;
        let html = String::from_utf8_lossy(&html);
        assert!(
            html.contains(r#"const TOKEN = "a\u003c/script>\u003cb>";"#),
            "{html}"
        );
    }

    #[test]
    fn oversized_head_gets_431() {
        let srv = server(None, 8);
        let big = format!(
            "GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(MAX_HEAD + 100)
        );
        assert_eq!(exchange(&srv, big.as_bytes()).status, 431);
        let endless = vec![b'a'; 64 * 1024];
        assert_eq!(exchange(&srv, &endless).status, 431);
        let fits = format!(
            "GET /healthz HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(7000)
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
        // After the 5 s head timeout both get 408 and are closed.
        for c in [&mut silent, &mut partial] {
            let mut buf = Vec::new();
            c.read_to_end(&mut buf)
                .expect("server closes the slow connection");
            assert_eq!(parse_response(&buf).status, 408);
        }
    }

    #[test]
    fn connections_beyond_max_clients_get_503() {
        let srv = server(None, 2);
        let a = connect(&srv);
        let b = connect(&srv);
        assert!(eventually(|| srv.shared.clients.load(Ordering::SeqCst) == 2));
        let busy = get(&srv, "/healthz");
        assert_eq!(busy.status, 503);
        assert!(busy.head.contains("Retry-After"));
        drop((a, b));
        assert!(eventually(|| get(&srv, "/healthz").status == 200));
    }

    #[test]
    fn stream_delivers_distinct_jpeg_parts() {
        let srv = server(None, 8);
        assert!(!srv.has_viewers());
        let done = AtomicBool::new(false);
        thread::scope(|scope| {
            scope.spawn(|| {
                let mut i = 0;
                while !done.load(Ordering::SeqCst) {
                    srv.publish(&pattern(160, 120, i), json!({ "frame": i }));
                    i += 1;
                    thread::sleep(Duration::from_millis(15));
                }
            });
            let mut stream = PartReader::open(&srv, "/stream.mjpg");
            assert!(srv.has_viewers());
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
        // The viewer's thread notices the closed connection.
        assert!(eventually(|| !srv.has_viewers()));
    }

    #[test]
    fn publisher_never_blocks_on_a_stalled_viewer() {
        let srv = server(None, 8);
        let mut stalled = connect(&srv);
        stalled
            .write_all(b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
            .unwrap();
        assert!(eventually(|| srv.has_viewers()));
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
            srv.publish(&noise, json!({ "frame": i }));
            if i % 20 == 0 {
                thread::sleep(Duration::from_millis(5));
            }
        }
        // Everyone else is still served while the stalled viewer stays connected.
        assert_eq!(get(&srv, "/healthz").status, 200);
        let mut live = PartReader::open(&srv, "/stream.mjpg");
        srv.publish(&noise, json!({ "frame": 200 }));
        let img = image::load_from_memory(&live.next_part()).unwrap();
        assert_eq!((img.width(), img.height()), (640, 480));
        let frame = get(&srv, "/frame.jpg");
        assert_eq!(frame.status, 200);
        let stats: serde_json::Value =
            serde_json::from_slice(&get(&srv, "/stats.json").body).unwrap();
        assert_eq!(stats, json!({ "frame": 200 }));
        drop(stalled);
        drop(live);
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
        for (addr, max_clients, token) in [
            ("no such address", 8, None),
            ("99999", 8, None),
            ("", 8, None),
            ("127.0.0.1:0", 0, None),
            ("127.0.0.1:0", 8, Some("")),
            ("127.0.0.1:0", 8, Some("two words")),
        ] {
            let err = PreviewServer::start(PreviewConfig {
                addr: addr.into(),
                token: token.map(String::from),
                max_clients,
                jpeg_quality: 80,
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
        let addr = srv.local_addr();
        let mut viewer = connect(&srv);
        viewer
            .write_all(b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
            .unwrap();
        assert!(eventually(|| srv.has_viewers()));
        drop(srv);
        let mut rest = Vec::new();
        viewer
            .read_to_end(&mut rest)
            .expect("the stream ends when the server stops");
        assert!(TcpStream::connect(addr).is_err(), "listener still open");
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
            // Send the bytes, then end the request body so that incomplete heads end at once.
            let mut c = connect(&srv);
            let _ = c.write_all(&bytes);
            let _ = c.shutdown(Shutdown::Write);
            let mut buf = Vec::new();
            let _ = c.read_to_end(&mut buf);
            let r = parse_response(&buf);
            assert!(
                matches!(r.status, 0 | 400 | 405 | 408 | 431),
                "status {}",
                r.status
            );
            if round % 2 == 0 {
                assert_ne!(r.status, 0, "no answer to a complete head");
            }
        }
        assert_eq!(get(&srv, "/healthz").status, 200);
        // Odd frames are published without trouble.
        srv.publish(&RgbImage::new(0, 0), json!(null));
        srv.publish(&RgbImage::new(1, 1), json!([1, 2]));
        assert_eq!(get(&srv, "/frame.jpg").status, 200);
        assert_eq!(get(&srv, "/stats.json").body, b"[1,2]");
    }

    #[test]
    fn helpers_parse_what_they_should() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n"), None);
        assert_eq!(percent_decode("a%2Fb+c"), Some("a/b c".into()));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(query_param("x=1&token=t%3D", "token"), Some("t=".into()));
        assert!(same_secret(b"abc", b"abc") && !same_secret(b"abc", b"abd"));
        assert_eq!(bind_address(":8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(bind_address("8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(bind_address("0.0.0.0:80").unwrap(), "0.0.0.0:80");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(bind_reason("0.0.0.0:80", &denied).starts_with("permission denied"));
    }

    #[test]
    fn request_routing_is_a_pure_function_of_head_and_token() {
        let t = Some("s3cr/t+x");
        assert_eq!(route_request(b"GET / HTTP/1.1\r\n\r\n", None), Route::Page);
        assert_eq!(
            route_request(b"GET / HTTP/1.1\r\n\r\n", t),
            Route::Refuse(401)
        );
        assert_eq!(
            route_request(b"GET /healthz HTTP/1.1\r\n\r\n", t),
            Route::Health
        );
        let q = b"GET /stream.mjpg?token=s3cr%2Ft%2Bx HTTP/1.1\r\n\r\n";
        assert_eq!(route_request(q, t), Route::Stream);
        let h = b"GET /stats.json HTTP/1.1\r\nAuthorization: Bearer s3cr/t+x\r\n\r\n";
        assert_eq!(route_request(h, t), Route::Stats);
        assert_eq!(
            route_request(b"GET /x HTTP/1.1\r\n\r\n", None),
            Route::Refuse(404)
        );
        assert_eq!(
            route_request(b"PUT / HTTP/1.1\r\n\r\n", None),
            Route::Refuse(405)
        );
        assert_eq!(route_request(b"\xff\xfe", None), Route::Refuse(400));
        assert_eq!(route_request(b"", t), Route::Refuse(400));
        // Follow commands: POST, a configured token, sent in a header only.
        let post = |extra: &str| format!("POST /api/follow{extra} HTTP/1.1\r\n");
        let bearer = "Authorization: Bearer s3cr/t+x\r\n\r\n";
        assert_eq!(
            route_request(format!("{}{bearer}", post("")).as_bytes(), t),
            Route::Follow
        );
        assert_eq!(
            route_request(format!("{}\r\n", post("?token=s3cr%2Ft%2Bx")).as_bytes(), t),
            Route::Refuse(401)
        );
        assert_eq!(
            route_request(format!("{}\r\n", post("")).as_bytes(), None),
            Route::Refuse(403)
        );
        assert_eq!(
            route_request(b"GET /api/follow HTTP/1.1\r\n\r\n", t),
            Route::Refuse(405)
        );
        assert_eq!(
            route_request(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", None),
            Route::Refuse(400)
        );
    }
}
