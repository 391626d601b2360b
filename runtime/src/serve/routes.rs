//! The server's routes. Per camera: `/cameras/NAME/stream.mjpg` (MJPEG), `/cameras/NAME/frame.jpg`
//! (the newest frame), `/cameras/NAME/stats.json` and `POST /api/cameras/NAME/follow`; the first
//! camera's also at `/stream.mjpg`, `/frame.jpg`, `/stats.json` and `POST /api/follow`. Besides:
//! `/` (the viewer page), `/api/cameras` (the cameras and their URLs) and `/healthz` (open without
//! the token).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;

use super::access::{check_access, percent_encode};
use super::camera_feed::FeedState;
use super::page;
use crate::sink::preview_control::{check_body_length, follow_response, FollowControl};

/// How long `frame.jpg` waits for the encoder to encode the newest frame.
const FRAME_WAIT: Duration = Duration::from_secs(2);
/// How long an idle stream waits before sending its newest frame again (which also finds
/// viewers that went away).
const IDLE_RESEND: Duration = Duration::from_secs(2);
/// Time a client has to send a command's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// One camera as the routes see it.
pub struct CameraEntry {
    /// The camera's name (`--source NAME=...`).
    pub name: String,
    /// Its frames and stats.
    pub feed: Arc<FeedState>,
    /// Where its follow commands go (`None`: nobody is followed on this camera).
    pub follow: Mutex<Option<Arc<dyn FollowControl>>>,
}

impl CameraEntry {
    fn follow_control(&self) -> Option<Arc<dyn FollowControl>> {
        self.follow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What every handler reads.
pub struct ServerState {
    /// `--serve-token`.
    pub token: Option<String>,
    /// The cameras, in the run's order (the first one answers the short URLs).
    pub cameras: Vec<CameraEntry>,
}

type Shared = Arc<ServerState>;

/// The routes, guarded by the token, with the headers every response carries.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(page_route))
        .route("/api/cameras", get(cameras_route))
        .route("/stream.mjpg", get(first_stream))
        .route("/frame.jpg", get(first_frame))
        .route("/stats.json", get(first_stats))
        .route("/api/follow", post(first_follow))
        .route("/cameras/{name}/stream.mjpg", get(named_stream))
        .route("/cameras/{name}/frame.jpg", get(named_frame))
        .route("/cameras/{name}/stats.json", get(named_stats))
        .route("/api/cameras/{name}/follow", post(named_follow))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::map_response(common_headers))
        .with_state(state)
}

/// Refuses requests without the token (see [`super::access`]), except `/healthz`; a `POST`
/// under `/api/` is a command.
async fn guard(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let is_command = req.method() == Method::POST && req.uri().path().starts_with("/api/");
    let authorization = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    match check_access(
        s.token.as_deref(),
        is_command,
        req.uri().query(),
        authorization,
    ) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::FORBIDDEN);
            let mut res = text(status, refusal.message().trim_end());
            if status == StatusCode::UNAUTHORIZED {
                res.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("Bearer realm=\"vigia\""),
                );
            }
            res
        }
    }
}

/// Headers on every response: nothing cached, no sniffing, no referrer.
async fn common_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// A plain-text response.
fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

/// A JSON response.
fn json(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// The camera called `name`.
fn camera<'a>(s: &'a ServerState, name: &str) -> Option<&'a CameraEntry> {
    s.cameras.iter().find(|c| c.name == name)
}

/// The 404 for an unknown camera, listing the cameras.
fn no_such_camera(s: &ServerState, name: &str) -> Response {
    let names: Vec<&str> = s.cameras.iter().map(|c| c.name.as_str()).collect();
    text(
        StatusCode::NOT_FOUND,
        &format!("no camera named {name:?}; cameras: {}", names.join(", ")),
    )
}

/// The first camera (the server always has one).
fn first(s: &ServerState) -> &CameraEntry {
    &s.cameras[0]
}

