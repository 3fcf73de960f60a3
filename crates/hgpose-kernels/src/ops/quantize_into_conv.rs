//! Takes the quantization before an int8 convolution, and the batch norm and ReLU before that,
//! into the convolution's own input layout ([`DirectConvI8`]'s [`Prelude`]).
//!
//! Each residual module of the int8 hourglass opens with three passes over its f32 input:
//! the batch norm and ReLU ([`FastScaleShift`]) write an f32 tensor, the quantization
//! ([`FastQuantizeU8`]) reads it and writes a u8 one, and the convolution reads that and lays it
//! out in quads of channels. On the default model the first two were 14% of the int8 op time
//! at one thread (`bench --profile`). With the prelude the convolution reads the f32 input once
//! and writes its quads, computing each line with the two ops' own code, so the bytes are the
//! same.
//!
//! Runs on the optimized model, after the `fast_*` swaps. A quantization is taken in when its
//! only reader is a [`DirectConvI8`] of the same zero point; a batch norm before it, when the
//! quantization is its only reader and it works per channel plane.

use super::direct_conv_i8::{DirectConvI8, Prelude};
use super::quantize::FastQuantizeU8;
use super::scale_shift::FastScaleShift;
use super::sole_successor;
use tract_onnx::prelude::*;

/// A convolution and what it takes in: its quantization node, and the batch norm before that.
struct Taken {
    conv: usize,
    quantize: usize,
    batch_norm: Option<usize>,
}

fn taken_by(model: &TypedModel, conv: usize) -> Option<Taken> {
    let node = model.node(conv);
    let op = node.op_as::<DirectConvI8>()?;
    let quantize = node.inputs[0].node;
    let q = model.node(quantize).op_as::<FastQuantizeU8>()?;
    if op.prelude.is_some() || q.zero_point != op.x_zero || sole_successor(model, quantize)? != conv
    {
        return None;
    }
    let before = model.node(quantize).inputs[0].node;
    let per_plane = |bn: &FastScaleShift| bn.period == op.shape.height * op.shape.width;
    let batch_norm = model
        .node(before)
        .op_as::<FastScaleShift>()
        .filter(|bn| per_plane(bn) && sole_successor(model, before) == Some(quantize))
        .map(|_| before);
    Some(Taken {
        conv,
        quantize,
        batch_norm,
    })
}

/// Gives each [`DirectConvI8`] the quantization (and batch norm) before it as its prelude;
/// returns how many.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let taken: Vec<Taken> = (0..model.nodes().len())
        .filter_map(|id| taken_by(model, id))
        .collect();
    for t in &taken {
        let conv = model.node(t.conv);
        let quantize = model.node(t.quantize);
        let q = quantize
            .op_as::<FastQuantizeU8>()
            .expect("checked by taken_by");
        let mut op = conv.op_as::<DirectConvI8>().expect("checked").clone();
        let (image, extras) = match t.batch_norm {
            Some(bn) => {
                let node = model.node(bn);
                let floored = node.op_as::<FastScaleShift>().expect("checked").floored;
                op.prelude = Some(Prelude {
                    batch_norm: Some(floored),
                    quantize: q.scale.to_bits(),
                });
                (node.inputs[0], &node.inputs[1..])
            }
            None => {
                op.prelude = Some(Prelude {
                    batch_norm: None,
                    quantize: q.scale.to_bits(),
                });
                (quantize.inputs[0], &[][..])
            }
        };
        let mut patch = TypedModelPatch::new(format!("quantization into {}", conv.name));
        let mut inputs = tvec![patch.tap_model(model, image)?];
        inputs.extend(patch.taps(model, &conv.inputs[1..])?);
        inputs.extend(patch.taps(model, extras)?);
        let wire = patch.wire_node(&conv.name, op, &inputs)?[0];
        patch.shunt_outside(model, t.conv.into(), wire)?;
        patch.apply(model)?;
    }
    if !taken.is_empty() {
        model.compact()?;
    }
    Ok(taken.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_models::{first_output, patterned_input, QuantizedConv};
    use crate::threads::on_two_threads;

    /// A quantized layer (with a batch norm and ReLU before it or not) as the engine plans it
    /// on this CPU's int8 kernel, before the prelude is taken in.
    fn planned(layer: &QuantizedConv) -> Option<TypedModel> {
        let mut model = layer.model().into_decluttered().unwrap();
        if super::super::direct_conv_i8::swap_in(&mut model).unwrap() == 0 {
            return None;
        }
        let mut model = model.into_optimized().unwrap();
        super::super::quantize::swap_in(&mut model).unwrap();
        super::super::scale_shift::swap_in(&mut model).unwrap();
        Some(model)
    }

    fn count(model: &TypedModel, name: &str) -> usize {
        model.nodes().iter().filter(|n| n.op.name() == name).count()
    }

    /// The batch norm and quantization leave the plan, and the outputs stay the same to the
    /// bit, for 1x1 (over a channel count that is not whole quads), 3x3 and the stride-2
    /// stem, with input zero points of 0 and not 0, on one thread and on two.
    #[test]
    fn the_prelude_gives_the_same_outputs() {
        let layer = |cin, cout, side, stride, h, w, x_zero, batch_norm| QuantizedConv {
            batch_norm,
            ..QuantizedConv::layer(cin, cout, side, stride, h, w, x_zero)
        };
        let layers = [
            layer(13, 24, 1, 1, 9, 7, 0, true),
            layer(32, 32, 3, 1, 8, 8, 0, true),
            layer(16, 16, 3, 1, 6, 10, 37, true),
            layer(3, 8, 7, 2, 20, 18, 0, false),
            layer(24, 24, 1, 1, 10, 12, 5, false),
        ];
        for l in &layers {
            let Some(theirs) = planned(l) else {
                eprintln!("no AVX-512 VNNI here: the int8 convolutions are tract's, no prelude");
                return;
            };
            let mut ours = theirs.clone();
            assert_eq!(swap_in(&mut ours).unwrap(), 1, "{ours}");
            assert_eq!(count(&ours, "FastQuantizeU8"), 0, "{ours}");
            if l.batch_norm {
                assert_eq!(count(&theirs, "FastScaleShift"), 1, "{theirs}");
                assert_eq!(count(&ours, "FastScaleShift"), 0, "{ours}");
            }
            let input = patterned_input((
                1,
                l.in_channels as usize,
                l.height as usize,
                l.width as usize,
            ));
            let expected = first_output(&theirs, &input);
            let differing = |got: Vec<f32>| {
                assert_eq!(got.len(), expected.len());
                got.iter().zip(&expected).filter(|(a, b)| a != b).count()
            };
            assert_eq!(differing(first_output(&ours, &input)), 0, "one thread");
            let split = on_two_threads(|| first_output(&ours, &input));
            assert_eq!(differing(split), 0, "two threads");
        }
    }
}
