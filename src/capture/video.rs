//! Video files, decoded by an `ffmpeg` subprocess that re-encodes them as an MJPEG stream on its
//! standard output, split and decoded by [`MjpegStream`]. MJPEG rather than raw RGB because it
//! needs no probing of the size first, handles size changes mid-file, and keeps the pipe small;
//! re-encoding at `-q:v 3` costs little next to the network.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::capture::folder::{Pacer, PlaybackOptions};
use crate::capture::mjpeg::MjpegStream;
use crate::capture::{Frame, FrameSource};
use crate::error::{Error, Result};

/// How many of ffmpeg's last stderr lines are kept for error messages.
const STDERR_LINES: usize = 8;

/// A video file played through ffmpeg; at its end it stops, or starts again when looping.
pub struct VideoSource {
    path: PathBuf,
    program: PathBuf,
    looping: bool,
    pacer: Pacer,
    run: Option<Run>,
    sequence: u64,
    ended: bool,
}

/// One ffmpeg process reading the file from the start.
struct Run {
    child: Child,
    stream: MjpegStream<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_thread: Option<JoinHandle<()>>,
    frames: u64,
}

/// Whether `program` is a file (a path) or is found in a `PATH` directory (a bare name).
fn program_exists(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

impl VideoSource {
    /// Opens `path` with the `ffmpeg` found on `PATH`.
    pub fn open(path: &Path, options: PlaybackOptions) -> Result<Self> {
        VideoSource::open_with_program(path, options, Path::new("ffmpeg"))
    }

    /// Opens `path` with a given ffmpeg program (a name looked up on `PATH`, or a path).
    pub fn open_with_program(
        path: &Path,
        options: PlaybackOptions,
        program: &Path,
    ) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::capture(
                path.display(),
                "the video file does not exist or is not a file; check the path",
            ));
        }
        let mut source = VideoSource {
            path: path.to_path_buf(),
            program: program.to_path_buf(),
            looping: options.looping,
            pacer: Pacer::new(options.fps)?,
            run: None,
            sequence: 0,
            ended: false,
        };
        source.run = Some(source.spawn()?);
        tracing::info!(video = %path.display(), looping = options.looping, "decoding a video with ffmpeg");
        Ok(source)
    }

    fn missing_program(&self) -> Error {
        Error::capture(
            self.path.display(),
            format!(
                "video files are decoded with ffmpeg, and `{}` was not found: install ffmpeg \
                 (apt install ffmpeg) or convert the video to a folder of frames",
                self.program.display()
            ),
        )
    }

    fn spawn(&self) -> Result<Run> {
        // Looked up first: where exec failures do not come back from spawn (qemu-user), a
        // missing ffmpeg would otherwise look like a video that decodes to nothing.
        if !program_exists(&self.program) {
            return Err(self.missing_program());
        }
        let mut child = Command::new(&self.program)
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
            .arg(&self.path)
            .args(["-an", "-sn", "-f", "mjpeg", "-q:v", "3", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    self.missing_program()
                } else {
                    Error::capture(
                        self.path.display(),
                        format!("cannot run `{}` ({e})", self.program.display()),
                    )
                }
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::capture(
                self.path.display(),
                "ffmpeg's output pipes are missing",
            ));
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr_tail);
        let origin = self.path.display().to_string();
        // ffmpeg's complaints go to the log as they come, and the last few into errors.
        let stderr_thread = std::thread::Builder::new()
            .name("ffmpeg-stderr".into())
            .spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    tracing::warn!(video = %origin, "ffmpeg: {line}");
                    if let Ok(mut tail) = tail.lock() {
                        if tail.len() == STDERR_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            })
            .ok();
        Ok(Run {
            child,
            stream: MjpegStream::from_reader(stdout, self.path.display().to_string()),
            stderr_tail,
            stderr_thread,
            frames: 0,
        })
    }

    /// Waits for a finished run's ffmpeg; an error if it failed or decoded nothing.
    fn finish(&self, mut run: Run) -> Result<()> {
        let status = run.child.wait();
        if let Some(thread) = run.stderr_thread.take() {
            let _ = thread.join();
        }
        let tail = run
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("; "))
            .unwrap_or_default();
        let said = if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        };
        match status {
            Ok(s) if !s.success() => Err(Error::capture(
                self.path.display(),
                format!("ffmpeg could not decode it ({s}){said}"),
            )),
            Err(e) => Err(Error::capture(
                self.path.display(),
                format!("waiting for ffmpeg failed ({e})"),
            )),
            Ok(_) if run.frames == 0 => Err(Error::capture(
                self.path.display(),
                format!("ffmpeg decoded no video frames from it{said}"),
            )),
            Ok(_) => Ok(()),
        }
    }
}

