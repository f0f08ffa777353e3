//! The model as a PyTorch state_dict: kiln's arenas to named tensors and back.

use crate::checkpoint::{Checkpoint, IntTensor, Tensor};
use crate::error::{Error, Result};
use crate::graph::ParamLayout;

/// Suffix of the buffer that holds a batch norm's running mean and variance as one [2, C]
/// tensor; PyTorch names the two halves `running_mean` and `running_var`.
const RUNNING: &str = ".running_stats";

/// The model's tensors under their PyTorch names: parameters, then each batch norm's
/// `running_mean`, `running_var` and `num_batches_tracked` (`steps`, as PyTorch counts
/// training forward passes).
pub fn model_tensors(
    layout: &ParamLayout,
    params: &[f32],
    buffers: &[f32],
    steps: u64,
) -> (Vec<Tensor>, Vec<IntTensor>) {
    let mut tensors = Vec::new();
    let mut ints = Vec::new();
    for e in &layout.entries {
        tensors.push(Tensor {
            name: e.name.clone(),
            shape: e.shape.0.clone(),
            data: params[e.offset..e.offset + e.shape.numel()].to_vec(),
        });
    }
    for e in &layout.buffers {
        let Some(prefix) = e.name.strip_suffix(RUNNING) else {
            continue;
        };
        let c = e.shape.numel() / 2;
        for (k, suffix) in ["running_mean", "running_var"].iter().enumerate() {
            tensors.push(Tensor {
                name: format!("{prefix}.{suffix}"),
                shape: vec![c],
                data: buffers[e.offset + k * c..e.offset + (k + 1) * c].to_vec(),
            });
        }
        ints.push(IntTensor {
            name: format!("{prefix}.num_batches_tracked"),
            shape: vec![],
            data: vec![steps as i64],
        });
    }
    (tensors, ints)
}

/// Writes the model tensors of `ckpt` into parameter and buffer arenas laid out by
/// `layout`. Every model tensor must be present with its shape, and nothing else may be
/// (tensors in the `optim.` namespace and `num_batches_tracked` aside): the error names
/// what is missing, extra or mis-shaped.
pub fn load_model_tensors(
    layout: &ParamLayout,
    ckpt: &Checkpoint,
    params: &mut [f32],
    buffers: &mut [f32],
    path: &str,
) -> Result<()> {
    let mut used: Vec<&str> = Vec::new();
    let mut missing = Vec::new();
    let mut misshaped = Vec::new();
    let mut take = |name: &str, shape: &[usize], out: &mut [f32]| match ckpt.tensor(name) {
        None => missing.push(name.to_string()),
        Some(t) if t.shape != shape => misshaped.push(format!(
            "{name} is {:?} in the file, the model has {shape:?}",
            t.shape
        )),
        // A checkpoint built in memory can hold fewer or more values than its shape says.
        Some(t) if t.data.len() != out.len() => misshaped.push(format!(
            "{name} has {} values for its shape {shape:?}, which needs {}",
            t.data.len(),
            out.len()
        )),
        Some(t) => {
            out.copy_from_slice(&t.data);
            used.push(&t.name);
        }
    };
    for e in &layout.entries {
        let n = e.shape.numel();
        take(&e.name, &e.shape.0, &mut params[e.offset..e.offset + n]);
    }
    for e in &layout.buffers {
        let Some(prefix) = e.name.strip_suffix(RUNNING) else {
            continue;
        };
        let c = e.shape.numel() / 2;
        let (mean, var) = buffers[e.offset..e.offset + 2 * c].split_at_mut(c);
        take(&format!("{prefix}.running_mean"), &[c], mean);
        take(&format!("{prefix}.running_var"), &[c], var);
    }
    let extra: Vec<&str> = ckpt
        .tensors
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !n.starts_with("optim.") && !used.contains(n))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing: {}", missing.join(", ")));
    }
    if !misshaped.is_empty() {
        problems.push(format!("wrong shape: {}", misshaped.join("; ")));
    }
    if !extra.is_empty() {
        problems.push(format!("not in the model: {}", extra.join(", ")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::data(path, problems.join("; ")))
    }
}
