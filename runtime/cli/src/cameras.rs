//! The cameras of a run: one plain source, repeated `--source [NAME=]SOURCE`, or a `--cameras`
//! TOML file:
//!
//! ```toml
//! [[camera]]
//! name = "door"
//! source = "rtsp://10.0.0.5/stream1"
//! source_wait = "2m"   # optional: retry at start this long (seconds, or "30s", "2m")
//! vid_stride = 1       # optional: keep every Nth frame of a video file
//! conf = 0.4           # optional: this camera's --conf
//! classes = "person"   # optional: this camera's --classes
//! model = "models/yolov8n-640.onnx"  # optional: this camera's --model (shared by cameras naming it)
//! imgsz = 320          # optional: this camera's --imgsz
//! engine = "tract"     # optional: this camera's --engine (auto, tract, cuda, ort)
//! save_json = "door.jsonl"           # optional: this camera's files instead of the derived
//! save_video = "door.mp4"            #   names (`out.door.jsonl`, ...)
//! save_mot = "door.mot.txt"
//! track_buffer = 60    # optional, `vigia track`: this camera's tracker settings
//! track_high = 0.5
//! track_low = 0.1
//! new_track = 0.6
//! match_thresh = 0.8
//! reid = "off"         # hist, off or an embedding model
//! reid_memory = "1m"
//! target = "largest"   # optional, `vigia follow`: who this camera follows (as --target)
//! follow_out = ["udp://10.0.0.9:9000"]  # optional: its command outputs (as --follow-out)
//! mavlink = "udpout:10.0.0.9:14550?sysid=2"  # optional: its MAVLink output (as --mavlink)
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

use super::args::{seconds, SourceArgs};
use super::track::TrackerOverrides;
use vigia::follow::{OutputSpec, TargetPolicy};
use vigia::publish::topics::check_level;
use vigia::resolve::EngineKind;

/// One camera to run.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSpec {
    /// Its name: in file names, topics, JSON lines and log lines.
    pub name: String,
    /// The source string (file, stream, camera).
    pub source: String,
    /// True when the user named it (`NAME=SOURCE`, `--cameras`).
    pub named: bool,
    /// Retry at start this long (seconds) instead of `--source-wait`.
    pub source_wait: Option<f64>,
    /// Frame stride instead of `--vid-stride`.
    pub vid_stride: Option<u64>,
    /// Minimum confidence instead of `--conf`.
    pub conf: Option<f32>,
    /// Classes to keep instead of `--classes`.
    pub classes: Option<String>,
    /// Model instead of `--model` (cameras naming the same file share it).
    pub model: Option<String>,
    /// Input size instead of `--imgsz`.
    pub imgsz: Option<u32>,
    /// Engine instead of `--engine`.
    pub engine: Option<EngineKind>,
    /// Files written instead of the run's derived ones.
    pub files: CameraFiles,
    /// Tracker settings instead of the run's.
    pub tracker: TrackerOverrides,
    /// Follower settings instead of the run's.
    pub follow: CameraFollow,
}

/// What one camera's follower does instead of the run's `--target`, `--follow-out` and
/// `--mavlink` (cameras file, `vigia follow`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraFollow {
    /// Who to follow (`target`).
    pub target: Option<TargetPolicy>,
    /// Command outputs (`follow_out` and `mavlink`); empty: the run's.
    pub outputs: Vec<OutputSpec>,
}

impl CameraFollow {
    /// True when the camera sets nothing of its own.
    pub fn is_empty(&self) -> bool {
        self.target.is_none() && self.outputs.is_empty()
    }
}

/// Files one camera writes instead of the run's derived names (cameras file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraFiles {
    /// JSON lines (`save_json`).
    pub json: Option<PathBuf>,
    /// Annotated video (`save_video`).
    pub video: Option<PathBuf>,
    /// MOTChallenge tracks (`save_mot`).
    pub mot: Option<PathBuf>,
}

