//! The TOML sidecar that sits next to a model (`model.onnx` -> `model.toml`, `model.nnef.tgz` ->
//! `model.nnef.toml`) and states what the graph alone cannot: normalization, channel order, joint
//! names. Every field is optional; what is absent is inferred from the graph or assumed (and the
//! assumption is reported). `hgpose export` writes one with every field stated.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    #[serde(default)]
    pub input: InputSection,
    #[serde(default)]
    pub output: OutputSection,
    #[serde(default)]
    pub joints: JointsSection,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    /// `[height, width]` of the network input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<[usize; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<ChannelOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<NormalizeKind>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "short_floats"
    )]
    pub mean: Option<[f32; 3]>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "short_floats"
    )]
    pub std: Option<[f32; 3]>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<OutputKind>,
    /// Which stack to read: 0-based, negative counts from the last (-1 = last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<i64>,
    /// Layout of the heatmaps themselves (`NCHW`: joints before rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// Output name to read when the graph has several non-stack outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JointsSection {
    /// A known set (`mpii16`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// Custom joint names, in channel order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<[usize; 2]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flip_pairs: Option<Vec<[usize; 2]>>,
}

/// Memory layout of a 4-D tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Layout {
    #[serde(alias = "nchw")]
    NCHW,
    #[serde(alias = "nhwc")]
    NHWC,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum ChannelOrder {
    #[serde(alias = "rgb")]
    RGB,
    #[serde(alias = "bgr")]
    BGR,
}

/// How 8-bit pixel values become network input values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NormalizeKind {
    /// x (0..255 as is)
    Raw,
    /// x / 255 (the PyTorch hourglass releases)
    Unit,
    /// x / 127.5 - 1
    Symmetric,
    /// (x / 255 - mean) / std
    MeanStd,
}

/// How the graph exposes its per-stack heatmaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// One output per stack, each `[N, J, H, W]` (or NHWC).
    PerStack,
    /// One output `[N, S, J, H, W]` (or `[N, S, H, W, J]`).
    Stacked,
}

impl Sidecar {
    /// Parses sidecar text; `path` is only used to name the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let sidecar: Sidecar = toml::from_str(text).map_err(|e| {
            Error::contract(
                path,
                format!("{}. Fix the TOML or remove the file.", e.to_string().trim()),
            )
        })?;
        sidecar.check(path)?;
        Ok(sidecar)
    }

    /// Reads and parses a sidecar file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::contract(path, format!("cannot read it: {e}")))?;
        Self::parse(&text, path)
    }

    /// Where the sidecar of `model` is looked for when none is named: only the last extension is
    /// replaced, so `m.onnx` -> `m.toml` and `m.nnef.tgz` -> `m.nnef.toml` (loader and writer agree).
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("toml")
    }

    /// The sidecar as TOML text ([`Sidecar::parse`] reads it back to an equal value).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| Error::InvalidArgument(format!("cannot write the sidecar as TOML: {e}")))
    }

    /// Checks the fields that must agree with each other, naming the key at fault.
    fn check(&self, path: &Path) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::contract(path, format!("`{key}`: {why}")));
        if let Some([h, w]) = self.input.size {
            if h == 0 || w == 0 {
                return bad("input.size", format!("[{h}, {w}] has a zero side"));
            }
        }
        let has_stats = self.input.mean.is_some() || self.input.std.is_some();
        match self.input.normalize {
            Some(NormalizeKind::MeanStd)
                if self.input.mean.is_none() || self.input.std.is_none() =>
            {
                return bad(
                    "input.normalize",
                    "\"mean_std\" needs both `input.mean` and `input.std`".into(),
                );
            }
            Some(NormalizeKind::MeanStd) => {}
            _ if has_stats => {
                return bad(
                    "input.mean",
                    "mean/std are given but `input.normalize` is not \"mean_std\"".into(),
                );
            }
            _ => {}
        }
        if let Some(std) = self.input.std {
            if std.iter().any(|s| *s <= 0.0 || !s.is_finite()) {
                return bad("input.std", format!("{std:?} must be positive"));
            }
        }
        if let Some(mean) = self.input.mean {
            if mean.iter().any(|m| !m.is_finite()) {
                return bad("input.mean", format!("{mean:?} must be finite numbers"));
            }
        }
        if let Some(set) = &self.joints.set {
            if crate::model::JointSet::by_id(set).is_none() {
                return bad(
                    "joints.set",
                    format!("unknown set {set:?}; known: \"mpii16\""),
                );
            }
            if self.joints.names.is_some() {
                return bad(
                    "joints.names",
                    "give either `joints.set` or `joints.names`, not both".into(),
                );
            }
        }
        if let Some(joints) = self.joint_set() {
            if let Err(why) = joints.validate() {
                return bad("joints", why);
            }
        }
        Ok(())
    }

    /// The joint set the sidecar names, if it names one.
    pub fn joint_set(&self) -> Option<crate::model::JointSet> {
        let mut set = if let Some(id) = &self.joints.set {
            crate::model::JointSet::by_id(id)?
        } else {
            let names = self.joints.names.clone()?;
            let mut set = crate::model::JointSet::unnamed(names.len());
            set.names = names;
            set
        };
        if let Some(edges) = &self.joints.edges {
            set.edges = edges.iter().map(|[a, b]| (*a, *b)).collect();
        }
        if let Some(pairs) = &self.joints.flip_pairs {
            set.flip_pairs = pairs.iter().map(|[a, b]| (*a, *b)).collect();
        }
        Some(set)
    }
}

