//! Checkpoints as safetensors files: model tensors under their PyTorch state_dict names
//! (loadable by `safetensors.torch.load_file`), optimizer state in a namespace of its own,
//! and `__metadata__` with a format version, the model spec, the training state and a
//! checksum of the tensor data. Files are written atomically.

mod file;

pub use file::{write_atomic, Checkpoint, IntTensor, Tensor, FORMAT};
