//! `--mqtt` and its options: a camera's events, counts, follow state and stats published to an
//! MQTT broker, and its `follow/set` and `detect/set` commands taken from it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use vigia::model::Labels;
use vigia::pipeline::{DetectSwitch, OutputStage};
use vigia::publish::topics::{check_level, sanitize_level};
use vigia::publish::track_events::EventPolicy;
use vigia::publish::{
    BrokerUrl, CameraPublishConfig, CommandHandler, FollowInbox, FollowRequest, RemoteAction,
};

/// Publishing to an MQTT broker.
#[derive(Args, Clone, Default)]
pub struct MqttArgs {
    /// Publish events, counts, follow state and stats to this MQTT broker and take commands from
    /// it: mqtt://[user:pass@]host[:port] or mqtts://... (TLS)
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<BrokerUrl>,
    /// First level of every topic [default: vigia]
    #[arg(long, value_name = "PREFIX", requires = "mqtt")]
    pub mqtt_prefix: Option<String>,
    /// This device's topic level [default: the host name]
    #[arg(long, value_name = "NAME", requires = "mqtt")]
    pub device: Option<String>,
    /// This camera's topic level [default: the source's file stem, camera0 for camera 0]
    #[arg(long, value_name = "NAME", requires = "mqtt")]
    pub camera: Option<String>,
    /// Also publish a JPEG of the annotated frame on <camera>/snapshot when an object appears
    #[arg(long, requires = "mqtt")]
    pub mqtt_snapshot: bool,
    /// Seconds between two `update` events of one track [default: 5]
    #[arg(long, value_name = "SECS", requires = "mqtt", value_parser = super::args::seconds)]
    pub mqtt_update_every: Option<f64>,
    /// Seconds between two <device>/stats messages; 0 turns them off [default: 10]
    #[arg(long, value_name = "SECS", requires = "mqtt", value_parser = super::args::seconds)]
    pub mqtt_stats_every: Option<f64>,
    /// Messages kept while the broker is unreachable; more are dropped and counted [default: 10000]
    #[arg(long, value_name = "N", requires = "mqtt", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub mqtt_queue: Option<u32>,
    /// Announce the camera's counts and detection switch to Home Assistant (MQTT discovery,
    /// under this prefix)
    #[arg(long, value_name = "PREFIX", num_args = 0..=1, default_missing_value = "homeassistant", requires = "mqtt")]
    pub mqtt_discovery: Option<String>,
    /// PEM file of the CA that signed the broker's certificate (mqtts://) [default: the system's]
    #[arg(long, value_name = "FILE", requires = "mqtt")]
    pub mqtt_ca: Option<PathBuf>,
}

/// The host name, as a topic level.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    sanitize_level(name.trim())
}

/// One camera as the broker sees it: its name, its model's labels and the classes it keeps, its
/// detection switch and, when it follows, where follow commands go.
#[cfg_attr(not(feature = "mqtt"), allow(dead_code))] // read only by the MQTT client
#[derive(Clone)]
pub struct CameraControl {
    pub name: String,
    pub labels: Labels,
    /// The camera's `--classes` (`classes` in a cameras file), when given.
    pub classes: Option<Vec<usize>>,
    pub detect: DetectSwitch,
    pub follow: Option<FollowInbox>,
}

impl CameraControl {
    /// Classes whose count of 0 is published too: the classes asked for, else `person` (the
    /// person count of a room going to 0 is what automations wait on).
    #[cfg_attr(not(feature = "mqtt"), allow(dead_code))] // read only by the MQTT client
    fn always_counted(&self) -> Vec<usize> {
        match &self.classes {
            Some(c) => c.clone(),
            None => self.labels.find("person").into_iter().collect(),
        }
    }
}

/// Applies commands from the broker to the cameras of this run.
#[cfg_attr(not(feature = "mqtt"), allow(dead_code))] // read only by the MQTT client
struct Control {
    cameras: Vec<CameraControl>,
}

