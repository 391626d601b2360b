//! Re-identification: a person who leaves and comes back keeps their id.
//!
//! [`ReidTracker`] wraps a motion tracker (ByteTrack) that reports its lost tracks. It gives
//! every track an identity with an appearance [`Gallery`], embeds crops only when needed (a
//! new track, then every few frames, never a crop overlapped by another person), and while a
//! new track is young compares it with the identities not in view that were last seen within
//! the memory window. A clear match (similarity above the threshold and a margin above the
//! next best, and no strong colour covering clearly different shares of the two) takes the old
//! identity's id; otherwise the track keeps a new one.

use std::collections::HashMap;

use image::RgbImage;

use super::appearance::{Appearances, Gallery};
use super::{Track, TrackState, Tracker};
use crate::detection::{BBox, Detection};
use crate::error::{Error, Result};
use crate::reid::{ColourShares, Embedder};

/// Settings of re-identification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReidConfig {
    /// Seconds an identity not in view is remembered (`--reid-memory`).
    pub memory: f64,
    /// Least similarity of a match (`--reid-threshold`).
    pub threshold: f32,
    /// Least lead of the best match over the second best.
    pub margin: f32,
    /// Least difference in one strong colour's share of the upper body that tells two people
    /// apart whatever their similarity (`--reid-colour-veto`); `None`: colours not compared.
    pub colour_veto: Option<f32>,
    /// Frames between embeddings of a track whose identity is settled.
    pub embed_every: u32,
    /// Embeddings a new track needs before it is compared.
    pub decide_after: u32,
    /// Frames during which a new track may still take an old identity.
    pub decide_within: u32,
    /// A crop overlapping another person's box above this IoU is not embedded.
    pub max_overlap: f32,
    /// Identities remembered at most (the oldest are dropped first).
    pub max_identities: usize,
    /// Also report tracks that are currently lost.
    pub report_lost: bool,
}

impl Default for ReidConfig {
    fn default() -> Self {
        ReidConfig {
            memory: 30.0,
            threshold: 0.93,
            margin: 0.05,
            colour_veto: Some(crate::reid::DEFAULT_COLOUR_VETO),
            embed_every: 3,
            decide_after: 5,
            decide_within: 20,
            max_overlap: 0.2,
            max_identities: 1000,
            report_lost: false,
        }
    }
}

