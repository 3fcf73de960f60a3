use super::*;

fn side(text: &str) -> Sidecar {
    Sidecar::parse(text, Path::new("m.toml")).unwrap()
}

fn input(shape: &[Option<usize>], s: Option<&Sidecar>) -> Result<(InputSpec, Vec<String>)> {
    let mut a = Vec::new();
    let spec = resolve_input(
        Path::new("m.onnx"),
        "input",
        shape,
        s.map(|s| (Path::new("m.toml"), s)),
        &mut a,
    )?;
    Ok((spec, a))
}

fn out(name: &str, shape: &[usize]) -> GraphOutput {
    GraphOutput {
        name: name.into(),
        shape: shape.to_vec(),
    }
}

fn output(
    outs: &[GraphOutput],
    s: Option<&Sidecar>,
) -> Result<(OutputSpec, JointSet, Vec<String>)> {
    let (inp, _) = input(&[Some(1), Some(3), Some(256), Some(256)], None).unwrap();
    let mut a = Vec::new();
    let (spec, joints) = resolve_output(
        Path::new("m.onnx"),
        outs,
        &inp,
        s.map(|s| (Path::new("m.toml"), s)),
        &mut a,
    )?;
    Ok((spec, joints, a))
}

#[test]
fn infers_nchw_and_nhwc_inputs() {
    let (nchw, a) = input(&[Some(1), Some(3), Some(256), Some(192)], None).unwrap();
    assert_eq!(
        (nchw.layout, nchw.height, nchw.width),
        (Layout::NCHW, 256, 192)
    );
    assert!(a.iter().any(|s| s.contains("normalization assumed")));
    let (nhwc, _) = input(&[None, Some(128), Some(96), Some(3)], None).unwrap();
    assert_eq!(
        (nhwc.layout, nhwc.height, nhwc.width),
        (Layout::NHWC, 128, 96)
    );
    assert_eq!(nhwc.shape(), [1, 128, 96, 3]);
}

#[test]
fn symbolic_size_takes_sidecar_or_default() {
    let (spec, a) = input(&[None, Some(3), None, None], None).unwrap();
    assert_eq!((spec.height, spec.width), (256, 256));
    assert!(a.iter().any(|s| s.contains("assumed 256x256")));
    let s = side("[input]\nsize = [128, 128]\n");
    let (spec, _) = input(&[None, Some(3), None, None], Some(&s)).unwrap();
    assert_eq!((spec.height, spec.width), (128, 128));
}

#[test]
fn sidecar_contradicting_the_input_is_an_error() {
    let s = side("[input]\nlayout = \"NHWC\"\n");
    let err = input(&[Some(1), Some(3), Some(256), Some(256)], Some(&s))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("input.layout") && err.contains("m.toml"),
        "{err}"
    );
    let s = side("[input]\nsize = [128, 128]\n");
    let err = input(&[Some(1), Some(3), Some(256), Some(256)], Some(&s))
        .unwrap_err()
        .to_string();
    assert!(err.contains("input.size"), "{err}");
}

#[test]
fn rejects_non_image_inputs() {
    assert!(input(&[Some(1), Some(784)], None)
        .unwrap_err()
        .to_string()
        .contains("4-D"));
    assert!(input(&[Some(1), Some(5), Some(64), Some(64)], None)
        .unwrap_err()
        .to_string()
        .contains("colour"));
    assert!(input(&[Some(4), Some(3), Some(64), Some(64)], None)
        .unwrap_err()
        .to_string()
        .contains("batch"));
}

#[test]
fn mean_std_becomes_scale_and_offset() {
    let n = Normalization::MeanStd {
        mean: [0.5, 0.25, 0.0],
        std: [0.5, 0.25, 1.0],
    };
    let (s, o) = n.scale_offset();
    for c in 0..3 {
        let px = 200.0f32;
        let expected = (px / 255.0 - [0.5, 0.25, 0.0][c]) / [0.5, 0.25, 1.0][c];
        assert!((px * s[c] + o[c] - expected).abs() < 1e-6);
    }
}

#[test]
fn per_stack_outputs_read_the_last_stack() {
    let outs = [out("hm0", &[1, 16, 64, 64]), out("hm1", &[1, 16, 64, 64])];
    let (spec, joints, a) = output(&outs, None).unwrap();
    assert_eq!(
        (spec.kind, spec.stacks, spec.stack, spec.graph_output),
        (OutputKind::PerStack, 2, 1, 1)
    );
    assert_eq!(
        (spec.joints, spec.height, spec.width, spec.layout),
        (16, 64, 64, Layout::NCHW)
    );
    assert_eq!(joints.id, "mpii16");
    assert!(a.iter().any(|s| s.contains("last stack")));
}

#[test]
fn stacked_output_and_nhwc_heatmaps() {
    let (spec, _, _) = output(&[out("hm", &[1, 8, 16, 64, 64])], None).unwrap();
    assert_eq!(
        (spec.kind, spec.stacks, spec.stack),
        (OutputKind::Stacked, 8, 7)
    );
    let (spec, _, _) = output(&[out("hm", &[1, 64, 64, 16])], None).unwrap();
    assert_eq!((spec.layout, spec.joints), (Layout::NHWC, 16));
}

#[test]
fn sidecar_picks_a_stack_and_is_checked() {
    let outs = [out("a", &[1, 16, 64, 64]), out("b", &[1, 16, 64, 64])];
    let (spec, _, _) = output(&outs, Some(&side("[output]\nstack = 0\n"))).unwrap();
    assert_eq!(spec.graph_output, 0);
    let err = output(&outs, Some(&side("[output]\nstack = 2\n")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("output.stack"), "{err}");
    let err = output(&outs, Some(&side("[output]\nkind = \"stacked\"\n")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("output.kind"), "{err}");
    let err = output(&outs, Some(&side("[joints]\nnames = [\"a\", \"b\"]\n")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("joints") && err.contains("16 channels"),
        "{err}"
    );
}

#[test]
fn classifier_outputs_are_not_heatmaps() {
    let err = output(&[out("logits", &[1, 1000])], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("heatmap-shaped") && err.contains("logits"),
        "{err}"
    );
    // a spatial map whose grid does not divide the input is not a heatmap either
    let err = output(&[out("x", &[1, 16, 60, 60])], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("heatmap-shaped"), "{err}");
}

#[test]
fn extra_outputs_are_reported_and_odd_joint_counts_unnamed() {
    let outs = [out("hm", &[1, 17, 64, 64]), out("feat", &[1, 7])];
    let (spec, joints, a) = output(&outs, None).unwrap();
    assert_eq!(spec.joints, 17);
    assert_eq!(joints.names[16], "joint_16");
    assert!(a
        .iter()
        .any(|s| s.contains("feat") && s.contains("not read")));
}
