//! Board profiles (board/*.toml): everything a node needs to run all day, in one file.
//!
//! Parsing goes through `serde_path_to_error`, so a typo or a wrong type is reported with the
//! full key (`display.device`, `rules[1].when.zone`), and every table rejects unknown keys: a
//! misspelt setting is an error, not a silently ignored line. After parsing, [`BoardConfig::validate`]
//! checks the values that types cannot (ranges, joint names, rule names), again naming the key.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::capture::camera::CameraConfig;
use crate::capture::trigger::TriggerConfig;
use crate::capture::SourceKind;
use crate::error::{Error, Result};
use crate::model::Precision;
use crate::outputs::display::spi_panel::SpiPanelConfig;
use crate::outputs::rules::RuleConfig;
use crate::outputs::stream::http::HttpOptions;
use crate::pose::smoothing::OneEuroParams;
use crate::pose::tracking::TrackerParams;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    #[serde(default)]
    pub board: BoardInfo,
    pub source: SourceConfig,
    #[serde(default)]
    pub model: ModelConfig,
    /// The crop follows the person (`enabled = false`: always the whole frame).
    #[serde(default)]
    pub tracking: TrackerParams,
    /// One-Euro filter on keypoints (`enabled = false`: raw keypoints).
    #[serde(default)]
    pub smoothing: OneEuroParams,
    #[serde(default)]
    pub display: DisplayConfig,
    #[serde(default)]
    pub gpio: GpioConfig,
    pub trigger: Option<TriggerConfig>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub outputs: OutputsConfig,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BoardInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub notes: String,
}

/// The most inference threads a board file or the command line may ask for (0 = every core).
pub const MAX_THREADS: usize = 256;

/// Where frames come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// A V4L2 camera (USB webcams; Pi CSI cameras through libcamera's V4L2 compatibility).
    Camera(CameraConfig),
    /// One image file, or a folder of image files in name order.
    Files {
        path: PathBuf,
        #[serde(default, rename = "loop")]
        looping: bool,
        fps: Option<f32>,
    },
    /// A video file, decoded by ffmpeg.
    Video {
        path: PathBuf,
        #[serde(default, rename = "loop")]
        looping: bool,
    },
    /// Concatenated JPEGs from a pipe or FIFO (`rpicam-vid --codec mjpeg -o -`); path "-" is stdin.
    Mjpeg { path: PathBuf },
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Camera(CameraConfig::default())
    }
}

impl SourceConfig {
    /// This source, started again at its end (`run --loop` without `--source`): files, folders
    /// and videos loop; a camera or a pipe has no end to start again from.
    pub fn looping(self) -> std::result::Result<SourceConfig, String> {
        match self {
            SourceConfig::Files { path, fps, .. } => Ok(SourceConfig::Files {
                path,
                looping: true,
                fps,
            }),
            SourceConfig::Video { path, .. } => Ok(SourceConfig::Video {
                path,
                looping: true,
            }),
            SourceConfig::Camera(_) => Err("a camera has no end to start again from".into()),
            SourceConfig::Mjpeg { .. } => {
                Err("an MJPEG pipe has no end to start again from".into())
            }
        }
    }

