//! Writing the deployment artefact (`hgpose export`): the resolved network as a decluttered
//! NNEF tar with a sidecar that states the whole contract, so a board loads it without
//! assumptions; f16 weights halve what is shipped and stored.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tract_onnx::prelude::*;

use super::contract::{Contract, Normalization};
use super::nnef::{convert_floats, framework};
use super::sidecar::{
    InputSection, JointsSection, NormalizeKind, OutputKind, OutputSection, Sidecar,
};
use super::{JointSet, PoseModel};
use crate::error::{Error, Result};

/// How the artefact stores its weights (and computes, unless converted back at load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WeightStorage {
    F32,
    /// Half the size on disk; loaded for f32 it computes in f32 from f16-rounded weights.
    F16,
}

impl WeightStorage {
    pub fn name(self) -> &'static str {
        match self {
            WeightStorage::F32 => "f32",
            WeightStorage::F16 => "f16",
        }
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub path: PathBuf,
    /// Bytes of the artefact on disk.
    pub bytes: u64,
    pub gzip: bool,
    pub weights: WeightStorage,
    pub sidecar: PathBuf,
    /// The sidecar as written.
    pub sidecar_text: String,
    /// The contract the artefact resolves to with that sidecar (checked equal to the source's).
    pub contract: Contract,
}

/// The sidecar that states `contract` in full. `stack` is the stack to read in the artefact,
/// which differs from the source's for per-stack exports (only the read output is kept).
pub fn contract_sidecar(contract: &Contract, stack: usize) -> Sidecar {
    let i = &contract.input;
    let o = &contract.output;
    let (normalize, mean, std) = match i.normalization {
        Normalization::Raw => (NormalizeKind::Raw, None, None),
        Normalization::Unit => (NormalizeKind::Unit, None, None),
        Normalization::Symmetric => (NormalizeKind::Symmetric, None, None),
        Normalization::MeanStd { mean, std } => (NormalizeKind::MeanStd, Some(mean), Some(std)),
    };
    let joints = &contract.joints;
    let known = JointSet::by_id(&joints.id).filter(|k| k.names == joints.names);
    let joints = match known {
        Some(k) => JointsSection {
            set: Some(joints.id.clone()),
            names: None,
            edges: (k.edges != joints.edges).then(|| pairs(&joints.edges)),
            flip_pairs: (k.flip_pairs != joints.flip_pairs).then(|| pairs(&joints.flip_pairs)),
        },
        None => JointsSection {
            set: None,
            names: Some(joints.names.clone()),
            edges: Some(pairs(&joints.edges)),
            flip_pairs: Some(pairs(&joints.flip_pairs)),
        },
    };
    Sidecar {
        input: InputSection {
            size: Some([i.height, i.width]),
            layout: Some(i.layout),
            channels: Some(i.channels),
            normalize: Some(normalize),
            mean,
            std,
        },
        output: OutputSection {
            kind: Some(o.kind),
            stack: Some(stack as i64),
            layout: Some(o.layout),
            name: None,
        },
        joints,
    }
}

fn pairs(p: &[(usize, usize)]) -> Vec<[usize; 2]> {
    p.iter().map(|&(a, b)| [a, b]).collect()
}

