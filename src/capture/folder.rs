//! Frames from image files: a folder of PNG/JPEG frames in name order ([`FolderSource`]) or one
//! image repeated ([`FileSource`]), with optional looping and frame-rate pacing for soak runs
//! and demos.

use image::RgbImage;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::capture::{load_image, Frame, FrameSource};
use crate::error::{Error, Result};

/// How a finite source plays: loop at its end, and how fast.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlaybackOptions {
    /// Start again from the first frame at the end instead of ending.
    pub looping: bool,
    /// Deliver at most this many frames per second; `None` = as fast as they are asked for.
    pub fps: Option<f64>,
}

/// Sleeps so that frames come at a steady rate; it does not try to catch up after a stall.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next_due: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(fps: Option<f64>) -> Result<Pacer> {
        let interval = match fps {
            None => None,
            Some(f) if f.is_finite() && f > 0.0 && f <= 10_000.0 => {
                Some(Duration::from_secs_f64(1.0 / f))
            }
            Some(f) => {
                return Err(Error::InvalidArgument(format!(
                    "frame rate {f} is not a positive number of frames per second (give e.g. 10, \
                     or leave it out for as fast as possible)"
                )))
            }
        };
        Ok(Pacer {
            interval,
            next_due: None,
        })
    }

    /// Waits until the next frame is due.
    pub(crate) fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        let start = match self.next_due {
            Some(due) if due > now => {
                std::thread::sleep(due - now);
                due
            }
            _ => now,
        };
        self.next_due = Some(start + interval);
    }
}

/// The image files of a folder (`.png`, `.jpg`, `.jpeg`, any case), sorted by file name.
pub struct FolderSource {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    looping: bool,
    pacer: Pacer,
    sequence: u64,
    /// Frames read successfully since the current pass started.
    pass_successes: usize,
    ended: bool,
}

impl FolderSource {
    /// Lists the folder's images; a missing folder or one without images is an error.
    pub fn open(dir: &Path, options: PlaybackOptions) -> Result<Self> {
        let files = list_images(dir)?;
        tracing::info!(
            folder = %dir.display(),
            files = files.len(),
            looping = options.looping,
            "reading frames from a folder"
        );
        Ok(FolderSource {
            dir: dir.to_path_buf(),
            files,
            next: 0,
            looping: options.looping,
            pacer: Pacer::new(options.fps)?,
            sequence: 0,
            pass_successes: 0,
            ended: false,
        })
    }

    /// The files it will read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// The image files of `dir`, sorted by file name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::capture(
            dir.display(),
            format!("cannot read the folder ({e}); check that it exists and is readable"),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| is_image_name(p) && p.is_file())
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if files.is_empty() {
        return Err(Error::capture(
            dir.display(),
            "the folder has no image files (looked for *.png, *.jpg, *.jpeg); put frames \
             there or point at another folder",
        ));
    }
    Ok(files)
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        .unwrap_or(false)
}

impl FrameSource for FolderSource {
    /// The next file's frame. An unreadable file is returned as an error, and the next call
    /// moves on to the file after it.
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.ended {
            return Ok(None);
        }
        if self.next >= self.files.len() {
            if !self.looping {
                self.ended = true;
                return Ok(None);
            }
            if self.pass_successes == 0 {
                // Looping over files that all fail would only repeat the same errors forever.
                tracing::error!(
                    folder = %self.dir.display(),
                    "no file in the folder could be read in a whole pass; stopping"
                );
                self.ended = true;
                return Ok(None);
            }
            self.next = 0;
            self.pass_successes = 0;
        }
        let path = &self.files[self.next];
        self.next += 1;
        self.pacer.wait();
        let image = load_image(path)?;
        self.pass_successes += 1;
        let frame = Frame::new(image, self.sequence, path.display().to_string());
        self.sequence += 1;
        Ok(Some(frame))
    }

    fn describe(&self) -> String {
        format!(
            "folder {} ({} images{})",
            self.dir.display(),
            self.files.len(),
            if self.looping { ", looping" } else { "" }
        )
    }
}

/// One image file as a source: once, or repeated (decoded once, then copied).
pub struct FileSource {
    path: PathBuf,
    image: RgbImage,
    repeat: bool,
    pacer: Pacer,
    sequence: u64,
}

impl FileSource {
    /// Reads and decodes the file now, so a bad file fails at open; `options.looping` repeats it.
    pub fn open(path: &Path, options: PlaybackOptions) -> Result<Self> {
        Ok(FileSource {
            path: path.to_path_buf(),
            image: load_image(path)?,
            repeat: options.looping,
            pacer: Pacer::new(options.fps)?,
            sequence: 0,
        })
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.sequence > 0 && !self.repeat {
            return Ok(None);
        }
        self.pacer.wait();
        let frame = Frame::new(
            self.image.clone(),
            self.sequence,
            self.path.display().to_string(),
        );
        self.sequence += 1;
        Ok(Some(frame))
    }

