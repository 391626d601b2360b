//! Several cameras in one process: one model, each camera's own tracks and files, JSON lines
//! that name the camera, a camera that cannot start stopping alone, and live cameras taking
//! turns at inference.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{have_ffmpeg, temp_dir, vigia, vigia_cmd};

/// vtest.avi from ../shared, when it and ffmpeg are there.
fn vtest() -> Option<PathBuf> {
    let shared = common::shared()?;
    have_ffmpeg().then(|| shared.join("data/video/vtest.avi"))
}

/// The JSON lines of `path` (or of stdout bytes), parsed.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    json_lines(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Writes `text` as `dir/cameras.toml`; its path.
fn cameras_file(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("cameras.toml");
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    file
}

/// A frame's tracks without timings or the camera's name: what two cameras on the same video
/// must agree on.
fn tracks_of(frame: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "frame": frame["frame"], "detections": frame["detections"] })
}

#[test]
fn two_cameras_on_one_model_track_alone_into_their_own_files() {
    let Some(video) = vtest() else {
        return;
    };
    let dir = temp_dir("two-cameras");
    let video = video.to_str().unwrap();
    let json = dir.join("frames.jsonl");
    let mot = dir.join("tracks.txt");
    let o = vigia(&[
        "track",
        "--source",
        &format!("door={video}"),
        "--source",
        &format!("yard={video}"),
        "--classes",
        "person",
        "--max-frames",
        "16",
        "--save-json",
        json.to_str().unwrap(),
        "--save-mot",
        mot.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 cameras (door, yard), one model"),
        "{stderr}"
    );
    // One load line: the model is loaded once.
    assert_eq!(stderr.matches("vigia: model ").count(), 1, "{stderr}");
    let door = read_lines(&dir.join("frames.door.jsonl"));
    let yard = read_lines(&dir.join("frames.yard.jsonl"));
    assert_eq!(door.len(), 16);
    assert_eq!(yard.len(), 16);
    assert!(door.iter().all(|f| f["camera"] == "door"));
    assert!(yard.iter().all(|f| f["camera"] == "yard"));
    // Each camera tracks on its own: the same video gives the same tracks and ids on both, as
    // it does in a run of its own.
    let tracked = door
        .iter()
        .flat_map(|f| f["detections"].as_array().unwrap())
        .filter(|d| d.get("track_id").is_some())
        .count();
    assert!(tracked > 16, "only {tracked} tracked people in 16 frames");
    let door_tracks: Vec<_> = door.iter().map(tracks_of).collect();
    let yard_tracks: Vec<_> = yard.iter().map(tracks_of).collect();
    assert_eq!(door_tracks, yard_tracks);
    let alone = vigia(&[
        "track",
        video,
        "--classes",
        "person",
        "--max-frames",
        "16",
        "-q",
    ]);
    assert!(alone.status.success());
    let alone: Vec<_> = json_lines(&String::from_utf8_lossy(&alone.stdout))
        .iter()
        .map(tracks_of)
        .collect();
    assert_eq!(door_tracks, alone);
    for name in ["door", "yard"] {
        let mot = std::fs::read_to_string(dir.join(format!("tracks.{name}.txt"))).unwrap();
        assert!(mot.lines().count() >= tracked, "{name}: {mot}");
    }
    // End-of-run lines per camera.
    assert!(stderr.contains("vigia [door]: 16 frame(s)"), "{stderr}");
    assert!(stderr.contains("vigia [yard]: 16 frame(s)"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_camera_that_cannot_start_stops_alone_and_fails_the_run() {
    let Some(video) = vtest() else {
        return;
    };
    let dir = temp_dir("camera-gone");
    let missing = dir.join("gone.mp4");
    let o = vigia(&[
        "detect",
        "--source",
        &format!("door={}", video.display()),
        "--source",
        &format!("gone={}", missing.display()),
        "--max-frames",
        "6",
        "-q",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("camera gone could not start") && stderr.contains("gone.mp4"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 camera(s) failed"), "{stderr}");
    // The other camera ran to its end, on stdout, every line naming it.
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|f| f["camera"] == "door"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_cameras_take_turns_at_inference() {
    if common::shared().is_none() {
        return;
    }
    // Three cameras at 30 fps, far more than one engine state serves here: each inference
    // goes to whichever camera has waited longest, so the three share the engine evenly.
    let cam = |name: &str, seed: u32| {
        format!("{name}=synthetic://?scene=random&live=1&fps=30&frames=100000&seed={seed}")
    };
    let o = vigia_cmd()
        .args(["detect", "--max-frames", "12", "-q"])
        .args(["--source", &cam("a", 1)])
        .args(["--source", &cam("b", 2)])
        .args(["--source", &cam("c", 3)])
        .output()
        .expect("run vigia");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(lines.len(), 36, "{stderr}");
    // Until the first camera is done, none is more than a couple of frames ahead of another.
    let mut done: HashMap<String, u32> = HashMap::new();
    for f in &lines {
        let name = f["camera"].as_str().unwrap().to_string();
        *done.entry(name).or_default() += 1;
        if done.values().any(|n| *n == 12) {
            break;
        }
        let most = done.values().max().unwrap();
        let least = ["a", "b", "c"]
            .iter()
            .map(|c| done.get(*c).copied().unwrap_or(0))
            .min()
            .unwrap();
        assert!(most - least <= 3, "uneven turns: {done:?}");
    }
}

/// The JSON lines that arrived on `socket` (one per datagram) until it stays quiet.
fn datagrams(socket: &std::net::UdpSocket) -> Vec<serde_json::Value> {
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut lines = Vec::new();
    while let Ok(n) = socket.recv(&mut buf) {
        lines.extend(json_lines(&String::from_utf8_lossy(&buf[..n])));
    }
    lines
}

#[test]
fn each_camera_follows_its_own_person_into_its_own_outputs() {
    let Some(video) = vtest() else {
        return;
    };
    let dir = temp_dir("cameras-follow");
    let video = video.to_str().unwrap();
    let door_out = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let yard_out = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // The same video on both, each camera choosing in its own half of the frame.
    let file = cameras_file(
        &dir,
        &format!(
            "[[camera]]\nname = \"door\"\nsource = {video:?}\n\
             target = \"rect:0,0,0.5,1\"\nfollow_out = \"udp://{door}\"\n\n\
             [[camera]]\nname = \"yard\"\nsource = {video:?}\n\
             target = \"rect:0.5,0,1,1\"\nfollow_out = [\"udp://{yard}\"]\n",
            door = door_out.local_addr().unwrap(),
            yard = yard_out.local_addr().unwrap(),
        ),
    );
    let o = vigia(&[
        "follow",
        "--cameras",
        file.to_str().unwrap(),
        "--max-frames",
        "30",
        "--follow-watchdog",
        "5",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // Each camera's own outputs: nothing on stdout, each socket only its camera's lines.
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let door = datagrams(&door_out);
    let yard = datagrams(&yard_out);
    let commands = |lines: &[serde_json::Value], name: &str| -> Vec<serde_json::Value> {
        assert!(lines.iter().all(|l| l["camera"] == name), "{lines:?}");
        lines
            .iter()
            .filter(|l| l["type"] == "command")
            .cloned()
            .collect()
    };
    let (door, yard) = (commands(&door, "door"), commands(&yard, "yard"));
    // One command per frame and a last stop for each camera, numbered on their own.
    for (name, c) in [("door", &door), ("yard", &yard)] {
        assert!(c.len() >= 31, "{name}: {} commands", c.len());
        let seq: Vec<u64> = c.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "{name}: {seq:?}");
        let last = c.last().unwrap();
        assert_eq!(last["reason"], "shutdown", "{name}");
        assert_eq!(last["forward"], 0.0);
        assert_eq!(last["yaw_rate"], 0.0);
    }
    // Each locks on a person of its own half: door's to the left of centre, yard's to the right.
    let first_lock = |c: &[serde_json::Value]| {
        c.iter()
            .find(|l| l["state"] == "locked")
            .cloned()
            .unwrap_or_else(|| panic!("no lock: {stderr}"))
    };
    let (d, y) = (first_lock(&door), first_lock(&yard));
    assert!(d["ex"].as_f64().unwrap() < 0.0, "{d}");
    assert!(y["ex"].as_f64().unwrap() > 0.0, "{y}");
    assert_ne!(d["target_id"], y["target_id"]);
    assert!(stderr.contains("vigia [door]: follow"), "{stderr}");
    assert!(stderr.contains("vigia [yard]: follow"), "{stderr}");

    // Without outputs of their own, the cameras share stdout, each line naming its camera.
    let o = vigia(&[
        "follow",
        "--source",
        &format!("a={video}"),
        "--source",
        &format!("b={video}"),
        "--max-frames",
        "3",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    for name in ["a", "b"] {
        let n = lines
            .iter()
            .filter(|l| l["camera"] == name && l["type"] == "command")
            .count();
        assert!(n >= 4, "{name}: {n} commands in {lines:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_follower_whose_camera_cannot_start_still_sends_its_stop() {
    let Some(video) = vtest() else {
        return;
    };
    let dir = temp_dir("cameras-follow-gone");
    let gone_out = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let file = cameras_file(
        &dir,
        &format!(
            "[[camera]]\nname = \"door\"\nsource = {video:?}\n\n\
             [[camera]]\nname = \"gone\"\nsource = {gone:?}\nfollow_out = \"udp://{addr}\"\n",
            video = video.to_str().unwrap(),
            gone = dir.join("unplugged.mp4").to_str().unwrap(),
            addr = gone_out.local_addr().unwrap(),
        ),
    );
    let o = vigia(&[
        "follow",
        "--cameras",
        file.to_str().unwrap(),
        "--max-frames",
        "3",
        "-q",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("camera gone could not start"), "{stderr}");
    // door ran to its end; gone's vehicle was still told to stop, and nothing else.
    let door = json_lines(&String::from_utf8_lossy(&o.stdout));
    assert!(door.iter().filter(|l| l["camera"] == "door").count() >= 4);
    let gone = datagrams(&gone_out);
    let last = gone
        .last()
        .unwrap_or_else(|| panic!("no stop for gone: {stderr}"));
    assert_eq!(last["camera"], "gone");
    assert_eq!(last["reason"], "shutdown");
    assert!(gone
        .iter()
        .all(|l| l["type"] == "command" && l["forward"] == 0.0 && l["yaw_rate"] == 0.0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn follower_settings_that_cannot_work_are_refused() {
    let dir = temp_dir("cameras-follow-bad");
    let file = dir.join("cameras.toml");
    let write = |extra_a: &str, extra_b: &str| {
        std::fs::write(
            &file,
            format!(
                "[[camera]]\nname = \"a\"\nsource = \"0\"\n{extra_a}\n\
                 [[camera]]\nname = \"b\"\nsource = \"1\"\n{extra_b}\n"
            ),
        )
        .unwrap();
    };
    let refused = |sub: &str| {
        let o = vigia(&[sub, "--cameras", file.to_str().unwrap()]);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Two cameras cannot steer through one serial line, nor as one MAVLink system.
    write(
        "follow_out = \"serial:/dev/ttyUSB7\"",
        "follow_out = \"serial:/dev/ttyUSB7@57600\"",
    );
    let e = refused("follow");
    assert!(
        e.contains("cameras `a` and `b` would both steer through serial:/dev/ttyUSB7"),
        "{e}"
    );
    write("", "");
    let o = vigia_cmd()
        .args(["follow", "--cameras", file.to_str().unwrap()])
        .args(["--mavlink", "udpout:127.0.0.1:14550"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("sysid"), "{e}");
    // Bad values name the file, the camera and the key.
    write("target = \"tallest\"", "");
    let e = refused("follow");
    assert!(e.contains("camera `a`: target"), "{e}");
    write("", "mavlink = \"udp://127.0.0.1:9\"");
    let e = refused("follow");
    assert!(e.contains("camera `b`: mavlink"), "{e}");
    // Follower settings outside `vigia follow`.
    write("target = \"largest\"", "");
    let e = refused("track");
    assert!(
        e.contains("camera `a` sets follower settings") && e.contains("vigia follow"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_cameras_of_one_name_are_refused() {
    let o = vigia_cmd()
        .args(["detect", "--source", "a=0", "--source", "a=1"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("two cameras are named `a`"),
        "{e}"
    );
}

#[test]
fn cameras_file_names_and_sources() {
    if common::shared().is_none() {
        return;
    }
    let dir = temp_dir("cameras-file");
    let file = cameras_file(
        &dir,
        "[[camera]]\nname = \"hall\"\nsource = \"synthetic://?scene=crossing&frames=5\"\n\n\
         [[camera]]\nname = \"porch\"\nsource = \"synthetic://?scene=occlusion&frames=7\"\n",
    );
    // `vigia run FILE` is `vigia track --cameras FILE`.
    let o = vigia(&["run", file.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    let count = |name: &str| lines.iter().filter(|f| f["camera"] == name).count();
    assert_eq!((count("hall"), count("porch")), (5, 7));
    // Each camera's frames come in order.
    for name in ["hall", "porch"] {
        let frames: Vec<u64> = lines
            .iter()
            .filter(|f| f["camera"] == name)
            .map(|f| f["frame"].as_u64().unwrap())
            .collect();
        assert!(frames.windows(2).all(|w| w[0] < w[1]), "{name}: {frames:?}");
    }
    std::fs::write(&file, "[[camera]]\nname = \"hall\"\n").unwrap();
    let o = vigia(&["detect", "--cameras", file.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("cameras.toml") && e.contains("source"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_camera_of_a_cameras_file_runs_its_own_model_tracker_and_files() {
    let (Some(shared), Some(video)) = (common::shared(), vtest()) else {
        return;
    };
    let yolo = shared.join("models/yolo/yolov8n-320.onnx");
    let video = video.to_str().unwrap();
    let dir = temp_dir("cameras-own-settings");
    let hall_json = dir.join("hall-own.jsonl");
    let file = cameras_file(
        &dir,
        &format!(
            "[[camera]]\nname = \"hall\"\nsource = {video:?}\n\
             save_json = {hall:?}\ntrack_buffer = 90\nreid = \"off\"\nimgsz = 320\n\n\
             [[camera]]\nname = \"porch\"\nsource = {video:?}\n\
             model = {yolo:?}\n",
            hall = hall_json.to_str().unwrap(),
            yolo = yolo.to_str().unwrap(),
        ),
    );
    let json = dir.join("frames.jsonl");
    let o = vigia(&[
        "track",
        "--cameras",
        file.to_str().unwrap(),
        "--max-frames",
        "10",
        "--classes",
        "person",
        "--save-json",
        json.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 cameras (hall, porch), 2 models"),
        "{stderr}"
    );
    // hall writes where its entry says, porch where --save-json puts it.
    assert_eq!(read_lines(&hall_json).len(), 10);
    assert!(!dir.join("frames.hall.jsonl").exists());
    let porch = read_lines(&dir.join("frames.porch.jsonl"));
    assert_eq!(porch.len(), 10);
    assert!(porch.iter().all(|f| f["camera"] == "porch"));
    // The same video seen by two models: NanoDet tracks the people; the YOLO graph, whose
    // weights are random (../shared/models/MODELS.md), finds nobody. Were porch's `model`
    // ignored, porch would track the same people as hall.
    let found = |lines: &[serde_json::Value]| {
        lines
            .iter()
            .map(|f| f["detections"].as_array().map_or(0, |d| d.len()))
            .sum::<usize>()
    };
    let hall = read_lines(&hall_json);
    assert!(found(&hall) > 10, "{stderr}");
    assert_eq!(found(&porch), 0, "{stderr}");
    assert!(
        stderr.contains("yolov8n-320.onnx [Yolov8, 320x320"),
        "{stderr}"
    );
    // hall runs the run's model at its own input size.
    assert!(stderr.contains("[Nanodet, 320x320"), "{stderr}");
    assert!(!stderr.contains("[Nanodet, 416x416"), "{stderr}");

    // Tracker settings in a detection run are refused, naming the camera.
    let o = vigia(&["detect", "--cameras", file.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("camera `hall` sets tracker settings"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "serve")]
#[test]
fn one_preview_serves_every_camera() {
    use std::io::{Read, Write};
    if common::shared().is_none() {
        return;
    }
    let live = |name: &str, w: u32, h: u32| {
        format!(
            "{name}=synthetic://?scene=crossing&live=1&fps=15&frames=100000&width={w}&height={h}"
        )
    };
    let mut cmd = vigia_cmd();
    cmd.args(["track", "--serve", "0", "--serve-token", "tok", "-q"])
        .args(["--source", &live("door", 320, 240)])
        .args(["--source", &live("yard", 256, 192)]);
    let (child, addr, _err) = common::spawn_with_preview(cmd);
    let _child = common::KillOnDrop(child);
    let get = |target: &str| -> (u16, Vec<u8>) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let status = String::from_utf8_lossy(&buf[..end])
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        (status, buf[end..].to_vec())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let cameras = loop {
        let (status, body) = get("/api/cameras?token=tok");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let frames = |i: usize| v["cameras"][i]["frames"].as_u64().unwrap_or(0);
        if frames(0) > 0 && frames(1) > 0 {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no frames: {v}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let names: Vec<&str> = cameras["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["door", "yard"]);
    assert_eq!(cameras["cameras"][1]["follow_url"], serde_json::Value::Null);
    for (name, size) in [("door", (320, 240)), ("yard", (256, 192))] {
        let (status, jpeg) = get(&format!("/cameras/{name}/frame.jpg?token=tok"));
        assert_eq!(status, 200, "{name}");
        let img = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((img.width(), img.height()), size, "{name}");
        let (status, stats) = get(&format!("/cameras/{name}/stats.json?token=tok"));
        assert_eq!(status, 200);
        let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
        assert!(stats["frame"].as_u64().is_some(), "{stats}");
    }
    assert_eq!(get("/cameras/yard/frame.jpg").0, 401);
    assert_eq!(get("/cameras/attic/frame.jpg?token=tok").0, 404);
}