impl CommandHandler for Control {
    fn handle(&self, camera: &str, action: RemoteAction) -> Result<String, String> {
        let Some(cam) = self.cameras.iter().find(|c| c.name == camera) else {
            let names: Vec<&str> = self.cameras.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "no camera `{camera}` on this device; its cameras: {}",
                names.join(", ")
            ));
        };
        match action {
            RemoteAction::Detect(on) => {
                cam.detect.set(on);
                eprintln!(
                    "vigia: detection {} on camera {camera} by an MQTT command",
                    if on { "resumed" } else { "paused" }
                );
                Ok(if on { "ON" } else { "OFF" }.into())
            }
            RemoteAction::Follow(request) => {
                let Some(inbox) = &cam.follow else {
                    return Err(format!(
                        "camera `{camera}` is not following anyone: run it with `vigia follow`"
                    ));
                };
                inbox.put(request);
                let target = match request {
                    FollowRequest::Target(policy) => policy.to_string(),
                    FollowRequest::Stop => "stop".into(),
                };
                Ok(serde_json::json!({ "ok": true, "target": target }).to_string())
            }
        }
    }
}

/// A run's MQTT publishing: the connection, and one stage per camera that feeds it from that
/// camera's output thread.
pub struct Publishing {
    #[cfg(feature = "mqtt")]
    publisher: std::sync::Arc<vigia::publish::mqtt_client::MqttPublisher>,
    stages: Vec<Option<Box<dyn OutputStage>>>,
}

/// What every camera of a run publishes alike.
#[cfg_attr(not(feature = "mqtt"), allow(dead_code))] // read only by the MQTT client
struct Shared<'a> {
    args: &'a MqttArgs,
    url: &'a BrokerUrl,
    topics: vigia::publish::Topics,
    device: String,
}

impl Publishing {
    /// Connects (in the background) when `--mqtt` was given. With one camera `--camera` renames
    /// it; a camera that follows takes follow commands through its inbox.
    pub fn start(
        args: &MqttArgs,
        cameras: Vec<CameraControl>,
    ) -> anyhow::Result<Option<Publishing>> {
        let Some(url) = &args.mqtt else {
            return Ok(None);
        };
        let mut cameras = cameras;
        match (&args.camera, cameras.as_mut_slice()) {
            (Some(c), [one]) => {
                check_level("--camera", c)?;
                one.name = c.clone();
            }
            (Some(_), _) => bail!(
                "--camera names the one camera of a run; name several as --source NAME=SOURCE"
            ),
            (None, list) => {
                for cam in list {
                    cam.name = sanitize_level(&cam.name);
                }
            }
        }
        let device = match &args.device {
            Some(d) => d.clone(),
            None => host_name(),
        };
        let prefix = args.mqtt_prefix.as_deref().unwrap_or("vigia");
        if let Some(p) = &args.mqtt_discovery {
            check_level("--mqtt-discovery", p)?;
        }
        let topics = vigia::publish::Topics::new(prefix, &device)?;
        let shared = Shared {
            args,
            url,
            topics,
            device,
        };
        Self::connect(&shared, cameras)
    }

    /// What `camera` publishes and how often.
    #[cfg_attr(not(feature = "mqtt"), allow(dead_code))] // read only by the MQTT client
    fn camera_config(shared: &Shared<'_>, camera: &CameraControl) -> CameraPublishConfig {
        let args = shared.args;
        CameraPublishConfig {
            camera: camera.name.clone(),
            events: EventPolicy {
                update_every: args.mqtt_update_every.unwrap_or(5.0),
                ..EventPolicy::default()
            },
            always_count: camera.always_counted(),
            snapshots: args.mqtt_snapshot,
            stats_every: match args.mqtt_stats_every {
                Some(s) if s <= 0.0 => None,
                Some(s) => Some(Duration::from_secs_f64(s)),
                None => Some(Duration::from_secs(10)),
            },
            ..CameraPublishConfig::default()
        }
    }

