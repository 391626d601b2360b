//! Where commands go: the [`CommandSink`] trait, JSON-lines sinks (any writer, UDP), the
//! `--follow-out` address forms and opening a sink from one.

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};

use super::{Command, FollowEvent};

/// The command-line option that names a command output.
pub const FOLLOW_OUT_OPTION: &str = "--follow-out";

const VALID_OUTPUTS: &str = "valid forms: stdout, udp://HOST:PORT (JSON lines), \
                             serial:DEVICE[@BAUD] (line protocol, default 115200 baud), \
                             udpout:HOST:PORT[?mode=vehicle|gimbal&sysid=N&compid=N&target_system=N\
                             &target_component=N&gimbal_device=N&max_forward=M/S&max_vertical=M/S\
                             &max_yaw_rate=RAD/S&max_pitch_rate=RAD/S&heartbeat=0|1] (MAVLink 2)";

/// Receives steering commands and follow events, one call each.
pub trait CommandSink: Send {
    /// Sends one command.
    fn send(&mut self, cmd: &Command) -> Result<()>;
    /// Sends one state or target change.
    fn send_event(&mut self, ev: &FollowEvent) -> Result<()>;
}

impl<T: CommandSink + ?Sized> CommandSink for Box<T> {
    fn send(&mut self, cmd: &Command) -> Result<()> {
        (**self).send(cmd)
    }

    fn send_event(&mut self, ev: &FollowEvent) -> Result<()> {
        (**self).send_event(ev)
    }
}

pub(crate) fn option_error(reason: impl Into<String>) -> Error {
    Error::Option {
        option: FOLLOW_OUT_OPTION.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn io_error(path: &str, source: io::Error) -> Error {
    Error::Io {
        path: path.into(),
        source,
    }
}

/// One JSON line: `{"type":"command",...}` or `{"type":"event",...}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line<'a> {
    Command(&'a Command),
    Event(&'a FollowEvent),
}

/// A line with the camera it comes from, when the process follows from several.
#[derive(Serialize)]
struct CameraLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    camera: Option<&'a str>,
    #[serde(flatten)]
    line: &'a Line<'a>,
}

fn encode_line(buf: &mut Vec<u8>, camera: Option<&str>, line: &Line<'_>) {
    buf.clear();
    // Serializing plain structs of numbers and strings into memory cannot fail.
    serde_json::to_writer(&mut *buf, &CameraLine { camera, line })
        .expect("command serializes to JSON");
    buf.push(b'\n');
}

/// Writes one JSON object per line (commands and events, told apart by `"type"`), flushed.
pub struct JsonLinesSink<W: Write + Send> {
    out: W,
    name: String,
    camera: Option<String>,
    buf: Vec<u8>,
}

impl JsonLinesSink<io::Stdout> {
    /// JSON lines on standard output.
    pub fn stdout() -> Self {
        JsonLinesSink::new(io::stdout(), "stdout")
    }
}

impl<W: Write + Send> JsonLinesSink<W> {
    /// JSON lines on `out`; `name` (a path or "stdout") appears in errors.
    pub fn new(out: W, name: impl Into<String>) -> Self {
        JsonLinesSink {
            out,
            name: name.into(),
            camera: None,
            buf: Vec::with_capacity(512),
        }
    }

    /// Lines that carry `"camera": camera` (one process following from several cameras).
    pub fn with_camera(mut self, camera: Option<&str>) -> Self {
        self.camera = camera.map(str::to_string);
        self
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write(&mut self, line: &Line<'_>) -> Result<()> {
        encode_line(&mut self.buf, self.camera.as_deref(), line);
        self.out
            .write_all(&self.buf)
            .and_then(|_| self.out.flush())
            .map_err(|e| io_error(&self.name, e))
    }
}

impl<W: Write + Send> CommandSink for JsonLinesSink<W> {
    fn send(&mut self, cmd: &Command) -> Result<()> {
        self.write(&Line::Command(cmd))
    }

    fn send_event(&mut self, ev: &FollowEvent) -> Result<()> {
        self.write(&Line::Event(ev))
    }
}

/// Resolves `HOST:PORT` (an IP literal, `[v6]:port` or a host name) to one destination.
pub(crate) fn resolve_destination(host_port: &str, shown: &str) -> Result<SocketAddr> {
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| option_error(format!("`{shown}` lacks a port; {VALID_OUTPUTS}")))?;
    if host.is_empty() || host == "[]" {
        return Err(option_error(format!(
            "`{shown}` lacks a host; {VALID_OUTPUTS}"
        )));
    }
    let port: u16 = port.parse().map_err(|_| {
        option_error(format!(
            "`{port}` in `{shown}` is not a port number (1-65535)"
        ))
    })?;
    if port == 0 {
        return Err(option_error(format!(
            "`{shown}`: port 0 is not a destination"
        )));
    }
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| option_error(format!("cannot resolve `{shown}`: {e}")))?
        .next()
        .ok_or_else(|| option_error(format!("`{shown}` resolves to no address")))?;
    if addr.ip().is_unspecified() {
        return Err(option_error(format!(
            "`{shown}` is the unspecified address, not a destination"
        )));
    }
    Ok(addr)
}

/// A UDP socket connected to `dest`; errors name `shown` and the option.
pub(crate) fn connect_udp(dest: SocketAddr, shown: &str) -> Result<UdpSocket> {
    let bind: SocketAddr = if dest.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let socket = UdpSocket::bind(bind)
        .map_err(|e| option_error(format!("cannot open a UDP socket for `{shown}`: {e}")))?;
    // Connecting a UDP socket sends nothing but checks there is a route to the destination.
    socket
        .connect(dest)
        .map_err(|e| option_error(format!("cannot reach `{shown}`: {e}")))?;
    Ok(socket)
}

/// Sends one datagram; a refused port (nobody listening yet) is not an error for UDP outputs.
pub(crate) fn send_datagram(socket: &UdpSocket, data: &[u8], shown: &str) -> Result<()> {
    match socket.send(data) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(io_error(shown, e)),
    }
}

