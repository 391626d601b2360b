//! `--mqtt` against a real mosquitto broker, started by each test on a free loopback port with
//! its own configuration: statuses, track events, counts, stats, snapshots and follow state
//! arrive as the README documents; follow and detect commands take effect and are answered; the
//! last will fires on `kill -9`; a broker stopped and restarted mid-run loses no event; an
//! unreachable or refusing broker never stops the video.
#![cfg(feature = "mqtt")]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The mosquitto broker binary (Debian installs it outside a user's PATH).
fn mosquitto_bin() -> Option<PathBuf> {
    let on_path = Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if on_path {
        return Some("mosquitto".into());
    }
    ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The broker and its clients, or `None` with a printed reason.
fn mosquitto() -> Option<PathBuf> {
    let clients = ["mosquitto_sub", "mosquitto_pub"].iter().all(|c| {
        Command::new(c)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    match mosquitto_bin() {
        Some(b) if clients => Some(b),
        _ => {
            common::skip(
                "skipping: mosquitto or its clients not installed (apt install mosquitto mosquitto-clients)",
            );
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto process with its own configuration.
struct Broker {
    bin: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker in `dir`; `extra` lines are appended to its configuration.
    fn start(bin: &Path, dir: &Path, extra: &str) -> Broker {
        let port = free_port();
        let config = dir.join("mosquitto.conf");
        let mut f = std::fs::File::create(&config).unwrap();
        writeln!(f, "listener {port} 127.0.0.1").unwrap();
        writeln!(f, "persistence_location {}/", dir.display()).unwrap();
        writeln!(f, "{extra}").unwrap();
        let mut b = Broker {
            bin: bin.to_path_buf(),
            config,
            port,
            child: None,
        };
        b.restart();
        b
    }

    /// Starts the broker process (again) and waits until it accepts connections.
    fn restart(&mut self) {
        let log = std::fs::File::create(self.config.with_extension("log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker the way a service manager does (SIGTERM: it saves its state).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_extension("log")).unwrap_or_default()
    }

    /// Publishes one message as a client would.
    fn publish(&self, topic: &str, payload: &str) {
        let ok = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1"])
            .args(["-t", topic, "-m", payload])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mosquitto_pub to {topic} failed");
    }

    /// The retained message of `topic`, if any.
    fn retained(&self, topic: &str) -> Option<Vec<u8>> {
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", topic, "-C", "1", "-N", "-W", "2", "--retained-only"])
            .output()
            .unwrap();
        (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `mosquitto_sub` writing `topic payload` lines of everything under `vigia/#` but snapshots
/// to a file.
struct Subscriber {
    child: Child,
    file: PathBuf,
}

impl Subscriber {
    /// Subscribes at QoS 1; with `session`, as a persistent session under that client id (the
    /// broker keeps its messages while it is away).
    fn start(broker: &Broker, file: &Path, session: Option<&str>) -> Subscriber {
        let out = std::fs::File::create(file).unwrap();
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
            .args(["-t", "vigia/#", "-q", "1", "-v"])
            // JPEG snapshots are read on their own.
            .args(["-T", "vigia/+/+/snapshot"]);
        if let Some(id) = session {
            cmd.args(["-c", "-i", id]);
        }
        let child = cmd.stdout(out).stderr(Stdio::null()).spawn().unwrap();
        let s = Subscriber {
            child,
            file: file.to_path_buf(),
        };
        // Subscribed once the broker has answered: wait for a first retained message or a moment.
        std::thread::sleep(Duration::from_millis(300));
        s
    }

    fn messages(&self) -> Vec<(String, String)> {
        read_messages(&self.file)
    }

    /// Waits until `pred` holds on the messages so far (false after `secs`).
    fn wait_for(&self, secs: u64, pred: impl Fn(&[(String, String)]) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if pred(&self.messages()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What most tests here start with: the shared data, a broker with anonymous access, a
/// subscriber recording `vigia/#`, and the test's directory and stderr file.
struct Lab {
    shared: PathBuf,
    dir: PathBuf,
    broker: Broker,
    sub: Subscriber,
    err: PathBuf,
}

impl Lab {
    /// None (the test skips, saying why) without ../shared or mosquitto.
    fn start(name: &str) -> Option<Lab> {
        let (Some(shared), Some(bin)) = (common::shared(), mosquitto()) else {
            return None;
        };
        let dir = common::temp_dir(name);
        let broker = Broker::start(&bin, &dir, "allow_anonymous true");
        let sub = Subscriber::start(&broker, &dir.join("sub.txt"), None);
        let err = dir.join("stderr.txt");
        Some(Lab {
            shared,
            dir,
            broker,
            sub,
            err,
        })
    }
}

fn read_messages(file: &Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(file).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect()
}

fn on<'a>(msgs: &'a [(String, String)], topic: &str) -> Vec<&'a str> {
    msgs.iter()
        .filter(|(t, _)| t == topic)
        .map(|(_, p)| p.as_str())
        .collect()
}

fn json(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or_else(|e| panic!("{payload}: {e}"))
}

/// The track events received, by sequence number (duplicates of QoS 1 resends merged).
fn events(msgs: &[(String, String)], topic: &str) -> BTreeMap<u64, Value> {
    on(msgs, topic)
        .into_iter()
        .map(json)
        .map(|e| (e["seq"].as_u64().unwrap(), e))
        .collect()
}

/// Checks the event stream is whole and consistent: sequence numbers 1..=n without a gap, and
/// each track's events are `new`, `update`s, `end`, once or more (re-identification gives a
/// person who comes back their old id), closed at the end of the run.
fn assert_complete(events: &BTreeMap<u64, Value>, camera: &str) {
    assert!(!events.is_empty(), "no track event arrived");
    let seqs: Vec<u64> = events.keys().copied().collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "event sequence numbers have gaps");
    let mut kinds: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for e in events.values() {
        assert_eq!(e["camera"], camera);
        assert_eq!(e["label"], "person");
        let b: Vec<f64> = e["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(b.len() == 4 && b[0] < b[2] && b[1] < b[3], "box {b:?}");
        assert!(e["box_norm"].as_array().unwrap().iter().all(|v| {
            let v = v.as_f64().unwrap();
            (-0.1..=1.1).contains(&v)
        }));
        kinds
            .entry(e["id"].as_u64().unwrap())
            .or_default()
            .push(e["type"].as_str().unwrap().to_string());
    }
    for (id, k) in &kinds {
        let mut open = false;
        for kind in k {
            match kind.as_str() {
                "new" => assert!(!open, "track {id}: `new` while open: {k:?}"),
                "update" | "end" => assert!(open, "track {id}: `{kind}` while closed: {k:?}"),
                other => panic!("track {id}: unknown event type {other}"),
            }
            open = kind != "end";
        }
        assert!(!open, "track {id} never ended: {k:?}");
    }
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn vtest(shared: &Path) -> String {
    shared
        .join("data/video/vtest.avi")
        .to_string_lossy()
        .into_owned()
}

/// Starts `vigia` with `args`, its stderr into a file.
fn spawn_vigia(args: &[&str], stderr: &Path) -> Child {
    common::vigia_cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `secs`; kills it and fails past that.
fn wait_exit(child: &mut Child, secs: u64, stderr: &Path) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "vigia did not finish in {secs} s:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn follow_publishes_events_counts_stats_and_takes_commands() {
    let Some(Lab {
        shared,
        dir: _,
        broker,
        sub,
        err,
    }) = Lab::start("mqtt-follow")
    else {
        return;
    };
    let video = vtest(&shared);
    let url = broker.url();
    let mut child = spawn_vigia(
        &[
            "follow",
            &video,
            "--max-frames",
            "120",
            "--mqtt",
            &url,
            "--device",
            "lab",
            "--camera",
            "door",
            "--mqtt-stats-every",
            "1",
            "--mqtt-snapshot",
            "--follow-out",
            "udp://127.0.0.1:9",
        ],
        &err,
    );
    let base = "vigia/lab";
    // Follow another person than the one locked first, by id.
    let follow_topic = format!("{base}/door/follow");
    let locked_on = |m: &[(String, String)]| {
        on(m, &follow_topic)
            .iter()
            .map(|p| json(p))
            .find(|e| e["type"] == "state" && e["event"]["to"] == "locked")
    };
    assert!(
        sub.wait_for(90, |m| locked_on(m).is_some()),
        "no lock reported on {follow_topic}: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    let first = locked_on(&sub.messages()).unwrap()["event"]["target_id"]
        .as_u64()
        .unwrap();
    let msgs = sub.messages();
    let other = events(&msgs, &format!("{base}/door/events"))
        .values()
        .map(|e| e["id"].as_u64().unwrap())
        .find(|id| *id != first)
        .expect("a second person in view");
    broker.publish(
        &format!("{base}/door/follow/set"),
        &format!(r#"{{"target": "id:{other}"}}"#),
    );
    // Bad commands: each is refused with its reason, and nothing else changes.
    broker.publish(&format!("{base}/door/detect/set"), "maybe");
    broker.publish(&format!("{base}/hall/detect/set"), "OFF");
    broker.publish(&format!("{base}/door/follow/set"), r#"{"target": "id:x"}"#);
    broker.publish(&format!("{base}/door/zoom/set"), "ON");
    let status = wait_exit(&mut child, 300, &err);
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        sub.wait_for(5, |m| on(m, &format!("{base}/status")).last()
            == Some(&"offline")),
        "no offline status after a clean exit"
    );
    let msgs = sub.messages();

    // Status: online at connect, offline at the end.
    assert_eq!(on(&msgs, &format!("{base}/status")), ["online", "offline"]);
    assert_eq!(
        broker.retained(&format!("{base}/status")).as_deref(),
        Some(&b"offline"[..])
    );

    // Track events: complete, in order, closed at the end of the run.
    assert_complete(&events(&msgs, &format!("{base}/door/events")), "door");

    // Counts: people in view, retained.
    let counts = on(&msgs, &format!("{base}/door/count/person"));
    assert!(
        counts.iter().any(|c| c.parse::<u32>().unwrap() >= 2),
        "{counts:?}"
    );
    assert!(broker
        .retained(&format!("{base}/door/count/person"))
        .is_some());

    // Stats: FPS and stage latency of the camera.
    let stats = on(&msgs, &format!("{base}/stats"));
    let s = json(stats.last().expect("no stats message"));
    assert!(s["cameras"]["door"]["fps"].as_f64().unwrap() > 0.0, "{s}");
    assert!(
        s["cameras"]["door"]["ms"]["inference"].as_f64().unwrap() > 0.0,
        "{s}"
    );
    assert_eq!(s["cameras"]["door"]["detect"], "ON");

    // The follow command switched the target to the person asked for.
    let replies = on(&msgs, &format!("{base}/door/follow/state"));
    assert!(
        replies
            .iter()
            .any(|r| json(r) == serde_json::json!({"ok": true, "target": format!("id:{other}")})),
        "{replies:?}"
    );
    let follow: Vec<Value> = on(&msgs, &follow_topic).into_iter().map(json).collect();
    let states: Vec<&Value> = follow.iter().filter(|e| e["type"] == "state").collect();
    let reset = states
        .iter()
        .position(|e| e["reason"] == "reset")
        .unwrap_or_else(|| panic!("no reset in {states:?}"));
    assert!(
        states[reset..]
            .iter()
            .any(|e| e["event"]["to"] == "locked" && e["event"]["target_id"] == other),
        "not locked on {other} after the command: {states:?}"
    );
    assert!(follow.iter().any(|e| e["type"] == "command"));

    // Rejections name the problem.
    let rejected: Vec<String> = [
        "door/detect/state",
        "hall/detect/state",
        "door/follow/state",
        "door/zoom/state",
    ]
    .iter()
    .flat_map(|t| on(&msgs, &format!("{base}/{t}")))
    .filter(|p| p.starts_with('{'))
    .map(json)
    .filter(|r| r["ok"] == false)
    .map(|r| r["error"].as_str().unwrap().to_string())
    .collect();
    for needle in [
        "ON or OFF",
        "no camera `hall`",
        "id:x",
        "unknown command `zoom/set`",
    ] {
        assert!(
            rejected.iter().any(|r| r.contains(needle)),
            "no rejection mentioning {needle}: {rejected:?}"
        );
    }
    assert!(stderr.contains("rejected"), "{stderr}");

    // A snapshot of the annotated frame, retained.
    let jpeg = broker
        .retained(&format!("{base}/door/snapshot"))
        .expect("no snapshot");
    let img = image::load_from_memory(&jpeg).expect("snapshot is a JPEG");
    assert_eq!((img.width(), img.height()), (768, 576));
    assert!(stderr.contains("0 dropped"), "{stderr}");
}

#[test]
fn detect_switch_pauses_and_resumes_detection() {
    let Some(Lab {
        shared,
        dir,
        broker,
        sub,
        err,
    }) = Lab::start("mqtt-detect")
    else {
        return;
    };
    let jsonl = dir.join("frames.jsonl");
    let video = vtest(&shared);
    let url = broker.url();
    let mut child = spawn_vigia(
        &[
            "track",
            &video,
            "--max-frames",
            "150",
            "--mqtt",
            &url,
            "--device",
            "lab",
            "--save-json",
            jsonl.to_str().unwrap(),
            "--mqtt-discovery",
        ],
        &err,
    );
    let count = "vigia/lab/vtest/count/person";
    assert!(
        sub.wait_for(90, |m| on(m, count).iter().any(|c| *c != "0")),
        "no person counted: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    broker.publish("vigia/lab/vtest/detect/set", "OFF");
    assert!(sub.wait_for(10, |m| on(m, count).last() == Some(&"0")));
    broker.publish("vigia/lab/vtest/detect/set", "ON");
    let status = wait_exit(&mut child, 300, &err);
    assert!(status.success());
    let msgs = sub.messages();
    assert_eq!(
        on(&msgs, "vigia/lab/vtest/detect/state"),
        ["ON", "OFF", "ON"],
        "state after start, OFF and ON"
    );
    assert_eq!(
        broker.retained("vigia/lab/vtest/detect/state").as_deref(),
        Some(&b"ON"[..])
    );
    // Home Assistant finds the person count and the switch, pointing at those topics.
    let sensor = broker
        .retained("homeassistant/sensor/vigia_lab_vtest_person_count/config")
        .expect("no discovery config for the count");
    let sensor: Value = serde_json::from_slice(&sensor).unwrap();
    assert_eq!(sensor["state_topic"], count);
    assert_eq!(sensor["availability_topic"], "vigia/lab/status");
    let switch = broker
        .retained("homeassistant/switch/vigia_lab_vtest_detect/config")
        .expect("no discovery config for the switch");
    let switch: Value = serde_json::from_slice(&switch).unwrap();
    assert_eq!(switch["command_topic"], "vigia/lab/vtest/detect/set");
    assert_eq!(switch["state_topic"], "vigia/lab/vtest/detect/state");
    // Frames went on while detection was off: a run of empty frames between detections.
    let dets: Vec<usize> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| json(l)["detections"].as_array().unwrap().len())
        .collect();
    assert_eq!(dets.len(), 150, "every frame written");
    let first_empty = dets.iter().position(|n| *n == 0).expect("no paused frame");
    let resumed = dets[first_empty..]
        .iter()
        .position(|n| *n > 0)
        .expect("detection did not resume")
        + first_empty;
    assert!(first_empty > 0 && resumed - first_empty >= 2, "{dets:?}");
    // The people counted before the pause are counted again after it.
    assert!(on(&msgs, count).last().unwrap().parse::<u32>().unwrap() > 0);
}

#[test]
fn broker_restart_mid_run_loses_no_event() {
    let (Some(shared), Some(bin)) = (common::shared(), mosquitto()) else {
        return;
    };
    let dir = common::temp_dir("mqtt-restart");
    let mut broker = Broker::start(&bin, &dir, "allow_anonymous true\npersistence true");
    let sub = Subscriber::start(&broker, &dir.join("sub1.txt"), Some("restart-watcher"));
    let err = dir.join("stderr.txt");
    let jsonl = dir.join("frames.jsonl");
    let video = vtest(&shared);
    let url = broker.url();
    let mut child = spawn_vigia(
        &[
            "track",
            &video,
            "--max-frames",
            "160",
            "--mqtt",
            &url,
            "--device",
            "lab",
            "--save-json",
            jsonl.to_str().unwrap(),
        ],
        &err,
    );
    let topic = "vigia/lab/vtest/events";
    assert!(
        sub.wait_for(90, |m| on(m, topic).len() >= 3),
        "no events before the outage: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    broker.stop();
    drop(sub);
    let frames_at_stop = line_count(&jsonl);
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
    let sub2 = Subscriber::start(&broker, &dir.join("sub2.txt"), Some("restart-watcher"));
    let status = wait_exit(&mut child, 300, &err);
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(sub2.wait_for(10, |m| on(m, "vigia/lab/status").last() == Some(&"offline")));
    // Frames were processed during the outage.
    assert_eq!(line_count(&jsonl), 160);
    assert!(frames_at_stop < 160, "the run ended before the outage");
    assert!(stderr.contains("reconnected"), "{stderr}");
    let mut msgs = read_messages(&dir.join("sub1.txt"));
    msgs.extend(sub2.messages());
    assert_complete(&events(&msgs, topic), "vtest");
    assert!(stderr.contains(" 0 dropped"), "{stderr}");
}

#[test]
fn last_will_reports_offline_when_killed() {
    let Some(Lab {
        shared,
        dir: _,
        broker,
        sub,
        err,
    }) = Lab::start("mqtt-will")
    else {
        return;
    };
    let video = vtest(&shared);
    let url = broker.url();
    let mut child = spawn_vigia(&["track", &video, "--mqtt", &url, "--device", "lab"], &err);
    assert!(sub.wait_for(90, |m| !on(m, "vigia/lab/vtest/events").is_empty()));
    assert_eq!(on(&sub.messages(), "vigia/lab/status"), ["online"]);
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(
        sub.wait_for(10, |m| on(m, "vigia/lab/status") == ["online", "offline"]),
        "the last will did not arrive: {:?}",
        on(&sub.messages(), "vigia/lab/status")
    );
}

/// Runs 20 frames of vtest with `--mqtt url` and `extra` arguments.
fn short_run(shared: &Path, url: &str, dir: &Path, extra: &[&str]) -> (Output, usize) {
    let jsonl = dir.join("frames.jsonl");
    let video = vtest(shared);
    let mut args = vec!["track", &video, "--max-frames", "20", "--mqtt", url];
    args.extend_from_slice(&["--save-json", jsonl.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let out = common::vigia(&args);
    (out, line_count(&jsonl))
}

#[test]
fn unreachable_or_refusing_broker_never_stops_the_video() {
    let (Some(shared), Some(bin)) = (common::shared(), mosquitto()) else {
        return;
    };
    let dir = common::temp_dir("mqtt-unreachable");
    let nobody = format!("mqtt://127.0.0.1:{}", free_port());
    let (out, frames) = short_run(&shared, &nobody, &dir, &["--mqtt-queue", "4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(frames, 20);
    assert!(
        stderr.contains("cannot reach broker mqtt://127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("the broker was never reached"), "{stderr}");
    // More messages than the queue holds: the rest are counted as dropped.
    let report = stderr
        .lines()
        .find(|l| l.contains("message(s) published"))
        .unwrap();
    let number = |word: &str| -> u64 {
        let before = report.split(word).next().unwrap();
        before.split_whitespace().last().unwrap().parse().unwrap()
    };
    assert!(number(" dropped") > 0, "{report}");
    assert_eq!(number(" delivered"), 0, "{report}");

    // A broker that refuses anonymous clients.
    let broker = Broker::start(&bin, &dir, "allow_anonymous false");
    let url = format!("mqtt://someone:wrong@127.0.0.1:{}", broker.port);
    let (out, frames) = short_run(&shared, &url, &dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(frames, 20);
    assert!(stderr.contains("refused the connection"), "{stderr}");
    assert!(!stderr.contains("wrong"), "the password leaked: {stderr}");
}

#[test]
fn bad_mqtt_options_are_named() {
    for (args, needle) in [
        (&["--mqtt", "http://host"][..], "--mqtt"),
        (&["--mqtt", "mqtt://"], "--mqtt"),
        (&["--mqtt", "mqtt://h", "--device", "a/b"], "--device"),
        (&["--mqtt", "mqtt://h", "--camera", "x+y"], "--camera"),
        (&["--device", "lab"], "--mqtt"),
        (
            &["--mqtt", "mqtt://h", "--mqtt-ca", "/nonexistent/ca.pem"],
            "--mqtt-ca",
        ),
    ] {
        let mut all = vec!["track", "synthetic://?frames=2"];
        all.extend_from_slice(args);
        let out = common::vigia(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?} succeeded");
        assert!(stderr.contains(needle), "{all:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{all:?}: {stderr}");
    }
}

/// Runs `openssl` with `args` in `dir`; false (with a printed reason) when it is missing.
fn openssl(dir: &Path, args: &[&str]) -> bool {
    let out = Command::new("openssl").current_dir(dir).args(args).output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => {
            common::skip("skipping: openssl not installed (it makes the test certificates)");
            false
        }
    }
}

/// A CA (`<name>.pem`, `<name>.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> bool {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    )
}

#[test]
fn tls_broker_with_a_private_ca() {
    let (Some(shared), Some(bin)) = (common::shared(), mosquitto()) else {
        return;
    };
    let dir = common::temp_dir("mqtt-tls");
    // A CA, a server certificate for localhost signed by it, and an unrelated CA.
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let made = make_ca(&dir, "ca")
        && make_ca(&dir, "other")
        && openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        )
        && openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
    if !made {
        return;
    }
    for f in ["server.key", "ca.key", "other.key"] {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644));
    }
    let extra = format!(
        "allow_anonymous true\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key",
        dir.display()
    );
    let broker = Broker::start(&bin, &dir, &extra);
    let url = format!("mqtts://localhost:{}", broker.port);
    let video = vtest(&shared);
    let run = |ca: &str| {
        let ca = dir.join(ca);
        common::vigia(&[
            "track",
            &video,
            "--max-frames",
            "10",
            "--mqtt",
            &url,
            "--device",
            "lab",
            "--mqtt-ca",
            ca.to_str().unwrap(),
        ])
    };

    // The right CA: connected over TLS, everything delivered.
    let out = run("ca.pem");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("connected to {url}")), "{stderr}");
    assert!(stderr.contains(" 0 undelivered"), "{stderr}");
    let retained = Command::new("mosquitto_sub")
        .args(["-h", "localhost", "-p", &broker.port.to_string()])
        .arg("--cafile")
        .arg(dir.join("ca.pem"))
        .args(["-t", "vigia/lab/status", "-C", "1", "-W", "3"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&retained.stdout).trim(), "offline");

    // A CA that did not sign the broker's certificate: refused, logged, the video goes on.
    let out = run("other.pem");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("TLS with broker {url} failed")),
        "{stderr}"
    );
    assert!(!stderr.contains("connected to"), "{stderr}");
    assert!(stderr.contains("the broker was never reached"), "{stderr}");
}

#[test]
fn two_cameras_publish_under_their_names_and_a_failing_one_stays_alone() {
    let Some(Lab {
        shared,
        dir,
        broker,
        sub,
        err,
    }) = Lab::start("mqtt-two-cameras")
    else {
        return;
    };
    let door = format!("door={}", vtest(&shared));
    let gone = format!("gone={}", dir.join("unplugged.mp4").display());
    let url = broker.url();
    let mut child = spawn_vigia(
        &[
            "track",
            "--source",
            &door,
            "--source",
            &gone,
            "--max-frames",
            "40",
            "--mqtt",
            &url,
            "--device",
            "lab",
            "--mqtt-stats-every",
            "1",
        ],
        &err,
    );
    let status = wait_exit(&mut child, 300, &err);
    let stderr = std::fs::read_to_string(&err).unwrap();
    // The failing camera fails the run, after the other ran to its end.
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("camera gone could not start"), "{stderr}");
    assert!(stderr.contains("vigia [door]: 40 frame(s)"), "{stderr}");
    assert!(sub.wait_for(10, |m| on(m, "vigia/lab/status").last() == Some(&"offline")));
    let msgs = sub.messages();
    assert_complete(&events(&msgs, "vigia/lab/door/events"), "door");
    assert!(!on(&msgs, "vigia/lab/door/count/person").is_empty());
    assert!(on(&msgs, "vigia/lab/gone/events").is_empty());
    // Both cameras answer to commands: their detection state is there from the start.
    assert_eq!(on(&msgs, "vigia/lab/door/detect/state"), ["ON"]);
    assert_eq!(on(&msgs, "vigia/lab/gone/detect/state"), ["ON"]);
    let stats: Vec<Value> = on(&msgs, "vigia/lab/stats").into_iter().map(json).collect();
    assert!(
        stats
            .iter()
            .any(|s| s["cameras"]["door"]["frames"].as_u64() > Some(0)),
        "{stats:?}"
    );
    // One connection for the process.
    assert_eq!(on(&msgs, "vigia/lab/status"), ["online", "offline"]);
}

#[test]
fn each_camera_s_follower_takes_its_own_commands() {
    let Some(Lab {
        shared,
        dir: _,
        broker,
        sub,
        err,
    }) = Lab::start("mqtt-two-followers")
    else {
        return;
    };
    let video = vtest(&shared);
    let url = broker.url();
    let mut child = spawn_vigia(
        &[
            "follow",
            "--source",
            &format!("door={video}"),
            "--source",
            &format!("yard={video}"),
            "--max-frames",
            "60",
            "--mqtt",
            &url,
            "--device",
            "lab",
            "--follow-out",
            "udp://127.0.0.1:9",
        ],
        &err,
    );
    let locked = |m: &[(String, String)], camera: &str| {
        on(m, &format!("vigia/lab/{camera}/follow"))
            .iter()
            .any(|p| json(p)["type"] == "state" && json(p)["event"]["to"] == "locked")
    };
    assert!(
        sub.wait_for(120, |m| locked(m, "door") && locked(m, "yard")),
        "both cameras should lock: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    broker.publish("vigia/lab/yard/follow/set", r#"{"target": "stop"}"#);
    let status = wait_exit(&mut child, 300, &err);
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{stderr}");
    let msgs = sub.messages();
    let follow = |camera: &str| -> Vec<Value> {
        on(&msgs, &format!("vigia/lab/{camera}/follow"))
            .into_iter()
            .map(json)
            .collect()
    };
    let (door, yard) = (follow("door"), follow("yard"));
    // The command reached yard's follower alone: yard was reset and then stood still...
    assert_eq!(
        on(&msgs, "vigia/lab/yard/follow/state")
            .into_iter()
            .map(json)
            .collect::<Vec<_>>(),
        [serde_json::json!({"ok": true, "target": "stop"})]
    );
    let reset = yard
        .iter()
        .position(|e| e["type"] == "state" && e["reason"] == "reset")
        .unwrap_or_else(|| panic!("yard was not reset: {yard:?}"));
    assert!(
        yard[reset..]
            .iter()
            .filter(|e| e["type"] == "command")
            .map(|e| &e["command"])
            .all(|c| c["state"] == "idle" && c["forward"] == 0.0 && c["yaw_rate"] == 0.0),
        "{:?}",
        &yard[reset..]
    );
    // ...while door went on following.
    assert!(
        door.iter().all(|e| e["reason"] != "reset"),
        "door was reset: {door:?}"
    );
    assert!(on(&msgs, "vigia/lab/door/follow/state").is_empty());
    assert!(
        stderr.contains("vigia [yard]: follow: stopped (remote command)"),
        "{stderr}"
    );
}

#[test]
fn each_camera_is_discovered_with_its_own_classes() {
    let (Some(shared), Some(bin)) = (common::shared(), mosquitto()) else {
        return;
    };
    let dir = common::temp_dir("mqtt-discovery-cameras");
    let broker = Broker::start(&bin, &dir, "allow_anonymous true");
    let video = vtest(&shared);
    let file = dir.join("cameras.toml");
    std::fs::write(
        &file,
        format!(
            "[[camera]]\nname = \"door\"\nsource = {video:?}\nclasses = \"person,car\"\n\n\
             [[camera]]\nname = \"yard\"\nsource = {video:?}\nclasses = \"car\"\n"
        ),
    )
    .unwrap();
    let err = dir.join("stderr.txt");
    let url = broker.url();
    let mut child = spawn_vigia(
        &[
            "detect",
            "--cameras",
            file.to_str().unwrap(),
            "--max-frames",
            "8",
            "--mqtt",
            &url,
            "--device",
            "lab",
            "--mqtt-discovery",
        ],
        &err,
    );
    let status = wait_exit(&mut child, 300, &err);
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&err).unwrap()
    );
    let config = |id: &str| broker.retained(&format!("homeassistant/sensor/vigia_lab_{id}/config"));
    // Each camera's sensors are the classes it keeps.
    let door_car = config("door_car_count").expect("no car count for door");
    let door_car: Value = serde_json::from_slice(&door_car).unwrap();
    assert_eq!(door_car["state_topic"], "vigia/lab/door/count/car");
    assert!(config("door_person_count").is_some());
    assert!(config("yard_car_count").is_some());
    assert!(
        config("yard_person_count").is_none(),
        "yard keeps only cars"
    );
    // Counts are published for each camera's own classes (0 included, once held for 3 frames).
    let cars = broker
        .retained("vigia/lab/yard/count/car")
        .expect("no car count for yard");
    assert!(String::from_utf8_lossy(&cars).parse::<u32>().is_ok());
    assert!(broker.retained("vigia/lab/yard/count/person").is_none());
}