/// The cameras `args` name, or a clear error when none or a bad one was given.
pub fn cameras(args: &SourceArgs) -> anyhow::Result<Vec<CameraSpec>> {
    let list = if let Some(file) = &args.cameras {
        from_file(file)?
    } else {
        let given: Vec<&String> = args.positional.iter().chain(&args.source).collect();
        if let [one] = given.as_slice() {
            if is_cameras_file(one) {
                return Ok(unique_names(from_file(Path::new(one.as_str()))?));
            }
        }
        if given.is_empty() {
            bail!("no input given: pass SOURCE or --source (an image, folder, video, stream or camera)");
        }
        let list: Vec<CameraSpec> = given
            .into_iter()
            .map(|s| from_arg(s))
            .collect::<anyhow::Result<_>>()?;
        let mut named = HashSet::new();
        for c in list.iter().filter(|c| c.named) {
            if !named.insert(&c.name) {
                bail!("--source: two cameras are named `{}`", c.name);
            }
        }
        list
    };
    Ok(unique_names(list))
}

/// A TOML file given as the source: a cameras file.
fn is_cameras_file(source: &str) -> bool {
    source.ends_with(".toml") && Path::new(source).is_file()
}

/// `NAME=SOURCE` or a plain source. A name is a topic level before the first `=` with no `:`,
/// `/`, `?` or `.` in it, so URLs with queries and file names stay whole.
fn from_arg(arg: &str) -> anyhow::Result<CameraSpec> {
    if let Some((name, source)) = arg.split_once('=') {
        let looks_named = !name.is_empty()
            && !name.contains([':', '/', '?', '.', '\\'])
            && !Path::new(arg).exists();
        if looks_named {
            check_level("--source NAME", name)?;
            if source.is_empty() {
                bail!("--source {arg}: no source after `{name}=`");
            }
            return Ok(CameraSpec {
                name: name.to_string(),
                source: source.to_string(),
                named: true,
                ..CameraSpec::plain(source)
            });
        }
    }
    Ok(CameraSpec::plain(arg))
}

impl CameraSpec {
    /// What decides the loaded model a camera runs on: cameras with equal keys share one.
    pub fn model_key(&self) -> (Option<&str>, Option<u32>, Option<EngineKind>) {
        (self.model.as_deref(), self.imgsz, self.engine)
    }

    /// True when the camera loads a model of its own settings (not the run's `--model` as is).
    pub fn has_own_model(&self) -> bool {
        self.model_key() != (None, None, None)
    }

    /// A camera named after its source, with the run's options.
    fn plain(source: &str) -> Self {
        CameraSpec {
            name: source_stem(source),
            source: source.to_string(),
            named: false,
            source_wait: None,
            vid_stride: None,
            conf: None,
            classes: None,
            model: None,
            imgsz: None,
            engine: None,
            files: CameraFiles::default(),
            tracker: TrackerOverrides::default(),
            follow: CameraFollow::default(),
        }
    }
}

/// A `[[camera]]` table of a cameras file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraEntry {
    name: String,
    source: String,
    source_wait: Option<Wait>,
    vid_stride: Option<u64>,
    conf: Option<f32>,
    classes: Option<String>,
    model: Option<String>,
    imgsz: Option<u32>,
    engine: Option<String>,
    save_json: Option<PathBuf>,
    save_video: Option<PathBuf>,
    save_mot: Option<PathBuf>,
    track_buffer: Option<u32>,
    track_high: Option<f32>,
    track_low: Option<f32>,
    new_track: Option<f32>,
    match_thresh: Option<f32>,
    reid: Option<String>,
    reid_memory: Option<Wait>,
    target: Option<String>,
    follow_out: Option<OneOrMany>,
    mavlink: Option<String>,
}

