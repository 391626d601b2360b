//! f16 inference: tract's `f32_to_f16` transform with the graph's inputs and outputs kept in f32.
//!
//! Worth it only on CPUs with FP16 arithmetic (ARMv8.2 `asimdhp`: Cortex-A76, A78, ...), where
//! tract runs f16 matrix kernels; elsewhere f16 is emulated and slower than f32.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
use tract_onnx::tract_core::ops::cast::cast;
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_core::transform::ModelTransform;

/// Operators that tract 0.23 evaluates in f32 only: they stay f32, with casts around them.
const F32_ONLY_OPS: &[&str] = &["Resize"];

/// Converts a typed f32 model to f16 compute; it still takes and returns f32 tensors.
pub fn to_half(mut model: TypedModel) -> TractResult<TypedModel> {
    let translator =
        FloatPrecisionTranslator::with_filter(f32::datum_type(), f16::datum_type(), |node| {
            !F32_ONLY_OPS.contains(&node.op.name().as_ref())
        });
    translator.transform(&mut model)?;
    keep_f32_inputs(&mut model)?;
    keep_f32_outputs(&mut model)?;
    model.declutter()?;
    Ok(model)
}

/// Turns every f16 source back into f32 and casts it to f16 right after.
fn keep_f32_inputs(model: &mut TypedModel) -> TractResult<()> {
    for input in model.input_outlets()?.to_vec() {
        let half_fact = model.outlet_fact(input)?.clone();
        if half_fact.datum_type != f16::datum_type() {
            continue;
        }
        let mut f32_fact = half_fact.clone();
        f32_fact.datum_type = f32::datum_type();
        let successors = model.node(input.node).outputs[input.slot]
            .successors
            .clone();
        model.node_mut(input.node).op = Box::new(TypedSource {
            fact: f32_fact.clone(),
        });
        model.set_outlet_fact(input, f32_fact)?;
        let name = format!("{}.to_f16", model.node(input.node).name);
        let cast_node = model.add_node(name, cast(f16::datum_type()), tvec![half_fact])?;
        model.add_edge(input, InletId::new(cast_node, 0))?;
        for inlet in successors {
            model.add_edge(OutletId::new(cast_node, 0), inlet)?;
        }
    }
    Ok(())
}

/// Casts every f16 output back to f32; the f32 output keeps the original node's name.
fn keep_f32_outputs(model: &mut TypedModel) -> TractResult<()> {
    let mut outputs = vec![];
    let mut original_names = std::collections::HashMap::new();
    for output in model.output_outlets()?.to_vec() {
        if model.outlet_fact(output)?.datum_type != f16::datum_type() {
            outputs.push(output);
            continue;
        }
        let name = match original_names.get(&output.node) {
            Some(n) => String::clone(n),
            None => {
                let name = model.node(output.node).name.clone();
                model.node_mut(output.node).name = format!("{name}.f16");
                original_names.insert(output.node, name.clone());
                name
            }
        };
        let out_name = if model.node(output.node).outputs.len() > 1 {
            format!("{name}.{}", output.slot)
        } else {
            name
        };
        let wire = model.wire_node(out_name, cast(f32::datum_type()), &[output])?[0];
        outputs.push(wire);
    }
    model.select_output_outlets(&outputs)?;
    Ok(())
}
