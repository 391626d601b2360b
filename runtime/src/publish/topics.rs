//! The MQTT topic names vigia publishes and listens on: `<prefix>/<device>/...`.

use crate::error::{Error, Result};

/// Topic builder for one device (one vigia process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
}

/// Checks a topic level given by the user (prefix, device or camera name): not empty, no MQTT
/// wildcard or separator, printable.
pub fn check_level(option: &str, value: &str) -> Result<()> {
    let bad = |why: &str| Error::option(option, format!("`{value}` {why}"));
    if value.is_empty() {
        return Err(bad("is empty"));
    }
    if value.len() > 64 {
        return Err(bad("is longer than 64 bytes"));
    }
    if value.contains(['/', '+', '#']) {
        return Err(bad(
            "contains '/', '+' or '#', which MQTT topic levels cannot hold",
        ));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains spaces or control characters"));
    }
    Ok(())
}

/// Turns any name (a host name, a file stem) into a valid topic level.
pub fn sanitize_level(name: &str) -> String {
    let clean: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "vigia".into()
    } else {
        clean
    }
}

impl Topics {
    /// Topics under `<prefix>/<device>`; both are checked as topic levels.
    pub fn new(prefix: &str, device: &str) -> Result<Self> {
        check_level("--mqtt-prefix", prefix)?;
        check_level("--device", device)?;
        Ok(Topics {
            base: format!("{prefix}/{device}"),
        })
    }

    /// `<prefix>/<device>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `online` / `offline`, retained; also the last will.
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// FPS and latency of every camera.
    pub fn stats(&self) -> String {
        format!("{}/stats", self.base)
    }

    /// Track events (`new`, `update`, `end`) of one camera.
    pub fn events(&self, camera: &str) -> String {
        format!("{}/{camera}/events", self.base)
    }

    /// Objects of one label in view, retained.
    pub fn count(&self, camera: &str, label: &str) -> String {
        format!("{}/{camera}/count/{}", self.base, sanitize_level(label))
    }

    /// Follower state changes and commands.
    pub fn follow(&self, camera: &str) -> String {
        format!("{}/{camera}/follow", self.base)
    }

    /// JPEG of the annotated frame of a `new` event, retained.
    pub fn snapshot(&self, camera: &str) -> String {
        format!("{}/{camera}/snapshot", self.base)
    }

    /// Where the reply to a command on `<camera>/<feature>/set` goes.
    pub fn state(&self, camera: &str, feature: &str) -> String {
        format!("{}/{camera}/{feature}/state", self.base)
    }

    /// The subscription that receives every command, for any camera name.
    pub fn commands_filter(&self) -> String {
        format!("{}/+/+/set", self.base)
    }

    /// Splits a command topic `<base>/<camera>/<feature>/set` into camera and feature.
    pub fn parse_command<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        let rest = rest.strip_suffix("/set")?;
        let (camera, feature) = rest.split_once('/')?;
        (!camera.is_empty() && !feature.is_empty() && !feature.contains('/'))
            .then_some((camera, feature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_contract() {
        let t = Topics::new("vigia", "pi4").unwrap();
        assert_eq!(t.status(), "vigia/pi4/status");
        assert_eq!(t.events("door"), "vigia/pi4/door/events");
        assert_eq!(t.count("door", "person"), "vigia/pi4/door/count/person");
        assert_eq!(
            t.count("door", "traffic light"),
            "vigia/pi4/door/count/traffic_light"
        );
        assert_eq!(t.state("door", "follow"), "vigia/pi4/door/follow/state");
        assert_eq!(t.commands_filter(), "vigia/pi4/+/+/set");
        assert_eq!(
            t.parse_command("vigia/pi4/door/follow/set"),
            Some(("door", "follow"))
        );
        assert_eq!(t.parse_command("vigia/pi4/door/follow/state"), None);
        assert_eq!(t.parse_command("vigia/pi5/door/follow/set"), None);
        assert_eq!(t.parse_command("vigia/pi4//follow/set"), None);
    }

    #[test]
    fn bad_levels_name_the_option() {
        let e = Topics::new("vigia/x", "pi").unwrap_err().to_string();
        assert!(e.contains("--mqtt-prefix") && e.contains("'/'"), "{e}");
        let e = Topics::new("vigia", "").unwrap_err().to_string();
        assert!(e.contains("--device") && e.contains("empty"), "{e}");
        assert!(Topics::new("vigia", "a b").is_err());
        assert!(Topics::new("vigia", "#").is_err());
        assert_eq!(sanitize_level("my host.local"), "my_host.local");
        assert_eq!(sanitize_level(""), "vigia");
    }
}