/// JSON lines over UDP: one datagram per command or event, each one JSON object and a newline.
pub struct UdpJsonSink {
    socket: UdpSocket,
    shown: String,
    camera: Option<String>,
    buf: Vec<u8>,
}

impl UdpJsonSink {
    /// Opens a sink for `udp://HOST:PORT` (the scheme may be left out).
    pub fn connect(address: &str) -> Result<Self> {
        let host_port = address.strip_prefix("udp://").unwrap_or(address);
        let shown = format!("udp://{host_port}");
        let dest = resolve_destination(host_port, &shown)?;
        let socket = connect_udp(dest, &shown)?;
        Ok(UdpJsonSink {
            socket,
            shown,
            camera: None,
            buf: Vec::with_capacity(512),
        })
    }

    /// Datagrams that carry `"camera": camera` (one process following from several cameras).
    pub fn with_camera(mut self, camera: Option<&str>) -> Self {
        self.camera = camera.map(str::to_string);
        self
    }

    /// The local address datagrams are sent from.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn write(&mut self, line: &Line<'_>) -> Result<()> {
        encode_line(&mut self.buf, self.camera.as_deref(), line);
        send_datagram(&self.socket, &self.buf, &self.shown)
    }
}

impl CommandSink for UdpJsonSink {
    fn send(&mut self, cmd: &Command) -> Result<()> {
        self.write(&Line::Command(cmd))
    }

    fn send_event(&mut self, ev: &FollowEvent) -> Result<()> {
        self.write(&Line::Event(ev))
    }
}

/// Sends everything to several sinks; one failing output does not keep the others from
/// receiving (a stop must reach every output), the first error is returned.
pub struct SinkSet {
    sinks: Vec<Box<dyn CommandSink>>,
}

impl SinkSet {
    /// A set of `sinks`, served in order.
    pub fn new(sinks: Vec<Box<dyn CommandSink>>) -> Self {
        SinkSet { sinks }
    }

