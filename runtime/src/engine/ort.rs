//! ONNX Runtime as a second engine (Cargo feature `ort`).
//!
//! `libonnxruntime` is loaded at run time (`--ort-lib PATH` or `ORT_DYLIB_PATH`), so building
//! needs no ONNX Runtime. The session runs the same graph tract would (after vigia's rewrites),
//! and outputs are exposed through the same [`Engine`] trait, so decoders do not know which
//! engine ran.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ort::session::Session;
use ort::value::Tensor;
use prost::Message;
use tract_onnx::tract_core::ndarray::{ArrayViewD, IxDyn};

use crate::engine::choice::OrtProvider;
use crate::engine::{Engine, LoadReport, OnnxGraph};
use crate::error::{Error, Result};

/// Environment variable naming the ONNX Runtime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// What to install when no library is found.
const INSTALL_HINT: &str =
    "install ONNX Runtime (e.g. `python3 -m venv ort && ort/bin/pip install \
     onnxruntime`, whose site-packages/onnxruntime/capi/ holds libonnxruntime.so.*) and pass that \
     file (or its folder) with --ort-lib or the ORT_DYLIB_PATH environment variable";

/// The library loaded by [`init`] (path and build info), or why loading failed.
static LOADED: OnceLock<std::result::Result<(PathBuf, String), String>> = OnceLock::new();

/// Finds the ONNX Runtime library: `explicit` (a file, or a folder holding one), else
/// `$ORT_DYLIB_PATH`, else `None`.
pub fn find_dylib(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    let (given, option) = match explicit {
        Some(p) => (p.to_path_buf(), "--ort-lib"),
        None => match std::env::var_os(DYLIB_ENV) {
            Some(v) if !v.is_empty() => (PathBuf::from(v), DYLIB_ENV),
            _ => return Ok(None),
        },
    };
    if given.is_dir() {
        return dylib_in(&given).map(Some).ok_or_else(|| Error::Option {
            option: option.into(),
            reason: format!(
                "{} holds no libonnxruntime shared library; {INSTALL_HINT}",
                given.display()
            ),
        });
    }
    if !given.is_file() {
        return Err(Error::Option {
            option: option.into(),
            reason: format!("{} does not exist; {INSTALL_HINT}", given.display()),
        });
    }
    Ok(Some(given))
}

/// The ONNX Runtime library in `dir` (`libonnxruntime.so[.X.Y.Z]`, `.dylib` or `onnxruntime.dll`).
fn dylib_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name == "libonnxruntime.so"
                || name.starts_with("libonnxruntime.so.")
                || (name.starts_with("libonnxruntime") && name.ends_with(".dylib"))
                || name == "onnxruntime.dll"
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Loads ONNX Runtime once per process (later calls reuse the first library); returns its
/// path and build information.
pub fn init(explicit: Option<&Path>) -> Result<(PathBuf, String)> {
    let to_error = |reason: String| Error::EngineUnavailable {
        engine: "ort",
        reason,
    };
    if let Some(loaded) = LOADED.get() {
        return loaded.clone().map_err(to_error);
    }
    let path = find_dylib(explicit)?;
    let loaded = LOADED.get_or_init(|| {
        let path = path.unwrap_or_else(|| PathBuf::from(default_dylib_name()));
        let builder = ort::init_from(&path).map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {} ({e}); {INSTALL_HINT}",
                path.display()
            )
        })?;
        builder.with_name("vigia").commit();
        let info = catch_unwind(ort::info)
            .map(str::to_string)
            .map_err(|_| format!("{} is not a usable ONNX Runtime library", path.display()))?;
        Ok((path, info))
    });
    loaded.clone().map_err(to_error)
}

fn default_dylib_name() -> &'static str {
    if cfg!(target_os = "windows") {
        "onnxruntime.dll"
    } else if cfg!(target_os = "macos") {
        "libonnxruntime.dylib"
    } else {
        "libonnxruntime.so"
    }
}

/// How an ONNX Runtime session is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Intra-op threads (0 means 1).
    pub threads: usize,
    /// The execution provider; anything but the CPU must register or the build fails.
    pub provider: OrtProvider,
    /// TensorRT: build f16 engines.
    pub half: bool,
    /// TensorRT: where its engine cache goes (`tensorrt/` inside; vigia's default cache dir when
    /// `None`).
    pub cache_dir: Option<PathBuf>,
}

/// An ONNX Runtime session with a fixed input buffer; outputs are copied out after each run so
/// they can be viewed like tract's.
pub struct OrtEngine {
    session: Session,
    input: Tensor<f32>,
    input_shape: Vec<usize>,
    outputs: Vec<(Vec<usize>, Vec<f32>)>,
    output_names: Vec<String>,
    model: Arc<[u8]>,
    options: SessionOptions,
}

impl OrtEngine {
    /// Builds a session for `graph` (as vigia prepared it) with a fixed f32 input shape, as
    /// `options` say, loading ONNX Runtime from `dylib` first if needed. A provider the library
    /// lacks is an [`Error::EngineUnavailable`] naming it.
    pub fn build(
        graph: &OnnxGraph,
        input_shape: &[usize],
        options: &SessionOptions,
        dylib: Option<&Path>,
    ) -> Result<(Self, LoadReport)> {
        let (library, _) = init(dylib)?;
        check_provider(options.provider, &library)?;
        let name = graph.source().display_name();
        let t = Instant::now();
        let model: Arc<[u8]> = graph.proto().encode_to_vec().into();
        let mut report = LoadReport {
            parse_ms: t.elapsed().as_secs_f64() * 1e3,
            ..LoadReport::default()
        };
        let t = Instant::now();
        let engine =
            Self::from_bytes(model, input_shape.to_vec(), options.clone()).map_err(|reason| {
                Error::Model {
                    model: name,
                    reason,
                }
            })?;
        report.optimize_ms = t.elapsed().as_secs_f64() * 1e3;
        Ok((engine, report))
    }

