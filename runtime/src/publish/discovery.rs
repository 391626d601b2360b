//! Home Assistant MQTT discovery: retained `config` messages that make a camera's object counts
//! appear as sensors and its detection switch as a switch, with the device's `status` as their
//! availability, without any configuration on the Home Assistant side.

use serde_json::{json, Value};

use super::message::Message;
use super::topics::{sanitize_level, Topics};

/// Discovery messages for one camera: a sensor per counted label and the detection switch.
/// `prefix` is Home Assistant's discovery prefix (`homeassistant` by default there).
pub fn home_assistant(
    prefix: &str,
    topics: &Topics,
    camera: &str,
    labels: &[String],
) -> Vec<Message> {
    let node = sanitize_level(&topics.base().replace('/', "_"));
    let device = json!({
        "identifiers": [node],
        "name": topics.base(),
        "manufacturer": "vigia",
        "model": "vigia edge vision runtime",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let common = |name: String, unique: &str| -> Value {
        json!({
            "name": name,
            "unique_id": unique,
            "object_id": unique,
            "availability_topic": topics.status(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        })
    };
    let mut out = Vec::new();
    for label in labels {
        let level = sanitize_level(label);
        let unique = format!("{node}_{camera}_{level}_count");
        let mut config = common(format!("{camera} {label} count"), &unique);
        config["state_topic"] = topics.count(camera, label).into();
        config["state_class"] = "measurement".into();
        config["unit_of_measurement"] = label.as_str().into();
        config["icon"] = if label == "person" {
            "mdi:account-multiple"
        } else {
            "mdi:eye"
        }
        .into();
        out.push(Message::retained(
            format!("{prefix}/sensor/{unique}/config"),
            config.to_string(),
        ));
    }
    let unique = format!("{node}_{camera}_detect");
    let mut config = common(format!("{camera} detection"), &unique);
    config["command_topic"] = format!("{}/{camera}/detect/set", topics.base()).into();
    config["state_topic"] = topics.state(camera, "detect").into();
    config["payload_on"] = "ON".into();
    config["payload_off"] = "OFF".into();
    config["icon"] = "mdi:cctv".into();
    out.push(Message::retained(
        format!("{prefix}/switch/{unique}/config"),
        config.to_string(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_point_at_the_published_topics() {
        let t = Topics::new("vigia", "porch").unwrap();
        let msgs = home_assistant("homeassistant", &t, "door", &["person".into()]);
        assert_eq!(msgs.len(), 2);
        let sensor = &msgs[0];
        assert_eq!(
            sensor.topic,
            "homeassistant/sensor/vigia_porch_door_person_count/config"
        );
        assert!(sensor.retain && sensor.reliable);
        let v: Value = serde_json::from_slice(&sensor.payload).unwrap();
        assert_eq!(v["state_topic"], "vigia/porch/door/count/person");
        assert_eq!(v["availability_topic"], "vigia/porch/status");
        assert_eq!(v["device"]["identifiers"][0], "vigia_porch");
        let switch: Value = serde_json::from_slice(&msgs[1].payload).unwrap();
        assert_eq!(switch["command_topic"], "vigia/porch/door/detect/set");
        assert_eq!(switch["state_topic"], "vigia/porch/door/detect/state");
    }
}
