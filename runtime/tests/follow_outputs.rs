//! Follow command outputs on their real wire formats: MAVLink 2 and JSON lines over real UDP
//! sockets, the serial line protocol over a pseudo-terminal, and the watchdog's stop commands.

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigia::detection::BBox;
use vigia::follow::{
    open_sink, Command, CommandReason, CommandSink, EventReason, FollowEvent, FollowState,
    Follower, FollowerConfig, OutputSpec, Watchdog,
};
use vigia::track::{Track, TrackState};
use vigia::Error;

fn receiver() -> (UdpSocket, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    (sock, addr)
}

fn recv(sock: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("a datagram within 5 s");
    buf[..n].to_vec()
}

fn locked_command() -> Command {
    let mut c = Command::stop(12.5, 41, FollowState::Locked, CommandReason::Follow);
    c.yaw_rate = 0.25;
    c.pitch_rate = 0.4;
    c.forward = 0.5;
    c.target_id = Some(3);
    c.ex = -0.25;
    c.ey = 0.1;
    c.size = 0.7;
    c.target_box = Some([0.25, 0.2, 0.5, 0.9]);
    c
}

fn option_error(e: Error) -> String {
    match e {
        Error::Option { option, reason } => {
            assert_eq!(option, "--follow-out");
            reason
        }
        other => panic!("expected an option error, got {other}"),
    }
}

#[cfg(feature = "mavlink")]
mod mavlink_wire {
    use super::*;
    use mavlink::dialects::common::{
        CameraTrackingMode, CameraTrackingStatusFlags, CameraTrackingTargetData,
        GimbalManagerFlags, MavFrame, MavMessage, MavSeverity, MavType,
    };
    use mavlink::{MavHeader, MavlinkReader, MavlinkVersion};

    fn decode(datagram: &[u8]) -> (MavHeader, MavMessage) {
        assert_eq!(datagram[0], 0xFD, "MAVLink 2 start byte");
        MavlinkReader::new(datagram)
            .read_message::<MavMessage>(MavlinkVersion::V2)
            .expect("a CRC-valid MAVLink 2 message")
    }

    #[test]
    #[allow(deprecated)] // MAV_FRAME_BODY_NED, see the sink
    fn mavlink_vehicle_messages_decode_with_the_mavlink_parser() {
        let (sock, addr) = receiver();
        let spec: OutputSpec = format!(
            "udpout:{addr}?sysid=7&compid=191&target_system=3&target_component=1\
             &max_forward=2&max_vertical=0.5&max_yaw_rate=1.0"
        )
        .parse()
        .unwrap();
        let mut sink = open_sink(&spec).unwrap();
        sink.send(&locked_command()).unwrap();

        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(decode(&recv(&sock)));
        }
        let seqs: Vec<u8> = got.iter().map(|(h, _)| h.sequence).collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        for (h, _) in &got {
            assert_eq!((h.system_id, h.component_id), (7, 191));
        }
        let MavMessage::HEARTBEAT(hb) = &got[0].1 else {
            panic!("first a heartbeat, got {:?}", got[0].1);
        };
        assert_eq!(hb.mavtype, MavType::MAV_TYPE_ONBOARD_CONTROLLER);

        let MavMessage::SET_POSITION_TARGET_LOCAL_NED(sp) = &got[1].1 else {
            panic!("then SET_POSITION_TARGET_LOCAL_NED, got {:?}", got[1].1);
        };
        assert_eq!(sp.coordinate_frame, MavFrame::MAV_FRAME_BODY_NED);
        assert_eq!(
            sp.type_mask.bits(),
            0b0000_0101_1100_0111,
            "velocity + yaw rate only"
        );
        assert_eq!((sp.target_system, sp.target_component), (3, 1));
        assert!((sp.vx - 1.0).abs() < 1e-6, "0.5 * 2 m/s");
        assert_eq!(sp.vy, 0.0);
        assert!(
            (sp.vz - -0.2).abs() < 1e-6,
            "climb 0.4 * 0.5 m/s is -z in NED"
        );
        assert!((sp.yaw_rate - 0.25).abs() < 1e-6);

