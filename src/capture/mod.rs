//! Capture: where frames come from. V4L2 cameras, image files, folders of frames, video files and
//! MJPEG streams on a pipe, all behind [`FrameSource`]; GPIO trigger lines that ask for a frame.

pub mod camera;
pub mod convert;
mod file;
pub mod folder;
pub mod mjpeg;
mod source;
pub mod trigger;
pub mod video;

pub use file::{load_image, load_images};
pub use source::{Frame, FrameSource, SourceKind};