/// A string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Seconds as a number or as text with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum Wait {
    Seconds(f64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CamerasFile {
    camera: Vec<CameraEntry>,
}

/// The cameras of a TOML file; errors name the file and the camera.
fn from_file(path: &Path) -> anyhow::Result<Vec<CameraSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--cameras {}: cannot read it", path.display()))?;
    let file: CamerasFile = toml::from_str(&text)
        .with_context(|| format!("--cameras {}: not a cameras file", path.display()))?;
    if file.camera.is_empty() {
        bail!("--cameras {}: no [[camera]] in it", path.display());
    }
    let mut names = HashSet::new();
    file.camera
        .into_iter()
        .map(|c| {
            let at = || format!("--cameras {}: camera `{}`", path.display(), c.name);
            check_level("name", &c.name).with_context(at)?;
            if !names.insert(c.name.clone()) {
                bail!("{}: the name is used twice", at());
            }
            if c.source.is_empty() {
                bail!("{}: empty source", at());
            }
            let source_wait = c
                .source_wait
                .as_ref()
                .map(|w| w.seconds("source_wait"))
                .transpose()
                .with_context(at)?;
            let reid_memory = c
                .reid_memory
                .as_ref()
                .map(|w| w.seconds("reid_memory"))
                .transpose()
                .with_context(at)?;
            for (key, value) in [
                ("track_high", c.track_high),
                ("track_low", c.track_low),
                ("new_track", c.new_track),
                ("match_thresh", c.match_thresh),
            ] {
                if let Some(v) = value.filter(|v| !(0.0..=1.0).contains(v)) {
                    bail!("{}: {key} {v} is not in 0..1", at());
                }
            }
            let reid = c
                .reid
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: String| anyhow::anyhow!("{}: reid: {e}", at()))?;
            if c.model.as_deref() == Some("") {
                bail!("{}: empty model", at());
            }
            if let Some(size) = c.imgsz.filter(|s| *s == 0 || *s > 8192) {
                bail!(
                    "{}: imgsz {size} is not a usable input size (1..=8192)",
                    at()
                );
            }
            let engine = c
                .engine
                .as_deref()
                .map(str::parse::<EngineKind>)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{}: engine: {e}", at()))?;
            if c.vid_stride == Some(0) {
                bail!("{}: vid_stride must be at least 1", at());
            }
            if let Some(conf) = c.conf.filter(|v| !(0.0..=1.0).contains(v)) {
                bail!("{}: conf {conf} is not in 0..1", at());
            }
            let target = c
                .target
                .as_deref()
                .map(str::parse::<TargetPolicy>)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{}: target: {e}", at()))?;
            let outputs = match &c.follow_out {
                None => Vec::new(),
                Some(OneOrMany::One(o)) => vec![o.clone()],
                Some(OneOrMany::Many(list)) => list.clone(),
            };
            let mut outputs: Vec<OutputSpec> = outputs
                .iter()
                .map(|o| o.parse::<OutputSpec>())
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{}: follow_out: {e}", at()))?;
            if let Some(m) = &c.mavlink {
                let spec = m
                    .parse::<OutputSpec>()
                    .map_err(|e| anyhow::anyhow!("{}: mavlink: {e}", at()))?;
                if !matches!(spec, OutputSpec::Mavlink { .. }) {
                    bail!("{}: mavlink `{m}` is not udpout:HOST:PORT", at());
                }
                outputs.push(spec);
            }
            Ok(CameraSpec {
                name: c.name,
                source: c.source,
                named: true,
                source_wait,
                vid_stride: c.vid_stride,
                conf: c.conf,
                classes: c.classes,
                model: c.model,
                imgsz: c.imgsz,
                engine,
                files: CameraFiles {
                    json: c.save_json,
                    video: c.save_video,
                    mot: c.save_mot,
                },
                tracker: TrackerOverrides {
                    track_buffer: c.track_buffer,
                    track_high: c.track_high,
                    track_low: c.track_low,
                    new_track: c.new_track,
                    match_thresh: c.match_thresh,
                    reid,
                    reid_memory,
                },
                follow: CameraFollow { target, outputs },
            })
        })
        .collect()
}

