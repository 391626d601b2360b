//! The live preview and control API for headless boards (`--serve 127.0.0.1:8080`): a page, an
//! MJPEG stream, the newest frame and stats per camera, the list of cameras, and follow commands
//! (`POST`, with `--serve-token`), on axum routes served by hyper from one tokio thread.
//!
//! The pipeline never waits for viewers: each camera's [`PreviewFeed`] takes a frame into a
//! one-slot mailbox and returns; an encoder thread per camera encodes the newest frame only while
//! someone watches, and a slow viewer skips frames instead of queueing them.
//!
//! Limits (this runs on robots): loopback unless an address is given, an optional token, a
//! bounded number of connections, small request heads read within a deadline, and a write
//! deadline on every connection (see [`connection`]).

mod access;
mod bind;
mod camera_feed;
pub mod connection;
mod page;
mod routes;
#[cfg(test)]
mod server_tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

pub use access::{check_access, percent_encode, Refusal};
pub use camera_feed::PreviewFeed;

use camera_feed::CameraFeed;
use routes::{CameraEntry, ServerState};

use crate::sink::preview_control::FollowControl;
use crate::{Error, Result};

/// Settings of the preview server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewConfig {
    /// Address to bind: `"127.0.0.1:8080"`, `"0.0.0.0:8080"`, or a bare port (`":8080"`,
    /// `"8080"`) on loopback.
    pub addr: String,
    /// Token every route but `/healthz` requires (`?token=...` or `Authorization: Bearer ...`).
    pub token: Option<String>,
    /// Most concurrent connections; further ones get 503.
    pub max_clients: usize,
    /// JPEG quality of the streams, 1 to 100.
    pub jpeg_quality: u8,
    /// The cameras to serve, by name, in order (the first answers the short URLs).
    pub cameras: Vec<String>,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        PreviewConfig {
            addr: "127.0.0.1:8080".to_string(),
            token: None,
            max_clients: 8,
            jpeg_quality: 80,
            cameras: vec!["camera".to_string()],
        }
    }
}

/// A running preview server; dropping it stops the server and the encoders.
pub struct PreviewServer {
    local_addr: SocketAddr,
    state: Arc<ServerState>,
    feeds: Vec<CameraFeed>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl PreviewServer {
    /// Binds the address and starts the server thread and one encoder thread per camera.
    pub fn start(cfg: PreviewConfig) -> Result<PreviewServer> {
        let option = format!("--serve {}", cfg.addr);
        let invalid = |reason: String| Error::Option {
            option: option.clone(),
            reason,
        };
        if cfg.max_clients == 0 {
            return Err(invalid("max_clients must be at least 1".into()));
        }
        if cfg.cameras.is_empty() {
            return Err(invalid("there is no camera to preview".into()));
        }
        if let Some(t) = &cfg.token {
            if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    "the token must be non-empty, without spaces or control characters".into(),
                ));
            }
        }
        let addr = bind::bind_address(&cfg.addr).map_err(&invalid)?;
        let listener = std::net::TcpListener::bind(addr.as_str())
            .map_err(|e| invalid(bind::bind_reason(&addr, &e)))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| invalid(format!("cannot read the bound address: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| invalid(format!("cannot set up the listener: {e}")))?;
        let runtime_error = |what: &str, e: std::io::Error| Error::Thread {
            thread: format!("preview server ({local_addr})"),
            reason: format!("cannot start {what}: {e}"),
        };
        let feeds = cfg
            .cameras
            .iter()
            .map(|name| CameraFeed::start(name, cfg.jpeg_quality))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| runtime_error("a JPEG encoder thread", e))?;
        let state = Arc::new(ServerState {
            token: cfg.token.clone(),
            cameras: cfg
                .cameras
                .iter()
                .zip(&feeds)
                .map(|(name, feed)| CameraEntry {
                    name: name.clone(),
                    feed: feed.state().clone(),
                    follow: Mutex::new(None),
                })
                .collect(),
        });
        let router = routes::router(state.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| runtime_error("its event loop", e))?;
        let max_clients = cfg.max_clients;
        let thread = thread::Builder::new()
            .name("vigia-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            connection::accept_loop(listener, router, max_clients, stopped).await
                        }
                        Err(e) => eprintln!("vigia: the preview server cannot listen: {e}"),
                    }
                });
                // Open connections (streams) end with the runtime.
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })
            .map_err(|e| runtime_error("its thread", e))?;
        Ok(PreviewServer {
            local_addr,
            state,
            feeds,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the server listens on (with the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The feed the pipeline of camera `name` publishes into (`None` for an unknown name).
    pub fn feed(&self, name: &str) -> Option<PreviewFeed> {
        let i = self.state.cameras.iter().position(|c| c.name == name)?;
        Some(self.feeds[i].handle())
    }

    /// Sends follow commands for camera `name` (a click on a person in the page, or a program's
    /// `POST`) to `control`; returns false for an unknown name.
    pub fn set_follow_control(&self, name: &str, control: Arc<dyn FollowControl>) -> bool {
        match self.state.cameras.iter().find(|c| c.name == name) {
            Some(c) => {
                *c.follow.lock().unwrap_or_else(|e| e.into_inner()) = Some(control);
                true
            }
            None => false,
        }
    }
}

impl Drop for PreviewServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
        // The feeds (and their encoder threads) stop as they drop, after the server.
    }
}
