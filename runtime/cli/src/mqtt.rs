//! `--mqtt` and its options: a camera's events, counts, follow state and stats published to an
//! MQTT broker, and its `follow/set` and `detect/set` commands taken from it.

use std::path::PathBuf;
use std::time::Duration;

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

/// Applies commands from the broker to the one camera of this run.
struct CameraControl {
    camera: String,
    detect: DetectSwitch,
    follow: Option<FollowInbox>,
}

impl CommandHandler for CameraControl {
    fn handle(&self, camera: &str, action: RemoteAction) -> Result<String, String> {
        if camera != self.camera {
            return Err(format!(
                "no camera `{camera}` on this device; its camera is `{}`",
                self.camera
            ));
        }
        match action {
            RemoteAction::Detect(on) => {
                self.detect.set(on);
                eprintln!(
                    "vigia: detection {} by an MQTT command",
                    if on { "resumed" } else { "paused" }
                );
                Ok(if on { "ON" } else { "OFF" }.into())
            }
            RemoteAction::Follow(request) => {
                let Some(inbox) = &self.follow else {
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

/// A run's MQTT publishing: the connection, and the stage that feeds it from the output thread.
pub struct Publishing {
    #[cfg(feature = "mqtt")]
    publisher: std::sync::Arc<vigia::publish::mqtt_client::MqttPublisher>,
    stage: Option<Box<dyn OutputStage>>,
}

impl Publishing {
    /// Connects (in the background) when `--mqtt` was given. `source_stem` names the camera
    /// unless `--camera` does; `follow` receives follow commands when the run follows.
    pub fn start(
        args: &MqttArgs,
        source_stem: &str,
        labels: &Labels,
        classes: Option<&[usize]>,
        detect: &DetectSwitch,
        follow: Option<FollowInbox>,
    ) -> anyhow::Result<Option<Publishing>> {
        let Some(url) = &args.mqtt else {
            return Ok(None);
        };
        let camera = match &args.camera {
            Some(c) => {
                check_level("--camera", c)?;
                c.clone()
            }
            None => sanitize_level(source_stem),
        };
        let device = match &args.device {
            Some(d) => d.clone(),
            None => host_name(),
        };
        let prefix = args.mqtt_prefix.as_deref().unwrap_or("vigia");
        if let Some(p) = &args.mqtt_discovery {
            check_level("--mqtt-discovery", p)?;
        }
        let topics = vigia::publish::Topics::new(prefix, &device)?;
        // Counts that are 0 are still worth a message for the classes asked for (the person
        // count of a room going to 0 is what automations wait on).
        let always_count = match classes {
            Some(c) => c.to_vec(),
            None => labels.find("person").into_iter().collect(),
        };
        let config = CameraPublishConfig {
            camera: camera.clone(),
            events: EventPolicy {
                update_every: args.mqtt_update_every.unwrap_or(5.0),
                ..EventPolicy::default()
            },
            always_count,
            snapshots: args.mqtt_snapshot,
            stats_every: match args.mqtt_stats_every {
                Some(s) if s <= 0.0 => None,
                Some(s) => Some(Duration::from_secs_f64(s)),
                None => Some(Duration::from_secs(10)),
            },
            ..CameraPublishConfig::default()
        };
        let control = CameraControl {
            camera: camera.clone(),
            detect: detect.clone(),
            follow,
        };
        Self::connect(args, url, topics, device, config, labels, detect, control)
    }

    #[cfg(feature = "mqtt")]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        args: &MqttArgs,
        url: &BrokerUrl,
        topics: vigia::publish::Topics,
        device: String,
        config: CameraPublishConfig,
        labels: &Labels,
        detect: &DetectSwitch,
        control: CameraControl,
    ) -> anyhow::Result<Option<Publishing>> {
        use std::sync::Arc;
        use vigia::publish::mqtt_client::{MqttPublisher, MqttSettings};
        /// Messages held while the broker is away, unless --mqtt-queue says otherwise.
        const DEFAULT_QUEUE: usize = 10_000;
        use vigia::publish::{CameraPublisher, Message, MessageSink};

        let camera = config.camera.clone();
        let publisher = Arc::new(MqttPublisher::start(
            MqttSettings {
                url: url.clone(),
                topics: topics.clone(),
                client_id: format!("vigia-{device}-{camera}"),
                queue: args.mqtt_queue.map_or(DEFAULT_QUEUE, |q| q as usize),
                ca_file: args.mqtt_ca.clone(),
                keep_alive: 10,
            },
            Some(Arc::new(control)),
        )?);
        eprintln!(
            "vigia: mqtt: publishing to {url} under {}/{camera}/... (commands on {})",
            topics.base(),
            topics.commands_filter()
        );
        // Where detection stands, for dashboards, before any command.
        let detecting = if detect.is_on() { "ON" } else { "OFF" };
        publisher.publish(Message::retained(
            topics.state(&camera, "detect"),
            detecting,
        ));
        if let Some(prefix) = &args.mqtt_discovery {
            let counted: Vec<String> = config
                .always_count
                .iter()
                .map(|c| labels.name(*c))
                .collect();
            for m in vigia::publish::discovery::home_assistant(prefix, &topics, &camera, &counted) {
                publisher.publish(m);
            }
        }
        let sink: Arc<dyn MessageSink> = publisher.clone();
        let stage = CameraPublisher::new(sink, topics, config, labels.clone(), detect.clone());
        Ok(Some(Publishing {
            publisher,
            stage: Some(Box::new(stage)),
        }))
    }

    #[cfg(not(feature = "mqtt"))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        _args: &MqttArgs,
        _url: &BrokerUrl,
        _topics: vigia::publish::Topics,
        _device: String,
        _config: CameraPublishConfig,
        _labels: &Labels,
        _detect: &DetectSwitch,
        _control: CameraControl,
    ) -> anyhow::Result<Option<Publishing>> {
        Err(vigia::Error::FeatureMissing {
            feature: "mqtt",
            what: "--mqtt (publishing to an MQTT broker)".into(),
        }
        .into())
    }

    /// The output stage that publishes the camera's results (taken once).
    pub fn take_stage(&mut self) -> Option<Box<dyn OutputStage>> {
        self.stage.take()
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
