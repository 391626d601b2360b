//! Cache of pre-decluttered models: startup skips ONNX parsing, typing and decluttering.
//!
//! An entry is tract-nnef's `.nnef.tar` of the typed, decluttered (and, with f16, converted)
//! model, just before kernel optimization. Its key hashes the ONNX bytes (xxh3-128), the input
//! shape, the f16 switch and the tract and vigia versions, so any change makes a new entry.
//! Entries are written to a temporary file and renamed into place; an unreadable entry is
//! reported, ignored and rebuilt. With a card at hand, [`super::tract::load_cached`] builds the
//! engine straight from an entry without parsing the ONNX protobuf at all.

use std::io::{BufReader, BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tract_nnef::framework::Nnef;
use tract_onnx::prelude::*;
use tract_onnx::WithOnnx;
use xxhash_rust::xxh3::xxh3_128;

use super::onnx::ModelSource;
use super::passes;

/// What the cache did for one load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheUse {
    /// No cache directory was given.
    #[default]
    Off,
    /// The model came from the cache.
    Hit,
    /// Not cached yet: built from ONNX and written to the cache.
    Stored,
    /// Built from ONNX; the cache could not take it (reason printed as a warning).
    Failed,
}

/// A directory of `.nnef.tar` entries.
#[derive(Debug, Clone)]
pub struct ModelCache {
    dir: PathBuf,
}

impl ModelCache {
    /// A cache in `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ModelCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry key for these ONNX bytes, input shape and precision (hex, 32 digits).
    pub fn key(onnx: &[u8], input_shape: &[usize], half: bool) -> String {
        Self::key_for_digest(content_digest(onnx), input_shape, half)
    }

    /// [`ModelCache::key`] from the bytes' [`content_digest`].
    pub fn key_for_digest(digest: u128, input_shape: &[usize], half: bool) -> String {
        let text = format!(
            "{digest:032x}|shape={input_shape:?}|half={half}|rewrite={}|tract={}|vigia={}",
            passes::enabled(),
            super::tract_version(),
            env!("CARGO_PKG_VERSION")
        );
        format!("{:032x}", xxh3_128(text.as_bytes()))
    }

    /// The file of entry `key`; `label` (e.g. the model's file stem) makes it recognizable.
    pub fn path(&self, label: &str, key: &str) -> PathBuf {
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        self.dir.join(format!("{label}-{key}.nnef.tar"))
    }

    /// Reads an entry; `None` when absent. A damaged entry prints a warning and reads as absent.
    pub fn load(&self, path: &Path) -> Option<TypedModel> {
        let file = std::fs::File::open(path).ok()?;
        let read = catch_unwind(AssertUnwindSafe(|| {
            nnef().model_for_read(&mut BufReader::new(file))
        }));
        let reason = match read {
            Ok(Ok(model)) if model.inputs.len() == 1 => return Some(model),
            Ok(Ok(model)) => format!("it holds {} inputs", model.inputs.len()),
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => "reading it panicked".into(),
        };
        eprintln!(
            "vigia: warning: ignoring unreadable model cache entry {} ({reason}); rebuilding it",
            path.display()
        );
        None
    }

