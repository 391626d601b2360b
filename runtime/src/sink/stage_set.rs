//! Several output stages run as one, in order (the files and preview, then the publisher).

use crate::error::Result;
use crate::pipeline::{FrameResult, OutputStage, PipelineStats};

/// Output stages fed the same frames in the order given.
#[derive(Default)]
pub struct StageSet(Vec<Box<dyn OutputStage>>);

impl StageSet {
    /// An empty set.
    pub fn new() -> Self {
        StageSet(Vec::new())
    }

    /// Adds `stage` after the others.
    pub fn push(&mut self, stage: Box<dyn OutputStage>) {
        self.0.push(stage);
    }
}

impl OutputStage for StageSet {
    fn write(&mut self, result: &FrameResult, stats: &PipelineStats, fps: f64) -> Result<()> {
        for s in &mut self.0 {
            s.write(result, stats, fps)?;
        }
        Ok(())
    }

    /// Finishes every stage, even after one failed; the first error is returned.
    fn finish(&mut self) -> Result<()> {
        let mut first = Ok(());
        for s in &mut self.0 {
            let r = s.finish();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}
