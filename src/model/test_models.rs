//! Models, inputs and runs shared by the tests of hgpose's rewrites of tract's plan.

use tract_onnx::prelude::*;

/// The 2-stack fixture hourglass (`models/fixtures/hg_s2_f32_stacked.onnx`, 256x256 input),
/// typed, with its 1x1 convolutions flattened as the engine does before optimizing.
pub fn fixture_hourglass() -> TypedModel {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures");
    let mut model = tract_onnx::onnx()
        .model_for_path(root.join("hg_s2_f32_stacked.onnx"))
        .unwrap()
        .into_typed()
        .unwrap();
    super::flat_pointwise::flatten(&mut model).unwrap();
    model
}

/// An NCHW f32 input of `shape` with values spread over about [-1.5, 1.5] in a fixed pattern.
pub fn patterned_input(shape: (usize, usize, usize, usize)) -> Tensor {
    tract_ndarray::Array4::from_shape_fn(shape, |(_, c, y, x)| {
        ((c * 13 + y * 5 + x * 3) % 29) as f32 / 9.5 - 1.5
    })
    .into()
}

/// The values of `model`'s first output for `input`.
pub fn first_output(model: &TypedModel, input: &Tensor) -> Vec<f32> {
    let plan = model.clone().into_runnable().unwrap();
    let out = plan.run(tvec!(input.clone().into_tvalue())).unwrap();
    let out = out.into_iter().next().unwrap().into_tensor();
    out.try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}
