//! The one interface every frame source implements, so the pipeline does not care whether frames
//! come from a camera, a folder, a video or a pipe.

use image::RgbImage;
use std::path::Path;
use std::time::{Instant, SystemTime};

use crate::error::Result;

/// One captured frame, converted to RGB.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// Monotonic capture time (for latency and the smoothing filter).
    pub captured: Instant,
    /// Wall-clock capture time (for the JSON record).
    pub wall_clock: SystemTime,
    /// Frame number from this source, from 0.
    pub sequence: u64,
    /// Where it came from: a device path, a file name, "stdin".
    pub origin: String,
}

impl Frame {
    pub fn new(image: RgbImage, sequence: u64, origin: impl Into<String>) -> Self {
        Frame {
            image,
            captured: Instant::now(),
            wall_clock: SystemTime::now(),
            sequence,
            origin: origin.into(),
        }
    }
}

/// A source of frames. `Ok(None)` means the source has ended (end of a file or folder); a
/// camera never ends, it errors or reconnects.
pub trait FrameSource: Send {
    fn next_frame(&mut self) -> Result<Option<Frame>>;
    /// A short description for logs, e.g. "/dev/video0 YUYV 640x480 @30".
    fn describe(&self) -> String;
    /// A live source (camera, pipe from a camera) keeps producing whether or not anyone reads:
    /// the pipeline then skips stale frames. Recorded sources (files, folders, videos) wait for
    /// the pipeline instead, so every frame is processed.
    fn is_live(&self) -> bool {
        false
    }
}

/// What a path given as a source names, judged from the path alone (nothing is opened), so a
/// command line can name any source with one `--source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `-`: an MJPEG stream on stdin.
    Stdin,
    /// `/dev/video*`: a V4L2 camera.
    Camera,
    /// A video file, by its extension (decoded by ffmpeg).
    Video,
    /// Anything else: an image file or a folder of them.
    Images,
}

/// Extensions taken for video files; any other path is read as images.
const VIDEO_EXTENSIONS: [&str; 8] = ["mp4", "avi", "mkv", "mov", "webm", "h264", "mjpeg", "mjpg"];

impl SourceKind {
    pub fn of_path(path: &Path) -> SourceKind {
        let text = path.to_string_lossy();
        if text == "-" {
            return SourceKind::Stdin;
        }
        if text.starts_with("/dev/video") {
            return SourceKind::Camera;
        }
        let is_video = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_video {
            SourceKind::Video
        } else {
            SourceKind::Images
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SourceKind;
    use std::path::Path;

    fn kind(path: &str) -> SourceKind {
        SourceKind::of_path(Path::new(path))
    }

    #[test]
    fn a_path_names_its_kind_of_source() {
        assert_eq!(kind("-"), SourceKind::Stdin);
        assert_eq!(kind("/dev/video0"), SourceKind::Camera);
        assert_eq!(kind("/dev/video12"), SourceKind::Camera);
        assert_eq!(kind("clip.mp4"), SourceKind::Video);
        assert_eq!(kind("walk/CLIP.MJPG"), SourceKind::Video);
        assert_eq!(kind("frames"), SourceKind::Images);
        assert_eq!(kind("photo.jpg"), SourceKind::Images);
        assert_eq!(kind("./-"), SourceKind::Images);
    }
}
