//! Outputs: what leaves hgpose. JSON records for machines, skeleton drawings for people.

pub mod display;
mod draw;
pub mod gpio;
mod json;
pub mod rules;
pub mod stream;
mod view;

pub use draw::{draw_pose, ImageCanvas};
pub use json::{FrameRecord, StreamRecord, TimingMs};
pub use view::{Hud, Letterbox, ViewRenderer};