/// `GET /`: the viewer page.
async fn page_route(State(s): State<Shared>) -> Response {
    let cameras: Vec<serde_json::Value> = s
        .cameras
        .iter()
        .map(|c| serde_json::json!({ "name": c.name, "follow": c.follow_control().is_some() }))
        .collect();
    let stream_url = format!("/cameras/{}/stream.mjpg", percent_encode(&first(&s).name));
    let stream_url = match &s.token {
        Some(t) => format!("{stream_url}?token={}", percent_encode(t)),
        None => stream_url,
    };
    let body = page::render(s.token.as_deref(), &cameras, &stream_url);
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/cameras`: every camera with its URLs, frames processed, viewers and newest stats.
async fn cameras_route(State(s): State<Shared>) -> Response {
    let cameras: Vec<serde_json::Value> = s
        .cameras
        .iter()
        .map(|c| {
            let base = format!("/cameras/{}", percent_encode(&c.name));
            let follow = c
                .follow_control()
                .map(|_| format!("/api/cameras/{}/follow", percent_encode(&c.name)));
            serde_json::json!({
                "name": c.name,
                "stream_url": format!("{base}/stream.mjpg"),
                "frame_url": format!("{base}/frame.jpg"),
                "stats_url": format!("{base}/stats.json"),
                "follow_url": follow,
                "frames": c.feed.processed(),
                "viewers": c.feed.viewers(),
                "stats": *c.feed.stats(),
            })
        })
        .collect();
    json(
        StatusCode::OK,
        serde_json::json!({ "cameras": cameras }).to_string(),
    )
}

async fn first_stream(State(s): State<Shared>) -> Response {
    mjpeg(&first(&s).feed)
}

async fn named_stream(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    match camera(&s, &name) {
        Some(c) => mjpeg(&c.feed),
        None => no_such_camera(&s, &name),
    }
}

async fn first_frame(State(s): State<Shared>) -> Response {
    newest_frame(&first(&s).feed).await
}

async fn named_frame(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    match camera(&s, &name) {
        Some(c) => newest_frame(&c.feed).await,
        None => no_such_camera(&s, &name),
    }
}

async fn first_stats(State(s): State<Shared>) -> Response {
    stats(&first(&s).feed)
}

async fn named_stats(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    match camera(&s, &name) {
        Some(c) => stats(&c.feed),
        None => no_such_camera(&s, &name),
    }
}

async fn first_follow(State(s): State<Shared>, req: Request) -> Response {
    follow(first(&s), req).await
}

async fn named_follow(State(s): State<Shared>, Path(name): Path<String>, req: Request) -> Response {
    match camera(&s, &name) {
        Some(c) => follow(c, req).await,
        None => no_such_camera(&s, &name),
    }
}

/// The newest stats object (`{}` before the first frame).
fn stats(feed: &FeedState) -> Response {
    json(StatusCode::OK, feed.stats().to_string())
}

/// The newest frame as one JPEG. Frames are drawn only while someone watches, so this asks for
/// one and waits briefly for it (503 when the camera sends none in time).
async fn newest_frame(feed: &Arc<FeedState>) -> Response {
    let _waiting = feed.waiter();
    let mut encoded = feed.subscribe();
    // The newest frame already published (now being encoded), or else the next one.
    let published = feed.published();
    let _ = tokio::time::timeout(
        FRAME_WAIT,
        encoded.wait_for(|e| e.jpeg.is_some() && e.done >= published.max(1)),
    )
    .await;
    let jpeg = encoded.borrow().jpeg.clone();
    match jpeg {
        Some(jpeg) => ([(CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "no frame yet"),
    }
}

/// An MJPEG stream of the newest frames, for as long as the viewer reads it.
fn mjpeg(feed: &Arc<FeedState>) -> Response {
    let viewer = feed.viewer();
    let encoded = feed.subscribe();
    let start = futures_util::stream::once(async { Bytes::from_static(b"--frame\r\n") });
    let parts = futures_util::stream::unfold(
        (encoded, 0u64, viewer),
        |(mut encoded, last, viewer)| async move {
            loop {
                let next = match tokio::time::timeout(
                    IDLE_RESEND,
                    encoded.wait_for(|e| e.seq > last && e.jpeg.is_some()),
                )
                .await
                {
                    Ok(Ok(e)) => e.jpeg.clone().map(|j| (e.seq, j)),
                    // The feed is gone: the server is stopping.
                    Ok(Err(_)) => return None,
                    Err(_) => None,
                };
                // Idle: send the newest frame again.
                let next = next.or_else(|| encoded.borrow().jpeg.clone().map(|j| (last, j)));
                if let Some((seq, jpeg)) = next {
                    return Some((part(&jpeg), (encoded, seq, viewer)));
                }
            }
        },
    );
    let body = futures_util::StreamExt::map(
        futures_util::StreamExt::chain(start, parts),
        Ok::<_, Infallible>,
    );
    (
        [(CONTENT_TYPE, "multipart/x-mixed-replace; boundary=frame")],
        Body::from_stream(body),
    )
        .into_response()
}

/// One MJPEG part, ending with the next boundary so browsers show it at once.
fn part(jpeg: &Bytes) -> Bytes {
    let head = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut out = Vec::with_capacity(head.len() + jpeg.len() + 11);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n--frame\r\n");
    Bytes::from(out)
}

/// A follow command: whom the camera's follower follows (`point:X,Y`, `id:N`, `stop`, ...).
async fn follow(camera: &CameraEntry, req: Request) -> Response {
    let length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let length = match check_body_length(length) {
        Ok(n) => n,
        Err((status, message)) => {
            return text(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                message,
            )
        }
    };
    let body =
        tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(req.into_body(), length)).await;
    let body = match body {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "the command body could not be read",
            )
        }
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "follow command body not received within 5 s",
            )
        }
    };
    let control = camera.follow_control();
    let (status, reply) = follow_response(control.as_deref(), &body);
    json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        reply,
    )
}
