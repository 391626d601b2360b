//! Publishing results to a message broker (MQTT) and taking commands from it.
//!
//! Topics, under `<prefix>/<device>` (prefix `vigia` by default):
//! - `status`: `online` (retained, at every connect) and `offline` (retained; the last will, and
//!   on a clean exit);
//! - `stats`: FPS and per-stage latency per camera, QoS 0, every few seconds;
//! - `<camera>/events`: one JSON per track event (`new`, `update`, `end`), QoS 1;
//! - `<camera>/count/<label>`: objects of that label in view, retained, on change;
//! - `<camera>/follow`: follower state changes (QoS 1) and commands (QoS 0, rate-limited);
//! - `<camera>/snapshot`: JPEG of the annotated frame on `new` events (optional), retained;
//! - in: `<camera>/follow/set` and `<camera>/detect/set`, replied to on `<camera>/<feature>/state`;
//! - optionally, Home Assistant discovery configs under `homeassistant/...` (see [`discovery`]).
//!
//! Publishing never blocks the pipeline: messages go into a bounded queue drained by the
//! connection thread, which reconnects with backoff and resends what a dropped connection had
//! not delivered.

pub mod broker_url;
pub mod camera_stage;
pub mod discovery;
pub mod message;
#[cfg(feature = "mqtt")]
pub mod mqtt_client;
pub mod object_counts;
pub mod payloads;
pub mod remote;
pub mod topics;
pub mod track_events;

pub use broker_url::BrokerUrl;
pub use camera_stage::{CameraPublishConfig, CameraPublisher};
pub use message::{Message, MessageSink};
pub use remote::{CommandHandler, FollowInbox, FollowRequest, RemoteAction};
pub use topics::Topics;