    fn describe(&self) -> String {
        format!(
            "image {}{}",
            self.path.display(),
            if self.repeat { " (repeated)" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder per test under the system temp dir.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        crate::scratch::dir(&format!("folder-{name}"))
    }

    fn write_image(path: &Path, w: u32, h: u32) {
        RgbImage::from_pixel(w, h, image::Rgb([w as u8, h as u8, 7]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn reads_images_in_name_order_and_skips_bad_files() {
        let scratch = temp_dir("order");
        let dir = scratch.path();
        write_image(&dir.join("frame2.png"), 2, 2);
        write_image(&dir.join("frame1.JPG"), 1, 3);
        write_image(&dir.join("frame4.jpeg"), 4, 1);
        std::fs::write(dir.join("frame3.png"), b"not a png").unwrap();
        std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
        std::fs::create_dir(dir.join("frame0.png")).unwrap(); // a folder, not a file

        let mut src = FolderSource::open(dir, PlaybackOptions::default()).unwrap();
        let names: Vec<_> = src
            .files()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["frame1.JPG", "frame2.png", "frame3.png", "frame4.jpeg"]
        );

        let f = src.next_frame().unwrap().unwrap();
        assert_eq!((f.image.dimensions(), f.sequence), ((1, 3), 0));
        assert!(f.origin.ends_with("frame1.JPG"));
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!((f.image.dimensions(), f.sequence), ((2, 2), 1));
        let err = src.next_frame().unwrap_err().to_string();
        assert!(err.contains("frame3.png"), "{err}");
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!((f.image.dimensions(), f.sequence), ((4, 1), 2));
        assert!(src.next_frame().unwrap().is_none());
        assert!(src.next_frame().unwrap().is_none());
    }

    #[test]
    fn looping_starts_again_and_pacing_slows_it_down() {
        let scratch = temp_dir("loop");
        let dir = scratch.path();
        write_image(&dir.join("a.png"), 1, 1);
        write_image(&dir.join("b.png"), 2, 1);
        let options = PlaybackOptions {
            looping: true,
            fps: Some(50.0),
        };
        let mut src = FolderSource::open(dir, options).unwrap();
        let start = Instant::now();
        let widths: Vec<u32> = (0..5)
            .map(|_| src.next_frame().unwrap().unwrap().image.width())
            .collect();
        assert_eq!(widths, [1, 2, 1, 2, 1]);
        // Five frames at 50 fps: at least four 20 ms intervals.
        assert!(
            start.elapsed() >= Duration::from_millis(80),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn looping_over_only_bad_files_stops() {
        let scratch = temp_dir("allbad");
        let dir = scratch.path();
        std::fs::write(dir.join("a.png"), b"bad").unwrap();
        let options = PlaybackOptions {
            looping: true,
            fps: None,
        };
        let mut src = FolderSource::open(dir, options).unwrap();
        assert!(src.next_frame().is_err());
        assert!(src.next_frame().unwrap().is_none());
    }

    #[test]
    fn empty_or_missing_folder_is_a_named_error() {
        let scratch = temp_dir("empty");
        let dir = scratch.path();
        std::fs::write(dir.join("readme.md"), b"no images").unwrap();
        let err = FolderSource::open(dir, PlaybackOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("no image files"),
            "{err}"
        );
        let missing = dir.join("nope");
        let err = FolderSource::open(&missing, PlaybackOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let bad_fps = PlaybackOptions {
            looping: false,
            fps: Some(0.0),
        };
        write_image(&dir.join("x.png"), 1, 1);
        assert!(FolderSource::open(dir, bad_fps).is_err());
    }

    #[test]
    fn file_source_once_or_repeated() {
        let scratch = temp_dir("file");
        let dir = scratch.path();
        let path = dir.join("one.png");
        write_image(&path, 3, 2);
        let mut once = FileSource::open(&path, PlaybackOptions::default()).unwrap();
        assert_eq!(
            once.next_frame().unwrap().unwrap().image.dimensions(),
            (3, 2)
        );
        assert!(once.next_frame().unwrap().is_none());

        let repeat = PlaybackOptions {
            looping: true,
            fps: None,
        };
        let mut again = FileSource::open(&path, repeat).unwrap();
        let seqs: Vec<u64> = (0..3)
            .map(|_| again.next_frame().unwrap().unwrap().sequence)
            .collect();
        assert_eq!(seqs, [0, 1, 2]);

        let err = FileSource::open(&dir.join("missing.png"), repeat)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.png"), "{err}");
    }
}
