//! The live preview page in a real headless browser: the page's JavaScript renders the stats and
//! the MJPEG stream shows the published frames, with a token carried into every URL.
//!
//! Needs Chromium (`VIGIA_CHROMIUM`, `/usr/bin/chromium`, or `chromium` on PATH); without it the
//! test prints why and passes (CI installs the Debian package `chromium`).

#![cfg(feature = "serve")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use vigia::serve::{PreviewConfig, PreviewServer};
use vigia::sink::live_preview::LivePreview;
use vigia::sink::preview_control::FollowControl;

/// Colour of the moving box: nothing else on the page is magenta.
const BOX: Rgb<u8> = Rgb([255, 0, 255]);
/// Background of the test frame.
const BACKGROUND: Rgb<u8> = Rgb([20, 30, 60]);
/// Token the server requires; `/` and `+` check that the page encodes it.
const TOKEN: &str = "t0k/en+1";
/// Longest a single Chromium run may take before it is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(30);

/// The Chromium binary to run, or `None` with a printed reason.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VIGIA_CHROMIUM") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
        common::skip(format!(
            "skipping: VIGIA_CHROMIUM={} is not a file",
            p.display()
        ));
        return None;
    }
    let default = PathBuf::from("/usr/bin/chromium");
    if default.is_file() {
        return Some(default);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    common::skip(
        "skipping: chromium not found (install the `chromium` package or set VIGIA_CHROMIUM)",
    );
    None
}

/// A 320x240 test frame: dark blue with a grid and a magenta box that moves with `i`.
fn test_frame(i: u32) -> RgbImage {
    let (w, h, side) = (320u32, 240u32, 64u32);
    let x0 = (i * 6) % (w - side);
    let y0 = 60 + (i * 3) % (h - side - 60);
    RgbImage::from_fn(w, h, |x, y| {
        if x >= x0 && x < x0 + side && y >= y0 && y < y0 + side {
            BOX
        } else if x % 40 == 0 || y % 40 == 0 {
            Rgb([60, 70, 100])
        } else {
            BACKGROUND
        }
    })
}

/// Runs Chromium headless with `args` and the options every run shares; returns its stdout.
/// Kills the whole process group if it runs longer than [`CHROMIUM_TIMEOUT`].
fn run_chromium(bin: &Path, work: &Path, name: &str, args: &[String]) -> String {
    let profile = work.join(format!("profile-{name}"));
    std::fs::create_dir_all(&profile).unwrap();
    let out_path = work.join(format!("{name}.out"));
    let err_path = work.join(format!("{name}.err"));
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&out_path).unwrap())
    .stderr(std::fs::File::create(&err_path).unwrap());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("chromium starts");
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            // The browser spawns helpers: kill its whole process group, then the child itself.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {name} hung for {:?} and was killed; stderr in {}",
                CHROMIUM_TIMEOUT,
                err_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium {name} failed ({status}):\n{stderr}"
    );
    std::fs::read_to_string(&out_path).unwrap_or_default()
}

/// Text of the first `<td>` in the stats row whose `data-key` is `key`.
fn stats_cell<'a>(dom: &'a str, key: &str) -> Option<&'a str> {
    let row = &dom[dom.find(&format!("data-key=\"{key}\""))?..];
    let row = &row[..row.find("</tr>")?];
    let cell = &row[row.find("<td>")? + 4..];
    Some(&cell[..cell.find("</td>")?])
}

