//! Models, inputs and runs shared by the tests of hgpose's rewrites of tract's plan.

use tract_onnx::prelude::*;

/// The 2-stack fixture hourglass (`models/fixtures/hg_s2_f32_stacked.onnx`, 256x256 input),
/// typed, with its 1x1 convolutions flattened as the engine does before optimizing.
pub fn fixture_hourglass() -> TypedModel {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures");
    let mut model = tract_onnx::onnx()
        .model_for_path(root.join("hg_s2_f32_stacked.onnx"))
        .unwrap()
        .into_typed()
        .unwrap();
    crate::ops::flat_pointwise::flatten(&mut model).unwrap();
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

/// A QLinearConv layer as `quantize` writes one, between float input and output.
pub struct QuantizedConv {
    pub in_channels: i64,
    pub out_channels: i64,
    /// Kernel side (odd); padding is `side / 2` on every edge.
    pub side: i64,
    pub stride: i64,
    pub height: i64,
    pub width: i64,
    pub x_zero: u8,
    pub y_zero: u8,
    /// The float input added to the dequantized output (a residual; same shape needed).
    pub residual: bool,
    /// A per-channel batch norm and ReLU before the quantization (a residual module's
    /// pre-activation; the residual adds the raw input).
    pub batch_norm: bool,
}

impl QuantizedConv {
    /// A plain layer (output zero point 120, no residual, no batch norm before it).
    pub fn layer(cin: i64, cout: i64, side: i64, stride: i64, h: i64, w: i64, x_zero: u8) -> Self {
        QuantizedConv {
            in_channels: cin,
            out_channels: cout,
            side,
            stride,
            height: h,
            width: w,
            x_zero,
            y_zero: 120,
            residual: false,
            batch_norm: false,
        }
    }

    /// float -> QuantizeLinear -> QLinearConv (patterned weights of both signs, per-channel
    /// weight scales, a bias) -> DequantizeLinear, typed.
    pub fn model(&self) -> TypedModel {
        use tract_onnx::pb::tensor_proto::DataType;
        use tract_onnx::pb::*;
        let (cin, cout, side) = (self.in_channels, self.out_channels, self.side);
        let weights: Vec<u8> = (0..cin * cout * side * side)
            .map(|i| ((i * 37 % 255) - 127) as i8 as u8)
            .collect();
        let scales: Vec<u8> = (0..cout)
            .flat_map(|o| (0.002f32 + o as f32 * 1e-4).to_le_bytes())
            .collect();
        let bias: Vec<u8> = (0..cout)
            .flat_map(|o| ((o * 97 % 400) as i32 - 200).to_le_bytes())
            .collect();
        let f = |v: f32| v.to_le_bytes().to_vec();
        let mut initializer = vec![
            onnx_tensor("x_scale", &[], DataType::Float, f(1.0 / 64.0)),
            onnx_tensor("x_zero", &[], DataType::Uint8, vec![self.x_zero]),
            onnx_tensor("w", &[cout, cin, side, side], DataType::Int8, weights),
            onnx_tensor("w_scale", &[cout], DataType::Float, scales),
            onnx_tensor("w_zero", &[cout], DataType::Int8, vec![0; cout as usize]),
            onnx_tensor("y_scale", &[], DataType::Float, f(1.0 / 32.0)),
            onnx_tensor("y_zero", &[], DataType::Uint8, vec![self.y_zero]),
            onnx_tensor("bias", &[cout], DataType::Int32, bias),
        ];
        let qconv = [
            "xq", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero", "bias",
        ];
        let ints = |name: &str, v: Vec<i64>| AttributeProto {
            name: name.into(),
            r#type: attribute_proto::AttributeType::Ints as i32,
            ints: v,
            ..Default::default()
        };
        let pad = side / 2;
        let mut conv = onnx_node("QLinearConv", &qconv, "yq");
        conv.attribute = vec![
            ints("kernel_shape", vec![side, side]),
            ints("pads", vec![pad; 4]),
            ints("strides", vec![self.stride; 2]),
        ];
        let span = |d: i64| (d + 2 * pad - side) / self.stride + 1;
        let mut node = vec![];
        let mut quantized = "x";
        if self.batch_norm {
            let per_channel = |name: &str, v: &dyn Fn(i64) -> f32| {
                let bytes = (0..cin).flat_map(|c| v(c).to_le_bytes()).collect();
                onnx_tensor(name, &[cin, 1, 1], DataType::Float, bytes)
            };
            initializer.push(per_channel("bn_scale", &|c| 0.6 + (c % 7) as f32 * 0.13));
            initializer.push(per_channel("bn_shift", &|c| (c % 5) as f32 * 0.21 - 0.4));
            node.push(onnx_node("Mul", &["x", "bn_scale"], "bn_scaled"));
            node.push(onnx_node("Add", &["bn_scaled", "bn_shift"], "bn"));
            node.push(onnx_node("Relu", &["bn"], "bn_relu"));
            quantized = "bn_relu";
        }
        node.extend([
            onnx_node("QuantizeLinear", &[quantized, "x_scale", "x_zero"], "xq"),
            conv,
            onnx_node("DequantizeLinear", &["yq", "y_scale", "y_zero"], "yd"),
        ]);
        node.push(match self.residual {
            true => onnx_node("Add", &["yd", "x"], "y"),
            false => onnx_node("Identity", &["yd"], "y"),
        });
        let graph = GraphProto {
            node,
            initializer,
            input: vec![onnx_value("x", &[1, cin, self.height, self.width])],
            output: vec![onnx_value(
                "y",
                &[1, cout, span(self.height), span(self.width)],
            )],
            ..Default::default()
        };
        let opset = OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        };
        let proto = ModelProto {
            ir_version: 7,
            opset_import: vec![opset],
            graph: Some(graph),
            ..Default::default()
        };
        tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .unwrap()
            .into_typed()
            .unwrap()
    }
}

/// An ONNX initializer of raw little-endian bytes.
pub fn onnx_tensor(
    name: &str,
    dims: &[i64],
    dt: tract_onnx::pb::tensor_proto::DataType,
    raw: Vec<u8>,
) -> tract_onnx::pb::TensorProto {
    tract_onnx::pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: dt as i32,
        raw_data: raw,
        ..Default::default()
    }
}

/// An f32 graph input or output of fixed `dims`.
pub fn onnx_value(name: &str, dims: &[i64]) -> tract_onnx::pb::ValueInfoProto {
    use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
    use tract_onnx::pb::*;
    let dim = dims.iter().map(|d| Dimension {
        value: Some(dimension::Value::DimValue(*d)),
        ..Default::default()
    });
    let shape = TensorShapeProto { dim: dim.collect() };
    let tensor_type = type_proto::Tensor {
        elem_type: tensor_proto::DataType::Float as i32,
        shape: Some(shape),
    };
    let r#type = TypeProto {
        value: Some(type_proto::Value::TensorType(tensor_type)),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(r#type),
        ..Default::default()
    }
}

/// A node with one output, named after it.
pub fn onnx_node(op: &str, inputs: &[&str], output: &str) -> tract_onnx::pb::NodeProto {
    tract_onnx::pb::NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: output.into(),
        ..Default::default()
    }
}
