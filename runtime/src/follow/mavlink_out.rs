//! Commands as MAVLink 2 messages over UDP, for an autopilot (vehicle velocity and yaw rate) or
//! a gimbal manager (pitch and yaw rates), plus the tracked rectangle for ground stations.
//!
//! Per command, one datagram per message:
//! - vehicle mode: SET_POSITION_TARGET_LOCAL_NED in MAV_FRAME_BODY_NED, type_mask ignoring
//!   position, acceleration and yaw (0x5C7) so only vx (forward), vy (0), vz (down, from
//!   `-pitch_rate`) and yaw_rate are used;
//! - gimbal mode: GIMBAL_MANAGER_SET_PITCHYAW with pitch/yaw NaN (ignored), pitch_rate and
//!   yaw_rate, flags GIMBAL_MANAGER_FLAGS_YAW_IN_VEHICLE_FRAME;
//! - both: CAMERA_TRACKING_IMAGE_STATUS with the normalized target rectangle and centre
//!   (status ACTIVE when locked, ACTIVE|COASTING while coasting, IDLE otherwise);
//! - once a second (when enabled): HEARTBEAT as MAV_TYPE_ONBOARD_CONTROLLER.
//!
//! Events become STATUSTEXT messages (NOTICE for target changes and timeouts, INFO otherwise).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use mavlink::dialects::common::{
    CameraTrackingMode, CameraTrackingStatusFlags, CameraTrackingTargetData, GimbalManagerFlags,
    MavAutopilot, MavFrame, MavMessage, MavModeFlag, MavSeverity, MavState, MavType,
    PositionTargetTypemask, CAMERA_TRACKING_IMAGE_STATUS_DATA, GIMBAL_MANAGER_SET_PITCHYAW_DATA,
    HEARTBEAT_DATA, SET_POSITION_TARGET_LOCAL_NED_DATA, STATUSTEXT_DATA,
};
use mavlink::MavHeader;

use crate::error::Result;

use super::output::{
    connect_udp, resolve_destination, send_datagram, CommandSink, MavlinkConfig, MavlinkMode,
};
use super::{Command, EventReason, FollowEvent, FollowState};

/// Velocity and yaw rate only: ignore x, y, z, ax, ay, az and yaw.
pub(crate) fn velocity_yaw_rate_mask() -> PositionTargetTypemask {
    PositionTargetTypemask::POSITION_TARGET_TYPEMASK_X_IGNORE
        | PositionTargetTypemask::POSITION_TARGET_TYPEMASK_Y_IGNORE
        | PositionTargetTypemask::POSITION_TARGET_TYPEMASK_Z_IGNORE
        | PositionTargetTypemask::POSITION_TARGET_TYPEMASK_AX_IGNORE
        | PositionTargetTypemask::POSITION_TARGET_TYPEMASK_AY_IGNORE
        | PositionTargetTypemask::POSITION_TARGET_TYPEMASK_AZ_IGNORE
        | PositionTargetTypemask::POSITION_TARGET_TYPEMASK_YAW_IGNORE
}

/// `v * scale`, with `-0.0` and non-finite values turned into `0.0`.
fn scaled(v: f32, scale: f32) -> f32 {
    let x = v * scale;
    if x.is_finite() && x != 0.0 {
        x
    } else {
        0.0
    }
}

/// Sends commands and events as MAVLink 2 over UDP (`udpout:HOST:PORT`).
pub struct MavlinkSink {
    socket: UdpSocket,
    shown: String,
    config: MavlinkConfig,
    sequence: u8,
    start: Instant,
    last_heartbeat: Option<Instant>,
    buf: Vec<u8>,
}

