//! The scene simulator: scripted walking figures, their exact ground truth (visibility with
//! occlusion) and simulated noisy detections.

use image::RgbImage;

use super::config::{spec_error, SceneConfig, SceneKind, SCHEME};
use super::render::render_background;
use crate::detection::{BBox, Detection};
use crate::error::Result;

/// People at least this visible are detected with a high score by
/// [`SyntheticScene::detections_with_noise`].
pub const DETECT_VISIBILITY: f32 = 0.5;

/// People at least this visible (and below [`DETECT_VISIBILITY`]) yield a low-score detection;
/// less visible ones are missed.
pub const LOW_SCORE_VISIBILITY: f32 = 0.25;

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

pub(super) fn mix(a: u64, b: u64) -> u64 {
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
pub(super) struct Actor {
    id: u64,
    width: f64,
    height: f64,
    pub(super) color: [u8; 3],
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
pub(super) fn figure_parts(b: &BBox) -> [BBox; 4] {
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

pub(super) fn intersect(a: &BBox, b: &BBox) -> Option<BBox> {
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
    pub(super) actors: Vec<Actor>,
    pub(super) pillars: Vec<BBox>,
    pub(super) background: RgbImage,
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

    pub(super) fn image_box(&self) -> BBox {
        BBox::new(
            0.0,
            0.0,
            self.config.width as f32,
            self.config.height as f32,
        )
    }

    /// Actors with their boxes, back to front (drawing order: larger foot y is nearer).
    pub(super) fn layout(&self, frame: u64) -> Vec<(usize, BBox)> {
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
}
