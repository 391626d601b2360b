//! A deterministic synthetic scene: person-like figures walking over a textured background,
//! with exact ground truth and simulated noisy detections, to test trackers and pipelines
//! without a camera or a neural network.
//!
//! Spec string: `synthetic://?scene=crossing|occlusion|reenter|random&people=4&seed=7&width=640&
//! height=480&fps=30&frames=300&away=2` (every key optional; `synthetic://crossing?frames=90`
//! names the scene in the path). Scenes:
//! - `crossing`: two people, visible from the first frame, walk towards each other and meet in
//!   the middle of the image (after about 1.8 s, or mid-sequence if shorter); the one further
//!   back (id 1, walking right) is largely hidden by the one in front (id 2, walking left).
//! - `occlusion`: one person walks behind a pillar drawn on top of everything and is fully
//!   hidden for exactly `round(fps)` frames (one second) around the middle of the sequence.
//! - `reenter`: one person walks out of the right edge, stays fully outside for
//!   `round(away * fps)` frames and walks back in.
//! - `random`: `people` persons on smooth, seed-determined (sum-of-sines) paths.
//!
//! `people` only applies to `random`; `away` only to `reenter`. People walk at about 0.8 body
//! heights per second. Visibility is the fraction of a person's box inside the image and not
//! covered by the pillar or by the figures in front (whose head counts as its bounding square).

use std::io::Write;
use std::path::Path;

use image::{Rgb, RgbImage};

use super::{Frame, FrameSource, SourceInfo};
use crate::detection::{BBox, Detection};
use crate::error::{Error, Result};
use crate::mot::MotRow;

/// Prefix of synthetic source specs.
pub const SCHEME: &str = "synthetic://";

/// People at least this visible are detected with a high score by
/// [`SyntheticScene::detections_with_noise`].
pub const DETECT_VISIBILITY: f32 = 0.5;

/// People at least this visible (and below [`DETECT_VISIBILITY`]) yield a low-score detection;
/// less visible ones are missed.
pub const LOW_SCORE_VISIBILITY: f32 = 0.25;

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
        }
    }
}

fn spec_error(spec: &str, reason: String) -> Error {
    Error::Option {
        option: "--source".into(),
        reason: format!("{spec}: {reason}"),
    }
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
                _ => {
                    return Err(spec_error(
                        spec,
                        format!(
                            "unknown key '{key}' (scene, people, seed, width, height, fps, frames, away)"
                        ),
                    ))
                }
            }
        }
        c.validate().map_err(|reason| spec_error(spec, reason))?;
        Ok(c)
    }

    fn validate(&self) -> std::result::Result<(), String> {
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

/// One ground-truth person in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GtObject {
    /// Person id, from 1.
    pub id: u64,
    /// Full (amodal, unclipped) box of the figure.
    pub bbox: BBox,
    /// Fraction of the box visible: inside the image and not occluded (0 when hidden or outside).
    pub visibility: f32,
}

/// SplitMix64: a tiny, good-quality deterministic generator.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

