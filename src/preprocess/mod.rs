//! Preprocess: choose the crop around the person, then resize and normalize it straight into the
//! network's input tensor.

mod crop;
mod tensorize;

pub use crop::{check_margin, CropTransform, Rect};
pub use tensorize::Preprocessor;
