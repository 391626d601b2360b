//! One message to publish and the [`MessageSink`] seam between what is published and how.

/// One MQTT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Kept by the broker for late subscribers.
    pub retain: bool,
    /// At-least-once delivery (QoS 1) rather than at most once (QoS 0).
    pub reliable: bool,
}

impl Message {
    /// A QoS 1, non-retained message.
    pub fn reliable(topic: String, payload: impl Into<Vec<u8>>) -> Self {
        Message {
            topic,
            payload: payload.into(),
            retain: false,
            reliable: true,
        }
    }

    /// A QoS 0 message: frequent and superseded by the next one (stats, commands).
    pub fn best_effort(topic: String, payload: impl Into<Vec<u8>>) -> Self {
        Message {
            reliable: false,
            ..Message::reliable(topic, payload)
        }
    }

    /// A QoS 1 message the broker keeps for late subscribers.
    pub fn retained(topic: String, payload: impl Into<Vec<u8>>) -> Self {
        Message {
            retain: true,
            ..Message::reliable(topic, payload)
        }
    }
}

/// Takes messages without ever blocking the caller.
pub trait MessageSink: Send + Sync {
    /// Queues `message`; false when it had to be dropped (queue full).
    fn publish(&self, message: Message) -> bool;
}
