//! The MQTT connection: rumqttc on its own thread, a bounded queue in front of it, the `online` /
//! `offline` status with a last will, reconnection with backoff that keeps unsent messages, and
//! commands from `<prefix>/<device>/<camera>/<feature>/set` handed to a [`CommandHandler`].

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet,
    Publish, QoS, RecvTimeoutError, Request, Subscribe, TlsConfiguration, Transport,
};

use super::broker_url::BrokerUrl;
use super::message::{Message, MessageSink};
use super::remote::{parse_command, CommandHandler};
use super::topics::Topics;
use crate::error::{Error, Result};

/// Everything needed to connect.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub url: BrokerUrl,
    pub topics: Topics,
    /// Client id (unique per broker).
    pub client_id: String,
    /// Messages held while the broker is away; more are dropped and counted.
    pub queue: usize,
    /// PEM file of the CA that signed the broker's certificate (`mqtts://`); default: the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// Seconds between keep-alive pings; the broker sends the last will after 1.5x this.
    pub keep_alive: u64,
}

/// Message counts of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishCounts {
    /// Taken into the queue.
    pub accepted: u64,
    /// Acknowledged by the broker (QoS 1) or written to it (QoS 0).
    pub delivered: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Accepted, and neither delivered nor dropped (yet; at shutdown: never).
    pub undelivered: u64,
    /// Times the connection was (re)established.
    pub connects: u64,
}

impl Shared {
    /// Messages accepted and not yet delivered or dropped (queued, in flight or taken back).
    fn held(&self) -> u64 {
        let settled =
            self.delivered.load(Ordering::Relaxed) + self.overflowed.load(Ordering::Relaxed);
        self.accepted
            .load(Ordering::Relaxed)
            .saturating_sub(settled)
    }
}

#[derive(Default)]
struct Shared {
    closing: AtomicBool,
    connected: AtomicBool,
    accepted: AtomicU64,
    delivered: AtomicU64,
    /// Refused at the queue.
    dropped: AtomicU64,
    /// Accepted, then dropped from the messages held during an outage.
    overflowed: AtomicU64,
    connects: AtomicU64,
}

/// A live MQTT connection; publishing never blocks.
pub struct MqttPublisher {
    client: Client,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    topics: Topics,
    url: BrokerUrl,
}

/// Most seconds between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the loop waits for network events before checking for shutdown.
const POLL: Duration = Duration::from_millis(200);

