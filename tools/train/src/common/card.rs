//! Model cards: the `<stem>.toml` and `<stem>.labels.txt` written next to an exported ONNX, as
//! vigia reads them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vigia::model::{ModelCard, Provenance};

/// Pixel scale of every exported model, written to its card: `x = pixel * SCALE`.
pub const SCALE: f32 = 1.0 / 255.0;

/// The files beside an exported ONNX: its names and folder, the labels file and the ONNX bytes.
pub struct CardFiles {
    /// File stem of the ONNX (the card's name).
    pub stem: String,
    /// File name of the ONNX.
    pub file: String,
    /// Folder of the ONNX.
    pub dir: PathBuf,
    /// File name of the labels file.
    pub labels_name: String,
    /// The ONNX bytes.
    pub bytes: Vec<u8>,
}

impl CardFiles {
    /// Writes `<stem>.labels.txt` next to `onnx` and reads the ONNX back.
    pub fn new(onnx: &Path, names: &[String]) -> Result<CardFiles> {
        let name_of = |p: Option<&std::ffi::OsStr>| -> Result<String> {
            Ok(p.context("the ONNX path has no file name")?
                .to_string_lossy()
                .to_string())
        };
        let stem = name_of(onnx.file_stem())?;
        let file = name_of(onnx.file_name())?;
        let dir = onnx.parent().unwrap_or(Path::new("")).to_path_buf();
        let labels_name = format!("{stem}.labels.txt");
        let labels_path = dir.join(&labels_name);
        std::fs::write(&labels_path, names.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", labels_path.display()))?;
        let bytes =
            std::fs::read(onnx).with_context(|| format!("cannot read {}", onnx.display()))?;
        Ok(CardFiles {
            stem,
            file,
            dir,
            labels_name,
            bytes,
        })
    }

    /// The card's provenance: licence, the producing command, notes and the ONNX checksum.
    pub fn provenance(&self, source: &str, notes: &str) -> Provenance {
        Provenance {
            license: Some("Apache-2.0".into()),
            source: Some(source.into()),
            notes: Some(notes.into()),
            sha256: Some(sha256_hex(&self.bytes)),
        }
    }

    /// Writes `<stem>.toml`: `header`, then `card`, checked to load back as vigia reads it.
    pub fn write_card(&self, header: &str, card: &ModelCard) -> Result<PathBuf> {
        let path = self.dir.join(format!("{}.toml", self.stem));
        let text = format!("{header}{}", card.to_toml());
        ModelCard::from_toml(&text, &path).context("the written model card does not parse")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
