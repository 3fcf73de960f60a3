//! MJPEG byte streams: concatenated JPEGs on a pipe, a FIFO or in a file, as written by
//! `rpicam-vid --codec mjpeg -o -`, GStreamer's `jpegenc ! fdsink` or `ffmpeg -f mjpeg -`.
//!
//! Frames are split by walking the JPEG marker structure rather than by searching for the
//! FF D9 bytes: marker segments (APPn, DQT, SOF, DHT, SOS...) are skipped by their length, so an
//! EXIF thumbnail's own EOI inside APP1 does not end the frame early, and in the entropy-coded
//! data after SOS the stuffed `FF 00` and the restart markers `FF D0`-`FF D7` are not mistaken
//! for markers. Bytes between frames are skipped; a frame larger than the size guard is an
//! error, never unbounded memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Stdin};
use std::path::Path;

use crate::capture::convert::decode_mjpeg;
use crate::capture::{Frame, FrameSource};
use crate::error::{Error, Result};

/// The default size guard: a 4K MJPEG frame at high quality is 2-4 MB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 32 << 20;

/// Splits a byte stream into JPEG frames and decodes them.
pub struct MjpegStream<R: Read + Send> {
    reader: BufReader<R>,
    origin: String,
    max_frame_bytes: usize,
    sequence: u64,
    ended: bool,
    /// A new frame's SOI has already been consumed (the previous frame had no EOI).
    pending_soi: bool,
}

/// How reading one frame ended, before it is turned into the public result.
enum Outcome {
    Frame(Vec<u8>),
    /// End of stream; `partial` bytes of an unfinished frame were dropped.
    Eof {
        partial: usize,
    },
    TooLarge,
    Malformed(String),
}

impl MjpegStream<Stdin> {
    /// Frames from standard input: `rpicam-vid --codec mjpeg -o - | hgpose ...`.
    pub fn from_stdin() -> Self {
        MjpegStream::from_reader(std::io::stdin(), "stdin")
    }
}

impl MjpegStream<File> {
    /// Frames from a file or a named pipe (FIFO). Opening a FIFO waits until a writer opens it.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Err(Error::capture(
                path.display(),
                "is a folder, not an MJPEG stream: use it as a folder source instead",
            ));
        }
        let file = File::open(path).map_err(|e| {
            Error::capture(
                path.display(),
                format!("cannot open the MJPEG stream ({e}); check the path and permissions"),
            )
        })?;
        Ok(MjpegStream::from_reader(file, path.display().to_string()))
    }
}

impl<R: Read + Send> MjpegStream<R> {
    /// Frames from any byte stream; `origin` names it in frames, logs and errors.
    pub fn from_reader(reader: R, origin: impl Into<String>) -> Self {
        MjpegStream {
            reader: BufReader::with_capacity(64 * 1024, reader),
            origin: origin.into(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            sequence: 0,
            ended: false,
            pending_soi: false,
        }
    }

    /// Sets the size guard: a frame longer than this is an error and is skipped.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max.max(4);
        self
    }

    /// The next complete JPEG, undecoded (for callers that forward JPEGs as they are).
    /// `Ok(None)` at the end of the stream; a malformed or oversized frame is an error, and
    /// the next call resynchronises on the next frame's start.
    pub fn next_jpeg(&mut self) -> Result<Option<Vec<u8>>> {
        if self.ended {
            return Ok(None);
        }
        let outcome = self.read_frame().map_err(|e| {
            Error::capture(
                &self.origin,
                format!("reading the MJPEG stream failed ({e})"),
            )
        })?;
        match outcome {
            Outcome::Frame(bytes) => Ok(Some(bytes)),
            Outcome::Eof { partial } => {
                self.ended = true;
                if partial > 0 {
                    tracing::warn!(
                        origin = %self.origin,
                        "the MJPEG stream ended inside a frame: dropped the truncated last \
                         frame ({partial} bytes)"
                    );
                }
                Ok(None)
            }
            Outcome::TooLarge => Err(Error::capture(
                &self.origin,
                format!(
                    "a frame is larger than {} bytes: this is not an MJPEG stream, or its \
                     frames need a larger size guard; skipping to the next frame",
                    self.max_frame_bytes
                ),
            )),
            Outcome::Malformed(why) => Err(Error::capture(
                &self.origin,
                format!("malformed JPEG in the MJPEG stream ({why}); skipping to the next frame"),
            )),
        }
    }

