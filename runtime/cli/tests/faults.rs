//! Source and output faults end to end, with real processes and sockets: a live stream that
//! stalls, turns to garbage or disappears (served over HTTP by a small server in the test, the
//! data a real MPEG-TS clip of vtest.avi made by ffmpeg), a file whose decoder is killed, and
//! outputs that cannot be written. In each source case the follower's commands, read from a
//! real UDP socket, drop to zero motion within its watchdog time.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The follower's watchdog time (`--follow-watchdog`, the default).
const WATCHDOG: Duration = Duration::from_millis(300);
/// Allowance on top of the watchdog time for a loaded CI machine.
const SLACK: Duration = Duration::from_millis(1200);

/// One test at a time: each runs a detector, and the timing checks want the CPU.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg").arg("-version").output().is_ok();
    if !ok {
        common::skip("skipping: ffmpeg not found");
    }
    ok
}

/// What the test server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// The clip, in a loop, paced at its real rate.
    Normal = 0,
    /// Nothing: connections stay open and silent.
    Stall = 1,
    /// Random bytes at the clip's rate.
    Garbage = 2,
    /// Every connection is closed at once, new ones as soon as they arrive.
    Gone = 3,
}

/// A small HTTP server streaming an MPEG-TS clip to any number of clients.
struct StreamServer {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
}

