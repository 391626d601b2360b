//! Pad folding: a constant-mode `Pad` of the spatial dims becomes part of the `pads` of the
//! operators that read it: zeros feeding only `Conv`s, `-inf` feeding only `MaxPool`s (whose
//! padding never wins a window). NanoDet's TensorFlow-style asymmetric padding is both.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

use super::proto::{attr, attr_ints, attr_str, consumers, graph_outputs, Constants};
use super::{GraphPass, PassContext, RewriteReport};

/// Folds `Pad`s into the convolutions and max pools that read them.
pub struct PadFold;

impl GraphPass for PadFold {
    fn name(&self) -> &'static str {
        "pad-fold"
    }

    fn apply(&self, graph: &mut pb::GraphProto, ctx: &PassContext, report: &mut RewriteReport) {
        let folds = plan(graph, ctx.opset);
        report.pads_folded += apply_folds(graph, &folds);
    }
}

/// One `Pad` to fold: its index, its input, the spatial pads to add (`[x1_begin, x2_begin, ..,
/// x1_end, x2_end, ..]`, the `pads` attribute's order) and the nodes reading it.
#[derive(Debug, Clone)]
struct Fold {
    pad: usize,
    source: String,
    spatial: Vec<i64>,
    targets: Vec<usize>,
}

/// Finds foldable `Pad`s: constant mode, non-negative pads on spatial dims only, known at load
/// time, read only (as their data input, padding explicit) by `Conv`s when the value is 0 or by
/// single-output `MaxPool`s when it is `-inf`.
fn plan(graph: &pb::GraphProto, opset: i64) -> Vec<Fold> {
    let consts = Constants::new(graph);
    let readers = consumers(graph);
    let outputs = graph_outputs(graph);
    let mut folds = vec![];
    for (ix, n) in graph.node.iter().enumerate() {
        if n.op_type != "Pad" || !n.domain.is_empty() || n.output.len() != 1 || n.input.is_empty() {
            continue;
        }
        if let Some(fold) = pad_fold(graph, &consts, &readers, &outputs, opset, ix) {
            folds.push(fold);
        }
    }
    folds
}

fn pad_fold(
    graph: &pb::GraphProto,
    consts: &Constants<'_>,
    readers: &HashMap<&str, Vec<(usize, usize)>>,
    outputs: &HashSet<&str>,
    opset: i64,
    ix: usize,
) -> Option<Fold> {
    let n = &graph.node[ix];
    match attr_str(n, "mode") {
        None | Some("constant") => {}
        Some(_) => return None,
    }
    let (pads, value) = if opset < 11 {
        let value = attr(n, "value").map(|a| a.f).unwrap_or(0.0);
        (attr_ints(n, "pads")?, value)
    } else {
        let pads = consts.get(n.input.get(1)?)?.ints()?.to_vec();
        let value = match n.input.get(2).filter(|s| !s.is_empty()) {
            None => 0.0,
            Some(name) => {
                let c = consts.get(name)?;
                match c.as_f64().as_slice() {
                    [] => 0.0,
                    [v] => *v as f32,
                    _ => return None,
                }
            }
        };
        if n.input.get(3).is_some_and(|s| !s.is_empty()) {
            // An `axes` input (opset 18): only the common full-rank form is handled.
            return None;
        }
        (pads, value)
    };
    let reader_op = if value == 0.0 {
        "Conv"
    } else if value == f32::NEG_INFINITY {
        "MaxPool"
    } else {
        return None;
    };
    if pads.len() % 2 != 0 || pads.len() < 6 {
        return None;
    }
    let rank = pads.len() / 2;
    if pads.iter().any(|&p| p < 0) || pads[0] != 0 || pads[1] != 0 {
        return None;
    }
    if pads[rank] != 0 || pads[rank + 1] != 0 {
        return None;
    }
    let out = n.output[0].as_str();
    if outputs.contains(out) {
        return None;
    }
    let targets = readers.get(out)?;
    if targets.is_empty() {
        return None;
    }
    for &(c, slot) in targets {
        let reader = &graph.node[c];
        if reader.op_type != reader_op || !reader.domain.is_empty() || slot != 0 {
            return None;
        }
        if reader_op == "MaxPool" && reader.output.len() != 1 {
            // The indices output would count the padded positions.
            return None;
        }
        match attr_str(reader, "auto_pad") {
            None | Some("NOTSET") | Some("VALID") | Some("") => {}
            Some(_) => return None,
        }
        if let Some(p) = attr_ints(reader, "pads") {
            if p.len() != 2 * (rank - 2) {
                return None;
            }
        }
    }
    let mut spatial = pads[2..rank].to_vec();
    spatial.extend_from_slice(&pads[rank + 2..]);
    Some(Fold {
        pad: ix,
        source: n.input[0].clone(),
        spatial,
        targets: targets.iter().map(|&(c, _)| c).collect(),
    })
}

/// Applies the folds; returns how many `Pad`s were removed.
fn apply_folds(graph: &mut pb::GraphProto, folds: &[Fold]) -> usize {
    let mut dead = HashSet::new();
    for f in folds {
        for &c in &f.targets {
            let target = &mut graph.node[c];
            let mut pads = attr_ints(target, "pads").unwrap_or_else(|| vec![0; f.spatial.len()]);
            for (p, add) in pads.iter_mut().zip(&f.spatial) {
                *p += add;
            }
            target
                .attribute
                .retain(|a| a.name != "pads" && a.name != "auto_pad");
            target.attribute.push(pb::AttributeProto {
                name: "pads".into(),
                r#type: pb::attribute_proto::AttributeType::Ints as i32,
                ints: pads,
                ..Default::default()
            });
            target.input[0] = f.source.clone();
        }
        dead.insert(f.pad);
    }
    let mut ix = 0;
    graph.node.retain(|_| {
        let keep = !dead.contains(&ix);
        ix += 1;
        keep
    });
    dead.len()
}
