//! Outputs: what leaves hgpose. JSON records for machines, skeleton drawings for people.

mod draw;
mod json;

pub use draw::{draw_pose, ImageCanvas};
pub use json::{FrameRecord, TimingMs};
