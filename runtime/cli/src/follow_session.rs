//! One camera's follower with its command outputs, watchdog and inbox of remote commands: what
//! `vigia follow` runs per camera, on the camera's inference thread.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;

use vigia::camera_set::CameraFollower;
use vigia::follow::Command as FollowCommand;
use vigia::follow::{
    open_camera_sink, CommandReason, CommandSink, FollowOutput, FollowState, Follower,
    FollowerConfig, OutputSpec, SinkSet, WatchdogHandle,
};
use vigia::pipeline::FrameResult;
use vigia::publish::{FollowInbox, FollowRequest};

/// A follower steering one camera's outputs.
pub struct FollowSession {
    follower: Follower,
    sinks: Arc<Mutex<dyn CommandSink>>,
    /// Taken by the final stop (`finish`, or the drop of a camera that never started).
    watchdog: Option<WatchdogHandle>,
    inbox: FollowInbox,
    /// After a remote `stop`: no target, no motion, until a remote target.
    halted: bool,
    use_appearance: bool,
    /// `vigia` or `vigia [door]` in log lines.
    who: String,
}

impl FollowSession {
    /// Opens `outputs` (stdout when empty) and starts the watchdog. `camera` names the camera
    /// when the process follows from several: in log lines and in the JSON lines it sends.
    pub fn open(
        config: FollowerConfig,
        outputs: &[OutputSpec],
        use_appearance: bool,
        camera: Option<&str>,
    ) -> anyhow::Result<Self> {
        let watchdog_after = Duration::from_secs_f64(config.watchdog);
        let follower = Follower::new(config)?;
        let specs: Vec<OutputSpec> = if outputs.is_empty() {
            vec![OutputSpec::Stdout]
        } else {
            outputs.to_vec()
        };
        let sinks: Vec<Box<dyn CommandSink>> = specs
            .iter()
            .map(|s| open_camera_sink(s, camera))
            .collect::<Result<_, _>>()?;
        let sinks: Arc<Mutex<dyn CommandSink>> = Arc::new(Mutex::new(SinkSet::new(sinks)));
        let watchdog = vigia::follow::Watchdog::spawn_with_seq(
            watchdog_after,
            sinks.clone(),
            follower.sequence(),
        );
        Ok(FollowSession {
            follower,
            sinks,
            watchdog: Some(watchdog),
            inbox: FollowInbox::default(),
            halted: false,
            use_appearance,
            who: camera.map_or("vigia".into(), |c| format!("vigia [{c}]")),
        })
    }

    /// Where remote follow commands (MQTT, the preview's POSTs) for this camera go.
    pub fn inbox(&self) -> FollowInbox {
        self.inbox.clone()
    }
}

impl CameraFollower for FollowSession {
    fn on_frame(&mut self, r: &FrameResult) -> vigia::Result<Option<FollowOutput>> {
        let (w, h) = r.frame.image.dimensions();
        let time = r.frame.timestamp;
        let mut events = Vec::new();
        for request in self.inbox.take() {
            events.extend(self.follower.reset(time));
            match request {
                FollowRequest::Target(policy) => {
                    eprintln!("{}: follow: new target {policy} (remote command)", self.who);
                    self.follower.set_policy(policy);
                    self.halted = false;
                }
                FollowRequest::Stop => {
                    eprintln!("{}: follow: stopped (remote command)", self.who);
                    self.halted = true;
                }
            }
        }
        let mut out = if self.halted {
            let seq = self.follower.sequence().next();
            FollowOutput {
                command: FollowCommand::stop(time, seq, FollowState::Idle, CommandReason::Follow),
                events: Vec::new(),
            }
        } else {
            let appearances = self.use_appearance.then_some(&r.appearances);
            self.follower
                .update_with(&r.tracks, appearances, time, w, h)
        };
        events.append(&mut out.events);
        out.events = events;
        {
            let mut s = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
            for ev in &out.events {
                eprintln!("{}: follow {ev}", self.who);
                s.send_event(ev)?;
            }
            s.send(&out.command)?;
        }
        if let Some(w) = &self.watchdog {
            w.feed(&out.command);
        }
        Ok(Some(out))
    }

    fn finish(mut self: Box<Self>) -> vigia::Result<()> {
        self.watchdog
            .take()
            .map_or(Ok(()), WatchdogHandle::shutdown)
    }
}

/// A follower dropped without `finish` (its camera could not start) still sends its final stop.
impl Drop for FollowSession {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            if let Err(e) = w.shutdown() {
                eprintln!(
                    "{}: follow: the final stop could not be sent: {e}",
                    self.who
                );
            }
        }
    }
}

/// Refuses outputs that several cameras' followers cannot share: one serial device, or one
/// MAVLink destination with the same system and component ids (the vehicle could not tell the
/// cameras' commands apart). JSON lines (stdout, UDP) carry the camera's name and can be shared.
pub fn check_shared_outputs(cameras: &[(&str, &[OutputSpec])]) -> anyhow::Result<()> {
    for (i, (first, outputs)) in cameras.iter().enumerate() {
        for spec in outputs.iter() {
            for (second, others) in &cameras[i + 1..] {
                for other in others.iter() {
                    let clash = match (spec, other) {
                        (
                            OutputSpec::Serial { device: a, .. },
                            OutputSpec::Serial { device: b, .. },
                        ) => a == b,
                        (
                            OutputSpec::Mavlink {
                                address: a,
                                config: ca,
                            },
                            OutputSpec::Mavlink {
                                address: b,
                                config: cb,
                            },
                        ) => {
                            a == b
                                && ca.system_id == cb.system_id
                                && ca.component_id == cb.component_id
                        }
                        _ => false,
                    };
                    if clash {
                        bail!(
                            "cameras `{first}` and `{second}` would both steer through {spec}: \
                             give each camera its own output (`follow_out`/`mavlink` in the \
                             cameras file; MAVLink systems told apart by `?sysid=N`)"
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &[&str]) -> Vec<OutputSpec> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn shared_outputs_that_cannot_be_told_apart_are_refused() {
        let json = specs(&["stdout", "udp://127.0.0.1:9000"]);
        assert!(check_shared_outputs(&[("a", &json), ("b", &json)]).is_ok());
        let serial = specs(&["serial:/dev/ttyUSB0"]);
        let e = check_shared_outputs(&[("a", &serial), ("b", &json), ("c", &serial)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`a` and `c`") && e.contains("serial:/dev/ttyUSB0"),
            "{e}"
        );
        let one = specs(&["udpout:127.0.0.1:14550"]);
        let e = check_shared_outputs(&[("a", &one), ("b", &one)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sysid"), "{e}");
        let two = specs(&["udpout:127.0.0.1:14550?sysid=2"]);
        assert!(check_shared_outputs(&[("a", &one), ("b", &two)]).is_ok());
        let elsewhere = specs(&["udpout:127.0.0.1:14551"]);
        assert!(check_shared_outputs(&[("a", &one), ("b", &elsewhere)]).is_ok());
    }
}