#[test]
fn preview_page_renders_stats_and_stream_in_chromium() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("preview_browser");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let server = PreviewServer::start(PreviewConfig {
        addr: "127.0.0.1:0".into(),
        token: Some(TOKEN.into()),
        max_clients: 8,
        jpeg_quality: 80,
        cameras: vec!["front".into(), "back".into()],
    })
    .expect("preview server starts");
    // Clicks are offered where a follower takes them: on the front camera.
    server.set_follow_control("front", std::sync::Arc::new(AcceptAll));
    let (front, back) = (server.feed("front").unwrap(), server.feed("back").unwrap());
    let url = format!(
        "http://{}/?token={}",
        server.local_addr(),
        TOKEN.replace('/', "%2F").replace('+', "%2B")
    );
    let published = AtomicU32::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0u32;
            while !done.load(Ordering::SeqCst) {
                let stats = serde_json::json!({
                    "fps": 20.0,
                    "frame": i,
                    "latency_ms": { "preprocess": 1.25, "inference": 18.5, "decode": 0.75 },
                    "detections": 3,
                    "tracks": 2,
                    "source": "test-pattern",
                });
                front.publish(&test_frame(i), stats);
                back.publish(
                    &test_frame(i + 40),
                    serde_json::json!({ "frame": i, "source": "back" }),
                );
                published.store(i + 1, Ordering::SeqCst);
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        while published.load(Ordering::SeqCst) < 3 {
            std::thread::sleep(Duration::from_millis(10));
        }

        let dom = run_chromium(
            &chromium,
            &work,
            "dump-dom",
            &[
                "--virtual-time-budget=3000".into(),
                "--dump-dom".into(),
                url.clone(),
            ],
        );
        std::fs::write(work.join("dom.html"), &dom).unwrap();
        assert!(dom.contains("<title>vigia live</title>"), "{dom}");
        let img = &dom[dom
            .find(r#"<img id="stream""#)
            .expect("img#stream in the DOM")..];
        let img = &img[..img.find('>').unwrap()];
        assert!(
            img.contains("/cameras/front/stream.mjpg") && img.contains("token=t0k%2Fen%2B1"),
            "the stream URL carries the token: {img}"
        );
        let frame: u32 = stats_cell(&dom, "frame")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("frame counter rendered by JS:\n{dom}"));
        assert!(frame > 0, "frame counter {frame}");
        assert_eq!(stats_cell(&dom, "source"), Some("test-pattern"), "{dom}");
        assert_eq!(stats_cell(&dom, "latency_ms.inference"), Some("18.5"));
        assert_eq!(stats_cell(&dom, "detections"), Some("3"));
        assert!(
            dom.contains(r#"<span id="state" class="live">live</span>"#),
            "{dom}"
        );
        // With a token the JS makes the picture clickable for following.
        assert!(
            dom.contains(r#"<img id="stream" alt="live stream" class="clickable""#),
            "{dom}"
        );
        assert!(dom.contains("click a person in the picture"), "{dom}");
        // Two cameras: the picker lists both, and `?camera=back` shows the other one, where
        // nobody is followed.
        assert!(
            dom.contains(r#"<select id="camera" aria-label="camera"><option value="front">"#),
            "{dom}"
        );
        let back_dom = run_chromium(
            &chromium,
            &work,
            "dump-dom-back",
            &[
                "--virtual-time-budget=3000".into(),
                "--dump-dom".into(),
                format!("{url}&camera=back"),
            ],
        );
        assert_eq!(stats_cell(&back_dom, "source"), Some("back"), "{back_dom}");
        let img = &back_dom[back_dom.find(r#"<img id="stream""#).expect("img#stream")..];
        let img = &img[..img.find('>').unwrap()];
        assert!(img.contains("/cameras/back/stream.mjpg"), "{img}");
        assert!(!img.contains("clickable"), "{img}");
        assert!(
            back_dom.contains("nobody is followed on this camera"),
            "{back_dom}"
        );

        let shot = work.join("shot.png");
        run_chromium(
            &chromium,
            &work,
            "screenshot",
            &[
                "--virtual-time-budget=3000".into(),
                format!("--screenshot={}", shot.display()),
                "--window-size=800,600".into(),
                url.clone(),
            ],
        );
        done.store(true, Ordering::SeqCst);

        let png = image::open(&shot).expect("screenshot decodes").to_rgb8();
        assert_eq!(png.dimensions(), (800, 600));
        let near = |p: &Rgb<u8>, c: Rgb<u8>, tol: i32| {
            p.0.iter()
                .zip(c.0)
                .all(|(&a, b)| (i32::from(a) - i32::from(b)).abs() <= tol)
        };
        let magenta = png.pixels().filter(|p| near(p, BOX, 40)).count();
        let background = png.pixels().filter(|p| near(p, BACKGROUND, 12)).count();
        eprintln!(
            "screenshot {}: {magenta} box pixels, {background} background pixels",
            shot.display()
        );
        // The 64x64 box alone is 4096 pixels at 1:1; the page shows the frame at least that big.
        assert!(
            magenta >= 2000,
            "the moving box is visible ({magenta} pixels)"
        );
        assert!(
            background >= 20_000,
            "the frame is visible ({background} pixels)"
        );
    });
    drop(server);
}

/// A follower that takes every command.
struct AcceptAll;

impl FollowControl for AcceptAll {
    fn follow(&self, body: &[u8]) -> Result<String, String> {
        Ok(String::from_utf8_lossy(body).into_owned())
    }
}