    /// Number of sinks.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// True when there are no sinks.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl CommandSink for SinkSet {
    fn send(&mut self, cmd: &Command) -> Result<()> {
        let mut first = Ok(());
        for s in &mut self.sinks {
            let r = s.send(cmd);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    fn send_event(&mut self, ev: &FollowEvent) -> Result<()> {
        let mut first = Ok(());
        for s in &mut self.sinks {
            let r = s.send_event(ev);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// What a MAVLink output commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MavlinkMode {
    /// A vehicle: SET_POSITION_TARGET_LOCAL_NED velocities and yaw rate in MAV_FRAME_BODY_NED.
    Vehicle,
    /// A gimbal: GIMBAL_MANAGER_SET_PITCHYAW pitch and yaw rates.
    Gimbal,
}

/// MAVLink identities and the scales from normalized commands to physical units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MavlinkConfig {
    /// Vehicle or gimbal messages.
    pub mode: MavlinkMode,
    /// Our system id.
    pub system_id: u8,
    /// Our component id (191: MAV_COMP_ID_ONBOARD_COMPUTER).
    pub component_id: u8,
    /// The system commanded.
    pub target_system: u8,
    /// The component commanded (1: the autopilot, which also hosts the gimbal manager).
    pub target_component: u8,
    /// Gimbal device addressed by gimbal messages (0: all).
    pub gimbal_device_id: u8,
    /// m/s for `forward = 1` (body x).
    pub max_forward: f32,
    /// m/s for `pitch_rate = 1` on a vehicle (climb); 0 by default so a vehicle never descends
    /// toward a person unless asked.
    pub max_vertical: f32,
    /// rad/s for `yaw_rate = 1` (vehicle and gimbal).
    pub max_yaw_rate: f32,
    /// rad/s for `pitch_rate = 1` on a gimbal.
    pub max_pitch_rate: f32,
    /// Send a HEARTBEAT (MAV_TYPE_ONBOARD_CONTROLLER) once a second.
    pub heartbeat: bool,
}

impl Default for MavlinkConfig {
    fn default() -> Self {
        MavlinkConfig {
            mode: MavlinkMode::Vehicle,
            system_id: 1,
            component_id: 191,
            target_system: 1,
            target_component: 1,
            gimbal_device_id: 0,
            max_forward: 1.0,
            max_vertical: 0.0,
            max_yaw_rate: 0.8,
            max_pitch_rate: 0.8,
            heartbeat: true,
        }
    }
}

impl MavlinkConfig {
    /// Applies `key=value` settings separated by `&` (the query of a `udpout:` address).
    pub fn apply_query(&mut self, query: &str) -> Result<()> {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                option_error(format!("`{pair}` is not key=value; {VALID_OUTPUTS}"))
            })?;
            let int = |v: &str| -> Result<u8> {
                v.parse::<u8>()
                    .map_err(|_| option_error(format!("{key}={v}: expected an integer 0-255")))
            };
            let scale = |v: &str| -> Result<f32> {
                match v.parse::<f32>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                    _ => Err(option_error(format!("{key}={v}: expected a number >= 0"))),
                }
            };
            match key {
                "mode" => {
                    self.mode = match value {
                        "vehicle" => MavlinkMode::Vehicle,
                        "gimbal" => MavlinkMode::Gimbal,
                        _ => {
                            return Err(option_error(format!(
                                "mode={value}: expected vehicle or gimbal"
                            )))
                        }
                    }
                }
                "sysid" => self.system_id = int(value)?,
                "compid" => self.component_id = int(value)?,
                "target_system" => self.target_system = int(value)?,
                "target_component" => self.target_component = int(value)?,
                "gimbal_device" => self.gimbal_device_id = int(value)?,
                "max_forward" => self.max_forward = scale(value)?,
                "max_vertical" => self.max_vertical = scale(value)?,
                "max_yaw_rate" => self.max_yaw_rate = scale(value)?,
                "max_pitch_rate" => self.max_pitch_rate = scale(value)?,
                "heartbeat" => {
                    self.heartbeat = match value {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => {
                            return Err(option_error(format!("heartbeat={value}: expected 0 or 1")))
                        }
                    }
                }
                _ => {
                    return Err(option_error(format!(
                        "unknown MAVLink setting `{key}`; {VALID_OUTPUTS}"
                    )))
                }
            }
        }
        Ok(())
    }
}