impl MavlinkSink {
    /// Opens a sink for `udpout:HOST:PORT` (the prefix may be left out) with `config`.
    pub fn connect(address: &str, config: MavlinkConfig) -> Result<Self> {
        let host_port = address.strip_prefix("udpout:").unwrap_or(address);
        let shown = format!("udpout:{host_port}");
        let dest = resolve_destination(host_port, &shown)?;
        let socket = connect_udp(dest, &shown)?;
        Ok(MavlinkSink {
            socket,
            shown,
            config,
            sequence: 0,
            start: Instant::now(),
            last_heartbeat: None,
            buf: Vec::with_capacity(300),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &MavlinkConfig {
        &self.config
    }

    fn time_boot_ms(&self) -> u32 {
        self.start.elapsed().as_millis().min(u32::MAX as u128) as u32
    }

    fn write(&mut self, msg: &MavMessage) -> Result<()> {
        let header = MavHeader {
            system_id: u32::from(self.config.system_id),
            component_id: self.config.component_id,
            sequence: self.sequence,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.buf.clear();
        mavlink::write_v2_msg(&mut self.buf, header, msg).map_err(|e| {
            super::output::io_error(&self.shown, std::io::Error::other(e.to_string()))
        })?;
        send_datagram(&self.socket, &self.buf, &self.shown)
    }

    fn heartbeat_if_due(&mut self) -> Result<()> {
        if !self.config.heartbeat {
            return Ok(());
        }
        let due = self
            .last_heartbeat
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if !due {
            return Ok(());
        }
        self.last_heartbeat = Some(Instant::now());
        self.write(&MavMessage::HEARTBEAT(HEARTBEAT_DATA {
            custom_mode: 0,
            mavtype: MavType::MAV_TYPE_ONBOARD_CONTROLLER,
            autopilot: MavAutopilot::MAV_AUTOPILOT_INVALID,
            base_mode: MavModeFlag::empty(),
            system_status: MavState::MAV_STATE_ACTIVE,
            mavlink_version: 3,
        }))
    }

    // MAV_FRAME_BODY_NED is marked superseded by MAV_FRAME_BODY_FRD, but it is the body frame
    // that both ArduPilot and PX4 accept for velocity setpoints.
    #[allow(deprecated)]
    fn motion_message(&self, cmd: &Command) -> MavMessage {
        let c = &self.config;
        match c.mode {
            MavlinkMode::Vehicle => {
                MavMessage::SET_POSITION_TARGET_LOCAL_NED(SET_POSITION_TARGET_LOCAL_NED_DATA {
                    time_boot_ms: self.time_boot_ms(),
                    x: 0.0,
                    y: 0.0,
                    z: 0.0,
                    vx: scaled(cmd.forward, c.max_forward),
                    vy: 0.0,
                    // NED: z points down, so climbing (pitch_rate > 0) is a negative vz.
                    vz: scaled(-cmd.pitch_rate, c.max_vertical),
                    afx: 0.0,
                    afy: 0.0,
                    afz: 0.0,
                    yaw: 0.0,
                    yaw_rate: scaled(cmd.yaw_rate, c.max_yaw_rate),
                    type_mask: velocity_yaw_rate_mask(),
                    target_system: c.target_system,
                    target_component: c.target_component,
                    coordinate_frame: MavFrame::MAV_FRAME_BODY_NED,
                })
            }
            MavlinkMode::Gimbal => {
                MavMessage::GIMBAL_MANAGER_SET_PITCHYAW(GIMBAL_MANAGER_SET_PITCHYAW_DATA {
                    flags: GimbalManagerFlags::GIMBAL_MANAGER_FLAGS_YAW_IN_VEHICLE_FRAME,
                    pitch: f32::NAN,
                    yaw: f32::NAN,
                    pitch_rate: scaled(cmd.pitch_rate, c.max_pitch_rate),
                    yaw_rate: scaled(cmd.yaw_rate, c.max_yaw_rate),
                    target_system: c.target_system,
                    target_component: c.target_component,
                    gimbal_device_id: c.gimbal_device_id,
                })
            }
        }
    }

    fn tracking_message(cmd: &Command) -> MavMessage {
        let status = match cmd.state {
            FollowState::Locked => CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_ACTIVE,
            FollowState::Coasting => {
                CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_ACTIVE
                    | CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_COASTING
            }
            _ => CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_IDLE,
        };
        let rect = cmd.target_box.filter(|_| cmd.state.may_move());
        let (mode, data, r) = match rect {
            Some(r) => (
                CameraTrackingMode::CAMERA_TRACKING_MODE_RECTANGLE,
                CameraTrackingTargetData::CAMERA_TRACKING_TARGET_DATA_IN_STATUS,
                r,
            ),
            None => (
                CameraTrackingMode::CAMERA_TRACKING_MODE_NONE,
                CameraTrackingTargetData::empty(),
                [f32::NAN; 4],
            ),
        };
        MavMessage::CAMERA_TRACKING_IMAGE_STATUS(CAMERA_TRACKING_IMAGE_STATUS_DATA {
            point_x: (r[0] + r[2]) / 2.0,
            point_y: (r[1] + r[3]) / 2.0,
            radius: f32::NAN,
            rec_top_x: r[0],
            rec_top_y: r[1],
            rec_bottom_x: r[2],
            rec_bottom_y: r[3],
            tracking_status: status,
            tracking_mode: mode,
            target_data: data,
        })
    }
}

impl CommandSink for MavlinkSink {
    fn send(&mut self, cmd: &Command) -> Result<()> {
        self.heartbeat_if_due()?;
        let motion = self.motion_message(cmd);
        self.write(&motion)?;
        self.write(&Self::tracking_message(cmd))
    }

    fn send_event(&mut self, ev: &FollowEvent) -> Result<()> {
        let severity = match ev.reason {
            EventReason::TargetChanged { .. } | EventReason::Timeout => {
                MavSeverity::MAV_SEVERITY_NOTICE
            }
            _ => MavSeverity::MAV_SEVERITY_INFO,
        };
        let mut text = format!("vigia {}>{}", ev.from, ev.to);
        if let Some(id) = ev.target_id {
            text.push_str(&format!(" id {id}"));
        }
        text.push(' ');
        text.push_str(ev.reason.as_str());
        // STATUSTEXT holds 50 bytes; the text is ASCII so any cut is on a character boundary.
        text.truncate(50);
        self.write(&MavMessage::STATUSTEXT(STATUSTEXT_DATA {
            severity,
            text: text.as_str().into(),
        }))
    }
}