/// Writes `[f32; 3]` with the shortest decimals that read back to the same f32 (`0.485`, not the
/// f64 widening `0.48500001430511475`).
fn short_floats<S: serde::Serializer>(v: &Option<[f32; 3]>, s: S) -> Result<S::Ok, S::Error> {
    let short = v.map(|a| a.map(|x| x.to_string().parse::<f64>().unwrap_or(x as f64)));
    short.serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Sidecar> {
        Sidecar::parse(text, Path::new("m.toml"))
    }

    #[test]
    fn parses_a_full_sidecar() {
        let s = parse(
            r#"
            [input]
            size = [256, 192]
            layout = "NHWC"
            channels = "BGR"
            normalize = "mean_std"
            mean = [0.5, 0.5, 0.5]
            std = [0.25, 0.25, 0.25]
            [output]
            kind = "stacked"
            stack = -1
            [joints]
            set = "mpii16"
            "#,
        )
        .unwrap();
        assert_eq!(s.input.size, Some([256, 192]));
        assert_eq!(s.input.layout, Some(Layout::NHWC));
        assert_eq!(s.output.kind, Some(OutputKind::Stacked));
        assert_eq!(s.joint_set().unwrap().len(), 16);
    }

    #[test]
    fn empty_sidecar_is_allowed() {
        assert_eq!(parse("").unwrap(), Sidecar::default());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[input]\nnormalize = \"mean_std\"\n", "input.normalize"),
            ("[input]\nmean = [0.1, 0.1, 0.1]\n", "input.mean"),
            ("[input]\nsize = [0, 256]\n", "input.size"),
            (
                "[input]\nnormalize = \"mean_std\"\nmean = [nan, 0.5, 0.5]\nstd = [1.0, 1.0, 1.0]\n",
                "input.mean",
            ),
            (
                "[input]\nnormalize = \"mean_std\"\nmean = [0.5, 0.5, 0.5]\nstd = [1.0, inf, 1.0]\n",
                "input.std",
            ),
            ("[joints]\nset = \"coco99\"\n", "joints.set"),
            (
                "[joints]\nnames = [\"a\", \"b\"]\nedges = [[0, 2]]\n",
                "joints",
            ),
            ("[input]\nlayout = \"HWC\"\n", "layout"),
            ("[inputs]\nsize = [1, 1]\n", "inputs"),
        ];
        for (text, key) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
            assert!(err.contains("m.toml"), "{err}");
        }
    }

    #[test]
    fn sidecar_path_replaces_only_the_last_extension() {
        let path = |p: &str| Sidecar::path_for(Path::new(p));
        assert_eq!(path("m/a.onnx"), Path::new("m/a.toml"));
        assert_eq!(path("m/a.nnef.tgz"), Path::new("m/a.nnef.toml"));
        assert_eq!(path("m/a.nnef.tar"), Path::new("m/a.nnef.toml"));
    }

    #[test]
    fn custom_joints_with_edges() {
        let s = parse("[joints]\nnames = [\"nose\", \"tail\"]\nedges = [[0, 1]]\n").unwrap();
        let set = s.joint_set().unwrap();
        assert_eq!(set.names, vec!["nose", "tail"]);
        assert_eq!(set.edges, vec![(0, 1)]);
    }
}
