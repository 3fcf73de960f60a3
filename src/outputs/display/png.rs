//! The PNG "display": the latest view written to a file every few frames, for boards without a
//! screen and for tests.

use image::RgbImage;
use std::path::PathBuf;

use super::Display;
use crate::error::{Error, Result};

/// Writes the view shown to `path` every `every` frames (the first one included).
pub struct PngSnapshots {
    path: PathBuf,
    every: u64,
    size: (u32, u32),
    shown: u64,
}

impl PngSnapshots {
    /// Snapshots of `width` x `height` views; `every` must be at least 1.
    pub fn new(path: PathBuf, every: u64, width: u32, height: u32) -> Self {
        PngSnapshots {
            path,
            every,
            size: (width, height),
            shown: 0,
        }
    }
}

impl Display for PngSnapshots {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn show(&mut self, view: &RgbImage) -> Result<()> {
        self.shown += 1;
        if !(self.shown - 1).is_multiple_of(self.every) {
            return Ok(());
        }
        // Written beside and renamed, so a reader never sees half a file.
        let partial = self.path.with_extension("partial.png");
        view.save(&partial)
            .and_then(|_| std::fs::rename(&partial, &self.path).map_err(Into::into))
            .map_err(|e| Error::Output {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        format!("PNG snapshots to {}", self.path.display())
    }
}
