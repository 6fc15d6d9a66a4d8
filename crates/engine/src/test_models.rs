//! Test helpers: ONNX models built in code, for ops whose edge cases no fixture covers.

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
    type_proto,
};

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: v.to_vec(), ..Default::default() }
}

pub fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Floats as i32, floats: v.to_vec(), ..Default::default() }
}

pub fn strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Strings as i32,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: v, ..Default::default() }
}

/// A tensor value of ONNX element type `elem_type`; `None` dimensions are the symbol `N`.
pub fn value_info(name: &str, elem_type: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => dimension::Value::DimValue(*n),
                None => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A model of one `ai.onnx.ml` node reading input `x`: FLOAT [N, n_features]; outputs are
/// (name, ONNX element type, dims).
pub fn one_node_model(
    op_type: &str,
    attributes: Vec<AttributeProto>,
    n_features: i64,
    outputs: &[(&str, i32, &[Option<i64>])],
) -> ModelProto {
    let node = NodeProto {
        input: vec!["x".into()],
        output: outputs.iter().map(|o| o.0.to_string()).collect(),
        name: "node".into(),
        op_type: op_type.into(),
        domain: "ai.onnx.ml".into(),
        attribute: attributes,
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto { domain: "".into(), version: 17 },
            OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: 3 },
        ],
        graph: Some(GraphProto {
            node: vec![node],
            name: "g".into(),
            input: vec![value_info("x", 1, &[None, Some(n_features)])],
            output: outputs.iter().map(|(n, t, d)| value_info(n, *t, d)).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