/// Writes the typed, pruned `model` that [`PoseModel::resolve`] gave for `source` (with its
/// `contract`) as an NNEF artefact at `out` (`.nnef.tgz` gzip'd, `.nnef.tar` plain), with weights
/// in `weights`, and its sidecar beside it; then reloads both and checks they resolve to the same
/// contract with nothing assumed.
pub fn export(
    source: &Path,
    contract: &Contract,
    model: TypedModel,
    out: &Path,
    weights: WeightStorage,
) -> Result<Exported> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let compress = if name.ends_with(".nnef.tgz") {
        true
    } else if name.ends_with(".nnef.tar") {
        false
    } else {
        return Err(Error::Output {
            path: out.to_path_buf(),
            reason: "name the artefact NAME.nnef.tgz (gzip) or NAME.nnef.tar".into(),
        });
    };
    let sidecar = Sidecar::path_for(out);
    if contract.sidecar.as_deref() == Some(sidecar.as_path()) || out == source {
        return Err(Error::Output {
            path: out.to_path_buf(),
            reason: format!(
                "it would overwrite the source model or its sidecar {}; pick another name",
                sidecar.display()
            ),
        });
    }
    let failed = |what: &str, e: anyhow::Error| {
        Error::model_because(source, format!("cannot {what} for NNEF"), e)
    };
    let to = match weights {
        WeightStorage::F32 => DatumType::F32,
        WeightStorage::F16 => DatumType::F16,
    };
    let model = model
        .into_decluttered()
        .map_err(|e| failed("declutter it", e))?;
    // f32_to_f16 casts f32 constants; decluttering again folds the casts into f16 weights.
    let model = convert_floats(model, to)
        .and_then(|m| m.into_decluttered())
        .map_err(|e| failed(&format!("convert it to {to:?}"), e))?;
    let mut tar = Vec::new();
    framework()
        .write_to_tar_with_config(&model, &mut tar, false, true)
        .map_err(|e| failed("serialize it", e))?;
    let written = |path: &Path, e: std::io::Error| Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let bytes = if compress {
        gzip(&tar).map_err(|e| written(out, e))?
    } else {
        tar
    };
    std::fs::write(out, &bytes).map_err(|e| written(out, e))?;

    let stack = match contract.output.kind {
        OutputKind::Stacked => contract.output.stack,
        OutputKind::PerStack => 0,
    };
    let mut text = format!(
        "# hgpose model contract of {}, written by `hgpose export` from {} with {} weights.\n\
         # Every field is stated: loading the artefact assumes nothing.\n",
        file_name(out),
        file_name(source),
        weights.name(),
    );
    if contract.output.kind == OutputKind::PerStack {
        text += &format!(
            "# Per-stack outputs: only the one read (stack {} of {}) is kept, so it is stack 0 here.\n",
            contract.output.stack, contract.output.stacks
        );
    }
    text += &contract_sidecar(contract, stack).to_toml()?;
    std::fs::write(&sidecar, &text).map_err(|e| written(&sidecar, e))?;

    let (reloaded, _) = PoseModel::resolve(out, None)?;
    let (a, b) = (&contract.input, &reloaded.input);
    let same_input = (a.height, a.width, a.layout, a.channels, a.normalization)
        == (b.height, b.width, b.layout, b.channels, b.normalization);
    let (a, b) = (&contract.output, &reloaded.output);
    let same_output = (a.kind, a.layout, a.joints, a.height, a.width)
        == (b.kind, b.layout, b.joints, b.height, b.width)
        && b.stack == stack;
    if !same_input
        || !same_output
        || reloaded.joints != contract.joints
        || !reloaded.assumptions.is_empty()
    {
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(&sidecar);
        return Err(Error::model(
            out,
            format!(
                "the written artefact does not resolve to the source's contract (this is a bug): \
                 source {:?}, artefact {:?}, assumed {:?}",
                (&contract.input, &contract.output),
                (&reloaded.input, &reloaded.output),
                reloaded.assumptions
            ),
        ));
    }
    Ok(Exported {
        path: out.to_path_buf(),
        bytes: bytes.len() as u64,
        gzip: compress,
        weights,
        sidecar,
        sidecar_text: text,
        contract: reloaded,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// gzip of `data` (the tar of graph and weights).
fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::contract::{resolve_input, resolve_output, GraphOutput};
    use crate::model::is_nnef;
    use crate::model::{ChannelOrder, Layout};

    /// Resolves a contract from graph shapes and an optional sidecar text.
    fn resolve(
        input: &[Option<usize>],
        outputs: &[(&str, &[usize])],
        sidecar: Option<&str>,
    ) -> Contract {
        let side = sidecar.map(|t| Sidecar::parse(t, Path::new("m.toml")).unwrap());
        let side = side.as_ref().map(|s| (Path::new("m.toml"), s));
        let mut assumptions = Vec::new();
        let model = Path::new("m.nnef.tgz");
        let input = resolve_input(model, "input", input, side, &mut assumptions).unwrap();
        let outputs: Vec<GraphOutput> = outputs
            .iter()
            .map(|(n, s)| GraphOutput {
                name: n.to_string(),
                shape: s.to_vec(),
            })
            .collect();
        let (output, joints) =
            resolve_output(model, &outputs, &input, side, &mut assumptions).unwrap();
        Contract {
            input,
            output,
            joints,
            sidecar: None,
            assumptions,
        }
    }

    /// Writes `contract`'s sidecar, reads it back and resolves the same graph with it.
    fn round_trip(
        contract: &Contract,
        input: &[Option<usize>],
        outputs: &[(&str, &[usize])],
    ) -> (String, Contract) {
        let text = contract_sidecar(contract, contract.output.stack)
            .to_toml()
            .unwrap();
        let parsed = Sidecar::parse(&text, Path::new("m.toml")).unwrap();
        assert_eq!(parsed, contract_sidecar(contract, contract.output.stack));
        let again = resolve(input, outputs, Some(&text));
        (text, again)
    }

    fn assert_same(a: &Contract, b: &Contract) {
        assert_eq!(a.input, b.input);
        assert_eq!(a.output, b.output);
        assert_eq!(a.joints, b.joints);
    }

    #[test]
    fn a_contract_made_of_assumptions_is_written_out_in_full() {
        let input = [Some(1), Some(3), Some(128), Some(128)];
        let outputs: [(&str, &[usize]); 2] = [("hm0", &[1, 16, 32, 32]), ("hm1", &[1, 16, 32, 32])];
        let assumed = resolve(&input, &outputs, None);
        assert!(assumed.assumptions.len() >= 3, "{:?}", assumed.assumptions);
        let (text, again) = round_trip(&assumed, &input, &outputs);
        assert_same(&assumed, &again);
        assert!(again.assumptions.is_empty(), "{:?}", again.assumptions);
        for key in [
            "size = [128, 128]",
            "layout = \"NCHW\"",
            "channels = \"RGB\"",
            "normalize = \"unit\"",
            "kind = \"per_stack\"",
            "stack = 1",
            "set = \"mpii16\"",
        ] {
            assert!(text.contains(key), "{key} missing from:\n{text}");
        }
        assert!(!text.contains("mean"), "{text}");
    }

    #[test]
    fn mean_std_nhwc_bgr_and_a_stack_round_trip() {
        let input = [Some(1), Some(256), Some(192), Some(3)];
        let outputs: [(&str, &[usize]); 1] = [("hm", &[1, 3, 64, 48, 16])];
        let side = "[input]\nchannels = \"BGR\"\nnormalize = \"mean_std\"\n\
                    mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\
                    [output]\nstack = 1\nlayout = \"NHWC\"\n";
        let contract = resolve(&input, &outputs, Some(side));
        assert_eq!(contract.input.layout, Layout::NHWC);
        assert_eq!(contract.input.channels, ChannelOrder::BGR);
        assert_eq!(
            (contract.output.kind, contract.output.stack),
            (OutputKind::Stacked, 1)
        );
        let (text, again) = round_trip(&contract, &input, &outputs);
        assert_same(&contract, &again);
        assert!(again.assumptions.is_empty(), "{:?}", again.assumptions);
        // the shortest decimals that read back to the same f32, not the f64 widening
        assert!(text.contains("mean = [0.485, 0.456, 0.406]"), "{text}");
        assert!(text.contains("std = [0.229, 0.224, 0.225]"), "{text}");
    }

    #[test]
    fn custom_and_unnamed_joints_round_trip() {
        let input = [Some(1), Some(3), Some(64), Some(64)];
        let outputs: [(&str, &[usize]); 1] = [("hm", &[1, 3, 16, 16])];
        let side = "[joints]\nnames = [\"nose\", \"l_ear\", \"r_ear\"]\n\
                    edges = [[0, 1], [0, 2]]\nflip_pairs = [[1, 2]]\n";
        let custom = resolve(&input, &outputs, Some(side));
        let (_, again) = round_trip(&custom, &input, &outputs);
        assert_same(&custom, &again);
        assert_eq!(again.joints.flip_pairs, vec![(1, 2)]);

        let unnamed = resolve(&input, &outputs, None);
        assert_eq!(unnamed.joints.names[2], "joint_2");
        let (text, again) = round_trip(&unnamed, &input, &outputs);
        assert_same(&unnamed, &again);
        assert!(again.assumptions.is_empty(), "{:?}", again.assumptions);
        assert!(text.contains("edges = []"), "{text}");
    }

    #[test]
    fn mpii16_with_its_own_skeleton_is_named_by_its_set() {
        let input = [Some(1), Some(3), Some(64), Some(64)];
        let outputs: [(&str, &[usize]); 1] = [("hm", &[1, 16, 16, 16])];
        let contract = resolve(&input, &outputs, None);
        let side = contract_sidecar(&contract, 0);
        assert_eq!(side.joints.set.as_deref(), Some("mpii16"));
        assert_eq!(
            (side.joints.names, side.joints.edges, side.joints.flip_pairs),
            (None, None, None)
        );
    }

    #[test]
    fn artefact_names() {
        assert!(is_nnef(Path::new("a/m.nnef.tgz")));
        assert!(is_nnef(Path::new("a/M.NNEF.TAR")));
        assert!(!is_nnef(Path::new("a/m.onnx")));
        assert!(!is_nnef(Path::new("a/m.toml")));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let gz = gzip(&data).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert!(gz.len() < data.len() / 2, "repetitive data should compress");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}