        let MavMessage::CAMERA_TRACKING_IMAGE_STATUS(ts) = &got[2].1 else {
            panic!("then CAMERA_TRACKING_IMAGE_STATUS, got {:?}", got[2].1);
        };
        assert_eq!(
            ts.tracking_status,
            CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_ACTIVE
        );
        assert_eq!(
            ts.tracking_mode,
            CameraTrackingMode::CAMERA_TRACKING_MODE_RECTANGLE
        );
        assert_eq!(
            ts.target_data,
            CameraTrackingTargetData::CAMERA_TRACKING_TARGET_DATA_IN_STATUS
        );
        assert_eq!(
            (ts.rec_top_x, ts.rec_top_y, ts.rec_bottom_x, ts.rec_bottom_y),
            (0.25, 0.2, 0.5, 0.9)
        );
        assert!((ts.point_x - 0.375).abs() < 1e-6 && (ts.point_y - 0.55).abs() < 1e-6);
        assert!(ts.radius.is_nan());

        // A second command within the second: no new heartbeat, sequence goes on.
        let mut stop = Command::stop(12.6, 42, FollowState::Lost, CommandReason::Watchdog);
        stop.target_box = None;
        sink.send(&stop).unwrap();
        let (h, m) = decode(&recv(&sock));
        assert_eq!(h.sequence, 3);
        let MavMessage::SET_POSITION_TARGET_LOCAL_NED(sp) = m else {
            panic!("{m:?}");
        };
        assert_eq!((sp.vx, sp.vy, sp.vz, sp.yaw_rate), (0.0, 0.0, 0.0, 0.0));
        assert!(!sp.vz.is_sign_negative(), "a stop is +0.0, not -0.0");
        let (_, m) = decode(&recv(&sock));
        let MavMessage::CAMERA_TRACKING_IMAGE_STATUS(ts) = m else {
            panic!("{m:?}");
        };
        assert_eq!(ts.tracking_status.bits(), 0, "idle");
        assert_eq!(
            ts.tracking_mode,
            CameraTrackingMode::CAMERA_TRACKING_MODE_NONE
        );
        assert!(ts.rec_top_x.is_nan() && ts.point_x.is_nan());
    }

    #[test]
    fn mavlink_gimbal_messages_and_status_text_decode() {
        let (sock, addr) = receiver();
        let spec: OutputSpec = format!(
            "udpout:{addr}?mode=gimbal&heartbeat=0&target_component=154&gimbal_device=2\
             &max_yaw_rate=1.5&max_pitch_rate=0.5"
        )
        .parse()
        .unwrap();
        let mut sink = open_sink(&spec).unwrap();
        let mut coasting = locked_command();
        coasting.state = FollowState::Coasting;
        sink.send(&coasting).unwrap();

        let (h, m) = decode(&recv(&sock));
        assert_eq!((h.system_id, h.component_id, h.sequence), (1, 191, 0));
        let MavMessage::GIMBAL_MANAGER_SET_PITCHYAW(g) = m else {
            panic!("expected GIMBAL_MANAGER_SET_PITCHYAW, got {m:?}");
        };
        assert!(g.pitch.is_nan() && g.yaw.is_nan(), "angles ignored");
        assert!((g.pitch_rate - 0.2).abs() < 1e-6);
        assert!((g.yaw_rate - 0.375).abs() < 1e-6);
        assert_eq!(
            (g.target_system, g.target_component, g.gimbal_device_id),
            (1, 154, 2)
        );
        assert_eq!(
            g.flags,
            GimbalManagerFlags::GIMBAL_MANAGER_FLAGS_YAW_IN_VEHICLE_FRAME
        );

        let (_, m) = decode(&recv(&sock));
        let MavMessage::CAMERA_TRACKING_IMAGE_STATUS(ts) = m else {
            panic!("{m:?}");
        };
        assert_eq!(
            ts.tracking_status,
            CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_ACTIVE
                | CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_COASTING
        );

        sink.send_event(&FollowEvent {
            time: 3.0,
            from: FollowState::Reacquiring,
            to: FollowState::Locked,
            target_id: Some(17),
            reason: EventReason::TargetChanged { previous: 3 },
            appearance: None,
        })
        .unwrap();
        let (_, m) = decode(&recv(&sock));
        let MavMessage::STATUSTEXT(st) = m else {
            panic!("{m:?}");
        };
        assert_eq!(st.severity, MavSeverity::MAV_SEVERITY_NOTICE);
        let text = st.text.to_str().unwrap();
        assert_eq!(text, "vigia reacquiring>locked id 17 target_changed");
    }

    #[test]
    fn mavlink_bad_destinations_give_clear_errors() {
        let reason = option_error(
            open_sink(&"udpout:255.255.255.255:14550".parse().unwrap())
                .err()
                .unwrap(),
        );
        assert!(reason.contains("udpout:255.255.255.255:14550"), "{reason}");
        let reason = option_error("udpout:localhost".parse::<OutputSpec>().unwrap_err());
        assert!(reason.contains("port"), "{reason}");
    }
}