/// A parsed `--follow-out` value.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputSpec {
    /// JSON lines on standard output (`stdout` or `-`).
    Stdout,
    /// JSON lines over UDP to `HOST:PORT` (`udp://HOST:PORT`).
    Udp(String),
    /// The serial line protocol (`serial:DEVICE[@BAUD]`).
    Serial {
        /// Device path, e.g. /dev/ttyUSB0.
        device: String,
        /// Baud rate.
        baud: u32,
    },
    /// MAVLink 2 over UDP to `HOST:PORT` (`udpout:HOST:PORT[?settings]`).
    Mavlink {
        /// Destination `HOST:PORT`.
        address: String,
        /// Identities, mode and scales.
        config: MavlinkConfig,
    },
}

impl FromStr for OutputSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s == "stdout" || s == "-" {
            return Ok(OutputSpec::Stdout);
        }
        if let Some(rest) = s.strip_prefix("udp://") {
            resolve_syntax(rest, s)?;
            return Ok(OutputSpec::Udp(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("serial:") {
            let (device, baud) = match rest.rsplit_once('@') {
                Some((d, b)) => {
                    let baud: u32 = b.parse().ok().filter(|&b| b > 0).ok_or_else(|| {
                        option_error(format!("`{b}` in `{s}` is not a baud rate"))
                    })?;
                    (d, baud)
                }
                None => (rest, 115_200),
            };
            if device.is_empty() {
                return Err(option_error(format!(
                    "`{s}` names no device; {VALID_OUTPUTS}"
                )));
            }
            return Ok(OutputSpec::Serial {
                device: device.to_string(),
                baud,
            });
        }
        if let Some(rest) = s.strip_prefix("udpout:") {
            let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
            resolve_syntax(address, s)?;
            let mut config = MavlinkConfig::default();
            config.apply_query(query)?;
            return Ok(OutputSpec::Mavlink {
                address: address.to_string(),
                config,
            });
        }
        Err(option_error(format!(
            "unknown output `{s}`; {VALID_OUTPUTS}"
        )))
    }
}

/// Checks the `HOST:PORT` shape without resolving it.
fn resolve_syntax(host_port: &str, shown: &str) -> Result<()> {
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| option_error(format!("`{shown}` lacks a port; {VALID_OUTPUTS}")))?;
    if host.is_empty() || host == "[]" {
        return Err(option_error(format!(
            "`{shown}` lacks a host; {VALID_OUTPUTS}"
        )));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(option_error(format!(
            "`{port}` in `{shown}` is not a port number (1-65535)"
        ))),
    }
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputSpec::Stdout => f.write_str("stdout"),
            OutputSpec::Udp(a) => write!(f, "udp://{a}"),
            OutputSpec::Serial { device, baud } => write!(f, "serial:{device}@{baud}"),
            OutputSpec::Mavlink { address, config } => {
                let mode = match config.mode {
                    MavlinkMode::Vehicle => "vehicle",
                    MavlinkMode::Gimbal => "gimbal",
                };
                write!(f, "udpout:{address}?mode={mode}")
            }
        }
    }
}

/// Opens the sink `spec` describes; a kind this build lacks is a clear error.
pub fn open_sink(spec: &OutputSpec) -> Result<Box<dyn CommandSink>> {
    open_camera_sink(spec, None)
}