    /// The source a path names (`--source`), in place of `current`: a camera device keeps
    /// `current`'s camera settings, so the board's size and format still apply.
    pub fn from_path(path: PathBuf, looping: bool, current: &SourceConfig) -> SourceConfig {
        match SourceKind::of_path(&path) {
            SourceKind::Stdin => SourceConfig::Mjpeg { path },
            SourceKind::Camera => {
                let mut camera = match current {
                    SourceConfig::Camera(c) => c.clone(),
                    _ => CameraConfig::default(),
                };
                camera.device = path;
                SourceConfig::Camera(camera)
            }
            SourceKind::Video => SourceConfig::Video { path, looping },
            SourceKind::Images => SourceConfig::Files {
                path,
                looping,
                fps: None,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Absent: $HGPOSE_MODEL, ./models/default, /usr/share/hgpose/models/default.
    pub path: Option<PathBuf>,
    pub sidecar: Option<PathBuf>,
    pub precision: Precision,
    /// Cores for one inference; 0 = every core.
    pub threads: usize,
    pub flip_test: bool,
    pub margin: f32,
    /// Joints below this are not drawn and do not count as seen.
    pub min_confidence: f32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: None,
            sidecar: None,
            precision: Precision::Auto,
            threads: 0,
            flip_test: false,
            margin: 0.25,
            min_confidence: 0.1,
        }
    }
}

/// What the node draws on.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DisplayConfig {
    #[default]
    None,
    Framebuffer {
        #[serde(default = "default_fb")]
        device: PathBuf,
    },
    Spi(SpiPanelConfig),
    /// A DRM/KMS card driven directly (dumb buffer), for boards without fbdev.
    Drm {
        #[serde(default = "default_card")]
        device: PathBuf,
        /// e.g. "HDMI-A-1"; the first connected one when unset.
        connector: Option<String>,
    },
    /// Writes the latest view to a PNG file every `every` frames (snapshots, tests).
    Png {
        path: PathBuf,
        #[serde(default = "default_png_every")]
        every: u64,
        #[serde(default = "default_png_size")]
        width: u32,
        #[serde(default = "default_png_size_h")]
        height: u32,
    },
}

fn default_fb() -> PathBuf {
    PathBuf::from("/dev/fb0")
}
fn default_card() -> PathBuf {
    PathBuf::from("/dev/dri/card0")
}
fn default_png_every() -> u64 {
    1
}
fn default_png_size() -> u32 {
    640
}
fn default_png_size_h() -> u32 {
    480
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpioConfig {
    /// The chip rules and the trigger use unless they name their own.
    pub chip: String,
}

impl Default for GpioConfig {
    fn default() -> Self {
        GpioConfig {
            chip: "/dev/gpiochip0".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsConfig {
    /// "stdout", "none", or a file path (appended).
    pub json: String,
    /// host:port to send one UDP datagram per frame to.
    pub udp: Option<String>,
    /// Address for the HTTP endpoint, e.g. "0.0.0.0:8080".
    pub http: Option<String>,
    pub http_options: HttpOptions,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        OutputsConfig {
            json: "stdout".into(),
            udp: None,
            http: None,
            http_options: HttpOptions::default(),
        }
    }
}

/// Builds a config error for `key` in `path`.
fn config_error(path: &Path, key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        key: key.into(),
        reason: reason.into(),
    }
}

impl BoardConfig {
    /// Reads and validates a board file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(
                path,
                "(file)",
                format!("cannot read it ({e}); board profiles live in board/ or /usr/share/hgpose/board/"),
            )
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (named `path` in errors) and validates it.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let deserializer = toml::Deserializer::new(text);
        let config: BoardConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                "(top level)".into()
            } else {
                key
            };
            // toml's message carries the line and a caret; keep only its first line.
            let reason = e.inner().message().lines().next().unwrap_or("").to_string();
            let at = e
                .inner()
                .span()
                .map(|s| format!(" (line {})", text[..s.start].lines().count().max(1)))
                .unwrap_or_default();
            config_error(path, key, format!("{reason}{at}"))
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values types cannot: ranges, names, combinations.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let m = &self.model;
        crate::preprocess::check_margin(m.margin)
            .map_err(|e| config_error(path, "model.margin", e.to_string()))?;
        if !(0.0..=1.0).contains(&m.min_confidence) {
            return Err(config_error(
                path,
                "model.min_confidence",
                format!("{} must be between 0 and 1", m.min_confidence),
            ));
        }
        if m.threads > MAX_THREADS {
            return Err(config_error(
                path,
                "model.threads",
                format!(
                    "{} threads is not plausible; use 0 for every core",
                    m.threads
                ),
            ));
        }
        // Their messages start with the field's name.
        let field = |table: &str, e: &str| {
            let name = e.split_whitespace().next().unwrap_or("");
            format!("{table}.{name}")
        };
        self.tracking
            .validate()
            .map_err(|e| config_error(path, field("tracking", &e), e))?;
        self.smoothing
            .validate()
            .map_err(|e| config_error(path, field("smoothing", &e), e))?;
        match &self.source {
            SourceConfig::Camera(c) => c
                .validate()
                .map_err(|e| config_error(path, "source", e.to_string()))?,
            SourceConfig::Files { fps: Some(f), .. } if f.is_nan() || *f <= 0.0 => {
                return Err(config_error(path, "source.fps", "must be positive"))
            }
            _ => {}
        }
        if let DisplayConfig::Png {
            every,
            width,
            height,
            ..
        } = &self.display
        {
            if *every == 0 || *width == 0 || *height == 0 {
                return Err(config_error(
                    path,
                    "display",
                    "png every, width and height must be positive",
                ));
            }
        }
        if let Some(addr) = &self.outputs.udp {
            check_socket_address(addr).map_err(|e| config_error(path, "outputs.udp", e))?;
        }
        if let Some(addr) = &self.outputs.http {
            check_socket_address(addr).map_err(|e| config_error(path, "outputs.http", e))?;
        }
        let joints = crate::model::JointSet::mpii16().names;
        crate::outputs::rules::validate_rules(&self.rules, &joints)
            .map_err(|e| e.into_error(path))?;
        Ok(())
    }
}

