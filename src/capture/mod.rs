//! Capture: where frames come from. Today: image files; cameras come through the same door.

mod file;

pub use file::load_image;