#[test]
fn udp_json_sink_sends_one_json_line_per_datagram() {
    let (sock, addr) = receiver();
    let mut sink = open_sink(&format!("udp://{addr}").parse().unwrap()).unwrap();
    sink.send(&locked_command()).unwrap();
    sink.send_event(&FollowEvent {
        time: 12.5,
        from: FollowState::Locked,
        to: FollowState::Coasting,
        target_id: Some(3),
        reason: EventReason::TargetOccluded,
        appearance: None,
    })
    .unwrap();
    let first = recv(&sock);
    let second = recv(&sock);
    for d in [&first, &second] {
        assert_eq!(d.last(), Some(&b'\n'));
        assert_eq!(
            d.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one line per datagram"
        );
    }
    let cmd: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(cmd["type"], "command");
    assert_eq!(cmd["seq"], 41);
    assert_eq!(cmd["state"], "locked");
    assert_eq!(cmd["reason"], "follow");
    assert_eq!(cmd["target_id"], 3);
    assert_eq!(cmd["yaw_rate"], 0.25);
    assert_eq!(cmd["forward"], 0.5);
    assert_eq!(
        cmd["target_box"][3].as_f64().map(|v| (v * 10.0).round()),
        Some(9.0)
    );
    let ev: serde_json::Value = serde_json::from_slice(&second).unwrap();
    assert_eq!(ev["type"], "event");
    assert_eq!(ev["to"], "coasting");
    assert_eq!(ev["reason"]["kind"], "target_occluded");
}

#[test]
fn udp_bad_destinations_give_clear_errors() {
    // Refused locally by connect(): no packet leaves the machine.
    let e = open_sink(&"udp://255.255.255.255:9000".parse().unwrap())
        .err()
        .unwrap();
    let shown = e.to_string();
    assert!(shown.contains("--follow-out"), "{shown}");
    let reason = option_error(e);
    assert!(
        reason.contains("cannot reach `udp://255.255.255.255:9000`"),
        "{reason}"
    );
    for bad in [
        "udp://127.0.0.1",
        "udp://:9000",
        "udp://127.0.0.1:99999",
        "udp://0.0.0.0:9000",
    ] {
        let err = match bad.parse::<OutputSpec>() {
            Err(e) => e,
            Ok(spec) => open_sink(&spec).err().expect("rejected at open"),
        };
        let reason = option_error(err);
        assert!(!reason.is_empty(), "{bad}");
    }
}

#[cfg(all(feature = "serial", unix))]
mod serial_wire {
    use super::*;
    use std::io::Read;

    use serialport::{SerialPort, TTYPort};
    use vigia::follow::{line_checksum, verify_line};

    fn read_lines(port: &mut TTYPort, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while text.matches('\n').count() < n {
            assert!(Instant::now() < deadline, "only got {text:?}");
            match port.read(&mut buf) {
                Ok(k) => text.push_str(std::str::from_utf8(&buf[..k]).unwrap()),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("reading the pty: {e}"),
            }
        }
        text.lines().map(str::to_string).collect()
    }

    /// Checks `*HH` by hand, independently of the library's helpers.
    fn checksum_ok(line: &str) -> bool {
        let (body, hh) = line.rsplit_once('*').unwrap();
        let sum = body.bytes().fold(0u8, |a, b| a ^ b);
        format!("{sum:02X}") == hh
    }