/// `host:port` with a numeric port (the host may be a name, resolved when the output starts).
fn check_socket_address(addr: &str) -> std::result::Result<(), String> {
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "{addr:?} is not host:port (e.g. 192.168.1.10:9000)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BoardConfig> {
        BoardConfig::parse(text, Path::new("test.toml"))
    }

    fn key_of(err: Error) -> String {
        match err {
            Error::Config { key, .. } => key,
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn a_minimal_file_source_board_parses_with_defaults() {
        let c = parse("[source]\nkind = \"files\"\npath = \"frames\"\nloop = true\n").unwrap();
        match c.source {
            SourceConfig::Files { looping, .. } => assert!(looping),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.model.precision, Precision::Auto);
        assert_eq!(c.outputs.json, "stdout");
    }

    #[test]
    fn a_camera_path_keeps_the_boards_camera_settings() {
        let board = parse("[source]\nkind = \"camera\"\nwidth = 320\nheight = 240\n").unwrap();
        match SourceConfig::from_path("/dev/video2".into(), false, &board.source) {
            SourceConfig::Camera(c) => {
                assert_eq!(c.device, Path::new("/dev/video2"));
                assert_eq!((c.width, c.height), (320, 240));
            }
            other => panic!("{other:?}"),
        }
        match SourceConfig::from_path("clip.mp4".into(), true, &board.source) {
            SourceConfig::Video { looping, .. } => assert!(looping),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_table() {
        let err = parse("[source]\nkind = \"files\"\npath = \"x\"\n[display]\nkind = \"framebuffer\"\ndevcie = \"/dev/fb1\"\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("display"), "{text}");
        assert!(text.contains("devcie"), "{text}");
    }

    #[test]
    fn wrong_types_are_named_with_the_full_key() {
        let err = parse("[source]\nkind = \"files\"\npath = \"x\"\n[model]\nthreads = \"four\"\n")
            .unwrap_err();
        assert_eq!(key_of(err), "model.threads");
    }

    #[test]
    fn an_unknown_source_kind_is_an_error() {
        let err = parse("[source]\nkind = \"webcam\"\n").unwrap_err();
        assert!(err.to_string().contains("webcam"), "{err}");
    }

    #[test]
    fn values_out_of_range_name_their_key() {
        let base = "[source]\nkind = \"files\"\npath = \"x\"\n";
        let err = parse(&format!("{base}[model]\nmin_confidence = 1.5\n")).unwrap_err();
        assert_eq!(key_of(err), "model.min_confidence");
        let err = parse(&format!("{base}[outputs]\nudp = \"localhost\"\n")).unwrap_err();
        assert_eq!(key_of(err), "outputs.udp");
        let err = parse(&format!("{base}[model]\nmargin = -3.0\n")).unwrap_err();
        assert_eq!(key_of(err), "model.margin");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = BoardConfig::load(Path::new("/nonexistent/board.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/board.toml"));
    }

    #[test]
    fn every_bundled_board_profile_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                BoardConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 5, "expected the five board profiles, found {seen}");
    }
}
