//! `vigia-train reid`: a person appearance embedding for re-identification, learnt without labels
//! from a tracked video. Person crops of one track are the same person, crops of two tracks in the
//! same frame are two people; a linear head on a frozen ImageNet backbone (EfficientNet-Lite0,
//! pooled in body stripes) learns from them with a batch-hard triplet loss.

pub mod graph;
pub mod head;
pub mod run;
