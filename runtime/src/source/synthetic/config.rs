//! The settings of a synthetic scene and their `synthetic://` spec string.

use crate::error::{Error, Result};

/// Prefix of synthetic source specs.
pub const SCHEME: &str = "synthetic://";

/// Which scripted scene to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneKind {
    /// Two people walking past each other.
    Crossing,
    /// One person passing behind a pillar for one second.
    Occlusion,
    /// One person leaving the frame and coming back.
    Reenter,
    /// Several people on random smooth paths.
    Random,
}

impl SceneKind {
    /// The name used in spec strings.
    pub fn name(&self) -> &'static str {
        match self {
            SceneKind::Crossing => "crossing",
            SceneKind::Occlusion => "occlusion",
            SceneKind::Reenter => "reenter",
            SceneKind::Random => "random",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        [
            SceneKind::Crossing,
            SceneKind::Occlusion,
            SceneKind::Reenter,
            SceneKind::Random,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// Everything that determines a synthetic scene.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneConfig {
    /// Scene script.
    pub kind: SceneKind,
    /// Number of people (`random` only).
    pub people: u32,
    /// Seed of the random paths, sizes and colours.
    pub seed: u64,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second (sets walking speed in pixels per frame and the occlusion length).
    pub fps: f64,
    /// Frames the source yields.
    pub frames: u64,
    /// Seconds the person stays fully outside the frame (`reenter` only).
    pub away: f64,
    /// Play in real time, like a camera: frames come at `fps` and the source reports itself live.
    pub live: bool,
}

impl Default for SceneConfig {
    fn default() -> Self {
        Self {
            kind: SceneKind::Random,
            people: 4,
            seed: 7,
            width: 640,
            height: 480,
            fps: 30.0,
            frames: 300,
            away: 2.0,
            live: false,
        }
    }
}

pub(super) fn spec_error(spec: &str, reason: String) -> Error {
    Error::option("--source", format!("{spec}: {reason}"))
}

impl SceneConfig {
    /// Parses a `synthetic://` spec; errors name the bad key or value.
    pub fn parse(spec: &str) -> Result<Self> {
        let rest = spec
            .get(..SCHEME.len())
            .filter(|p| p.eq_ignore_ascii_case(SCHEME))
            .map(|_| &spec[SCHEME.len()..])
            .ok_or_else(|| spec_error(spec, format!("a synthetic source starts with {SCHEME}")))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut c = SceneConfig::default();
        let scene_name = |v: &str| {
            SceneKind::from_name(v).ok_or_else(|| {
                spec_error(
                    spec,
                    format!("scene '{v}' is unknown (crossing, occlusion, reenter, random)"),
                )
            })
        };
        let path = path.trim_matches('/');
        if !path.is_empty() {
            c.kind = scene_name(path)?;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| spec_error(spec, format!("'{pair}' is not key=value")))?;
            let whole = |v: &str| -> Result<u64> {
                v.parse::<u64>()
                    .map_err(|_| spec_error(spec, format!("{key}: '{v}' is not a whole number")))
            };
            let real = |v: &str| -> Result<f64> {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| spec_error(spec, format!("{key}: '{v}' is not a number")))
            };
            let small = |v: &str| -> Result<u32> {
                u32::try_from(whole(v)?)
                    .map_err(|_| spec_error(spec, format!("{key}: '{v}' is too large")))
            };
            match key {
                "scene" => c.kind = scene_name(value)?,
                "people" => c.people = small(value)?,
                "seed" => c.seed = whole(value)?,
                "width" => c.width = small(value)?,
                "height" => c.height = small(value)?,
                "fps" => c.fps = real(value)?,
                "frames" => c.frames = whole(value)?,
                "away" => c.away = real(value)?,
                "live" => {
                    c.live = match value {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => return Err(spec_error(spec, format!("live: '{value}' is not 0 or 1"))),
                    }
                }
                _ => {
                    return Err(spec_error(
                        spec,
                        format!(
                            "unknown key '{key}' (scene, people, seed, width, height, fps, frames, away, live)"
                        ),
                    ))
                }
            }
        }
        c.validate().map_err(|reason| spec_error(spec, reason))?;
        Ok(c)
    }

    pub(super) fn validate(&self) -> std::result::Result<(), String> {
        if !(16..=8192).contains(&self.width) {
            return Err(format!("width: {} is not within 16..=8192", self.width));
        }
        if !(16..=8192).contains(&self.height) {
            return Err(format!("height: {} is not within 16..=8192", self.height));
        }
        if !(self.fps > 0.0 && self.fps <= 1000.0) {
            return Err(format!("fps: {} is not within (0, 1000]", self.fps));
        }
        if self.frames == 0 {
            return Err("frames: must be at least 1".into());
        }
        if !(1..=1000).contains(&self.people) {
            return Err(format!("people: {} is not within 1..=1000", self.people));
        }
        if !(self.away >= 0.0 && self.away <= 3600.0) {
            return Err(format!(
                "away: {} is not within 0..=3600 seconds",
                self.away
            ));
        }
        Ok(())
    }
}