    #[cfg(feature = "mqtt")]
    fn connect(
        shared: &Shared<'_>,
        cameras: Vec<CameraControl>,
    ) -> anyhow::Result<Option<Publishing>> {
        use std::sync::Arc;
        use vigia::publish::mqtt_client::{MqttPublisher, MqttSettings};
        /// Messages held while the broker is away, unless --mqtt-queue says otherwise.
        const DEFAULT_QUEUE: usize = 10_000;
        use vigia::publish::{CameraPublisher, Message, MessageSink};

        let (args, topics, device) = (shared.args, &shared.topics, &shared.device);
        // One camera keeps its name in the client id, so two processes of one device differ.
        let client_id = match cameras.as_slice() {
            [one] => format!("vigia-{device}-{}", one.name),
            _ => format!("vigia-{device}"),
        };
        let publisher = Arc::new(MqttPublisher::start(
            MqttSettings {
                url: shared.url.clone(),
                topics: topics.clone(),
                client_id,
                queue: args.mqtt_queue.map_or(DEFAULT_QUEUE, |q| q as usize),
                ca_file: args.mqtt_ca.clone(),
                keep_alive: 10,
            },
            Some(Arc::new(Control {
                cameras: cameras.clone(),
            })),
        )?);
        let names: Vec<&str> = cameras.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "vigia: mqtt: publishing to {} under {}/{{{}}}/... (commands on {})",
            shared.url,
            topics.base(),
            names.join(","),
            topics.commands_filter()
        );
        let sink: Arc<dyn MessageSink> = publisher.clone();
        let mut stages = Vec::new();
        for cam in &cameras {
            let config = Self::camera_config(shared, cam);
            // Where detection stands, for dashboards, before any command.
            let detecting = if cam.detect.is_on() { "ON" } else { "OFF" };
            publisher.publish(Message::retained(
                topics.state(&cam.name, "detect"),
                detecting,
            ));
            if let Some(prefix) = &args.mqtt_discovery {
                let counted: Vec<String> = config
                    .always_count
                    .iter()
                    .map(|c| cam.labels.name(*c))
                    .collect();
                for m in
                    vigia::publish::discovery::home_assistant(prefix, topics, &cam.name, &counted)
                {
                    publisher.publish(m);
                }
            }
            let stage = CameraPublisher::new(
                sink.clone(),
                topics.clone(),
                config,
                cam.labels.clone(),
                cam.detect.clone(),
            );
            stages.push(Some(Box::new(stage) as Box<dyn OutputStage>));
        }
        Ok(Some(Publishing { publisher, stages }))
    }

    #[cfg(not(feature = "mqtt"))]
    fn connect(
        _shared: &Shared<'_>,
        _cameras: Vec<CameraControl>,
    ) -> anyhow::Result<Option<Publishing>> {
        Err(vigia::Error::FeatureMissing {
            feature: "mqtt",
            what: "--mqtt (publishing to an MQTT broker)".into(),
        }
        .into())
    }

    /// The output stage that publishes the results of the `index`-th camera given to
    /// [`Publishing::start`] (taken once).
    pub fn take_stage(&mut self, index: usize) -> Option<Box<dyn OutputStage>> {
        self.stages.get_mut(index)?.take()
    }

    /// Sends `offline`, gives queued messages a few seconds to reach the broker and reports
    /// what was delivered.
    pub fn finish(self, quiet: bool) {
        #[cfg(feature = "mqtt")]
        {
            let c = self.publisher.shutdown(Duration::from_secs(5));
            if !quiet || c.dropped > 0 || c.undelivered > 0 {
                eprintln!(
                    "vigia: mqtt: {} message(s) published, {} delivered, {} dropped (queue full), {} undelivered{}",
                    c.accepted,
                    c.delivered,
                    c.dropped,
                    c.undelivered,
                    if c.connects == 0 {
                        "; the broker was never reached"
                    } else {
                        ""
                    }
                );
            }
        }
        #[cfg(not(feature = "mqtt"))]
        let _ = quiet;
    }
}
