//! Outputs: what leaves hgpose. JSON records for machines, skeleton drawings for people; for the
//! running node, each output is a [`Sink`].

pub mod display;
mod draw;
pub mod gpio;
mod json;
pub mod rules;
pub mod sink;
pub mod stream;
mod view;

pub use draw::{draw_pose, ImageCanvas};
pub use json::{FrameRecord, StreamRecord, TimingMs};
pub use sink::{Flow, FrameOutput, Sink};
pub use view::{Hud, Letterbox, ViewRenderer, ViewSink};