    /// Writes `model` as entry `path`: a temporary file in the same directory, then a rename.
    pub fn store(&self, path: &Path, model: &TypedModel) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let tmp = path.with_extension(format!(
            "tmp{}.{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let result = write_entry(&tmp, model).and_then(|()| {
            std::fs::rename(&tmp, path)
                .map_err(|e| format!("cannot rename {} into place: {e}", tmp.display()))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

fn write_entry(tmp: &Path, model: &TypedModel) -> Result<(), String> {
    let file =
        std::fs::File::create(tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    // Uncompressed: reading an entry must cost less than the parse and declutter it replaces.
    let written = catch_unwind(AssertUnwindSafe(|| {
        nnef().write_to_tar_with_config(model, BufWriter::new(file), false, true)
    }))
    .map_err(|_| "tract-nnef panicked while serializing the model".to_string())?
    .map_err(|e| format!("tract-nnef cannot serialize this model: {e:#}"))?;
    let mut buf = written;
    buf.flush()
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    buf.get_ref()
        .sync_all()
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
}

/// NNEF with tract's core operators and the ONNX extensions (Resize, NonMaxSuppression, ...).
fn nnef() -> Nnef {
    tract_nnef::nnef().with_onnx()
}

/// The digest of ONNX bytes that keys the cache: xxh3-128, a few milliseconds for a 15 MB model
/// even on CPUs without SHA instructions (Cortex-A72), where SHA-256 would cost more than the
/// decluttering the cache saves.
pub fn content_digest(onnx: &[u8]) -> u128 {
    xxh3_128(onnx)
}

/// Whether a directory is writable: creates it if needed and writes a probe file.
pub fn check_writable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create: {e}"))?;
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| format!("not writable: {e}"))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The cache entry one engine build reads or writes.
pub(crate) struct CacheEntry {
    cache: ModelCache,
    path: PathBuf,
    shape: Vec<usize>,
}

/// The entry for `source` (whose bytes have `digest`) at `shape` and precision `half`, when a
/// cache directory is given.
pub(crate) fn entry_for(
    source: &ModelSource,
    digest: u128,
    shape: &[usize],
    half: bool,
    cache_dir: Option<&Path>,
) -> Option<CacheEntry> {
    let cache = ModelCache::new(cache_dir?);
    let label = match source {
        ModelSource::File(p) => p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into()),
        ModelSource::Embedded { name, .. } => name.to_string(),
    };
    let path = cache.path(&label, &ModelCache::key_for_digest(digest, shape, half));
    Some(CacheEntry {
        cache,
        path,
        shape: shape.to_vec(),
    })
}

/// A model read back from the cache and optimized, with the time each step took.
pub(crate) struct CachedModel {
    /// The optimized model, ready to plan.
    pub model: TypedModel,
    /// Reading the entry.
    pub read_ms: f64,
    /// Kernel selection and weight packing.
    pub optimize_ms: f64,
}

impl CacheEntry {
    /// The entry's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The input shape the entry is for.
    pub(crate) fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The cached model optimized for the entry's shape, or `None` (absent, damaged: then rebuilt
    /// from ONNX, with a warning for a damaged one).
    pub(crate) fn load_optimized(
        &self,
        before_optimize: &mut dyn FnMut(&mut TypedModel) -> TractResult<()>,
    ) -> Option<CachedModel> {
        let t = Instant::now();
        let model = self.cache.load(&self.path)?;
        let read_ms = ms(t.elapsed());
        let t = Instant::now();
        let built = catch_unwind(AssertUnwindSafe(|| -> Result<TypedModel, String> {
            let fact = model.input_fact(0).map_err(|e| format!("{e:#}"))?;
            if fact.shape.as_concrete() != Some(&self.shape[..]) {
                return Err(format!(
                    "its input is {:?}, not {:?}",
                    fact.shape, self.shape
                ));
            }
            // The entry is decluttered already: only kernel selection and weight packing remain.
            let mut model = model;
            before_optimize(&mut model).map_err(|e| format!("{e:#}"))?;
            model.optimize().map_err(|e| format!("{e:#}"))?;
            Ok(model)
        }));
        let reason = match built {
            Ok(Ok(model)) => {
                return Some(CachedModel {
                    model,
                    read_ms,
                    optimize_ms: ms(t.elapsed()),
                })
            }
            Ok(Err(e)) => e,
            Err(_) => "optimizing it panicked".into(),
        };
        self.warn_ignored(&reason);
        None
    }

    /// Warns that the entry is unusable and will be rebuilt.
    pub(crate) fn warn_ignored(&self, reason: &str) {
        eprintln!(
            "vigia: warning: ignoring model cache entry {} ({reason}); rebuilding it",
            self.path.display()
        );
    }

    /// Writes the decluttered model; a failure is a warning, never an error. Returns what the
    /// cache did and the milliseconds it took.
    pub(crate) fn store(&self, model: &TypedModel) -> (CacheUse, f64) {
        let t = Instant::now();
        let used = match self.cache.store(&self.path, model) {
            Ok(()) => CacheUse::Stored,
            Err(e) => {
                eprintln!(
                    "vigia: warning: cannot cache the prepared model in {} ({e}); it is rebuilt \
                     at every start",
                    self.cache.dir().display()
                );
                CacheUse::Failed
            }
        };
        (used, ms(t.elapsed()))
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
