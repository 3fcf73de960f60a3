//! JSON Lines: one record per line on stdout or in a file, flushed after every line so that
//! `tail -f`, a pipe into `jq`, or a log shipper sees each frame as soon as it is decided.
//!
//! When the reader of a pipe goes away (`hgpose run | head -n 5`), writing fails with
//! `EPIPE`. That is the normal way for a consumer to say "enough", not a fault, so the sink
//! remembers it ([`JsonLinesSink::is_broken_pipe`]) and the caller can stop cleanly instead of
//! reporting an error. (Rust ignores `SIGPIPE`, so the process is not killed by the signal.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::outputs::sink::{Flow, FrameOutput, Sink};

/// Writes one JSON record per line and flushes after each one.
pub struct JsonLinesSink {
    out: Box<dyn Write + Send>,
    /// What the errors name: `<stdout>` or the file path.
    target: PathBuf,
    /// Reused buffer holding `record + '\n'`, so each line goes out in one write.
    line: Vec<u8>,
    broken_pipe: bool,
    written: u64,
}

impl JsonLinesSink {
    /// Lines on standard output.
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()), PathBuf::from("<stdout>"))
    }

    /// Lines in the file at `path`, appended to what is there (`append`) or replacing it.
    ///
    /// The folder must already exist: a missing folder usually means a typo in the path, and
    /// creating it silently would hide that.
    pub fn file(path: &Path, append: bool) -> Result<Self> {
        let output_error = |reason: String| Error::Output {
            path: path.to_path_buf(),
            reason,
        };
        if path.as_os_str().is_empty() {
            return Err(output_error(
                "the path is empty; give a file name such as keypoints.jsonl".into(),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(output_error(format!(
                    "folder {} does not exist; create it first (mkdir -p) or choose another path",
                    dir.display()
                )));
            }
        }
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        let file: File = options.open(path).map_err(|e| {
            output_error(format!(
                "cannot open for writing: {e}; check the permissions or choose another path"
            ))
        })?;
        Ok(Self::new(Box::new(file), path.to_path_buf()))
    }

    fn new(out: Box<dyn Write + Send>, target: PathBuf) -> Self {
        Self {
            out,
            target,
            line: Vec::new(),
            broken_pipe: false,
            written: 0,
        }
    }

    /// Writes `json` (one record, no newline) as one line and flushes it.
    ///
    /// A record containing a line break is refused: it would split into two broken lines for
    /// every reader. After a broken pipe every call fails at once with the same error; check
    /// [`is_broken_pipe`](Self::is_broken_pipe) to tell that apart from a real failure.
    pub fn write_record(&mut self, json: &str) -> Result<()> {
        if self.broken_pipe {
            return Err(self.broken_pipe_error());
        }
        if json.contains(['\n', '\r']) {
            return Err(Error::InvalidArgument(format!(
                "a JSON Lines record for {} contains a line break; serialize it compactly \
                 (serde_json::to_string, not to_string_pretty)",
                self.target.display()
            )));
        }
        self.line.clear();
        self.line.extend_from_slice(json.as_bytes());
        self.line.push(b'\n');
        let result = self
            .out
            .write_all(&self.line)
            .and_then(|()| self.out.flush());
        match result {
            Ok(()) => {
                self.written += 1;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.broken_pipe = true;
                tracing::debug!(target = %self.target.display(), "reader closed the pipe");
                Err(self.broken_pipe_error())
            }
            Err(e) => Err(Error::Output {
                path: self.target.clone(),
                reason: format!("{e}; check free disk space and that the output is writable"),
            }),
        }
    }

    /// True once a write failed because the reader closed the pipe: the consumer is done, stop
    /// producing records and exit normally.
    pub fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn broken_pipe_error(&self) -> Error {
        Error::Output {
            path: self.target.clone(),
            reason: "the reader closed the pipe (broken pipe); nothing more can be written, \
                     stop the stream"
                .into(),
        }
    }
}

/// The node's `json` output: each frame's record as one line. A reader that closed the pipe ends
/// the run ([`Flow::Stop`]) instead of counting as a failure.
impl Sink for JsonLinesSink {
    fn name(&self) -> &str {
        "json"
    }

    fn publish(&mut self, frame: &FrameOutput<'_>) -> Result<Flow> {
        match self.write_record(frame.json) {
            Ok(()) => Ok(Flow::Continue),
            Err(_) if self.is_broken_pipe() => Ok(Flow::Stop("JSON reader went away".into())),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh path `name` in a folder of its own, removed when the folder is dropped.
    fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = crate::scratch::dir("jsonl");
        let path = dir.path().join(name);
        (dir, path)
    }

    #[test]
    fn writes_one_line_per_record_visible_before_drop() {
        let (_scratch, path) = temp_path("lines.jsonl");
        let mut sink = JsonLinesSink::file(&path, false).unwrap();
        sink.write_record(r#"{"frame":1}"#).unwrap();
        // Flushed per record: a tailing reader sees the line while the sink is still open.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"frame\":1}\n");
        sink.write_record(r#"{"frame":2,"s":"a b"}"#).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, [r#"{"frame":1}"#, r#"{"frame":2,"s":"a b"}"#]);
        for line in lines {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert_eq!(sink.written(), 2);
        assert!(!sink.is_broken_pipe());
    }

    #[test]
    fn append_keeps_and_truncate_replaces() {
        let (_scratch, path) = temp_path("append.jsonl");
        std::fs::write(&path, "{\"old\":true}\n").unwrap();
        JsonLinesSink::file(&path, true)
            .unwrap()
            .write_record("{\"new\":1}")
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"old\":true}\n{\"new\":1}\n"
        );
        JsonLinesSink::file(&path, false)
            .unwrap()
            .write_record("{\"new\":2}")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"new\":2}\n");
    }

    #[test]
    fn missing_folder_is_named_not_created() {
        let (_scratch, dir) = temp_path("no-such-dir");
        let path = dir.join("out.jsonl");
        let err = JsonLinesSink::file(&path, true).err().unwrap().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(!dir.exists());
    }

    #[test]
    fn record_with_line_break_is_refused() {
        let (_scratch, path) = temp_path("newline.jsonl");
        let mut sink = JsonLinesSink::file(&path, false).unwrap();
        assert!(sink.write_record("{\n\"a\":1}").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        assert!(!sink.is_broken_pipe());
    }

    /// A real pipe whose reader is gone: the write fails with EPIPE and the sink says so.
    #[cfg(target_os = "linux")]
    #[test]
    fn closed_pipe_is_recognised_as_broken_pipe() {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // libc::pipe rather than std::io::pipe, which is newer than the crate's MSRV (1.85).
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are fresh from pipe(2) and owned only here.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let fd_path = PathBuf::from(format!("/dev/fd/{}", writer.as_raw_fd()));
        let mut sink = JsonLinesSink::file(&fd_path, true).unwrap();
        drop(writer);
        drop(reader);
        let err = sink.write_record("{\"a\":1}").unwrap_err();
        assert!(sink.is_broken_pipe());
        assert!(err.to_string().contains("broken pipe"), "{err}");
        // Later writes fail the same way without touching the pipe again.
        assert!(sink.write_record("{\"a\":2}").is_err());
        assert!(sink.is_broken_pipe());
        assert_eq!(sink.written(), 0);
    }
}