impl StreamServer {
    fn start(clip: Vec<u8>, seconds: f64, mode: Mode) -> StreamServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let clip = Arc::new(clip);
        let (m, s) = (mode.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (m, s, clip) = (m.clone(), s.clone(), clip.clone());
                thread::spawn(move || serve_client(conn, &clip, seconds, &m, &s));
            }
        });
        StreamServer { addr, mode, stop }
    }

    fn url(&self) -> String {
        format!("http://{}/live.ts", self.addr)
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_client(
    mut conn: TcpStream,
    clip: &[u8],
    seconds: f64,
    mode: &AtomicU8,
    stop: &AtomicBool,
) {
    let current = || mode.load(Ordering::Relaxed);
    // Read the request head (whatever it is).
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    if current() == Mode::Gone as u8 {
        return;
    }
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    if conn
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return;
    }
    // 188-byte packets at the clip's byte rate, every 20 ms; the first second at once so that
    // the client's probing does not wait.
    let per_tick = ((clip.len() as f64 / seconds * 0.02) as usize / 188).max(1) * 188;
    let mut pos = 0usize;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut burst = (clip.len() as f64 / seconds) as usize;
    // Noise comes fast, so that a client probing it gives up quickly.
    let mut garbage = vec![0u8; per_tick.max(64 * 1024)];
    while !stop.load(Ordering::Relaxed) {
        let m = current();
        if m == Mode::Gone as u8 {
            return;
        }
        let n = if burst > 0 { burst } else { per_tick };
        burst = 0;
        let sent = if m == Mode::Normal as u8 {
            let mut chunk = Vec::with_capacity(n);
            while chunk.len() < n {
                let take = (n - chunk.len()).min(clip.len() - pos);
                chunk.extend_from_slice(&clip[pos..pos + take]);
                pos = (pos + take) % clip.len();
            }
            conn.write_all(&chunk)
        } else if m == Mode::Garbage as u8 {
            for b in garbage.iter_mut() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *b = rng as u8;
            }
            conn.write_all(&garbage)
        } else {
            Ok(())
        };
        if sent.is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// An MPEG-TS clip of vtest.avi (8 s, 10 fps, 384 x 288) and its length in seconds.
fn clip(shared: &Path, dir: &Path) -> (Vec<u8>, f64) {
    let out = dir.join("clip.ts");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(shared.join("data/video/vtest.avi"))
        .args([
            "-t",
            "8",
            "-vf",
            "scale=384:288",
            "-c:v",
            "mpeg2video",
            "-q:v",
            "5",
        ])
        .args(["-g", "10", "-f", "mpegts"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    (std::fs::read(&out).unwrap(), 8.0)
}

/// One datagram from the follower, with its arrival time.
#[derive(Debug, Clone)]
struct Datagram {
    at: Instant,
    value: serde_json::Value,
}

impl Datagram {
    fn is_command(&self) -> bool {
        self.value.get("yaw_rate").is_some()
    }

    fn reason(&self) -> &str {
        self.value["reason"].as_str().unwrap_or("")
    }

    fn is_zero(&self) -> bool {
        ["yaw_rate", "pitch_rate", "forward"]
            .iter()
            .all(|k| self.value[*k].as_f64() == Some(0.0))
    }
}

/// Collects every datagram the follower sends to a real UDP socket.
struct Receiver {
    addr: String,
    got: Arc<Mutex<Vec<Datagram>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let value = serde_json::from_slice(&buf[..n]).expect("a JSON datagram");
                    g.lock().unwrap().push(Datagram {
                        at: Instant::now(),
                        value,
                    });
                }
            }
        });
        Receiver { addr, got, stop }
    }

    fn commands(&self) -> Vec<Datagram> {
        let g = self.got.lock().unwrap();
        g.iter().filter(|d| d.is_command()).cloned().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `vigia follow SOURCE` sending commands to `udp`, stderr into a file.
struct Follow {
    child: Child,
    stderr: PathBuf,
}

impl Follow {
    fn start(source: &str, udp: &str, dir: &Path, extra: &[&str]) -> Follow {
        let stderr = dir.join("stderr.txt");
        let child = Command::new(common::vigia_bin())
            .args(["follow", source, "--follow-out"])
            .arg(format!("udp://{udp}"))
            .args(["--follow-acquire-frames", "2"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Follow { child, stderr }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("vigia did not end within {limit:?}: {}", self.log());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Waits until the follower has steered (a non-zero frame-driven command).
fn wait_until_steering(rx: &Receiver, vigia: &Follow) {
    let steered = wait_for(Duration::from_secs(150), || {
        rx.commands()
            .iter()
            .any(|d| d.reason() == "follow" && !d.is_zero())
    });
    assert!(steered, "the follower never steered: {}", vigia.log());
}

/// After a fault at `fault`: the last frame-driven command is followed, within the watchdog
/// time, by a zero-motion command, and nothing moves from then until `until`.
fn assert_stops_after(rx: &Receiver, fault: Instant, until: Instant, vigia: &Follow) {
    let cmds = rx.commands();
    let last_live = cmds
        .iter()
        .filter(|d| d.reason() == "follow" && d.at <= until)
        .map(|d| d.at)
        .max()
        .expect("frame-driven commands");
    let from = last_live.max(fault);
    let first_stop = cmds
        .iter()
        .find(|d| d.at > last_live && d.is_zero())
        .unwrap_or_else(|| panic!("no stop after the fault: {}", vigia.log()));
    assert!(
        first_stop.at.duration_since(last_live) <= WATCHDOG + SLACK,
        "stop {:?} after the last live command",
        first_stop.at.duration_since(last_live)
    );
    for d in cmds.iter().filter(|d| d.at > from && d.at <= until) {
        assert!(
            d.is_zero() || d.reason() == "follow",
            "motion without frames: {:?}",
            d.value
        );
    }
    assert!(
        cmds.iter()
            .filter(|d| d.at > first_stop.at && d.at <= until)
            .all(|d| d.is_zero()),
        "motion after the stop"
    );
}

/// Frame-driven commands received after `t`.
fn live_after(rx: &Receiver, t: Instant) -> usize {
    rx.commands()
        .iter()
        .filter(|d| d.reason() == "follow" && d.at > t)
        .count()
}

/// Ctrl-C ends the run cleanly and the last command is a stop.
fn interrupt_and_check(vigia: &mut Follow, rx: &Receiver) {
    vigia.signal("-INT");
    let st = vigia.wait(Duration::from_secs(30));
    assert!(st.success(), "{st}: {}", vigia.log());
    thread::sleep(Duration::from_millis(200));
    let cmds = rx.commands();
    let last = cmds.last().expect("commands");
    assert!(last.is_zero(), "last command moves: {:?}", last.value);
    assert!(!vigia.log().contains("panicked"), "{}", vigia.log());
}

#[test]
fn a_live_stream_that_stalls_is_reported_and_reconnected_and_the_follower_stops() {
    let _one = serial();
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("fault-stall");
    let (clip, secs) = clip(&shared, &dir);
    let server = StreamServer::start(clip, secs, Mode::Normal);
    let rx = Receiver::start();
    let mut vigia = Follow::start(&server.url(), &rx.addr, &dir, &[]);
    wait_until_steering(&rx, &vigia);

    server.set(Mode::Stall);
    let fault = Instant::now();
    let reported = wait_for(Duration::from_secs(30), || {
        vigia.log().contains("stalled, no frame for 5 s")
    });
    assert!(reported, "stall not reported: {}", vigia.log());
    let log = vigia.log();
    assert!(
        log.contains("lost") && log.contains("reconnecting in"),
        "{log}"
    );
    assert_stops_after(&rx, fault, Instant::now(), &vigia);

    // The stream comes back: the source reconnects and frames flow again.
    let back = Instant::now();
    server.set(Mode::Normal);
    let resumed = wait_for(Duration::from_secs(90), || live_after(&rx, back) >= 3);
    assert!(
        resumed,
        "no frames after the stream came back: {}",
        vigia.log()
    );
    interrupt_and_check(&mut vigia, &rx);
    let log = vigia.log();
    let reconnects: u64 = log
        .split(" reconnect(s)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(reconnects >= 1, "{log}");
}

#[test]
fn a_live_stream_that_turns_to_garbage_is_dropped_and_retried() {
    let _one = serial();
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("fault-garbage");
    let (clip, secs) = clip(&shared, &dir);
    let server = StreamServer::start(clip, secs, Mode::Normal);
    let rx = Receiver::start();
    let mut vigia = Follow::start(&server.url(), &rx.addr, &dir, &[]);
    wait_until_steering(&rx, &vigia);

    server.set(Mode::Garbage);
    let fault = Instant::now();
    // Garbage decodes to no frames: the stall watch ends the connection and retries, and the
    // retries fail (ffprobe finds no video in noise) with growing delays.
    let retried = wait_for(Duration::from_secs(60), || {
        vigia.log().contains("still unavailable")
    });
    assert!(retried, "garbage not handled: {}", vigia.log());
    assert_stops_after(&rx, fault, Instant::now(), &vigia);
    interrupt_and_check(&mut vigia, &rx);
}

#[test]
fn garbage_from_the_start_is_a_clear_error() {
    let _one = serial();
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("fault-garbage-start");
    let server = StreamServer::start(vec![0x47; 188 * 20_000], 1.0, Mode::Garbage);
    let rx = Receiver::start();
    // Retried for 3 s (it could be a server still starting), then reported.
    let mut vigia = Follow::start(&server.url(), &rx.addr, &dir, &["--source-wait", "3"]);
    let st = vigia.wait(Duration::from_secs(60));
    let log = vigia.log();
    assert!(!st.success(), "{log}");
    assert!(log.contains(&server.url()), "{log}");
    assert!(log.contains("retrying"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_live_stream_down_at_start_is_waited_for() {
    let _one = serial();
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("fault-late-start");
    let (clip, secs) = clip(&shared, &dir);
    let server = StreamServer::start(clip, secs, Mode::Gone);

    // A bounded wait ends with the reason.
    let started = Instant::now();
    let o = common::vigia(&["detect", &server.url(), "--source-wait", "2", "-q"]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{log}");
    assert!(
        log.contains("retrying") && log.contains("for up to 2.0 s"),
        "{log}"
    );
    assert!(
        log.contains(&format!("cannot open source {}", server.url())),
        "{log}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1), "{log}");

    // By default the stream is waited for, and the run starts when it comes.
    let jsonl = dir.join("late.jsonl");
    let stderr = dir.join("late.txt");
    let mut child = Command::new(common::vigia_bin())
        .args(["detect", &server.url(), "--max-frames", "5", "--save-json"])
        .arg(&jsonl)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(60), || read().contains("retrying")),
        "{}",
        read()
    );
    server.set(Mode::Normal);
    let done = wait_for(Duration::from_secs(90), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !done {
        let _ = child.kill();
    }
    assert!(done, "no frame after the stream came up: {}", read());
    assert!(child.wait().unwrap().success(), "{}", read());
    assert!(read().contains("is available after"), "{}", read());
    assert_eq!(
        std::fs::read_to_string(&jsonl).unwrap().lines().count(),
        5,
        "{}",
        read()
    );
}

#[test]
fn a_live_stream_that_disappears_reconnects_with_backoff() {
    let _one = serial();
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("fault-gone");
    let (clip, secs) = clip(&shared, &dir);
    let server = StreamServer::start(clip, secs, Mode::Normal);
    let rx = Receiver::start();
    let mut vigia = Follow::start(&server.url(), &rx.addr, &dir, &[]);
    wait_until_steering(&rx, &vigia);

    server.set(Mode::Gone);
    let fault = Instant::now();
    let retried = wait_for(Duration::from_secs(60), || {
        vigia.log().matches("still unavailable").count() >= 2
    });
    assert!(retried, "no reconnect attempts: {}", vigia.log());
    assert_stops_after(&rx, fault, Instant::now(), &vigia);
    // Backoff: the announced delays grow.
    let log = vigia.log();
    let delays: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("reconnecting in"))
        .filter_map(|l| {
            let d = l.split("reconnecting in ").nth(1)?;
            let (n, unit) = d.split_once(' ')?;
            let n: f64 = n.parse().ok()?;
            Some(if unit.starts_with("ms") { n / 1e3 } else { n })
        })
        .collect();
    assert!(delays.len() >= 3, "{log}");
    assert!(delays[2] > delays[0], "delays {delays:?}");

    let back = Instant::now();
    server.set(Mode::Normal);
    let resumed = wait_for(Duration::from_secs(90), || live_after(&rx, back) >= 3);
    assert!(
        resumed,
        "no frames after the server came back: {}",
        vigia.log()
    );
    interrupt_and_check(&mut vigia, &rx);
}

/// Child process ids of `pid` (every thread's children).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
            }
        }
    }
    out
}

#[test]
fn a_file_whose_decoder_dies_ends_cleanly_and_the_follower_stops() {
    let _one = serial();
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("fault-file-killed");
    let jsonl = dir.join("frames.jsonl");
    let rx = Receiver::start();
    let video = shared.join("data/video/vtest.avi");
    let mut vigia = Follow::start(
        video.to_str().unwrap(),
        &rx.addr,
        &dir,
        &["--save-json", jsonl.to_str().unwrap()],
    );
    wait_until_steering(&rx, &vigia);
    let decoder = children(vigia.child.id())
        .into_iter()
        .find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "ffmpeg")
        })
        .expect("the ffmpeg decoder runs as a child");
    Command::new("kill")
        .args(["-KILL", &decoder.to_string()])
        .status()
        .unwrap();
    let fault = Instant::now();
    let st = vigia.wait(Duration::from_secs(60));
    let log = vigia.log();
    assert!(st.success(), "{st}: {log}");
    assert!(log.contains("ended"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    thread::sleep(Duration::from_millis(200));
    assert_stops_after(&rx, fault, Instant::now(), &vigia);
    assert!(rx.commands().last().unwrap().is_zero());
    // The frames processed before are all there, whole.
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let n = text.lines().count();
    assert!(n > 0 && n < 795, "{n} lines");
    for l in text.lines() {
        let _: serde_json::Value = serde_json::from_str(l).unwrap();
    }
}

/// `vigia track` on the first frames of vtest with extra arguments.
fn track(shared: &Path, args: &[&str]) -> (ExitStatus, String) {
    let o = Command::new(common::vigia_bin())
        .arg("track")
        .arg(shared.join("data/video/vtest.avi"))
        .args(["--max-frames", "40", "-q"])
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    (o.status, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn outputs_that_cannot_be_written_are_clear_errors() {
    let _one = serial();
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = common::temp_dir("fault-unwritable");
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let under_file = blocker.join("out.jsonl");
    for (option, path) in [
        ("--save-json", under_file.to_str().unwrap()),
        ("--save-mot", under_file.to_str().unwrap()),
        ("--save-json", "/proc/vigia-out.jsonl"),
    ] {
        let (st, err) = track(&shared, &[option, path]);
        assert!(!st.success(), "{option} {path}: {err}");
        // The message names the option and the path (or the part of it that is in the way).
        let parent = Path::new(path).parent().unwrap().to_str().unwrap();
        assert!(err.contains(option) && err.contains(parent), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // A full disk shows up at the first write: a clean stop naming the file.
    if Path::new("/dev/full").exists() {
        for option in ["--save-json", "--save-mot"] {
            let (st, err) = track(&shared, &[option, "/dev/full"]);
            assert!(!st.success(), "{option}: {err}");
            assert!(
                err.contains("cannot write /dev/full") && err.contains("No space left"),
                "{err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn a_file_size_limit_mid_run_stops_cleanly_with_whole_lines() {
    let _one = serial();
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = common::temp_dir("fault-fsize");
    let (jsonl, mot) = (dir.join("frames.jsonl"), dir.join("tracks.txt"));
    // A 24 KiB file size limit (the disk filling up mid-run); SIGXFSZ ignored so that writes
    // fail with EFBIG as they would with ENOSPC.
    let script = format!(
        "trap '' XFSZ; ulimit -f 24; exec \"$0\" track {} --max-frames 200 -q --save-json {} --save-mot {}",
        shared.join("data/video/vtest.avi").display(),
        jsonl.display(),
        mot.display()
    );
    let o = Command::new("bash")
        .args(["-c", &script])
        .arg(common::vigia_bin())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("cannot write") && err.contains("too large"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for path in [&jsonl, &mot] {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.is_empty(), "{}", path.display());
        assert!(bytes.len() <= 24 * 1024);
        assert_eq!(
            bytes.last(),
            Some(&b'\n'),
            "{} ends mid-line",
            path.display()
        );
    }
    let text = std::fs::read_to_string(&jsonl).unwrap();
    for l in text.lines() {
        let _: serde_json::Value = serde_json::from_str(l).unwrap();
    }
    let text = std::fs::read_to_string(&mot).unwrap();
    assert!(text.lines().all(|l| l.split(',').count() == 10), "{text}");
}