impl FrameSource for VideoSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if self.run.is_none() {
                match self.spawn() {
                    Ok(run) => self.run = Some(run),
                    Err(e) => {
                        self.ended = true;
                        return Err(e);
                    }
                }
            }
            let Some(run) = self.run.as_mut() else {
                continue;
            };
            match run.stream.next_frame() {
                Ok(Some(mut frame)) => {
                    run.frames += 1;
                    frame.sequence = self.sequence;
                    self.sequence += 1;
                    self.pacer.wait();
                    return Ok(Some(frame));
                }
                Ok(None) => {
                    let Some(run) = self.run.take() else { continue };
                    if let Err(e) = self.finish(run) {
                        self.ended = true;
                        return Err(e);
                    }
                    if !self.looping {
                        self.ended = true;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "video {}{}",
            self.path.display(),
            if self.looping { " (looping)" } else { "" }
        )
    }
}

impl Drop for VideoSource {
    fn drop(&mut self) {
        if let Some(mut run) = self.run.take() {
            let _ = run.child.kill();
            let _ = run.child.wait();
            if let Some(thread) = run.stderr_thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn temp_dir(name: &str) -> tempfile::TempDir {
        crate::scratch::dir(&format!("video-{name}"))
    }

    fn ffmpeg_available() -> bool {
        Command::new("ffmpeg")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    #[test]
    fn missing_ffmpeg_is_a_clear_error() {
        let scratch = temp_dir("missing");
        let dir = scratch.path();
        let video = dir.join("clip.mp4");
        std::fs::write(&video, b"whatever").unwrap();
        let err = VideoSource::open_with_program(
            &video,
            PlaybackOptions::default(),
            Path::new("/nonexistent/hgpose-test/ffmpeg"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("clip.mp4")
                && err.contains("install ffmpeg (apt install ffmpeg)")
                && err.contains("folder of frames"),
            "{err}"
        );
        let err = VideoSource::open(&dir.join("absent.mp4"), PlaybackOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("absent.mp4") && err.contains("does not exist"),
            "{err}"
        );
    }

    /// Round trip through a real ffmpeg where one is installed (the missing case is above).
    #[test]
    fn reads_back_a_generated_video_when_ffmpeg_is_installed() {
        if !ffmpeg_available() {
            eprintln!("ffmpeg is not installed: only the missing-ffmpeg error is tested");
            return;
        }
        let scratch = temp_dir("roundtrip");
        let dir = scratch.path();
        let colors = [
            [250u8, 10, 10],
            [10, 250, 10],
            [10, 10, 250],
            [200, 200, 30],
            [30, 30, 30],
        ];
        for (i, c) in colors.iter().enumerate() {
            RgbImage::from_pixel(64, 48, image::Rgb(*c))
                .save(dir.join(format!("f{i:03}.png")))
                .unwrap();
        }
        let video = dir.join("clip.avi");
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-framerate", "10", "-i"])
            .arg(dir.join("f%03d.png"))
            .args(["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p"])
            .arg(&video)
            .status()
            .unwrap();
        assert!(status.success());

        let mut src = VideoSource::open(&video, PlaybackOptions::default()).unwrap();
        let frames: Vec<Frame> = std::iter::from_fn(|| src.next_frame().unwrap()).collect();
        assert_eq!(frames.len(), colors.len());
        for (i, (f, c)) in frames.iter().zip(colors).enumerate() {
            assert_eq!(f.image.dimensions(), (64, 48));
            assert_eq!(f.sequence, i as u64);
            let px = f.image.get_pixel(32, 24).0;
            for k in 0..3 {
                assert!(
                    (px[k] as i32 - c[k] as i32).abs() <= 12,
                    "frame {i}: {px:?} vs {c:?}"
                );
            }
        }

        let looping = PlaybackOptions {
            looping: true,
            fps: None,
        };
        let mut src = VideoSource::open(&video, looping).unwrap();
        let seqs: Vec<u64> = (0..12)
            .map(|_| src.next_frame().unwrap().unwrap().sequence)
            .collect();
        assert_eq!(seqs, (0..12).collect::<Vec<u64>>());
        drop(src); // kills ffmpeg mid-stream without hanging

        let not_video = dir.join("notes.mp4");
        std::fs::write(&not_video, b"this is not a video").unwrap();
        let mut src = VideoSource::open(&not_video, looping).unwrap();
        let err = src.next_frame().unwrap_err().to_string();
        assert!(err.contains("notes.mp4") && err.contains("ffmpeg"), "{err}");
        assert!(src.next_frame().unwrap().is_none());
    }
}