    fn read_frame(&mut self) -> std::io::Result<Outcome> {
        if !self.pending_soi {
            let skipped = match self.find_soi()? {
                Some(skipped) => skipped,
                None => return Ok(Outcome::Eof { partial: 0 }),
            };
            if skipped > 0 {
                tracing::debug!(origin = %self.origin, "skipped {skipped} bytes before a frame");
            }
        }
        self.pending_soi = false;
        let mut frame = vec![0xFF, 0xD8];
        // True once inside entropy-coded data (after an SOS header).
        let mut in_scan = false;
        loop {
            let marker = if in_scan {
                match self.copy_scan_data(&mut frame)? {
                    ScanEnd::Marker(m) => m,
                    ScanEnd::Eof => {
                        return Ok(Outcome::Eof {
                            partial: frame.len(),
                        })
                    }
                    ScanEnd::TooLarge => return Ok(Outcome::TooLarge),
                }
            } else {
                match self.byte()? {
                    None => {
                        return Ok(Outcome::Eof {
                            partial: frame.len(),
                        })
                    }
                    Some(0xFF) => {}
                    Some(b) => {
                        return Ok(Outcome::Malformed(format!(
                            "expected a marker at byte {}, found {b:#04x}",
                            frame.len()
                        )))
                    }
                }
                match self.marker_after_ff()? {
                    Some(m) => m,
                    None => {
                        return Ok(Outcome::Eof {
                            partial: frame.len(),
                        })
                    }
                }
            };
            match marker {
                0xD9 => {
                    frame.extend_from_slice(&[0xFF, 0xD9]);
                    return Ok(Outcome::Frame(frame));
                }
                0xD8 if in_scan => {
                    // The next frame began without an EOI (some cameras omit it): close this one.
                    self.pending_soi = true;
                    frame.extend_from_slice(&[0xFF, 0xD9]);
                    return Ok(Outcome::Frame(frame));
                }
                0xD8 => {
                    tracing::warn!(
                        origin = %self.origin,
                        "a new frame started inside the headers of another: dropped {} bytes",
                        frame.len()
                    );
                    frame.truncate(2);
                }
                // Standalone markers without a length.
                0x01 | 0xD0..=0xD7 => frame.extend_from_slice(&[0xFF, marker]),
                0x00 => {
                    return Ok(Outcome::Malformed(
                        "a stuffed FF 00 outside entropy-coded data".into(),
                    ))
                }
                _ => {
                    frame.extend_from_slice(&[0xFF, marker]);
                    let mut len = [0u8; 2];
                    if !self.take(&mut frame, 2, Some(&mut len))? {
                        return Ok(Outcome::Eof {
                            partial: frame.len(),
                        });
                    }
                    let len = u16::from_be_bytes(len) as usize;
                    if len < 2 {
                        return Ok(Outcome::Malformed(format!(
                            "segment FF {marker:02X} has length {len}"
                        )));
                    }
                    if frame.len() + len - 2 > self.max_frame_bytes {
                        return Ok(Outcome::TooLarge);
                    }
                    if !self.take(&mut frame, len - 2, None)? {
                        return Ok(Outcome::Eof {
                            partial: frame.len(),
                        });
                    }
                    in_scan = marker == 0xDA;
                }
            }
            if frame.len() > self.max_frame_bytes {
                return Ok(Outcome::TooLarge);
            }
        }
    }

