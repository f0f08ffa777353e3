//! The training loop: static plans per (mode, batch size) over resident parameters, one
//! backend run per batch, metrics read back every few steps only.

mod config;
mod early_stop;
mod objective;
mod state_dict;
mod trainer;

pub use early_stop::{EarlyStopping, Monitor, Tracker, Verdict};
pub use objective::{objective, one_hot, Loss, Objective, Penalty};
pub use state_dict::{load_model_tensors, model_tensors};
pub use trainer::{EpochReport, Evaluation, Event, TrainConfig, Trainer};