    fn from_bytes(
        model: Arc<[u8]>,
        input_shape: Vec<usize>,
        options: SessionOptions,
    ) -> std::result::Result<Self, String> {
        let session = catch_unwind(AssertUnwindSafe(|| -> std::result::Result<_, String> {
            let mut builder = Session::builder()
                .map_err(|e| e.to_string())?
                .with_intra_threads(options.threads.max(1))
                .map_err(|e| e.to_string())?
                .with_inter_threads(1)
                .map_err(|e| e.to_string())?;
            if let Some(provider) = provider_dispatch(&options)? {
                builder = builder
                    .with_execution_providers([provider.error_on_failure()])
                    .map_err(|e| {
                        format!("ONNX Runtime cannot start {:?}: {e}", options.provider)
                    })?;
            }
            builder
                .commit_from_memory(&model)
                .map_err(|e| format!("ONNX Runtime cannot load the graph: {e}"))
        }))
        .map_err(|_| "ONNX Runtime panicked while loading the graph".to_string())??;
        if session.inputs().len() != 1 {
            return Err(format!(
                "the graph has {} inputs; vigia runs single-input image models",
                session.inputs().len()
            ));
        }
        let output_names = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let len = input_shape.iter().product::<usize>();
        let input = Tensor::from_array((input_shape.clone(), vec![0f32; len]))
            .map_err(|e| e.to_string())?;
        Ok(OrtEngine {
            session,
            input,
            input_shape,
            outputs: vec![],
            output_names,
            model,
            options,
        })
    }
}

impl Engine for OrtEngine {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn input_mut(&mut self) -> &mut [f32] {
        self.input.extract_tensor_mut().1
    }

    fn run(&mut self) -> Result<()> {
        let err = |reason: String| Error::Model {
            model: "inference".into(),
            reason,
        };
        let outs = self
            .session
            .run(ort::inputs![&self.input])
            .map_err(|e| err(format!("ONNX Runtime: {e}")))?;
        self.outputs.resize_with(outs.len(), Default::default);
        for (i, (name, value)) in outs.iter().enumerate() {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| err(format!("output {name}: {e}")))?;
            let slot = &mut self.outputs[i];
            slot.0.clear();
            slot.0.extend(shape.iter().map(|&d| d.max(0) as usize));
            slot.1.clear();
            slot.1.extend_from_slice(data);
        }
        Ok(())
    }

    fn outputs(&self) -> Result<Vec<ArrayViewD<'_, f32>>> {
        self.outputs
            .iter()
            .map(|(shape, data)| {
                ArrayViewD::from_shape(IxDyn(shape), data).map_err(|e| Error::Model {
                    model: "inference".into(),
                    reason: format!("output of shape {shape:?}: {e}"),
                })
            })
            .collect()
    }

    fn output_names(&self) -> &[String] {
        &self.output_names
    }

    fn fork(&self) -> Result<Box<dyn Engine>> {
        let engine = Self::from_bytes(
            self.model.clone(),
            self.input_shape.clone(),
            self.options.clone(),
        )
        .map_err(|reason| Error::Model {
            model: "ort".into(),
            reason,
        })?;
        Ok(Box::new(engine))
    }
}

/// Refuses a provider the loaded library was built without, naming the package that has it.
fn check_provider(provider: OrtProvider, library: &Path) -> Result<()> {
    use ort::ep::ExecutionProvider;
    let (name, available) = match provider {
        OrtProvider::Cpu => return Ok(()),
        OrtProvider::Cuda => ("CUDA", ort::ep::CUDA::default().is_available()),
        OrtProvider::TensorRt => ("TensorRT", ort::ep::TensorRT::default().is_available()),
    };
    match available {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::EngineUnavailable {
            engine: "ort",
            reason: format!(
                "the ONNX Runtime at {} was built without the {name} execution provider; use an \
                 onnxruntime-gpu build (pip install onnxruntime-gpu, or JetPack's onnxruntime \
                 wheel on a Jetson) with --ort-lib, or --ort-ep cpu",
                library.display()
            ),
        }),
        Err(e) => Err(Error::EngineUnavailable {
            engine: "ort",
            reason: format!("cannot list ONNX Runtime's providers: {e}"),
        }),
    }
}

/// The execution provider to register for `options` (`None`: the CPU).
fn provider_dispatch(
    options: &SessionOptions,
) -> std::result::Result<Option<ort::ep::ExecutionProviderDispatch>, String> {
    Ok(match options.provider {
        OrtProvider::Cpu => None,
        OrtProvider::Cuda => Some(ort::ep::CUDA::default().build()),
        OrtProvider::TensorRt => {
            let dir = options
                .cache_dir
                .clone()
                .or_else(crate::board::default_cache_dir)
                .ok_or("TensorRT needs a cache directory for its engines; pass --cache-dir")?
                .join("tensorrt");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create TensorRT's cache {}: {e}", dir.display()))?;
            Some(
                ort::ep::TensorRT::default()
                    .with_engine_cache(true)
                    .with_engine_cache_path(dir.display())
                    .with_timing_cache(true)
                    .with_timing_cache_path(dir.display())
                    .with_fp16(options.half)
                    .build(),
            )
        }
    })
}