fn mix(a: u64, b: u64) -> u64 {
    SplitMix64::new(a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// How a person moves: piecewise-linear through waypoints (extrapolated beyond them), or a
/// smooth sum of sines.
#[derive(Debug, Clone)]
enum Motion {
    /// `(frame, centre x, foot y)`, sorted by frame, at least two.
    Path(Vec<(f64, f64, f64)>),
    Wander {
        base: (f64, f64),
        amp: [f64; 4],
        /// Cycles per frame.
        freq: [f64; 4],
        phase: [f64; 4],
    },
}

impl Motion {
    fn at(&self, t: f64) -> (f64, f64) {
        match self {
            Motion::Path(p) => {
                let k = p.partition_point(|w| w.0 <= t).clamp(1, p.len() - 1);
                let (a, b) = (p[k - 1], p[k]);
                let s = (t - a.0) / (b.0 - a.0);
                (a.1 + s * (b.1 - a.1), a.2 + s * (b.2 - a.2))
            }
            Motion::Wander {
                base,
                amp,
                freq,
                phase,
            } => {
                let wave =
                    |i: usize| amp[i] * (std::f64::consts::TAU * freq[i] * t + phase[i]).sin();
                (base.0 + wave(0) + wave(1), base.1 + wave(2) + wave(3))
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Actor {
    id: u64,
    width: f64,
    height: f64,
    color: [u8; 3],
    motion: Motion,
}

impl Actor {
    fn bbox(&self, frame: u64) -> BBox {
        let (cx, foot) = self.motion.at(frame as f64);
        BBox::new(
            (cx - self.width / 2.0) as f32,
            (foot - self.height) as f32,
            (cx + self.width / 2.0) as f32,
            foot as f32,
        )
    }
}

/// Head square, torso and two legs of the figure drawn in box `b`.
fn figure_parts(b: &BBox) -> [BBox; 4] {
    let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
    let cx = (b.x1 + b.x2) / 2.0;
    let r = 0.11 * h;
    let hip = b.y1 + 0.62 * h;
    [
        BBox::new(cx - r, b.y1, cx + r, b.y1 + 2.0 * r),
        BBox::new(b.x1, b.y1 + 0.2 * h, b.x2, hip),
        BBox::new(b.x1 + 0.06 * w, hip, b.x1 + 0.44 * w, b.y2),
        BBox::new(b.x1 + 0.56 * w, hip, b.x2 - 0.06 * w, b.y2),
    ]
}

fn intersect(a: &BBox, b: &BBox) -> Option<BBox> {
    let r = BBox::new(
        a.x1.max(b.x1),
        a.y1.max(b.y1),
        a.x2.min(b.x2),
        a.y2.min(b.y2),
    );
    (r.x2 > r.x1 && r.y2 > r.y1).then_some(r)
}

/// Fraction of `target` inside `image` and outside every occluder (exact, by coordinate
/// compression).
fn visible_fraction(target: &BBox, occluders: &[BBox], image: &BBox) -> f32 {
    let area = target.area() as f64;
    if area <= 0.0 {
        return 0.0;
    }
    let Some(clip) = intersect(target, image) else {
        return 0.0;
    };
    let rects: Vec<BBox> = occluders
        .iter()
        .filter_map(|o| intersect(o, &clip))
        .collect();
    if rects.is_empty() {
        return (clip.area() as f64 / area) as f32;
    }
    let mut xs: Vec<f32> = vec![clip.x1, clip.x2];
    let mut ys: Vec<f32> = vec![clip.y1, clip.y2];
    for r in &rects {
        xs.extend([r.x1, r.x2]);
        ys.extend([r.y1, r.y2]);
    }
    xs.sort_by(f32::total_cmp);
    xs.dedup();
    ys.sort_by(f32::total_cmp);
    ys.dedup();
    let mut visible = 0.0f64;
    for xw in xs.windows(2) {
        for yw in ys.windows(2) {
            let (mx, my) = ((xw[0] + xw[1]) / 2.0, (yw[0] + yw[1]) / 2.0);
            let covered = rects
                .iter()
                .any(|r| mx > r.x1 && mx < r.x2 && my > r.y1 && my < r.y2);
            if !covered {
                visible += (xw[1] - xw[0]) as f64 * (yw[1] - yw[0]) as f64;
            }
        }
    }
    (visible / area) as f32
}

/// Distinct colour for person `id`.
fn person_color(id: u64) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 10] = [
        [220, 40, 40],
        [40, 90, 220],
        [40, 170, 60],
        [240, 170, 20],
        [150, 50, 200],
        [20, 190, 200],
        [230, 90, 170],
        [120, 80, 30],
        [250, 240, 60],
        [20, 20, 20],
    ];
    if let Some(c) = PALETTE.get((id as usize).wrapping_sub(1)) {
        return *c;
    }
    // Golden-ratio hues beyond the palette.
    let hue = (id as f64 * 0.618_033_988_75).fract() * 6.0;
    let x = 1.0 - (hue % 2.0 - 1.0).abs();
    let (r, g, b) = match hue as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let c = |v: f64| (30.0 + 200.0 * v) as u8;
    [c(r), c(g), c(b)]
}

/// A scripted scene with ground truth; rendering and queries are pure functions of the frame.
#[derive(Debug, Clone)]
pub struct SyntheticScene {
    config: SceneConfig,
    actors: Vec<Actor>,
    pillars: Vec<BBox>,
    background: RgbImage,
}

impl SyntheticScene {
    /// Builds the scene described by `config`.
    pub fn new(config: SceneConfig) -> Result<Self> {
        config
            .validate()
            .map_err(|reason| spec_error(SCHEME, reason))?;
        let (w, h) = (config.width as f64, config.height as f64);
        let fps = config.fps;
        let h0 = 0.35 * h;
        let w0 = 0.38 * h0;
        let v = 0.8 * h0 / fps;
        let n = config.frames as f64;
        let actor = |id: u64, height: f64, motion: Motion| Actor {
            id,
            width: 0.38 * height,
            height,
            color: person_color(id),
            motion,
        };
        let mut pillars = Vec::new();
        let actors = match config.kind {
            SceneKind::Crossing => {
                // Both start inside the image (x = 0.12 w and 0.88 w) when the sequence is long
                // enough, and meet in the middle.
                let tc = ((n - 1.0) / 2.0).min(0.38 * w / v);
                let x = |t: f64, dir: f64| w / 2.0 + dir * v * (t - tc);
                vec![
                    actor(
                        1,
                        h0,
                        Motion::Path(vec![
                            (0.0, x(0.0, 1.0), 0.72 * h),
                            (1.0, x(1.0, 1.0), 0.72 * h),
                        ]),
                    ),
                    actor(
                        2,
                        1.05 * h0,
                        Motion::Path(vec![
                            (0.0, x(0.0, -1.0), 0.8 * h),
                            (1.0, x(1.0, -1.0), 0.8 * h),
                        ]),
                    ),
                ]
            }
            SceneKind::Occlusion => {
                let hidden = fps.round().max(1.0);
                let t0 = (n / 2.0 - hidden / 2.0).floor().max(0.0);
                let t_mid = t0 + (hidden - 1.0) / 2.0;
                let x = |t: f64| w / 2.0 + v * (t - t_mid);
                // Exactly `hidden` frames have the box inside the pillar's span (margin v/2).
                let px1 = x(t0) - w0 / 2.0 - v / 2.0;
                let px2 = x(t0 + hidden - 1.0) + w0 / 2.0 + v / 2.0;
                pillars.push(BBox::new(px1 as f32, 0.0, px2 as f32, h as f32));
                vec![actor(
                    1,
                    h0,
                    Motion::Path(vec![(0.0, x(0.0), 0.78 * h), (1.0, x(1.0), 0.78 * h)]),
                )]
            }
            SceneKind::Reenter => {
                let away = (config.away * fps).round();
                // Fully outside when |t - t_turn| <= away / 2, i.e. `away` whole frames.
                let x_turn = w + w0 / 2.0 + v * away / 2.0;
                let start = 0.35 * w;
                let t1 = ((x_turn - start) / v - (away - 1.0) / 2.0).ceil();
                let t_turn = t1 + (away - 1.0) / 2.0;
                let foot = 0.78 * h;
                vec![actor(
                    1,
                    h0,
                    Motion::Path(vec![
                        (t_turn - 1.0, x_turn - v, foot),
                        (t_turn, x_turn, foot),
                        (t_turn + 1.0, x_turn - v, foot),
                    ]),
                )]
            }
            SceneKind::Random => {
                let mut rng = SplitMix64::new(mix(config.seed, 0x5EED));
                (1..=config.people as u64)
                    .map(|id| {
                        let height = h * rng.range(0.22, 0.38);
                        let foot = rng.range(height + 0.04 * h, 0.97 * h);
                        let per_frame = |s: f64| 1.0 / (s * fps);
                        let motion = Motion::Wander {
                            base: (rng.range(0.15, 0.85) * w, foot),
                            amp: [
                                rng.range(0.1, 0.25) * w,
                                rng.range(0.0, 0.06) * w,
                                rng.range(0.0, 0.03) * h,
                                rng.range(0.0, 0.01) * h,
                            ],
                            freq: [
                                per_frame(rng.range(8.0, 20.0)),
                                per_frame(rng.range(4.0, 10.0)),
                                per_frame(rng.range(6.0, 14.0)),
                                per_frame(rng.range(2.0, 5.0)),
                            ],
                            phase: std::array::from_fn(|_| rng.range(0.0, std::f64::consts::TAU)),
                        };
                        actor(id, height, motion)
                    })
                    .collect()
            }
        };
        let background = render_background(config.width, config.height, config.seed);
        Ok(Self {
            config,
            actors,
            pillars,
            background,
        })
    }

    /// Builds the scene of a `synthetic://` spec.
    pub fn from_spec(spec: &str) -> Result<Self> {
        Self::new(SceneConfig::parse(spec)?)
    }

    /// The scene's settings.
    pub fn config(&self) -> &SceneConfig {
        &self.config
    }

    /// Static occluders (the pillar of `occlusion`), drawn over the people.
    pub fn occluders(&self) -> &[BBox] {
        &self.pillars
    }

    fn image_box(&self) -> BBox {
        BBox::new(
            0.0,
            0.0,
            self.config.width as f32,
            self.config.height as f32,
        )
    }

    /// Actors with their boxes, back to front (drawing order: larger foot y is nearer).
    fn layout(&self, frame: u64) -> Vec<(usize, BBox)> {
        let mut v: Vec<(usize, BBox)> = self
            .actors
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.bbox(frame)))
            .collect();
        v.sort_by(|a, b| {
            a.1.y2
                .total_cmp(&b.1.y2)
                .then(self.actors[a.0].id.cmp(&self.actors[b.0].id))
        });
        v
    }

    /// Every person at `frame` (also those hidden or outside the image), by id.
    pub fn ground_truth(&self, frame: u64) -> Vec<GtObject> {
        let layout = self.layout(frame);
        let image = self.image_box();
        let mut out: Vec<GtObject> = layout
            .iter()
            .enumerate()
            .map(|(k, (i, b))| {
                let mut occ: Vec<BBox> = self.pillars.clone();
                for (_, front) in &layout[k + 1..] {
                    occ.extend(figure_parts(front));
                }
                GtObject {
                    id: self.actors[*i].id,
                    bbox: *b,
                    visibility: visible_fraction(b, &occ, &image),
                }
            })
            .collect();
        out.sort_by_key(|g| g.id);
        out
    }

    /// Ground truth of frames `0..frames` as MOTChallenge rows (`frame` 1-based, class 1,
    /// visibility in column 9) for every person whose box overlaps the image, including people
    /// fully hidden behind an occluder (visibility 0), as MOT17 annotates them.
    pub fn mot_gt_rows(&self, frames: u64) -> Vec<MotRow> {
        let image = self.image_box();
        let mut rows = Vec::new();
        for f in 0..frames {
            for g in self.ground_truth(f) {
                if intersect(&g.bbox, &image).is_none() {
                    continue;
                }
                rows.push(MotRow {
                    frame: f + 1,
                    id: g.id as i64,
                    x: g.bbox.x1 as f64,
                    y: g.bbox.y1 as f64,
                    w: g.bbox.width() as f64,
                    h: g.bbox.height() as f64,
                    conf: 1.0,
                    class: 1.0,
                    visibility: g.visibility as f64,
                });
            }
        }
        rows
    }

    /// Writes [`mot_gt_rows`](Self::mot_gt_rows) as a MOTChallenge `gt.txt`
    /// (`frame,id,x,y,w,h,1,1,visibility`).
    pub fn write_mot_gt(&self, path: impl AsRef<Path>, frames: u64) -> Result<()> {
        let path = path.as_ref();
        let io = |e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        for r in self.mot_gt_rows(frames) {
            writeln!(
                w,
                "{},{},{:.2},{:.2},{:.2},{:.2},1,1,{:.3}",
                r.frame, r.id, r.x, r.y, r.w, r.h, r.visibility
            )
            .map_err(io)?;
        }
        w.flush().map_err(io)
    }

    /// Simulated detector output for `frame`, a pure function of `(frame, seed)`: people with
    /// visibility >= [`DETECT_VISIBILITY`] get a high score (about 0.55 to 0.95), those with
    /// visibility >= [`LOW_SCORE_VISIBILITY`] a low one (0.15 to 0.45), others none; each is
    /// dropped with probability `miss_rate`; boxes are clipped to the image and every edge moves
    /// by up to `jitter_px` (uniform). `false_positive_rate` is the mean number of spurious
    /// person-sized boxes per frame (scores 0.1 to 0.7). Class 0 throughout.
    pub fn detections_with_noise(
        &self,
        frame: u64,
        seed: u64,
        jitter_px: f32,
        miss_rate: f32,
        false_positive_rate: f32,
    ) -> Vec<Detection> {
        let mut rng = SplitMix64::new(mix(mix(seed, 0xDE7EC7), frame));
        let image = self.image_box();
        let (iw, ih) = (image.x2, image.y2);
        let jitter = jitter_px.max(0.0) as f64;
        let mut out = Vec::new();
        for g in self.ground_truth(frame) {
            // Always draw the same numbers per person so one decision never shifts another's.
            let (u_miss, u_score) = (rng.unit(), rng.unit());
            let j: [f64; 4] = std::array::from_fn(|_| rng.range(-jitter, jitter));
            let score = if g.visibility >= DETECT_VISIBILITY {
                (0.7 + 0.25 * u_score) * (0.8 + 0.2 * g.visibility as f64)
            } else if g.visibility >= LOW_SCORE_VISIBILITY {
                0.15 + 0.3 * u_score
            } else {
                continue;
            };
            if u_miss < miss_rate as f64 {
                continue;
            }
            let Some(c) = intersect(&g.bbox, &image) else {
                continue;
            };
            let x1 = (c.x1 as f64 + j[0]).clamp(0.0, iw as f64 - 2.0);
            let y1 = (c.y1 as f64 + j[1]).clamp(0.0, ih as f64 - 2.0);
            let x2 = (c.x2 as f64 + j[2]).clamp(x1 + 2.0, iw as f64);
            let y2 = (c.y2 as f64 + j[3]).clamp(y1 + 2.0, ih as f64);
            out.push(Detection {
                bbox: BBox::new(x1 as f32, y1 as f32, x2 as f32, y2 as f32),
                score: score as f32,
                class_id: 0,
            });
        }
        let rate = false_positive_rate.max(0.0) as f64;
        let count = rate.floor() as u64 + u64::from(rng.unit() < rate.fract());
        for _ in 0..count {
            let h = rng.range(0.15, 0.4) * ih as f64;
            let w = 0.4 * h;
            let x = rng.range(0.0, (iw as f64 - w).max(1.0));
            let y = rng.range(0.0, (ih as f64 - h).max(1.0));
            out.push(Detection {
                bbox: BBox::new(x as f32, y as f32, (x + w) as f32, (y + h) as f32),
                score: rng.range(0.1, 0.7) as f32,
                class_id: 0,
            });
        }
        out
    }

    /// Draws `frame`.
    pub fn render(&self, frame: u64) -> RgbImage {
        let mut img = self.background.clone();
        for (i, b) in self.layout(frame) {
            draw_person(&mut img, &b, self.actors[i].color);
        }
        for p in &self.pillars {
            draw_pillar(&mut img, p);
        }
        img
    }
}

/// Pixel range `[lo, hi)` whose centres lie inside `[a, b)`, clamped to `0..n`.
fn span(a: f32, b: f32, n: u32) -> (u32, u32) {
    let lo = (a - 0.5).ceil().max(0.0).min(n as f32) as u32;
    let hi = (b - 0.5).ceil().max(0.0).min(n as f32) as u32;
    (lo, hi)
}

fn fill(img: &mut RgbImage, r: &BBox, color: [u8; 3]) {
    let (x0, x1) = span(r.x1, r.x2, img.width());
    let (y0, y1) = span(r.y1, r.y2, img.height());
    for y in y0..y1 {
        for x in x0..x1 {
            img.put_pixel(x, y, Rgb(color));
        }
    }
}

fn shade(c: [u8; 3], f: f32) -> [u8; 3] {
    c.map(|v| (v as f32 * f).clamp(0.0, 255.0) as u8)
}

fn draw_person(img: &mut RgbImage, b: &BBox, color: [u8; 3]) {
    let [head, torso, left, right] = figure_parts(b);
    fill(img, &torso, color);
    fill(img, &left, shade(color, 0.55));
    fill(img, &right, shade(color, 0.55));
    let (cx, cy) = ((head.x1 + head.x2) / 2.0, (head.y1 + head.y2) / 2.0);
    let r = (head.x2 - head.x1) / 2.0;
    let (x0, x1) = span(head.x1, head.x2, img.width());
    let (y0, y1) = span(head.y1, head.y2, img.height());
    for y in y0..y1 {
        for x in x0..x1 {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= r * r {
                img.put_pixel(x, y, Rgb([232, 190, 160]));
            }
        }
    }
}

fn draw_pillar(img: &mut RgbImage, p: &BBox) {
    let (x0, x1) = span(p.x1, p.x2, img.width());
    let (y0, y1) = span(p.y1, p.y2, img.height());
    let width = (x1 - x0).max(1) as f32;
    for y in y0..y1 {
        for x in x0..x1 {
            // Rounded shading across the pillar, with mortar lines.
            let u = (x - x0) as f32 / width;
            let light = 0.65 + 0.35 * (std::f32::consts::PI * u).sin();
            let mortar = if y % 24 == 0 { 0.75 } else { 1.0 };
            img.put_pixel(x, y, Rgb(shade([150, 145, 140], light * mortar)));
        }
    }
}

fn render_background(width: u32, height: u32, seed: u64) -> RgbImage {
    let horizon = height as f32 * 0.4;
    let salt = mix(seed, 0xB6);
    RgbImage::from_fn(width, height, |x, y| {
        let n = (mix(salt, (y as u64) << 32 | x as u64) >> 59) as f32 - 16.0;
        let base = if (y as f32) < horizon {
            // Wall with a brick pattern.
            let row = y / 16;
            let shift = if row % 2 == 0 { 0 } else { 16 };
            let joint = y % 16 == 0 || (x + shift) % 32 == 0;
            if joint {
                [150.0, 140.0, 130.0]
            } else {
                [185.0, 120.0, 95.0]
            }
        } else {
            // Floor tiles, darker towards the camera.
            let t = (y as f32 - horizon) / (height as f32 - horizon);
            let tile = ((x / 40) + (y / 40)) % 2 == 0;
            let v = if tile { 120.0 } else { 100.0 } - 20.0 * t;
            [v, v + 10.0, v - 5.0]
        };
        Rgb(base.map(|c| (c + n).clamp(0.0, 255.0) as u8))
    })
}

/// A [`FrameSource`] playing a [`SyntheticScene`] frame by frame (not live).
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    scene: SyntheticScene,
    info: SourceInfo,
    next: u64,
}

impl SyntheticSource {
    /// Opens a `synthetic://` spec.
    pub fn open(spec: &str) -> Result<Self> {
        Ok(Self::new(SyntheticScene::from_spec(spec)?, spec))
    }

    /// Plays `scene`, reported under `name`.
    pub fn new(scene: SyntheticScene, name: &str) -> Self {
        let c = scene.config();
        let info = SourceInfo {
            name: name.to_string(),
            width: c.width,
            height: c.height,
            fps: Some(c.fps),
            frames: Some(c.frames),
            live: false,
        };
        Self {
            scene,
            info,
            next: 0,
        }
    }

    /// The scene being played (for its ground truth).
    pub fn scene(&self) -> &SyntheticScene {
        &self.scene
    }
}

impl FrameSource for SyntheticSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let c = self.scene.config();
        if self.next >= c.frames {
            return Ok(None);
        }
        let index = self.next;
        self.next += 1;
        Ok(Some(Frame {
            index,
            timestamp: index as f64 / c.fps,
            image: self.scene.render(index),
            origin: self.info.name.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(spec: &str) -> SyntheticScene {
        SyntheticScene::from_spec(spec).unwrap()
    }

    #[test]
    fn parses_spec_with_defaults_and_path_scene() {
        let c = SceneConfig::parse("synthetic://").unwrap();
        assert_eq!(c, SceneConfig::default());
        let c = SceneConfig::parse(
            "synthetic://?scene=occlusion&people=3&seed=9&width=320&height=240&fps=25&frames=50&away=1.5",
        )
        .unwrap();
        assert_eq!(c.kind, SceneKind::Occlusion);
        assert_eq!((c.people, c.seed, c.width, c.height), (3, 9, 320, 240));
        assert_eq!((c.fps, c.frames, c.away), (25.0, 50, 1.5));
        assert_eq!(
            SceneConfig::parse("synthetic://crossing?frames=10")
                .unwrap()
                .kind,
            SceneKind::Crossing
        );
        assert_eq!(
            SceneConfig::parse("Synthetic://?people=2").unwrap().people,
            2
        );
    }

    #[test]
    fn parse_errors_name_key_and_value() {
        let err = |s: &str| SceneConfig::parse(s).unwrap_err().to_string();
        let e = err("synthetic://?people=abc");
        assert!(e.contains("--source") && e.contains("people: 'abc'"), "{e}");
        let e = err("synthetic://?colour=red");
        assert!(e.contains("unknown key 'colour'"), "{e}");
        let e = err("synthetic://?scene=ballet");
        assert!(e.contains("scene 'ballet'"), "{e}");
        let e = err("synthetic://?fps=0");
        assert!(e.contains("fps: 0"), "{e}");
        let e = err("synthetic://?frames");
        assert!(e.contains("'frames' is not key=value"), "{e}");
        assert!(err("file://x").contains("synthetic://"));
    }

    #[test]
    fn occlusion_hides_the_person_for_exactly_one_second() {
        for fps in [30.0, 25.0, 12.0] {
            let s = scene(&format!(
                "synthetic://?scene=occlusion&fps={fps}&frames=300"
            ));
            let hidden: Vec<u64> = (0..300)
                .filter(|&f| {
                    let g = s.ground_truth(f)[0];
                    g.visibility == 0.0 && g.bbox.x1 > 0.0 && g.bbox.x2 < 640.0
                })
                .collect();
            assert_eq!(hidden.len() as f64, fps, "fps {fps}");
            assert_eq!(hidden.last().unwrap() - hidden[0] + 1, hidden.len() as u64);
            // Partly visible right before and after.
            let before = s.ground_truth(hidden[0] - 1)[0].visibility;
            assert!(before > 0.0 && before < 1.0);
        }
    }

    #[test]
    fn reenter_stays_outside_for_the_requested_time() {
        let s = scene("synthetic://?scene=reenter&away=2&frames=400");
        let first = s.ground_truth(0)[0];
        assert_eq!(first.visibility, 1.0);
        // Fully outside for one run of 60 frames, then back in (until it later leaves on the
        // left, which the first run of outside frames does not include).
        let start = (0..400)
            .find(|&f| s.ground_truth(f)[0].visibility == 0.0)
            .unwrap();
        let back = (start..400)
            .find(|&f| s.ground_truth(f)[0].visibility > 0.0)
            .unwrap();
        assert_eq!(back - start, 60);
        assert!(s.ground_truth(start)[0].bbox.x1 >= 640.0);
        assert!(s.ground_truth(back + 20)[0].visibility > 0.9);
        let short = scene("synthetic://?scene=reenter&away=0.2");
        let start = (0..300)
            .find(|&f| short.ground_truth(f)[0].visibility == 0.0)
            .unwrap();
        let back = (start..300)
            .find(|&f| short.ground_truth(f)[0].visibility > 0.0)
            .unwrap();
        assert_eq!(back - start, 6);
    }

    #[test]
    fn crossing_boxes_overlap_and_the_back_person_is_partly_hidden() {
        let s = scene("synthetic://?scene=crossing&frames=300");
        let overlapping: Vec<u64> = (0..300)
            .filter(|&f| {
                let g = s.ground_truth(f);
                g[0].bbox.iou(&g[1].bbox) > 0.3
            })
            .collect();
        assert!(overlapping.len() >= 5, "{}", overlapping.len());
        let mid_frame = (0..300u64)
            .max_by(|&a, &b| {
                let iou = |f: u64| {
                    let g = s.ground_truth(f);
                    g[0].bbox.iou(&g[1].bbox)
                };
                iou(a).total_cmp(&iou(b))
            })
            .unwrap();
        assert!((50..60).contains(&mid_frame), "{mid_frame}");
        assert!(s.ground_truth(0).iter().all(|g| g.visibility == 1.0));
        let mid = s.ground_truth(mid_frame);
        assert!(
            mid[0].visibility < 0.6 && mid[1].visibility == 1.0,
            "{mid:?}"
        );
    }

    #[test]
    fn everything_is_deterministic() {
        let a = scene("synthetic://?scene=random&people=6&seed=3");
        let b = scene("synthetic://?scene=random&people=6&seed=3");
        let c = scene("synthetic://?scene=random&people=6&seed=4");
        assert_eq!(a.ground_truth(17), b.ground_truth(17));
        assert_ne!(a.ground_truth(17), c.ground_truth(17));
        assert_eq!(
            a.detections_with_noise(5, 1, 3.0, 0.1, 0.5),
            b.detections_with_noise(5, 1, 3.0, 0.1, 0.5)
        );
        assert_eq!(a.render(9).as_raw(), b.render(9).as_raw());
        assert_eq!(a.ground_truth(3).len(), 6);
    }

    #[test]
    fn random_paths_are_smooth() {
        let s = scene("synthetic://?scene=random&people=8&seed=11");
        for f in 0..299 {
            for (p, q) in s.ground_truth(f).iter().zip(s.ground_truth(f + 1)) {
                let (a, b) = (p.bbox.center(), q.bbox.center());
                assert!((a.0 - b.0).abs() < 10.0 && (a.1 - b.1).abs() < 10.0);
            }
        }
    }

    #[test]
    fn noisy_detections_follow_the_truth() {
        let s = scene("synthetic://?scene=crossing");
        let exact = s.detections_with_noise(60, 1, 0.0, 0.0, 0.0);
        let truth = s.ground_truth(60);
        let visible: Vec<_> = truth.iter().filter(|g| g.visibility >= 0.25).collect();
        assert_eq!(exact.len(), visible.len());
        for (d, g) in exact.iter().zip(&visible) {
            assert!(d.bbox.iou(&g.bbox.clip(640.0, 480.0)) > 0.999);
        }
        let noisy = s.detections_with_noise(60, 1, 4.0, 0.0, 0.0);
        for (d, e) in noisy.iter().zip(&exact) {
            assert!((d.bbox.x1 - e.bbox.x1).abs() <= 4.0 && d.bbox.iou(&e.bbox) > 0.8);
        }
        let none = s.detections_with_noise(60, 1, 0.0, 1.0, 0.0);
        assert!(none.is_empty());
        let fps: usize = (0..100)
            .map(|f| s.detections_with_noise(f, 2, 0.0, 1.0, 1.5).len())
            .sum();
        assert!((120..=180).contains(&fps), "{fps}");
    }

    #[test]
    fn source_yields_frames_and_ends() {
        let mut src = SyntheticSource::open(
            "synthetic://?scene=occlusion&width=160&height=120&frames=3&fps=10",
        )
        .unwrap();
        assert_eq!(src.info().width, 160);
        assert_eq!(src.info().frames, Some(3));
        let mut n = 0;
        while let Some(f) = src.next_frame().unwrap() {
            assert_eq!(f.index, n);
            assert!((f.timestamp - n as f64 / 10.0).abs() < 1e-12);
            assert_eq!(f.image.dimensions(), (160, 120));
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn rendering_shows_people_and_the_pillar_on_top() {
        let s = scene("synthetic://?scene=occlusion&frames=300");
        let hidden = (0..300)
            .find(|&f| {
                let g = s.ground_truth(f)[0];
                g.visibility == 0.0 && g.bbox.x1 > 0.0
            })
            .unwrap();
        let g = s.ground_truth(hidden)[0];
        let (cx, cy) = g.bbox.center();
        let pillar_px = s.render(hidden).get_pixel(cx as u32, cy as u32).0;
        let bg = s.background.get_pixel(cx as u32, cy as u32).0;
        assert_ne!(pillar_px, [220, 40, 40]);
        assert_ne!(pillar_px, bg);
        let seen = s.render(100);
        let g = s.ground_truth(100)[0];
        assert_eq!(g.visibility, 1.0);
        let (cx, cy) = g.bbox.center();
        assert_eq!(seen.get_pixel(cx as u32, cy as u32).0, [220, 40, 40]);
    }

    #[test]
    fn mot_gt_file_round_trips() {
        let s = scene("synthetic://?scene=crossing&frames=40");
        let dir = std::env::temp_dir().join(format!("vigia-synth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("gt.txt");
        s.write_mot_gt(&p, 40).unwrap();
        let rows = crate::mot::read_mot(&p).unwrap();
        assert_eq!(rows.len(), s.mot_gt_rows(40).len());
        assert!(rows
            .iter()
            .all(|r| r.frame >= 1 && r.frame <= 40 && r.conf == 1.0));
        std::fs::remove_dir_all(&dir).ok();
    }
}
