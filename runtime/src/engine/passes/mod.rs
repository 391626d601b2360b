//! Graph passes applied to models before tract optimizes them.
//!
//! Each pass recognizes a pattern and replaces it by something that runs faster, with the same
//! results: on the ONNX protobuf, [`pad_fold`], [`yolo_head_cut`] and [`centernet_topk_cut`]
//! (behind [`GraphPass`]); on tract's decluttered model, [`conv_kernels`], [`pool_kernels`],
//! [`resize_kernels`], [`softmax_kernels`] and [`channel_windows`] (vigia's kernels, all run by
//! [`replace_with_kernels`]) and, for the GPU, [`gpu_lowering`] (operators tract-cuda lacks, in
//! terms of ones it has). Passes only fire when every part of the pattern is checked (operators,
//! attributes and constant values, single consumers); anything else leaves the graph as it is.
//! `VIGIA_NO_REWRITE=1` turns them all off.

pub mod blocked_maps;
pub mod centernet_topk_cut;
mod channel_windows;
mod constant_product;
mod conv_epilogue;
pub mod conv_kernels;
pub mod expand_depthwise;
pub mod gpu_lowering;
pub mod pad_fold;
pub mod pool_kernels;
mod probe;
mod proto;
pub mod resize_kernels;
mod sliced_parts;
pub mod softmax_kernels;
mod strided_input;
#[cfg(test)]
mod test_run;
mod vector_product;
pub mod yolo_head_cut;

use tract_onnx::pb;
use tract_onnx::prelude::{OutletId, TractResult, TypedModel, TypedModelPatch, TypedOp};

use crate::kernels::Isa;

/// Environment variable that disables every rewrite when set to anything but `0` or empty.
pub const DISABLE_ENV: &str = "VIGIA_NO_REWRITE";

/// What the passes changed in one graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RewriteReport {
    /// `Pad` nodes folded into the following convolution(s).
    pub pads_folded: usize,
    /// Ultralytics DFL heads cut (0 or 1).
    pub dfl_heads_cut: usize,
    /// CenterNet top-K tails cut (0 or 1).
    pub topk_heads_cut: usize,
    /// Nodes removed from the graph in total.
    pub nodes_removed: usize,
}

impl RewriteReport {
    /// True when no pass changed anything.
    pub fn is_empty(&self) -> bool {
        self.pads_folded == 0 && self.dfl_heads_cut == 0 && self.topk_heads_cut == 0
    }

    /// One line for load messages, e.g. `28 Pad folded into Conv/MaxPool, DFL head cut`.
    pub fn summary(&self) -> String {
        let mut parts = vec![];
        if self.pads_folded > 0 {
            parts.push(format!("{} Pad folded into Conv/MaxPool", self.pads_folded));
        }
        if self.dfl_heads_cut > 0 {
            parts.push("YOLO DFL head decoded in Rust".to_string());
        }
        if self.topk_heads_cut > 0 {
            parts.push("CenterNet top-K found in Rust".to_string());
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// Puts vigia's kernels in place of tract's where they apply, in a decluttered model:
/// convolutions ([`conv_kernels`]), max pools ([`pool_kernels`]), resamplings
/// ([`resize_kernels`]) and softmaxes ([`softmax_kernels`]); then merges dense convolutions that
/// read the same input and lets the convolutions read channel slices in place
/// ([`channel_windows`]), chains convolutions on channel-blocked maps ([`blocked_maps`]), and
/// joins large expansions with the depthwise convolutions that read them
/// ([`expand_depthwise`]).
pub fn replace_with_kernels(
    model: &mut TypedModel,
    isa: Isa,
) -> TractResult<conv_kernels::KernelReport> {
    let mut report = conv_kernels::replace_convs(model, isa)?;
    report.max_pools = pool_kernels::replace_max_pools(model)?;
    report.resizes = resize_kernels::replace_resizes(model)?;
    report.softmaxes = softmax_kernels::replace_softmaxes(model, isa)?;
    report.merged = channel_windows::merge_siblings(model)?;
    report.slices_in_place += channel_windows::read_slices_in_place(model)?;
    report.blocked = blocked_maps::block_chains(model)?;
    report.expansions_joined = expand_depthwise::join_expansions(model)?;
    Ok(report)
}

/// Replaces every node that `kernel_op` turns into a one-input operator (`Some`): the node's
/// first input feeds the new operator, whose output takes the place of the node's first; how
/// many. `what` names the patches (`vigia max pool NODE`).
fn replace_one_input_nodes<O: TypedOp>(
    model: &mut TypedModel,
    what: &str,
    kernel_op: impl Fn(&TypedModel, usize) -> TractResult<Option<O>>,
) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let Some(op) = kernel_op(model, id)? else {
            continue;
        };
        let node = model.node(id);
        let mut patch = TypedModelPatch::new(format!("{what} {}", node.name));
        let input = patch.tap_model(model, node.inputs[0])?;
        let out = patch.wire_node(format!("{}.vigia", node.name), op, &[input])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
        patch.apply(model)?;
        replaced += 1;
    }
    if replaced > 0 {
        model.compact()?;
    }
    Ok(replaced)
}

/// True unless [`DISABLE_ENV`] is set to a value other than `0` or empty.
pub fn enabled() -> bool {
    match std::env::var(DISABLE_ENV) {
        Ok(v) => v.is_empty() || v == "0",
        Err(_) => true,
    }
}

/// What a pass knows about the model besides its graph.
#[derive(Debug, Clone, Copy)]
pub struct PassContext<'a> {
    /// The fixed input shape the model will run with (NCHW or NHWC, batch 1).
    pub input_shape: &'a [usize],
    /// The default-domain opset version.
    pub opset: i64,
}

/// One rewrite of an ONNX graph: finds its pattern and rewrites it in place, counting what it
/// changed in the report (and changing nothing when the pattern is not all there).
pub trait GraphPass {
    /// Short name, for logs.
    fn name(&self) -> &'static str;
    /// Rewrites `graph` in place and records what changed.
    fn apply(&self, graph: &mut pb::GraphProto, ctx: &PassContext, report: &mut RewriteReport);
}

/// The passes in the order they run.
pub fn default_passes() -> Vec<Box<dyn GraphPass>> {
    vec![
        Box::new(pad_fold::PadFold),
        Box::new(yolo_head_cut::YoloHeadCut),
        Box::new(centernet_topk_cut::CenternetTopkCut),
    ]
}

/// Runs every pass on a copy of `model` for an input of `input_shape` (NCHW or NHWC, batch 1);
/// `None` when no pass applies.
pub fn rewrite(
    model: &pb::ModelProto,
    input_shape: &[usize],
) -> Option<(pb::ModelProto, RewriteReport)> {
    model.graph.as_ref()?;
    let ctx = PassContext {
        input_shape,
        opset: opset(model),
    };
    let mut out = model.clone();
    let g = out.graph.as_mut()?;
    let before = g.node.len();
    let mut report = RewriteReport::default();
    for pass in default_passes() {
        pass.apply(g, &ctx, &mut report);
    }
    if report.is_empty() {
        return None;
    }
    proto::prune_dead_nodes(g);
    report.nodes_removed = before - g.node.len();
    Some((out, report))
}

/// Default-domain opset version (1 when absent).
fn opset(model: &pb::ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1)
}