/// Opens the sink `spec` describes for the follower of `camera`: its JSON lines carry the
/// camera's name (the serial protocol and MAVLink have no place for it).
pub fn open_camera_sink(spec: &OutputSpec, camera: Option<&str>) -> Result<Box<dyn CommandSink>> {
    match spec {
        OutputSpec::Stdout => Ok(Box::new(JsonLinesSink::stdout().with_camera(camera))),
        OutputSpec::Udp(address) => {
            Ok(Box::new(UdpJsonSink::connect(address)?.with_camera(camera)))
        }
        #[cfg(feature = "serial")]
        OutputSpec::Serial { device, baud } => Ok(Box::new(super::serial_out::SerialSink::open(
            device, *baud,
        )?)),
        #[cfg(not(feature = "serial"))]
        OutputSpec::Serial { device, .. } => Err(Error::FeatureMissing {
            feature: "serial",
            what: format!("--follow-out serial:{device}"),
        }),
        #[cfg(feature = "mavlink")]
        OutputSpec::Mavlink { address, config } => Ok(Box::new(
            super::mavlink_out::MavlinkSink::connect(address, *config)?,
        )),
        #[cfg(not(feature = "mavlink"))]
        OutputSpec::Mavlink { address, .. } => Err(Error::FeatureMissing {
            feature: "mavlink",
            what: format!("--mavlink udpout:{address}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::{CommandReason, EventReason, FollowState};

    fn option_reason(r: Result<OutputSpec>) -> String {
        match r {
            Err(Error::Option { option, reason }) => {
                assert_eq!(option, "--follow-out");
                reason
            }
            other => panic!("expected an option error, got {other:?}"),
        }
    }

    #[test]
    fn follow_output_spec_parses_every_form() {
        assert_eq!("stdout".parse::<OutputSpec>().unwrap(), OutputSpec::Stdout);
        assert_eq!("-".parse::<OutputSpec>().unwrap(), OutputSpec::Stdout);
        assert_eq!(
            "udp://127.0.0.1:9000".parse::<OutputSpec>().unwrap(),
            OutputSpec::Udp("127.0.0.1:9000".into())
        );
        assert_eq!(
            "serial:/dev/ttyUSB0".parse::<OutputSpec>().unwrap(),
            OutputSpec::Serial {
                device: "/dev/ttyUSB0".into(),
                baud: 115_200
            }
        );
        assert_eq!(
            "serial:/dev/ttyACM1@57600".parse::<OutputSpec>().unwrap(),
            OutputSpec::Serial {
                device: "/dev/ttyACM1".into(),
                baud: 57_600
            }
        );
        let OutputSpec::Mavlink { address, config } =
            "udpout:127.0.0.1:14550".parse::<OutputSpec>().unwrap()
        else {
            panic!("not mavlink");
        };
        assert_eq!(address, "127.0.0.1:14550");
        assert_eq!(config, MavlinkConfig::default());
        let OutputSpec::Mavlink { config, .. } =
            "udpout:[::1]:14551?mode=gimbal&sysid=2&compid=100\
             &target_system=3&target_component=154&gimbal_device=1&max_forward=2.5\
             &max_vertical=0.5&max_yaw_rate=1.2&max_pitch_rate=0.6&heartbeat=0"
                .parse::<OutputSpec>()
                .unwrap()
        else {
            panic!("not mavlink");
        };
        assert_eq!(
            config,
            MavlinkConfig {
                mode: MavlinkMode::Gimbal,
                system_id: 2,
                component_id: 100,
                target_system: 3,
                target_component: 154,
                gimbal_device_id: 1,
                max_forward: 2.5,
                max_vertical: 0.5,
                max_yaw_rate: 1.2,
                max_pitch_rate: 0.6,
                heartbeat: false,
            }
        );
    }

    #[test]
    fn follow_output_spec_rejects_malformed_values() {
        for s in [
            "tcp://127.0.0.1:9000",
            "udp://127.0.0.1",
            "udp://:9000",
            "udp://127.0.0.1:0",
            "udp://127.0.0.1:70000",
            "udp://127.0.0.1:port",
            "serial:",
            "serial:/dev/ttyUSB0@fast",
            "udpout:127.0.0.1",
            "udpout:127.0.0.1:14550?mode=boat",
            "udpout:127.0.0.1:14550?sysid=300",
            "udpout:127.0.0.1:14550?colour=red",
            "udpout:127.0.0.1:14550?max_forward=-1",
        ] {
            let reason = option_reason(s.parse::<OutputSpec>());
            assert!(!reason.is_empty(), "{s}");
        }
        let reason = option_reason("carrier-pigeon".parse::<OutputSpec>());
        for form in ["stdout", "udp://", "serial:", "udpout:"] {
            assert!(reason.contains(form), "{reason} lacks {form}");
        }
    }

    #[test]
    fn follow_output_destination_checks() {
        let unspecified = UdpJsonSink::connect("udp://0.0.0.0:9000");
        assert!(matches!(unspecified, Err(Error::Option { .. })));
        // Connecting a UDP socket to the broadcast address without SO_BROADCAST is refused
        // locally: nothing is sent.
        match UdpJsonSink::connect("udp://255.255.255.255:9000") {
            Err(Error::Option { option, reason }) => {
                assert_eq!(option, "--follow-out");
                assert!(reason.contains("255.255.255.255:9000"), "{reason}");
            }
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("broadcast destination accepted"),
        }
    }

    #[cfg(not(feature = "serial"))]
    #[test]
    fn follow_output_serial_without_the_feature_says_so() {
        let spec: OutputSpec = "serial:/dev/ttyUSB0".parse().unwrap();
        let Err(e @ Error::FeatureMissing { feature, .. }) = open_sink(&spec) else {
            panic!("serial output opened without the feature");
        };
        assert_eq!(feature, "serial");
        assert!(e.to_string().contains("--features serial"), "{e}");
    }

    #[cfg(not(feature = "mavlink"))]
    #[test]
    fn follow_output_mavlink_without_the_feature_says_so() {
        let spec: OutputSpec = "udpout:127.0.0.1:14550".parse().unwrap();
        let Err(e @ Error::FeatureMissing { feature, .. }) = open_sink(&spec) else {
            panic!("MAVLink output opened without the feature");
        };
        assert_eq!(feature, "mavlink");
        assert!(e.to_string().contains("--features mavlink"), "{e}");
    }

    #[test]
    fn follow_output_json_lines_one_object_per_line() {
        let mut sink = JsonLinesSink::new(Vec::new(), "memory");
        let mut cmd = Command::stop(1.25, 3, FollowState::Locked, CommandReason::Follow);
        cmd.yaw_rate = 0.5;
        cmd.target_id = Some(4);
        sink.send(&cmd).unwrap();
        sink.send_event(&FollowEvent {
            time: 1.25,
            from: FollowState::Coasting,
            to: FollowState::Locked,
            target_id: Some(4),
            reason: EventReason::Reacquired,
            appearance: None,
        })
        .unwrap();
        let text = String::from_utf8(sink.into_inner()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["type"], "command");
        assert_eq!(lines[0]["seq"], 3);
        assert_eq!(lines[0]["yaw_rate"], 0.5);
        assert_eq!(lines[0]["target_id"], 4);
        assert_eq!(lines[1]["type"], "event");
        assert_eq!(lines[1]["from"], "coasting");
        assert_eq!(lines[1]["reason"]["kind"], "reacquired");
        // One follower of one camera: no camera field.
        assert!(lines.iter().all(|l| l.get("camera").is_none()), "{text}");

        // Several cameras: each line names its camera, with the same fields as before.
        let mut sink = JsonLinesSink::new(Vec::new(), "memory").with_camera(Some("door"));
        sink.send(&cmd).unwrap();
        let text = String::from_utf8(sink.into_inner()).unwrap();
        let tagged: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(tagged["camera"], "door");
        let mut untagged = tagged.clone();
        untagged.as_object_mut().unwrap().remove("camera");
        assert_eq!(untagged, lines[0]);
    }

    #[test]
    fn follow_output_sink_set_serves_all_and_reports_the_first_error() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        struct Channel(std::sync::mpsc::Sender<Vec<u8>>);
        impl Write for Channel {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.send(b.to_vec()).ok();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut set = SinkSet::new(vec![
            Box::new(JsonLinesSink::new(Broken, "broken-pipe")),
            Box::new(JsonLinesSink::new(Channel(tx), "channel")),
        ]);
        assert_eq!(set.len(), 2);
        let cmd = Command::stop(0.0, 0, FollowState::Idle, CommandReason::Watchdog);
        match set.send(&cmd) {
            Err(Error::Io { path, .. }) => assert_eq!(path.to_str(), Some("broken-pipe")),
            other => panic!("{other:?}"),
        }
        let got = rx.try_recv().expect("second sink still served");
        assert!(String::from_utf8(got).unwrap().contains("\"watchdog\""));
    }
}