fn tls_config(ca_file: Option<&PathBuf>) -> Result<TlsConfiguration> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let option = |reason: String| Error::option("--mqtt-ca", reason);
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| option(format!("{}: {e}", path.display())))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| option(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(option(format!(
                    "{}: no PEM certificate in it",
                    path.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| option(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(Error::option(
                    "--mqtt",
                    "mqtts:// needs CA certificates: none found on this system; pass --mqtt-ca FILE",
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::option("--mqtt", format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

/// A connection error in words a user can act on.
fn describe(e: &ConnectionError, url: &BrokerUrl) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
                ConnectReturnCode::NotAuthorized => "not authorized",
                ConnectReturnCode::BadClientId => {
                    "client id refused (another vigia with the same --device?)"
                }
                ConnectReturnCode::ServiceUnavailable => "service unavailable",
                ConnectReturnCode::RefusedProtocolVersion => "MQTT 3.1.1 not supported",
                ConnectReturnCode::Success => "refused",
            };
            format!("broker {url} refused the connection: {why}")
        }
        ConnectionError::Io(io) => format!("cannot reach broker {url}: {io}"),
        ConnectionError::Tls(t) => format!("TLS with broker {url} failed: {t}"),
        ConnectionError::NetworkTimeout => format!("broker {url} did not answer in time"),
        other => format!("connection to broker {url} lost: {other}"),
    }
}

impl MqttPublisher {
    /// Starts the connection thread; returns at once (the broker may come later).
    pub fn start(settings: MqttSettings, handler: Option<Arc<dyn CommandHandler>>) -> Result<Self> {
        let MqttSettings {
            url,
            topics,
            client_id,
            queue,
            ca_file,
            keep_alive,
        } = settings;
        let mut opts = MqttOptions::new(client_id, url.host.clone(), url.port);
        opts.set_keep_alive(Duration::from_secs(keep_alive.max(5)))
            .set_clean_session(true)
            .set_max_packet_size(1 << 20, 16 << 20)
            .set_last_will(LastWill::new(
                topics.status(),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(user) = &url.user {
            opts.set_credentials(user.clone(), url.password.clone().unwrap_or_default());
        }
        if url.tls {
            opts.set_transport(Transport::tls_with_config(tls_config(ca_file.as_ref())?));
        } else if ca_file.is_some() {
            return Err(Error::option(
                "--mqtt-ca",
                "needs an mqtts:// broker address",
            ));
        }
        let (client, connection) = Client::new(opts, queue.max(1));
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            client: client.clone(),
            shared: shared.clone(),
            topics: topics.clone(),
            url: url.clone(),
            handler,
            queue: queue.max(1),
        };
        let thread = std::thread::Builder::new()
            .name("vigia-mqtt".into())
            .spawn(move || worker.run(connection))
            .map_err(|e| Error::thread_spawn("mqtt", e))?;
        Ok(MqttPublisher {
            client,
            shared,
            thread: Mutex::new(Some(thread)),
            topics,
            url,
        })
    }

    /// The topics of this device.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The broker, without its password.
    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }

    /// True while connected.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Counts so far.
    pub fn counts(&self) -> PublishCounts {
        let s = &self.shared;
        PublishCounts {
            accepted: s.accepted.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed) + s.overflowed.load(Ordering::Relaxed),
            undelivered: s.held(),
            connects: s.connects.load(Ordering::Relaxed),
        }
    }

    /// Publishes `offline`, sends what is queued and disconnects, waiting at most `wait` for a
    /// broker that is away. Returns the final counts; later calls do nothing more.
    pub fn shutdown(&self, wait: Duration) -> PublishCounts {
        self.close(wait);
        self.counts()
    }

    fn close(&self, wait: Duration) {
        let taken = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(thread) = taken else {
            return;
        };
        self.publish(Message::retained(self.topics.status(), "offline"));
        // Let the broker acknowledge what is queued (it may be away: then only half of `wait`).
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline && !thread.is_finished() {
            let away = !self.shared.connected.load(Ordering::Relaxed);
            if self.shared.held() == 0
                || (away && deadline.saturating_duration_since(Instant::now()) < wait / 2)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.client.try_disconnect();
        self.shared.closing.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(1);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        self.close(Duration::from_secs(2));
    }
}

impl MessageSink for MqttPublisher {
    fn publish(&self, m: Message) -> bool {
        let qos = if m.reliable {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        match self.client.try_publish(m.topic, qos, m.retain, m.payload) {
            Ok(()) => {
                self.shared.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The connection thread's state.
struct Worker {
    client: Client,
    shared: Arc<Shared>,
    topics: Topics,
    url: BrokerUrl,
    handler: Option<Arc<dyn CommandHandler>>,
    queue: usize,
}

impl Worker {
    fn run(self, mut connection: rumqttc::Connection) {
        // Messages taken back from a dropped connection, resent after the next connect.
        let mut unsent: VecDeque<Publish> = VecDeque::new();
        let mut backoff = Duration::from_millis(250);
        let mut last_error = String::new();
        let mut closing_since: Option<Instant> = None;
        let mut down_since: Option<Instant> = None;
        loop {
            if self.shared.closing.load(Ordering::Relaxed) {
                let since = *closing_since.get_or_insert_with(Instant::now);
                // Not connected while closing: give queued messages a short chance only.
                if !self.shared.connected.load(Ordering::Relaxed)
                    && since.elapsed() > Duration::from_secs(1)
                {
                    return;
                }
            }
            let event = match connection.recv_timeout(POLL) {
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(e) => e,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let n = self.shared.connects.fetch_add(1, Ordering::Relaxed);
                    self.shared.connected.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(250);
                    last_error.clear();
                    match down_since.take() {
                        Some(t) if n > 0 => eprintln!(
                            "vigia: mqtt: reconnected to {} after {:.1} s; sending {} held message(s)",
                            self.url,
                            t.elapsed().as_secs_f64(),
                            self.shared.held()
                        ),
                        _ => eprintln!("vigia: mqtt: connected to {}", self.url),
                    }
                    let pending = &mut connection.eventloop.pending;
                    for p in unsent.drain(..).rev() {
                        pending.push_front(Request::Publish(p));
                    }
                    pending.push_front(Request::Subscribe(Subscribe::new(
                        self.topics.commands_filter(),
                        QoS::AtLeastOnce,
                    )));
                    let mut online = Publish::new(self.topics.status(), QoS::AtLeastOnce, "online");
                    online.retain = true;
                    pending.push_front(Request::Publish(online));
                    self.shared.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(Outgoing::Publish(0))) => {
                    self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.command(&p),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    self.shared.connected.store(false, Ordering::Relaxed);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let was_connected = self.shared.connected.swap(false, Ordering::Relaxed);
                    if was_connected {
                        down_since = Some(Instant::now());
                    }
                    self.take_back(&mut connection, &mut unsent);
                    let text = describe(&e, &self.url);
                    if self.shared.closing.load(Ordering::Relaxed) {
                        return;
                    }
                    if text != last_error {
                        eprintln!(
                            "vigia: mqtt: {text}; retrying (up to every {} s), {} message(s) held",
                            MAX_BACKOFF.as_secs(),
                            self.shared.held()
                        );
                        last_error = text;
                    }
                    let until = Instant::now() + backoff;
                    while Instant::now() < until && !self.shared.closing.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Moves the messages rumqttc took back from a dropped connection into `unsent`, keeping
    /// the newest `queue` of them (the rest are counted as dropped).
    fn take_back(&self, connection: &mut rumqttc::Connection, unsent: &mut VecDeque<Publish>) {
        for r in connection.eventloop.pending.drain(..) {
            if let Request::Publish(mut p) = r {
                // `online` is sent again on connect; everything else keeps its order.
                if p.topic == self.topics.status() && p.payload.as_ref() == b"online" {
                    self.shared.overflowed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                p.pkid = 0;
                p.dup = false;
                unsent.push_back(p);
            }
        }
        while unsent.len() > self.queue {
            unsent.pop_front();
            self.shared.overflowed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Applies one command and replies on its `.../state` topic.
    fn command(&self, p: &Publish) {
        let Some((camera, feature)) = self.topics.parse_command(&p.topic) else {
            return;
        };
        let state = self.topics.state(camera, feature);
        let result = parse_command(feature, &p.payload).and_then(|action| match &self.handler {
            Some(h) => h.handle(camera, action),
            None => Err("this vigia takes no commands".into()),
        });
        let (payload, retain) = match result {
            Ok(s) => (s, feature == "detect"),
            Err(reason) => {
                eprintln!("vigia: mqtt: command on {} rejected: {reason}", p.topic);
                (
                    serde_json::json!({"ok": false, "error": reason}).to_string(),
                    false,
                )
            }
        };
        if self
            .client
            .try_publish(state, QoS::AtLeastOnce, retain, payload.into_bytes())
            .is_ok()
        {
            self.shared.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
