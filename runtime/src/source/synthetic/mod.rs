//! A deterministic synthetic scene: person-like figures walking over a textured background,
//! with exact ground truth and simulated noisy detections, to test trackers and pipelines
//! without a camera or a neural network.
//!
//! Spec string: `synthetic://?scene=crossing|occlusion|reenter|random&people=4&seed=7&width=640&
//! height=480&fps=30&frames=300&away=2&live=0` (every key optional; `synthetic://crossing?frames=90`
//! names the scene in the path; `live=1` plays it in real time, as a camera would). Scenes:
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

mod config;
mod ground_truth;
mod render;
mod scene;

use std::time::{Duration, Instant};

use super::{Frame, FrameSource, SourceInfo};
use crate::error::Result;
pub use config::{SceneConfig, SceneKind, SCHEME};
pub use scene::{GtObject, SyntheticScene, DETECT_VISIBILITY, LOW_SCORE_VISIBILITY};

/// A [`FrameSource`] playing a [`SyntheticScene`] frame by frame, as fast as it is read or, with
/// `live=1`, at the scene's frame rate.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    scene: SyntheticScene,
    info: SourceInfo,
    next: u64,
    /// When frame 0 was due (live scenes).
    started: Option<Instant>,
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
            frames: (!c.live).then_some(c.frames),
            live: c.live,
        };
        Self {
            scene,
            info,
            next: 0,
            started: None,
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
        if c.live {
            let start = *self.started.get_or_insert_with(Instant::now);
            let due = start + Duration::from_secs_f64(index as f64 / c.fps);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
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
