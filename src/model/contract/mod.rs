//! The model contract: what hgpose must feed a model and where it reads the heatmaps. It is
//! resolved from the graph's shapes and the optional sidecar; anything neither states is assumed,
//! and every assumption is recorded so `hgpose info` can say it out loud.

use serde::Serialize;
use std::path::{Path, PathBuf};

use super::sidecar::{ChannelOrder, Layout, NormalizeKind, OutputKind, Sidecar};
use super::JointSet;
use crate::error::{Error, Result};

/// Default network input side when neither graph nor sidecar fixes it (the paper's 256).
pub const DEFAULT_INPUT_SIDE: usize = 256;

/// How to turn 8-bit pixels into input values: `value = pixel * scale[c] + offset[c]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    Raw,
    Unit,
    Symmetric,
    MeanStd { mean: [f32; 3], std: [f32; 3] },
}

impl Normalization {
    /// Per-channel `(scale, offset)` so the inner loop is one multiply-add.
    pub fn scale_offset(&self) -> ([f32; 3], [f32; 3]) {
        match *self {
            Normalization::Raw => ([1.0; 3], [0.0; 3]),
            Normalization::Unit => ([1.0 / 255.0; 3], [0.0; 3]),
            Normalization::Symmetric => ([1.0 / 127.5; 3], [-1.0; 3]),
            Normalization::MeanStd { mean, std } => {
                let scale = [0, 1, 2].map(|c| 1.0 / (255.0 * std[c]));
                let offset = [0, 1, 2].map(|c| -mean[c] / std[c]);
                (scale, offset)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    pub name: String,
    pub height: usize,
    pub width: usize,
    pub layout: Layout,
    pub channels: ChannelOrder,
    pub normalization: Normalization,
}

impl InputSpec {
    /// The concrete input shape hgpose feeds (batch 1).
    pub fn shape(&self) -> [usize; 4] {
        match self.layout {
            Layout::NCHW => [1, 3, self.height, self.width],
            Layout::NHWC => [1, self.height, self.width, 3],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputSpec {
    pub kind: OutputKind,
    /// Graph outputs that carry heatmaps, in graph order (one per stack, or the stacked one).
    pub heatmap_outputs: Vec<String>,
    /// Index into the graph's outputs of the tensor to read.
    pub graph_output: usize,
    pub stacks: usize,
    /// 0-based stack that is read.
    pub stack: usize,
    pub layout: Layout,
    pub joints: usize,
    pub height: usize,
    pub width: usize,
}

impl OutputSpec {
    /// Input pixels per heatmap pixel (4 for the paper's network).
    pub fn stride(&self, input: &InputSpec) -> f32 {
        input.width as f32 / self.width as f32
    }
}

/// Everything hgpose needs to know to use a model, and what it had to assume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contract {
    pub input: InputSpec,
    pub output: OutputSpec,
    pub joints: JointSet,
    pub sidecar: Option<PathBuf>,
    pub assumptions: Vec<String>,
}

/// One graph output as the resolver sees it.
#[derive(Debug, Clone)]
pub struct GraphOutput {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Resolves the input side from the graph's declared input shape (`None` for symbolic dims).
pub fn resolve_input(
    model: &Path,
    name: &str,
    graph_shape: &[Option<usize>],
    sidecar: Option<(&Path, &Sidecar)>,
    assumptions: &mut Vec<String>,
) -> Result<InputSpec> {
    let shown = show_dims(graph_shape);
    if graph_shape.len() != 4 {
        return Err(Error::model(
            model,
            format!(
                "input {name:?} has shape {shown}; hgpose needs a 4-D image tensor (NCHW or NHWC)"
            ),
        ));
    }
    if let Some(batch) = graph_shape[0] {
        if batch != 1 {
            return Err(Error::model(model, format!("input {name:?} has a fixed batch of {batch}; export it with batch 1 or a dynamic batch")));
        }
    }
    let side = sidecar.map(|(_, s)| &s.input);
    let contradiction = |key: &str, why: String| {
        let path = sidecar.map(|(p, _)| p.to_path_buf()).unwrap_or_default();
        Error::contract(path, format!("`{key}` contradicts the graph: {why}"))
    };

    let graph_layout = match (graph_shape[1], graph_shape[3]) {
        (Some(3), Some(3)) | (None, None) => None,
        (Some(3), _) => Some(Layout::NCHW),
        (_, Some(3)) => Some(Layout::NHWC),
        (None, _) => Some(Layout::NCHW),
        (_, None) => Some(Layout::NHWC),
        _ => {
            return Err(Error::model(
                model,
                format!("input {name:?} has shape {shown}: no axis of 3 colour channels at position 1 (NCHW) or 3 (NHWC)"),
            ))
        }
    };
    let layout = match (side.and_then(|s| s.layout), graph_layout) {
        (Some(l), Some(g)) if l != g => {
            return Err(contradiction(
                "input.layout",
                format!("it says {l:?} but input {name:?} {shown} is {g:?}"),
            ))
        }
        (Some(l), _) => l,
        (None, Some(g)) => g,
        (None, None) => {
            assumptions.push(format!(
                "input layout of {shown} is ambiguous: assumed NCHW"
            ));
            Layout::NCHW
        }
    };
    let (gh, gw) = match layout {
        Layout::NCHW => (graph_shape[2], graph_shape[3]),
        Layout::NHWC => (graph_shape[1], graph_shape[2]),
    };
    let (height, width) = match (side.and_then(|s| s.size), gh, gw) {
        (Some([h, w]), Some(gh), Some(gw)) if (h, w) != (gh, gw) => {
            return Err(contradiction(
                "input.size",
                format!("it says [{h}, {w}] but input {name:?} {shown} is {gh}x{gw}"),
            ))
        }
        (Some([h, w]), _, _) => (h, w),
        (None, Some(h), Some(w)) => (h, w),
        (None, h, w) => {
            let (h, w) = (
                h.unwrap_or(DEFAULT_INPUT_SIDE),
                w.unwrap_or(DEFAULT_INPUT_SIDE),
            );
            assumptions.push(format!("input size is not fixed in the graph ({shown}): assumed {h}x{w}; set `input.size` in the sidecar"));
            (h, w)
        }
    };
    let channels = side.and_then(|s| s.channels).unwrap_or_else(|| {
        assumptions.push("channel order assumed RGB; set `input.channels` in the sidecar".into());
        ChannelOrder::RGB
    });
    let normalization = match side.and_then(|s| s.normalize) {
        Some(NormalizeKind::Raw) => Normalization::Raw,
        Some(NormalizeKind::Unit) => Normalization::Unit,
        Some(NormalizeKind::Symmetric) => Normalization::Symmetric,
        Some(NormalizeKind::MeanStd) => {
            let s = side.expect("normalize came from the sidecar");
            Normalization::MeanStd {
                mean: s.mean.unwrap_or_default(),
                std: s.std.unwrap_or([1.0; 3]),
            }
        }
        None => {
            assumptions.push("input normalization assumed [0, 1] (pixel / 255); set `input.normalize` in the sidecar".into());
            Normalization::Unit
        }
    };
    Ok(InputSpec {
        name: name.to_string(),
        height,
        width,
        layout,
        channels,
        normalization,
    })
}

/// `(joints, height, width)` when `dims` (after the batch and, if stacked, the stack axis) look
/// like heatmaps for `input` in `layout`: the spatial grid is the input divided by one integer stride.
fn heatmap_dims(
    dims: &[usize],
    layout: Layout,
    input: &InputSpec,
) -> Option<(usize, usize, usize)> {
    let (j, h, w) = match (layout, dims) {
        (Layout::NCHW, [j, h, w]) => (*j, *h, *w),
        (Layout::NHWC, [h, w, j]) => (*j, *h, *w),
        _ => return None,
    };
    let fits = j >= 1
        && h >= 4
        && w >= 4
        && input.height.is_multiple_of(h)
        && input.width.is_multiple_of(w)
        && input.height / h == input.width / w
        && input.height / h <= 16;
    fits.then_some((j, h, w))
}

/// A graph output read as heatmaps: kind, layout, and `(J, H, W)`.
type Candidate = (OutputKind, Layout, (usize, usize, usize), Option<usize>);

fn candidate(
    out: &GraphOutput,
    layout_hint: Option<Layout>,
    input: &InputSpec,
    joints_hint: Option<usize>,
) -> Option<Candidate> {
    let (kind, stacks, rest) = match out.shape.as_slice() {
        [1, s, rest @ ..] if rest.len() == 3 => (OutputKind::Stacked, Some(*s), rest),
        [1, rest @ ..] if rest.len() == 3 => (OutputKind::PerStack, None, rest),
        _ => return None,
    };
    let layouts: &[Layout] = match layout_hint {
        Some(Layout::NCHW) => &[Layout::NCHW],
        Some(Layout::NHWC) => &[Layout::NHWC],
        None => &[Layout::NCHW, Layout::NHWC],
    };
    let fits: Vec<_> = layouts
        .iter()
        .filter_map(|&l| heatmap_dims(rest, l, input).map(|d| (l, d)))
        .collect();
    let chosen = fits
        .iter()
        .find(|(_, (j, _, _))| Some(*j) == joints_hint)
        .or_else(|| fits.first())?;
    Some((kind, chosen.0, chosen.1, stacks))
}

/// Resolves which output to read and the joint set, from the typed graph's output shapes.
pub fn resolve_output(
    model: &Path,
    outputs: &[GraphOutput],
    input: &InputSpec,
    sidecar: Option<(&Path, &Sidecar)>,
    assumptions: &mut Vec<String>,
) -> Result<(OutputSpec, JointSet)> {
    let side = sidecar.map(|(_, s)| s);
    let sidecar_path = sidecar.map(|(p, _)| p.to_path_buf()).unwrap_or_default();
    let contradiction = |key: &str, why: String| {
        Error::contract(
            &sidecar_path,
            format!("`{key}` contradicts the graph: {why}"),
        )
    };
    let listing = || {
        outputs
            .iter()
            .map(|o| format!("{} {:?}", o.name, o.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sidecar_joints = side.and_then(|s| s.joint_set());
    let joints_hint = sidecar_joints.as_ref().map(|j| j.len()).or(Some(16));
    let layout_hint = side.and_then(|s| s.output.layout);

    let mut candidates: Vec<(usize, Candidate)> = outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            side.and_then(|s| s.output.name.as_ref())
                .is_none_or(|n| *n == o.name)
        })
        .filter_map(|(i, o)| candidate(o, layout_hint, input, joints_hint).map(|c| (i, c)))
        .collect();
    if candidates.is_empty() {
        return Err(Error::model(
            model,
            format!(
                "no output is heatmap-shaped for a {}x{} input: outputs are {}. hgpose reads [1, J, H, W] per stack or [1, S, J, H, W] (or NHWC), with H, W the input divided by a stride",
                input.height, input.width, listing()
            ),
        ));
    }
    let kind = match side.and_then(|s| s.output.kind) {
        Some(kind) => {
            if !candidates.iter().any(|(_, c)| c.0 == kind) {
                return Err(contradiction(
                    "output.kind",
                    format!("it says {kind:?} but the outputs are {}", listing()),
                ));
            }
            kind
        }
        None if candidates.iter().any(|(_, c)| c.0 == OutputKind::Stacked) => OutputKind::Stacked,
        None => OutputKind::PerStack,
    };
    candidates.retain(|(_, c)| c.0 == kind);
    if kind == OutputKind::Stacked && candidates.len() > 1 {
        return Err(Error::model(
            model,
            format!(
                "several stacked heatmap outputs ({}); name one with `output.name` in the sidecar",
                listing()
            ),
        ));
    }
    let (_, first) = candidates[0];
    let (layout, (joints, height, width)) = (first.1, first.2);
    if let Some((i, _)) = candidates
        .iter()
        .find(|(_, c)| c.2 != first.2 || c.1 != layout)
    {
        return Err(Error::model(model, format!("per-stack outputs disagree in shape ({} vs {:?}); hgpose needs every stack's heatmaps alike", outputs[*i].name, outputs[candidates[0].0].shape)));
    }
    let stacks = match kind {
        OutputKind::Stacked => first.3.unwrap_or(1),
        OutputKind::PerStack => candidates.len(),
    };
    let wanted = side.and_then(|s| s.output.stack).unwrap_or(-1);
    let stack = if wanted < 0 {
        stacks as i64 + wanted
    } else {
        wanted
    };
    if stack < 0 || stack >= stacks as i64 {
        return Err(contradiction(
            "output.stack",
            format!("stack {wanted} does not exist: the model has {stacks} stack(s)"),
        ));
    }
    let stack = stack as usize;
    let graph_output = match kind {
        OutputKind::Stacked => candidates[0].0,
        OutputKind::PerStack => candidates[stack].0,
    };
    let heatmap_outputs: Vec<String> = candidates
        .iter()
        .map(|(i, _)| outputs[*i].name.clone())
        .collect();

    if side.and_then(|s| s.output.kind).is_none() {
        let what = match kind {
            OutputKind::Stacked => format!(
                "one stacked output {} with {stacks} stack(s)",
                outputs[graph_output].name
            ),
            OutputKind::PerStack => format!("{stacks} per-stack output(s)"),
        };
        let which = if side.and_then(|s| s.output.stack).is_none() {
            ", reading the last stack"
        } else {
            ""
        };
        assumptions.push(format!(
            "heatmaps inferred from the graph: {what}, {layout:?}{which}"
        ));
    }
    for (i, o) in outputs.iter().enumerate() {
        if !candidates.iter().any(|(c, _)| *c == i) {
            assumptions.push(format!("output {} {:?} is not read", o.name, o.shape));
        }
    }
    let joint_set = match sidecar_joints {
        Some(set) if set.len() != joints => {
            return Err(contradiction(
                "joints",
                format!(
                    "it names {} joints but the heatmaps have {joints} channels",
                    set.len()
                ),
            ))
        }
        Some(set) => set,
        None if joints == 16 => {
            assumptions.push("16 heatmap channels: assumed the MPII-16 joint order".into());
            JointSet::mpii16()
        }
        None => {
            assumptions.push(format!("{joints} heatmap channels and no joint names: joints are unnamed and no skeleton is drawn"));
            JointSet::unnamed(joints)
        }
    };
    let spec = OutputSpec {
        kind,
        heatmap_outputs,
        graph_output,
        stacks,
        stack,
        layout,
        joints,
        height,
        width,
    };
    Ok((spec, joint_set))
}

fn show_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// A pose network takes one image: refuse a graph with another number of inputs.
pub(crate) fn check_one_input(path: &Path, inputs: usize) -> Result<()> {
    if inputs == 1 {
        return Ok(());
    }
    Err(Error::model(
        path,
        format!("the graph has {inputs} inputs; a pose network takes one image"),
    ))
}

#[cfg(test)]
mod tests;