    #[test]
    fn serial_line_protocol_over_a_pseudo_terminal() {
        let (mut master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        let device = slave.name().expect("the pty has a path");
        let mut sink = open_sink(&format!("serial:{device}@115200").parse().unwrap()).unwrap();

        let mut cmd = locked_command();
        cmd.pitch_rate = -0.1234;
        sink.send(&cmd).unwrap();
        sink.send(&Command::stop(
            13.0,
            42,
            FollowState::Locked,
            CommandReason::Watchdog,
        ))
        .unwrap();
        sink.send_event(&FollowEvent {
            time: 13.0,
            from: FollowState::Reacquiring,
            to: FollowState::Lost,
            target_id: Some(3),
            reason: EventReason::Timeout,
            appearance: None,
        })
        .unwrap();

        let lines = read_lines(&mut master, 3);
        assert_eq!(lines.len(), 3, "{lines:?}");
        for l in &lines {
            assert!(checksum_ok(l), "bad checksum: {l}");
            assert!(verify_line(l).is_some());
        }
        let body = |l: &str| l.rsplit_once('*').unwrap().0.to_string();
        assert_eq!(body(&lines[0]), "V,41,0.250,-0.123,0.500,2");
        assert_eq!(body(&lines[1]), "S,42,0.000,0.000,0.000,2");
        assert_eq!(body(&lines[2]), "E,4,5,3,timeout");
        assert_eq!(
            lines[0],
            format!(
                "V,41,0.250,-0.123,0.500,2*{:02X}",
                line_checksum(body(&lines[0]).as_bytes())
            )
        );
        drop(slave);
    }

    #[test]
    fn serial_missing_device_error_names_it() {
        let e = open_sink(&"serial:/dev/vigia-no-such-tty@115200".parse().unwrap())
            .err()
            .unwrap();
        let reason = option_error(e);
        assert!(reason.contains("/dev/vigia-no-such-tty"), "{reason}");
    }
}

fn person(id: u64, b: BBox) -> Track {
    Track {
        id,
        bbox: b,
        score: 0.9,
        class_id: 0,
        state: TrackState::Tracked,
        age: 5,
        frames_since_update: 0,
        velocity: (0.0, 0.0),
    }
}

#[test]
fn watchdog_sends_stop_over_udp_when_the_pipeline_stalls() {
    let (sock, addr) = receiver();
    let sink: Arc<Mutex<dyn CommandSink>> = Arc::new(Mutex::new(
        open_sink(&format!("udp://{addr}").parse().unwrap()).unwrap(),
    ));
    let mut follower = Follower::new(FollowerConfig {
        acquire_frames: 1,
        ..Default::default()
    })
    .unwrap();
    let timeout = Duration::from_secs_f64(follower.config().watchdog);
    assert_eq!(timeout, Duration::from_millis(300));
    let watchdog = Watchdog::spawn_with_seq(timeout, Arc::clone(&sink), follower.sequence());

    // A live pipeline at 30 fps, the person off to the right: commands move.
    let tracks = [person(1, BBox::new(450.0, 100.0, 550.0, 400.0))];
    let start = Instant::now();
    let mut last_seq = 0;
    let mut last_fed = start;
    for i in 0..20 {
        let out = follower.update(&tracks, i as f64 / 30.0, 640, 480);
        sink.lock().unwrap().send(&out.command).unwrap();
        watchdog.feed(&out.command);
        last_fed = Instant::now();
        last_seq = out.command.seq;
        if i < 19 {
            std::thread::sleep(Duration::from_millis(33));
        }
    }
    // The pipeline stalls here: no more commands, no more feeding.

    let mut moving = 0;
    let first_stop = loop {
        let d = recv(&sock);
        let v: serde_json::Value = serde_json::from_slice(&d).unwrap();
        if v["reason"] == "watchdog" {
            break (Instant::now(), v);
        }
        assert_eq!(v["reason"], "follow");
        if v["yaw_rate"].as_f64().unwrap() != 0.0 {
            moving += 1;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no stop came");
    };
    assert!(moving > 0, "the follower steered before the stall");
    let waited = first_stop.0.duration_since(last_fed);
    assert!(
        waited >= Duration::from_millis(250),
        "stop too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1500),
        "stop too late: {waited:?}"
    );
    let stop = &first_stop.1;
    for axis in ["yaw_rate", "pitch_rate", "forward"] {
        assert_eq!(stop[axis].as_f64(), Some(0.0), "{axis} in {stop}");
    }
    assert!(stop["target_id"].is_null());
    assert!(stop["seq"].as_u64().unwrap() > last_seq);

    // Nothing but stops afterwards, repeated at a low rate.
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let until = Instant::now() + Duration::from_millis(900);
    let mut repeats = 0;
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        let Ok(n) = sock.recv(&mut buf) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["reason"], "watchdog", "{v}");
        for axis in ["yaw_rate", "pitch_rate", "forward"] {
            assert_eq!(v[axis].as_f64(), Some(0.0), "non-zero after the stop: {v}");
        }
        repeats += 1;
    }
    assert!(repeats >= 1, "the stop is repeated while stalled");
    assert!(watchdog.tripped());
    watchdog.shutdown().unwrap();
}
