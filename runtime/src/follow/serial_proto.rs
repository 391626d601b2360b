//! The serial line protocol for microcontrollers: short ASCII lines with an NMEA-style checksum.
//!
//! ```text
//! V,<seq>,<yaw>,<pitch>,<fwd>,<state>*HH\n     follow command
//! S,<seq>,<yaw>,<pitch>,<fwd>,<state>*HH\n     stop (watchdog or shutdown); values are 0.000
//! E,<from>,<to>,<target>,<reason>*HH\n         state or target change
//! ```
//! - `seq`: decimal command sequence number;
//! - `yaw`, `pitch`, `fwd`: normalized commands in [-1, 1] with exactly 3 decimals
//!   (`yaw > 0` turn right, `pitch > 0` tilt up / climb, `fwd > 0` toward the target);
//! - `state`, `from`, `to`: 0 idle, 1 acquiring, 2 locked, 3 coasting, 4 reacquiring, 5 lost;
//! - `target`: the track id, empty when there is none;
//! - `reason`: a snake_case word (`acquired`, `target_changed`, …);
//! - `HH`: two uppercase hex digits, the XOR of every byte before `*` (as in NMEA 0183,
//!   without the leading `$`).
//!
//! A receiver splits at `*`, XORs the bytes before it, compares with `HH`, and drops the line on
//! a mismatch. Example: `V,42,0.250,-0.100,0.000,2*4B`.

use std::fmt::Write as _;

use super::{Command, CommandReason, FollowEvent};

/// XOR of every byte of `body` (the NMEA checksum).
pub fn line_checksum(body: &[u8]) -> u8 {
    body.iter().fold(0, |acc, b| acc ^ b)
}

/// Three decimals in [-1, 1], never `-0.000`.
fn push_value(buf: &mut String, v: f32) {
    let v = if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let r = (v * 1000.0).round() / 1000.0;
    let r = if r == 0.0 { 0.0 } else { r };
    write!(buf, "{r:.3}").expect("writing to a String");
}

fn finish(buf: &mut String, start: usize) {
    let sum = line_checksum(&buf.as_bytes()[start..]);
    writeln!(buf, "*{sum:02X}").expect("writing to a String");
}

/// Appends the line for `cmd` to `buf`.
pub fn write_command_line(buf: &mut String, cmd: &Command) {
    let start = buf.len();
    let kind = match cmd.reason {
        CommandReason::Follow => 'V',
        CommandReason::Watchdog | CommandReason::Shutdown => 'S',
    };
    write!(buf, "{kind},{},", cmd.seq).expect("writing to a String");
    push_value(buf, cmd.yaw_rate);
    buf.push(',');
    push_value(buf, cmd.pitch_rate);
    buf.push(',');
    push_value(buf, cmd.forward);
    write!(buf, ",{}", cmd.state.code()).expect("writing to a String");
    finish(buf, start);
}

/// Appends the line for `ev` to `buf`.
pub fn write_event_line(buf: &mut String, ev: &FollowEvent) {
    let start = buf.len();
    write!(buf, "E,{},{},", ev.from.code(), ev.to.code()).expect("writing to a String");
    if let Some(id) = ev.target_id {
        write!(buf, "{id}").expect("writing to a String");
    }
    write!(buf, ",{}", ev.reason.as_str()).expect("writing to a String");
    finish(buf, start);
}

/// The line for `cmd`, newline included.
///
/// The serial line protocol, one ASCII line per message:
/// `V,<seq>,<yaw>,<pitch>,<fwd>,<state>*HH` (command), `S,...` (watchdog or shutdown stop, same
/// fields, all zero) and `E,<from>,<to>,<target>,<reason>*HH` (event); values have 3 decimals in
/// [-1, 1], states are 0 idle, 1 acquiring, 2 locked, 3 coasting, 4 reacquiring, 5 lost, and
/// `HH` is the XOR of every byte before `*` in uppercase hex (NMEA style).
pub fn command_line(cmd: &Command) -> String {
    let mut s = String::with_capacity(48);
    write_command_line(&mut s, cmd);
    s
}

/// The line for `ev`, newline included.
pub fn event_line(ev: &FollowEvent) -> String {
    let mut s = String::with_capacity(48);
    write_event_line(&mut s, ev);
    s
}

/// The body of `line` (before `*`) when its checksum is right, `None` otherwise.
pub fn verify_line(line: &str) -> Option<&str> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (body, sum) = line.rsplit_once('*')?;
    if sum.len() != 2 {
        return None;
    }
    let want = u8::from_str_radix(sum, 16).ok()?;
    (line_checksum(body.as_bytes()) == want).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::{EventReason, FollowState};

    #[test]
    fn follow_serial_command_line_format_and_checksum() {
        let mut c = Command::stop(1.0, 42, FollowState::Locked, CommandReason::Follow);
        c.yaw_rate = 0.25;
        c.pitch_rate = -0.1;
        c.forward = -0.0001;
        let line = command_line(&c);
        assert_eq!(line, "V,42,0.250,-0.100,0.000,2*4B\n");
        assert_eq!(verify_line(&line), Some("V,42,0.250,-0.100,0.000,2"));
        let sum = line_checksum(b"V,42,0.250,-0.100,0.000,2");
        assert_eq!(format!("{sum:02X}"), "4B");
    }

    #[test]
    fn follow_serial_stop_and_event_lines() {
        let s = Command::stop(3.0, 7, FollowState::Coasting, CommandReason::Watchdog);
        let line = command_line(&s);
        assert!(line.starts_with("S,7,0.000,0.000,0.000,3*"), "{line}");
        assert!(verify_line(&line).is_some());
        let ev = FollowEvent {
            time: 2.0,
            from: FollowState::Reacquiring,
            to: FollowState::Locked,
            target_id: Some(12),
            reason: EventReason::TargetChanged { previous: 3 },
            appearance: None,
        };
        let line = event_line(&ev);
        assert!(line.starts_with("E,4,2,12,target_changed*"), "{line}");
        assert!(verify_line(&line).is_some());
        let none = FollowEvent {
            target_id: None,
            ..ev
        };
        assert!(event_line(&none).starts_with("E,4,2,,target_changed*"));
    }

    #[test]
    fn follow_serial_values_are_clamped_and_corruption_detected() {
        let mut c = Command::stop(0.0, 1, FollowState::Locked, CommandReason::Follow);
        c.yaw_rate = 3.0;
        c.pitch_rate = f32::NAN;
        c.forward = -1.7;
        let line = command_line(&c);
        assert!(line.starts_with("V,1,1.000,0.000,-1.000,2*"), "{line}");
        let corrupt = line.replacen("1.000", "1.001", 1);
        assert_eq!(verify_line(&corrupt), None);
        assert_eq!(verify_line("V,1,0.000"), None);
        assert_eq!(verify_line("V,1*G0"), None);
    }
}