    /// Skips to just past the next FF D8; returns how many bytes were skipped, `None` at EOF.
    fn find_soi(&mut self) -> std::io::Result<Option<usize>> {
        let mut skipped = 0usize;
        let mut prev_ff = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(None);
            }
            let mut found = None;
            for (i, &b) in buf.iter().enumerate() {
                if prev_ff && b == 0xD8 {
                    found = Some(i + 1);
                    break;
                }
                prev_ff = b == 0xFF;
            }
            match found {
                Some(n) => {
                    self.reader.consume(n);
                    return Ok(Some((skipped + n).saturating_sub(2)));
                }
                None => {
                    let n = buf.len();
                    self.reader.consume(n);
                    skipped += n;
                }
            }
        }
    }

    /// Copies entropy-coded data up to the next real marker and returns that marker (its
    /// FF not yet appended). Stuffed FF 00 and restart markers are data.
    fn copy_scan_data(&mut self, frame: &mut Vec<u8>) -> std::io::Result<ScanEnd> {
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(ScanEnd::Eof);
            }
            let (n, hit_ff) = match buf.iter().position(|&b| b == 0xFF) {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            frame.extend_from_slice(&buf[..n]);
            self.reader.consume(n + usize::from(hit_ff));
            if frame.len() > self.max_frame_bytes {
                return Ok(ScanEnd::TooLarge);
            }
            if !hit_ff {
                continue;
            }
            match self.marker_after_ff()? {
                None => return Ok(ScanEnd::Eof),
                Some(m @ (0x00 | 0xD0..=0xD7)) => frame.extend_from_slice(&[0xFF, m]),
                Some(m) => return Ok(ScanEnd::Marker(m)),
            }
        }
    }

    /// After an FF: skips fill bytes (more FFs) and returns the marker code.
    fn marker_after_ff(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            match self.byte()? {
                Some(0xFF) => continue,
                other => return Ok(other),
            }
        }
    }

    /// Appends `n` bytes to `frame` (also copying the first ones into `copy` if given);
    /// false at EOF.
    fn take(
        &mut self,
        frame: &mut Vec<u8>,
        mut n: usize,
        copy: Option<&mut [u8; 2]>,
    ) -> std::io::Result<bool> {
        let start = frame.len();
        while n > 0 {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(false);
            }
            let k = n.min(buf.len());
            frame.extend_from_slice(&buf[..k]);
            self.reader.consume(k);
            n -= k;
        }
        if let Some(copy) = copy {
            copy.copy_from_slice(&frame[start..start + 2]);
        }
        Ok(true)
    }

    fn byte(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            match self.reader.fill_buf() {
                Ok([]) => return Ok(None),
                Ok(buf) => {
                    let b = buf[0];
                    self.reader.consume(1);
                    return Ok(Some(b));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

enum ScanEnd {
    Marker(u8),
    Eof,
    TooLarge,
}

impl<R: Read + Send> FrameSource for MjpegStream<R> {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let Some(jpeg) = self.next_jpeg()? else {
            return Ok(None);
        };
        let image = decode_mjpeg(&jpeg).map_err(|e| match e {
            Error::Capture { reason, .. } => Error::capture(&self.origin, reason),
            other => other,
        })?;
        let frame = Frame::new(image, self.sequence, self.origin.clone());
        self.sequence += 1;
        Ok(Some(frame))
    }

    fn describe(&self) -> String {
        format!("MJPEG stream from {}", self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;
    use std::io::Cursor;

    fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
        // Noisy content, so the entropy-coded data contains stuffed FF 00 bytes.
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 7919 + y * 104_729 + seed * 31).wrapping_mul(2_654_435_761);
            image::Rgb([(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8])
        });
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 100)
            .encode_image(&img)
            .unwrap();
        bytes
    }

    #[test]
    fn splits_concatenated_frames_with_junk_between() {
        let frames = [jpeg(32, 16, 1), jpeg(8, 24, 2), jpeg(40, 40, 3)];
        assert!(
            frames[2].windows(2).any(|w| w == [0xFF, 0x00]),
            "test data should contain byte stuffing"
        );
        let mut stream_bytes = b"garbage\xFF\xFF\x00 before".to_vec();
        stream_bytes.extend_from_slice(&frames[0]);
        stream_bytes.extend_from_slice(&frames[1]);
        stream_bytes.extend_from_slice(b"\x00\x00junk\xFF between");
        stream_bytes.extend_from_slice(&frames[2]);
        stream_bytes.extend_from_slice(b"trailing");

        let mut raw = MjpegStream::from_reader(Cursor::new(stream_bytes.clone()), "test");
        for f in &frames {
            assert_eq!(&raw.next_jpeg().unwrap().unwrap(), f);
        }
        assert!(raw.next_jpeg().unwrap().is_none());

        let mut stream = MjpegStream::from_reader(Cursor::new(stream_bytes), "test");
        let sizes: Vec<(u32, u32, u64)> = std::iter::from_fn(|| stream.next_frame().unwrap())
            .map(|f| (f.image.width(), f.image.height(), f.sequence))
            .collect();
        assert_eq!(sizes, vec![(32, 16, 0), (8, 24, 1), (40, 40, 2)]);
        assert!(stream.next_frame().unwrap().is_none());
    }

    #[test]
    fn eoi_inside_an_app1_segment_does_not_end_the_frame() {
        let base = jpeg(16, 16, 4);
        // An APP1 "Exif" segment holding a fake thumbnail: SOI ... EOI.
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xD9, 0x12, 0xFF, 0xD9]);
        let mut with_exif = base[..2].to_vec();
        with_exif.extend_from_slice(&[0xFF, 0xE1]);
        with_exif.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        with_exif.extend_from_slice(&payload);
        with_exif.extend_from_slice(&base[2..]);

        let mut bytes = with_exif.clone();
        bytes.extend_from_slice(&base);
        let mut stream = MjpegStream::from_reader(Cursor::new(bytes), "exif");
        assert_eq!(stream.next_jpeg().unwrap().unwrap(), with_exif);
        assert_eq!(stream.next_jpeg().unwrap().unwrap(), base);
        assert!(stream.next_jpeg().unwrap().is_none());
        // And the frame is still a JPEG the decoder accepts.
        let img = decode_mjpeg(&with_exif).unwrap();
        assert_eq!(img.dimensions(), (16, 16));
    }

    #[test]
    fn restart_markers_and_stuffing_are_scan_data() {
        // A minimal synthetic frame: SOS header, then scan data with FF 00, RST3, fill bytes.
        let frame: Vec<u8> = vec![
            0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x03, 0x01, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56,
            0xFF, 0xD9,
        ];
        let mut bytes = frame.clone();
        bytes.extend_from_slice(&frame);
        let mut stream = MjpegStream::from_reader(Cursor::new(bytes), "rst");
        assert_eq!(stream.next_jpeg().unwrap().unwrap(), frame);
        assert_eq!(stream.next_jpeg().unwrap().unwrap(), frame);
        assert!(stream.next_jpeg().unwrap().is_none());
    }

    #[test]
    fn missing_eoi_ends_the_frame_at_the_next_soi() {
        let a = jpeg(8, 8, 5);
        let b = jpeg(16, 8, 6);
        let mut bytes = a[..a.len() - 2].to_vec(); // no EOI
        bytes.extend_from_slice(&b);
        let mut stream = MjpegStream::from_reader(Cursor::new(bytes), "no-eoi");
        assert_eq!(stream.next_jpeg().unwrap().unwrap(), a);
        assert_eq!(stream.next_jpeg().unwrap().unwrap(), b);
    }

    #[test]
    fn truncated_tail_is_dropped() {
        let a = jpeg(8, 8, 7);
        let b = jpeg(16, 16, 8);
        let mut bytes = a.clone();
        bytes.extend_from_slice(&b[..b.len() / 2]);
        let mut stream = MjpegStream::from_reader(Cursor::new(bytes), "cut");
        assert_eq!(
            stream.next_frame().unwrap().unwrap().image.dimensions(),
            (8, 8)
        );
        assert!(stream.next_frame().unwrap().is_none());
        assert!(stream.next_frame().unwrap().is_none());
        // Empty input: no frames, no error.
        let mut empty = MjpegStream::from_reader(Cursor::new(Vec::new()), "empty");
        assert!(empty.next_frame().unwrap().is_none());
    }

    #[test]
    fn oversized_frame_is_an_error_and_the_stream_goes_on() {
        let big = jpeg(64, 64, 9);
        let small = jpeg(8, 8, 10);
        assert!(big.len() > 2000 && small.len() < 2000);
        let mut bytes = big.clone();
        bytes.extend_from_slice(&small);
        let mut stream =
            MjpegStream::from_reader(Cursor::new(bytes), "guarded").with_max_frame_bytes(2000);
        let err = stream.next_jpeg().unwrap_err().to_string();
        assert!(
            err.contains("larger than 2000 bytes") && err.contains("guarded"),
            "{err}"
        );
        // It resynchronises on the next frame's SOI.
        let mut next = stream.next_jpeg();
        while next.is_err() {
            next = stream.next_jpeg();
        }
        assert_eq!(next.unwrap().unwrap(), small);
    }

    #[test]
    fn malformed_header_and_corrupt_frame_are_errors() {
        let good = jpeg(8, 8, 11);
        let mut bytes = vec![0xFF, 0xD8, 0x42, 0x42];
        bytes.extend_from_slice(&good);
        let mut stream = MjpegStream::from_reader(Cursor::new(bytes), "bad");
        let err = stream.next_jpeg().unwrap_err().to_string();
        assert!(err.contains("malformed JPEG"), "{err}");
        assert_eq!(stream.next_jpeg().unwrap().unwrap(), good);

        // Well-formed markers but garbage inside: the split works, decoding names the source.
        let junk_frame = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x55, 0x55, 0xFF, 0xD9];
        let mut stream = MjpegStream::from_reader(Cursor::new(junk_frame), "cam-pipe");
        let err = stream.next_frame().unwrap_err().to_string();
        assert!(
            err.contains("cam-pipe") && err.contains("corrupt MJPEG"),
            "{err}"
        );
    }

    #[test]
    fn open_names_missing_paths() {
        let err = MjpegStream::open(Path::new("/nonexistent/hgpose.mjpeg"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/hgpose.mjpeg"), "{err}");
    }
}