impl ReidConfig {
    /// Checks the settings; errors name the option.
    pub fn validate(&self) -> Result<()> {
        if !(self.memory.is_finite() && self.memory >= 0.0) {
            return Err(Error::option(
                "--reid-memory",
                format!("must be a number of seconds >= 0, got {}", self.memory),
            ));
        }
        crate::reid::validate_match_rule(self.threshold, self.margin)?;
        crate::reid::validate_colour_veto(self.colour_veto)?;
        if self.embed_every == 0 || self.decide_after == 0 || self.max_identities == 0 {
            return Err(Error::option(
                "--reid",
                "embed_every, decide_after and max_identities must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A re-identification decision, for logs and reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReidMatch {
    /// Frame time of the decision.
    pub time: f64,
    /// The id the returning person had before.
    pub id: u64,
    /// The id the new track had until the match.
    pub provisional: u64,
    /// Similarity of the match.
    pub similarity: f32,
    /// Similarity of the next best identity, when there was one.
    pub second: Option<f32>,
}

/// One person as far as the wrapper knows.
#[derive(Debug, Clone)]
struct Identity {
    /// Everything the person looked like, merged over every track they were re-identified in.
    gallery: Option<Gallery>,
    /// What the current track looks like: its own crops only, never merged. Consumers judge
    /// the person in view by this, so one wrong re-identification cannot lend a stranger the
    /// old identity's look.
    look: Option<Gallery>,
    /// Frame time the current track began.
    track_since: f64,
    /// Frame time of the last frame the person was tracked.
    last_seen: f64,
    /// Frame time the person was first seen.
    first_seen: f64,
    /// The inner track carrying the identity, while it exists.
    inner: Option<u64>,
    /// Still young: may turn out to be an earlier identity.
    pending: bool,
    /// Frames since the inner track first appeared.
    frames: u32,
    /// Frame counter at the last embedding.
    last_embed: u64,
}

/// A tracker with appearance re-identification around a motion tracker; see the module docs.
pub struct ReidTracker<T: Tracker> {
    inner: T,
    embedder: Box<dyn Embedder>,
    config: ReidConfig,
    identities: HashMap<u64, Identity>,
    /// Inner track id -> identity id; `None` for an inner track whose identity moved on.
    bindings: HashMap<u64, Option<u64>>,
    next_id: u64,
    frame: u64,
    output: Vec<Track>,
    appearances: Appearances,
    matches: Vec<ReidMatch>,
    // Buffers reused between updates.
    inner_tracks: Vec<Track>,
    crop_boxes: Vec<BBox>,
    crop_owners: Vec<u64>,
    vectors: Vec<Option<Vec<f32>>>,
}

impl<T: Tracker> ReidTracker<T> {
    /// Wraps `inner`, which must report its lost tracks (ByteTrack with `report_lost`).
    pub fn new(inner: T, embedder: Box<dyn Embedder>, config: ReidConfig) -> Result<Self> {
        config.validate()?;
        Ok(ReidTracker {
            inner,
            embedder,
            config,
            identities: HashMap::new(),
            bindings: HashMap::new(),
            next_id: 1,
            frame: 0,
            output: Vec::new(),
            appearances: Appearances::default(),
            matches: Vec::new(),
            inner_tracks: Vec::new(),
            crop_boxes: Vec::new(),
            crop_owners: Vec::new(),
            vectors: Vec::new(),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &ReidConfig {
        &self.config
    }

    /// The embedder's name.
    pub fn embedder_name(&self) -> &str {
        self.embedder.name()
    }

    /// Re-identifications made during the last update.
    pub fn last_matches(&self) -> &[ReidMatch] {
        &self.matches
    }

    /// Identities held (in view and remembered).
    pub fn identities(&self) -> usize {
        self.identities.len()
    }

    /// The id the next new person receives.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    fn step(
        &mut self,
        image: Option<&RgbImage>,
        detections: &[Detection],
        time: f64,
    ) -> Result<()> {
        self.frame += 1;
        self.matches.clear();
        self.inner_tracks.clear();
        self.inner_tracks
            .extend_from_slice(self.inner.update(detections, time));
        self.bind_new_tracks(time);
        if let Some(image) = image {
            self.embed(image)?;
        }
        self.decide(time);
        self.forget(time);
        self.fill_output();
        Ok(())
    }

    /// Gives every inner track seen for the first time a new identity, and drops the bindings
    /// of inner tracks that are gone.
    fn bind_new_tracks(&mut self, time: f64) {
        let present: Vec<u64> = self.inner_tracks.iter().map(|t| t.id).collect();
        let identities = &mut self.identities;
        self.bindings.retain(|inner, id| {
            let keep = present.contains(inner);
            if !keep {
                if let Some(ident) = id.and_then(|id| identities.get_mut(&id)) {
                    ident.inner = None;
                    // A short-lived track with enough views is remembered like any other.
                    ident.pending = false;
                }
            }
            keep
        });
        for t in &self.inner_tracks {
            if self.bindings.contains_key(&t.id) {
                if let Some(ident) =
                    self.bindings[&t.id].and_then(|id| self.identities.get_mut(&id))
                {
                    if t.state == TrackState::Tracked {
                        ident.last_seen = time;
                        ident.frames = ident.frames.saturating_add(1);
                    }
                }
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.bindings.insert(t.id, Some(id));
            self.identities.insert(
                id,
                Identity {
                    gallery: None,
                    look: None,
                    track_since: time,
                    last_seen: time,
                    first_seen: time,
                    inner: Some(t.id),
                    pending: true,
                    frames: 1,
                    last_embed: 0,
                },
            );
        }
    }

    /// Embeds the tracks that need it this frame.
    fn embed(&mut self, image: &RgbImage) -> Result<()> {
        self.crop_boxes.clear();
        self.crop_owners.clear();
        for t in &self.inner_tracks {
            if t.state != TrackState::Tracked || t.frames_since_update != 0 {
                continue;
            }
            let Some(id) = self.bindings.get(&t.id).copied().flatten() else {
                continue;
            };
            let ident = &self.identities[&id];
            let due = ident.pending
                || ident.gallery.is_none()
                || self.frame - ident.last_embed >= self.config.embed_every as u64;
            let overlapped = self.inner_tracks.iter().any(|o| {
                o.id != t.id
                    && o.state == TrackState::Tracked
                    && o.bbox.iou(&t.bbox) > self.config.max_overlap
            });
            if due && !overlapped {
                self.crop_boxes.push(t.bbox);
                self.crop_owners.push(id);
            }
        }
        if self.crop_boxes.is_empty() {
            return Ok(());
        }
        self.embedder
            .embed(image, &self.crop_boxes, &mut self.vectors)?;
        if self.vectors.len() != self.crop_boxes.len() {
            return Err(Error::Model {
                model: self.embedder.name().to_string(),
                reason: format!(
                    "the embedder returned {} vectors for {} crops",
                    self.vectors.len(),
                    self.crop_boxes.len()
                ),
            });
        }
        for ((owner, v), b) in self
            .crop_owners
            .iter()
            .zip(self.vectors.drain(..))
            .zip(&self.crop_boxes)
        {
            let Some(v) = v.filter(|v| v.iter().all(|x| x.is_finite())) else {
                continue;
            };
            let colour = ColourShares::of_box(image, b);
            let ident = self.identities.get_mut(owner).expect("bound identity");
            ident.last_embed = self.frame;
            for g in [&mut ident.gallery, &mut ident.look] {
                let g = match g {
                    Some(g) => {
                        g.add(&v);
                        g
                    }
                    None => g.insert(Gallery::new(&v)),
                };
                if let Some(c) = &colour {
                    g.add_colour(c);
                }
            }
        }
        Ok(())
    }

    /// Compares young identities with the remembered ones; settles those old enough.
    fn decide(&mut self, time: f64) {
        let pending: Vec<u64> = self
            .identities
            .iter()
            .filter(|(_, i)| i.pending && i.inner.is_some())
            .map(|(&id, _)| id)
            .collect();
        for id in pending {
            let young = &self.identities[&id];
            let ready = young
                .gallery
                .as_ref()
                .is_some_and(|g| g.updates() >= self.config.decide_after);
            if ready {
                if let Some(m) = self.best_match(id, time) {
                    self.take_over(id, m);
                    continue;
                }
            }
            let young = self.identities.get_mut(&id).expect("pending identity");
            if young.frames >= self.config.decide_within {
                young.pending = false;
            }
        }
    }

    /// The remembered identity that young identity `id` clearly is, if any. Identities that
    /// cannot be the young one (in view, or seen after it appeared) still compete for the
    /// margin: a young track that looks like someone in view is not told apart well enough.
    fn best_match(&self, id: u64, time: f64) -> Option<ReidMatch> {
        let young = &self.identities[&id];
        let g = young.gallery.as_ref()?;
        let mut scored: Vec<(u64, f32, bool)> = Vec::new();
        for (&other, ident) in &self.identities {
            if other == id || ident.pending {
                continue;
            }
            let Some(og) = &ident.gallery else { continue };
            let in_view = ident
                .inner
                .and_then(|inner| self.inner_tracks.iter().find(|t| t.id == inner))
                .is_some_and(|t| t.state == TrackState::Tracked);
            let eligible = !in_view
                && ident.last_seen < young.first_seen
                && time - ident.last_seen <= self.config.memory
                && og.colour_conflict(g, self.config.colour_veto).is_none();
            scored.push((other, og.similarity_to(g), eligible));
        }
        let &(old, s, _) = scored
            .iter()
            .filter(|c| c.2)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
        let second = scored
            .iter()
            .filter(|c| c.0 != old)
            .map(|c| c.1)
            .max_by(f32::total_cmp);
        let clear =
            s >= self.config.threshold && second.is_none_or(|x| s - x >= self.config.margin);
        clear.then_some(ReidMatch {
            time,
            id: old,
            provisional: id,
            similarity: s,
            second,
        })
    }

    /// The young identity's track continues the old identity `m.id`.
    fn take_over(&mut self, young_id: u64, m: ReidMatch) {
        let young = self.identities.remove(&young_id).expect("young identity");
        let inner = young.inner.expect("young identities have a track");
        let old = self.identities.get_mut(&m.id).expect("matched identity");
        // A lost inner track of the old identity stops carrying it.
        if let Some(prev) = old.inner.replace(inner) {
            self.bindings.insert(prev, None);
        }
        old.last_seen = young.last_seen;
        old.frames = young.frames;
        old.last_embed = young.last_embed;
        old.look = young.look;
        old.track_since = young.track_since;
        if let (Some(og), Some(yg)) = (&mut old.gallery, &young.gallery) {
            og.merge(yg);
        }
        self.bindings.insert(inner, Some(m.id));
        self.matches.push(m);
    }

    /// Drops identities out of view for longer than the memory, and the oldest beyond the cap.
    fn forget(&mut self, time: f64) {
        let memory = self.config.memory;
        self.identities
            .retain(|_, i| i.inner.is_some() || time - i.last_seen <= memory);
        let excess = self
            .identities
            .len()
            .saturating_sub(self.config.max_identities);
        if excess > 0 {
            let mut gone: Vec<(f64, u64)> = self
                .identities
                .iter()
                .filter(|(_, i)| i.inner.is_none())
                .map(|(&id, i)| (i.last_seen, id))
                .collect();
            gone.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (_, id) in gone.into_iter().take(excess) {
                self.identities.remove(&id);
            }
        }
    }

    fn fill_output(&mut self) {
        self.output.clear();
        self.appearances.clear();
        for t in &self.inner_tracks {
            let Some(id) = self.bindings.get(&t.id).copied().flatten() else {
                continue;
            };
            if t.state == TrackState::Lost && !self.config.report_lost {
                continue;
            }
            self.output.push(Track { id, ..*t });
            let ident = &self.identities[&id];
            if let Some(g) = &ident.look {
                self.appearances
                    .insert_since(id, g.clone(), ident.track_since);
            }
        }
        self.output.sort_unstable_by_key(|t| t.id);
    }
}

impl<T: Tracker> Tracker for ReidTracker<T> {
    /// Without pixels nothing is embedded: ids follow the inner tracker's.
    fn update(&mut self, detections: &[Detection], frame_time: f64) -> &[Track] {
        // Without an image the embedder is not called, so the step cannot fail.
        let _ = self.step(None, detections, frame_time);
        &self.output
    }

    fn update_frame(
        &mut self,
        image: &RgbImage,
        detections: &[Detection],
        frame_time: f64,
    ) -> Result<&[Track]> {
        self.step(Some(image), detections, frame_time)?;
        Ok(&self.output)
    }

    fn appearances(&self) -> Option<&Appearances> {
        Some(&self.appearances)
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.identities.clear();
        self.bindings.clear();
        self.output.clear();
        self.appearances.clear();
        self.matches.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reid::HistogramEmbedder;
    use crate::track::bytetrack::{ByteTrackConfig, ByteTracker};
    use image::Rgb;

    const DT: f64 = 1.0 / 30.0;

    /// A person: shoulders (top 15 % of the box), shirt and trousers colours, top-left corner.
    struct Walker {
        shoulders: [u8; 3],
        shirt: [u8; 3],
        trousers: [u8; 3],
        x: f32,
        y: f32,
    }

    impl Walker {
        fn bbox(&self) -> BBox {
            BBox::new(self.x, self.y, self.x + 40.0, self.y + 100.0)
        }
    }

    /// The frame (grey background) and the detections of `people`.
    fn frame(people: &[&Walker]) -> (RgbImage, Vec<Detection>) {
        let mut img = RgbImage::from_pixel(640, 240, Rgb([110, 110, 110]));
        for p in people {
            let b = p.bbox();
            for y in b.y1 as u32..b.y2 as u32 {
                for x in b.x1 as u32..b.x2 as u32 {
                    let c = if (y as f32) < b.y1 + 15.0 {
                        p.shoulders
                    } else if (y as f32) < b.y1 + 45.0 {
                        p.shirt
                    } else {
                        p.trousers
                    };
                    let n = ((x * 5 + y * 3) % 9) as u8;
                    img.put_pixel(x, y, Rgb(c.map(|v| v.saturating_add(n))));
                }
            }
        }
        let dets = people
            .iter()
            .map(|p| Detection {
                bbox: p.bbox(),
                score: 0.9,
                class_id: 0,
            })
            .collect();
        (img, dets)
    }

    fn tracker(memory: f64) -> ReidTracker<ByteTracker> {
        let inner = ByteTracker::new(ByteTrackConfig {
            report_lost: true,
            ..ByteTrackConfig::default()
        })
        .unwrap();
        let config = ReidConfig {
            memory,
            ..ReidConfig::default()
        };
        ReidTracker::new(inner, Box::new(HistogramEmbedder::new()), config).unwrap()
    }

    /// Runs frames `from..to`, moving each walker by its step per frame; returns the id of the
    /// track on each walker in the last frame.
    fn run(
        t: &mut ReidTracker<ByteTracker>,
        people: &mut [(&mut Walker, f32)],
        from: usize,
        to: usize,
    ) -> Vec<Option<u64>> {
        let mut last = vec![];
        for i in from..to {
            for (p, step) in people.iter_mut() {
                p.x += *step;
            }
            let refs: Vec<&Walker> = people.iter().map(|(p, _)| &**p).collect();
            let (img, dets) = frame(&refs);
            let tracks = t.update_frame(&img, &dets, i as f64 * DT).unwrap();
            last = refs
                .iter()
                .map(|p| {
                    tracks
                        .iter()
                        .find(|tr| tr.bbox.iou(&p.bbox()) > 0.5)
                        .map(|tr| tr.id)
                })
                .collect();
        }
        last
    }

    fn walkers() -> (Walker, Walker, Walker) {
        let red = Walker {
            shoulders: [200, 40, 40],
            shirt: [200, 40, 40],
            trousers: [40, 40, 150],
            x: 20.0,
            y: 60.0,
        };
        let green = Walker {
            shoulders: [40, 170, 60],
            shirt: [40, 170, 60],
            trousers: [60, 60, 60],
            x: 500.0,
            y: 80.0,
        };
        let yellow = Walker {
            shoulders: [220, 200, 40],
            shirt: [220, 200, 40],
            trousers: [30, 30, 30],
            x: 250.0,
            y: 60.0,
        };
        (red, green, yellow)
    }

    #[test]
    fn a_person_back_after_the_track_buffer_keeps_the_id_and_a_stranger_does_not_take_it() {
        let (mut red, mut green, mut yellow) = walkers();
        let mut t = tracker(30.0);
        let ids = run(&mut t, &mut [(&mut red, 2.0), (&mut green, -1.0)], 0, 30);
        let (red_id, green_id) = (ids[0].unwrap(), ids[1].unwrap());
        assert_ne!(red_id, green_id);
        // Red leaves for 3 s (track buffer: 1 s); a stranger walks in meanwhile.
        let ids = run(&mut t, &mut [(&mut green, -1.0)], 30, 60);
        assert_eq!(ids, vec![Some(green_id)]);
        let ids = run(
            &mut t,
            &mut [(&mut green, -1.0), (&mut yellow, 1.0)],
            60,
            120,
        );
        let yellow_id = ids[1].unwrap();
        assert!(yellow_id != red_id && yellow_id != green_id);
        // Red comes back somewhere else.
        red.x = 150.0;
        let ids = run(
            &mut t,
            &mut [(&mut green, -1.0), (&mut yellow, 1.0), (&mut red, 1.0)],
            120,
            150,
        );
        assert_eq!(ids, vec![Some(green_id), Some(yellow_id), Some(red_id)]);
        // Her look as reported is her new track's own, and it began after the absence, so
        // a consumer can tell a re-identification from the same track going on.
        let app = t.appearances().unwrap();
        let back = app.get(red_id).unwrap();
        let since = app.since(red_id).unwrap();
        assert!((120.0 * DT..150.0 * DT).contains(&since), "{since}");
        assert!(back.updates() < 30, "{} views", back.updates());
        assert!(app.since(green_id).unwrap() < DT);
    }

    #[test]
    fn a_stranger_with_the_colour_elsewhere_on_the_body_never_takes_the_id() {
        for veto in [Some(crate::reid::DEFAULT_COLOUR_VETO), None] {
            let (mut red, _, _) = walkers();
            let inner = ByteTracker::new(ByteTrackConfig {
                report_lost: true,
                ..ByteTrackConfig::default()
            })
            .unwrap();
            // Any look matches (histograms of the two are alike enough to fool a lax
            // threshold): only the colours' shares of the body can tell them apart.
            let config = ReidConfig {
                threshold: -0.99,
                margin: 0.0,
                colour_veto: veto,
                ..ReidConfig::default()
            };
            let mut t =
                ReidTracker::new(inner, Box::new(HistogramEmbedder::new()), config).unwrap();
            let red_id = run(&mut t, &mut [(&mut red, 2.0)], 0, 30)[0].unwrap();
            // Gone for 2 s (the track buffer is 1 s).
            run(&mut t, &mut [], 30, 90);
            // Red only on the shoulders, a dark shirt below: a different person.
            let mut stranger = Walker {
                shoulders: [200, 40, 40],
                shirt: [30, 30, 60],
                trousers: [40, 40, 150],
                x: 400.0,
                y: 60.0,
            };
            let id = run(&mut t, &mut [(&mut stranger, 1.0)], 90, 120)[0].unwrap();
            match veto {
                Some(_) => assert_ne!(id, red_id, "the stranger took the red shirt's id"),
                None => assert_eq!(id, red_id, "without the veto the lax threshold matches"),
            }
        }
    }

    #[test]
    fn without_memory_or_pixels_the_returning_person_gets_a_new_id() {
        let (mut red, mut green, _) = walkers();
        let mut t = tracker(0.5);
        let red_id = run(&mut t, &mut [(&mut red, 2.0), (&mut green, -1.0)], 0, 30)[0].unwrap();
        run(&mut t, &mut [(&mut green, -1.0)], 30, 90);
        red.x = 150.0;
        let ids = run(&mut t, &mut [(&mut green, -1.0), (&mut red, 1.0)], 90, 120);
        assert_ne!(ids[1], Some(red_id));
        assert!(t.identities() <= 3);

        // Only boxes (no image): ids are the motion tracker's.
        let mut t = tracker(30.0);
        let d = |x: f32| Detection {
            bbox: BBox::new(x, 10.0, x + 40.0, 110.0),
            score: 0.9,
            class_id: 0,
        };
        assert_eq!(t.update(&[d(10.0)], 0.0)[0].id, 1);
        assert_eq!(t.update(&[d(12.0)], DT)[0].id, 1);
        assert!(t.appearances().unwrap().is_empty());
    }

    #[test]
    fn memory_stays_bounded_with_many_people_passing() {
        let inner = ByteTracker::new(ByteTrackConfig {
            report_lost: true,
            ..ByteTrackConfig::default()
        })
        .unwrap();
        let config = ReidConfig {
            max_identities: 5,
            memory: 1e9,
            ..ReidConfig::default()
        };
        let mut t = ReidTracker::new(inner, Box::new(HistogramEmbedder::new()), config).unwrap();
        for k in 0..12u32 {
            let shirt = [(k * 20) as u8, 255 - (k * 20) as u8, (k * 50 % 255) as u8];
            let mut w = Walker {
                shoulders: shirt,
                shirt,
                trousers: [(k * 30 % 255) as u8, 40, 90],
                x: 100.0,
                y: 60.0,
            };
            let start = k as usize * 50;
            run(&mut t, &mut [(&mut w, 1.0)], start, start + 10);
            run(&mut t, &mut [], start + 10, start + 50);
        }
        assert!(t.identities() <= 5, "{}", t.identities());
    }

    #[test]
    fn settings_are_validated() {
        let bad = ReidConfig {
            memory: f64::NAN,
            ..ReidConfig::default()
        };
        let err = ReidTracker::new(
            ByteTracker::default(),
            Box::new(HistogramEmbedder::new()),
            bad,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("--reid-memory"));
    }
}