impl Wait {
    /// The value in seconds; errors name `key`.
    fn seconds(&self, key: &str) -> anyhow::Result<f64> {
        match self {
            Wait::Seconds(s) if s.is_finite() && *s >= 0.0 => Ok(*s),
            Wait::Seconds(s) => bail!("{key} {s} is not >= 0"),
            Wait::Text(t) => seconds(t.as_str()).map_err(|e| anyhow::anyhow!("{key} {e}")),
        }
    }
}

/// A file-name stem for outputs derived from a source string.
fn source_stem(spec: &str) -> String {
    if spec.starts_with("synthetic://") {
        return "synthetic".into();
    }
    let stem = Path::new(spec.split(['?', '#']).next().unwrap_or(spec))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "stream".into()
    } else if clean.chars().all(|c| c.is_ascii_digit()) {
        format!("camera{clean}")
    } else {
        clean
    }
}

/// Makes names unique: an unnamed camera whose source's stem is taken becomes `stem_2` (names the
/// user gave are unique already).
fn unique_names(mut list: Vec<CameraSpec>) -> Vec<CameraSpec> {
    let mut seen: HashSet<String> = list
        .iter()
        .filter(|c| c.named)
        .map(|c| c.name.clone())
        .collect();
    for c in list.iter_mut().filter(|c| !c.named) {
        if !seen.insert(c.name.clone()) {
            let mut n = 2;
            while seen.contains(&format!("{}_{n}", c.name)) {
                n += 1;
            }
            c.name = format!("{}_{n}", c.name);
            seen.insert(c.name.clone());
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sources: &[&str]) -> SourceArgs {
        SourceArgs {
            positional: None,
            source: sources.iter().map(|s| s.to_string()).collect(),
            cameras: None,
            vid_stride: 1,
            max_frames: None,
            camera_size: (1280, 720),
            camera_fps: 30,
            image_fps: None,
            source_wait: None,
        }
    }

    fn names(list: &[CameraSpec]) -> Vec<&str> {
        list.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn output_stems() {
        assert_eq!(source_stem("data/vtest.avi"), "vtest");
        assert_eq!(source_stem("0"), "camera0");
        assert_eq!(source_stem("rtsp://host/live/cam 1"), "cam_1");
        assert_eq!(source_stem("synthetic://?scene=x"), "synthetic");
        assert_eq!(source_stem("rtsp://host/"), "host");
    }

    #[test]
    fn named_and_plain_sources() {
        let list = cameras(&args(&[
            "door=rtsp://10.0.0.5/live?user=a",
            "synthetic://?scene=crossing",
            "data/vtest.avi",
            "data/vtest.avi",
            "0",
        ]))
        .unwrap();
        assert_eq!(
            names(&list),
            ["door", "synthetic", "vtest", "vtest_2", "camera0"]
        );
        assert_eq!(list[0].source, "rtsp://10.0.0.5/live?user=a");
        assert!(list[0].named && !list[1].named);
        assert_eq!(list[1].source, "synthetic://?scene=crossing");
    }

    #[test]
    fn bad_names_are_refused_with_the_option() {
        let e = cameras(&args(&["front door=0"])).unwrap_err().to_string();
        assert!(e.contains("--source NAME"), "{e}");
        let e = cameras(&args(&["door="])).unwrap_err().to_string();
        assert!(e.contains("no source after"), "{e}");
        let e = cameras(&args(&["a=0", "a=1"])).unwrap_err().to_string();
        assert!(e.contains("two cameras are named `a`"), "{e}");
        let list = cameras(&args(&["vtest=0", "data/vtest.avi"])).unwrap();
        assert_eq!(names(&list), ["vtest", "vtest_2"]);
        assert!(cameras(&args(&[])).is_err());
    }

    #[test]
    fn cameras_file() {
        let dir = std::env::temp_dir().join(format!("vigia-cameras-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "[[camera]]\nname = \"door\"\nsource = \"rtsp://h/1\"\nsource_wait = \"2m\"\n\n\
             [[camera]]\nname = \"yard\"\nsource = \"0\"\nsource_wait = 5\nvid_stride = 2\n\
             conf = 0.5\nclasses = \"person,car\"\n",
        )
        .unwrap();
        let mut a = args(&[]);
        a.cameras = Some(good);
        let list = cameras(&a).unwrap();
        assert_eq!(names(&list), ["door", "yard"]);
        assert_eq!(list[0].source_wait, Some(120.0));
        assert_eq!(list[1].source_wait, Some(5.0));
        assert_eq!(list[1].vid_stride, Some(2));
        assert_eq!(list[1].conf, Some(0.5));
        assert_eq!(list[1].classes.as_deref(), Some("person,car"));
        assert_eq!(list[0].conf, None);

        let twice = dir.join("twice.toml");
        std::fs::write(
            &twice,
            "[[camera]]\nname = \"a\"\nsource = \"0\"\n[[camera]]\nname = \"a\"\nsource = \"1\"\n",
        )
        .unwrap();
        a.cameras = Some(twice.clone());
        let e = format!("{:#}", cameras(&a).unwrap_err());
        assert!(e.contains("twice.toml") && e.contains("used twice"), "{e}");

        let full = dir.join("full.toml");
        std::fs::write(
            &full,
            "[[camera]]\nname = \"a\"\nsource = \"0\"\nmodel = \"m.onnx\"\nimgsz = 320\nengine = \"cpu\"\n\
             save_json = \"a.jsonl\"\nsave_video = \"a.mp4\"\nsave_mot = \"a.txt\"\n\
             track_buffer = 90\ntrack_high = 0.6\nreid = \"off\"\nreid_memory = \"2m\"\n",
        )
        .unwrap();
        a.cameras = Some(full);
        let list = cameras(&a).unwrap();
        assert_eq!(list[0].model.as_deref(), Some("m.onnx"));
        assert_eq!(list[0].imgsz, Some(320));
        assert_eq!(list[0].engine, Some(EngineKind::Tract));
        assert!(list[0].has_own_model());
        assert_eq!(list[0].files.json.as_deref(), Some(Path::new("a.jsonl")));
        assert_eq!(list[0].files.video.as_deref(), Some(Path::new("a.mp4")));
        assert_eq!(list[0].files.mot.as_deref(), Some(Path::new("a.txt")));
        assert_eq!(list[0].tracker.track_buffer, Some(90));
        assert_eq!(list[0].tracker.track_high, Some(0.6));
        assert_eq!(
            list[0].tracker.reid,
            Some(super::super::track::ReidMode::Off)
        );
        assert_eq!(list[0].tracker.reid_memory, Some(120.0));
        for (bad, says) in [
            ("track_low = 1.5", "track_low 1.5 is not in 0..1"),
            (
                "reid = \"nope\"",
                "reid: 'nope' is not a re-identification mode",
            ),
            ("reid_memory = -1", "reid_memory -1 is not >= 0"),
            ("source_wait = \"soon\"", "source_wait"),
            ("imgsz = 0", "imgsz 0 is not a usable input size"),
            ("engine = \"tpu\"", "engine: unknown engine 'tpu'"),
            ("target = \"tallest\"", "target:"),
            ("follow_out = \"udp://nohost\"", "follow_out:"),
            (
                "mavlink = \"stdout\"",
                "mavlink `stdout` is not udpout:HOST:PORT",
            ),
        ] {
            let f = dir.join("bad.toml");
            std::fs::write(
                &f,
                format!("[[camera]]\nname = \"b\"\nsource = \"0\"\n{bad}\n"),
            )
            .unwrap();
            a.cameras = Some(f);
            let e = format!("{:#}", cameras(&a).unwrap_err());
            assert!(e.contains("camera `b`") && e.contains(says), "{bad}: {e}");
        }

        let typo = dir.join("typo.toml");
        std::fs::write(&typo, "[[camera]]\nname = \"a\"\nsorce = \"0\"\n").unwrap();
        a.cameras = Some(typo);
        let e = format!("{:#}", cameras(&a).unwrap_err());
        assert!(e.contains("typo.toml") && e.contains("sorce"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
