//! Persisting and inspecting a trainer: detailed evaluation, checkpoints, resume, weights.

use super::*;

/// What [`Trainer::evaluate_detailed`] measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss per image.
    pub loss: f32,
    /// Fraction classified correctly.
    pub accuracy: f32,
    /// `confusion[true class][predicted class]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl Trainer {
    /// Loss, accuracy and the confusion matrix (`confusion[true][predicted]`) on a dataset,
    /// in evaluation mode. Reads each batch's predictions back.
    pub fn evaluate_detailed(&mut self, data: &Dataset) -> Result<Evaluation> {
        self.check_data(data)?;
        let mut batcher = Batcher::new(data, self.config.batch_size, false, 0)?;
        let scalars = self.scalars();
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        let mut confusion = vec![vec![0u64; self.classes]; self.classes];
        self.backend.reset_metrics()?;
        while let Some(n) = batcher.next_batch(&mut images, &mut labels) {
            let c = self.plan(false, n)?;
            self.run_plan(c.id, &images, &labels, &scalars)?;
            let slot = c
                .predictions
                .ok_or_else(|| Error::Graph("evaluation plan without predictions".into()))?;
            let predicted = self.backend.read_slot(c.id, slot)?;
            for (&p, &l) in predicted.iter().zip(&labels) {
                if let Some(cell) = confusion
                    .get_mut(l as usize)
                    .and_then(|r| r.get_mut(p as usize))
                {
                    *cell += 1;
                }
            }
        }
        let m = self.backend.read_metrics()?;
        self.backend.reset_metrics()?;
        let n = data.len as f32;
        Ok(Evaluation {
            loss: m[METRIC_LOSS] / n,
            accuracy: m[METRIC_CORRECT] / n,
            confusion,
        })
    }

    /// The whole training state as a checkpoint: model tensors under PyTorch's names,
    /// optimizer state as `optim.state{k}.{name}`, and metadata (model spec, step count,
    /// learning rate, optimizer, scheduler steps).
    pub fn checkpoint(&mut self) -> Result<Checkpoint> {
        let params = self.backend.read_params()?;
        let buffers = self.backend.read_buffers()?;
        let (mut tensors, ints) =
            model_tensors(&self.layout, &params, &buffers, u64::from(self.step));
        for k in 0..3 {
            if !self.config.optimizer.uses_state(k) {
                continue;
            }
            let state = self.backend.read_state(k)?;
            for e in &self.layout.entries {
                tensors.push(Tensor {
                    name: format!("optim.state{k}.{}", e.name),
                    shape: e.shape.0.clone(),
                    data: state[e.offset..e.offset + e.shape.numel()].to_vec(),
                });
            }
        }
        let mut ckpt = Checkpoint {
            tensors,
            ints,
            ..Checkpoint::default()
        };
        let meta = [
            ("model", self.model.spec.clone()),
            ("step", self.step.to_string()),
            ("lr", self.scheduler.lr().to_string()),
            ("optimizer", format!("{:?}", self.config.optimizer)),
            ("sample", format!("{:?}", self.config.sample)),
            ("seed", self.config.seed.to_string()),
            ("epoch", self.epoch.to_string()),
            ("batch_in_epoch", self.batch_in_epoch.to_string()),
        ];
        let sched = self.scheduler.state();
        let sched_meta = [
            ("scheduler.steps", sched.steps.to_string()),
            ("scheduler.lr", sched.lr.to_string()),
            ("scheduler.plateau_lr", sched.plateau_lr.to_string()),
            ("scheduler.best", sched.best.to_string()),
            ("scheduler.num_bad_epochs", sched.num_bad_epochs.to_string()),
            (
                "scheduler.cooldown_counter",
                sched.cooldown_counter.to_string(),
            ),
        ];
        for (k, v) in meta.into_iter().chain(sched_meta) {
            ckpt.metadata.insert(k.to_string(), v);
        }
        // GradScaler's state, as PyTorch checkpoints keep `scaler.state_dict()`.
        if let Some(s) = self.backend.read_loss_scale()? {
            for (k, v) in [
                ("scaler.scale", s.scale.to_string()),
                ("scaler.growth_tracker", s.growth_tracker.to_string()),
                ("scaler.skipped", s.skipped.to_string()),
            ] {
                ckpt.metadata.insert(k.to_string(), v);
            }
        }
        Ok(ckpt)
    }

    /// Continues the run a [`Trainer::checkpoint`] saved: weights, running statistics,
    /// optimizer state, step count, schedule and data position. With the same
    /// configuration, training on from here reproduces the uninterrupted run bit for bit
    /// on the same backend. Everything is checked before anything is changed, so a
    /// checkpoint that is refused leaves the trainer as it was.
    pub fn resume(&mut self, ckpt: &Checkpoint, path: &str) -> Result<()> {
        let meta = |key: &str| -> Result<&str> {
            ckpt.metadata.get(key).map(String::as_str).ok_or_else(|| {
                Error::data(
                    path,
                    format!("no '{key}' in the metadata: not a kiln training checkpoint"),
                )
            })
        };
        fn parse<T: std::str::FromStr>(path: &str, key: &str, v: &str) -> Result<T> {
            v.parse()
                .map_err(|_| Error::data(path, format!("metadata '{key}' is not a number: '{v}'")))
        }
        let num = |key: &str| -> Result<u64> { parse(path, key, meta(key)?) };
        let index = |key: &str| -> Result<usize> {
            let v = num(key)?;
            usize::try_from(v)
                .map_err(|_| Error::data(path, format!("metadata '{key}' is {v}, too large")))
        };
        if meta("model")? != self.model.spec {
            return Err(Error::data(
                path,
                format!("trained '{}', not '{}'", meta("model")?, self.model.spec),
            ));
        }
        let mut states = Vec::new();
        for k in 0..3 {
            if !self.config.optimizer.uses_state(k) {
                continue;
            }
            let mut arena = vec![self.config.optimizer.initial_state(k); self.layout.size];
            for e in &self.layout.entries {
                let name = format!("optim.state{k}.{}", e.name);
                let t = ckpt.tensor(&name).ok_or_else(|| {
                    Error::data(path, format!("no {name}: saved with another optimizer?"))
                })?;
                let n = e.shape.numel();
                if t.shape != e.shape.0 || t.data.len() != n {
                    return Err(Error::data(
                        path,
                        format!(
                            "{name} is {:?} with {} values, the model's parameter is {}",
                            t.shape,
                            t.data.len(),
                            e.shape
                        ),
                    ));
                }
                arena[e.offset..e.offset + n].copy_from_slice(&t.data);
            }
            states.push((k, arena));
        }
        let step = u32::try_from(num("step")?)
            .map_err(|_| Error::data(path, "metadata 'step' is past u32::MAX"))?;
        let epoch = index("epoch")?;
        let batch_in_epoch = index("batch_in_epoch")?;
        let state = SchedulerState {
            steps: num("scheduler.steps")?,
            lr: parse(path, "scheduler.lr", meta("scheduler.lr")?)?,
            plateau_lr: parse(path, "scheduler.plateau_lr", meta("scheduler.plateau_lr")?)?,
            best: parse(path, "scheduler.best", meta("scheduler.best")?)?,
            num_bad_epochs: num("scheduler.num_bad_epochs")?,
            cooldown_counter: num("scheduler.cooldown_counter")?,
        };
        let mut scheduler = self.scheduler.clone();
        scheduler.restore(&state)?;
        // A checkpoint of an f32 run resumed in f16 starts a fresh GradScaler.
        let loss_scale = match ckpt.metadata.get("scaler.scale") {
            Some(scale) if self.config.precision.is_half() => Some(LossScale {
                scale: parse(path, "scaler.scale", scale)?,
                growth_tracker: parse(
                    path,
                    "scaler.growth_tracker",
                    meta("scaler.growth_tracker")?,
                )?,
                skipped: parse(path, "scaler.skipped", meta("scaler.skipped")?)?,
            }),
            _ => None,
        };
        // From here on only the backend can fail (a device error), not the checkpoint.
        self.load_weights(ckpt, path)?;
        for (k, arena) in states {
            self.backend.write_state(k, &arena)?;
        }
        if let Some(s) = loss_scale {
            self.backend.write_loss_scale(s)?;
        }
        self.step = step;
        self.epoch = epoch;
        self.batch_in_epoch = batch_in_epoch;
        self.scheduler = scheduler;
        Ok(())
    }

    /// Loads the model tensors (parameters and running statistics) of a checkpoint or of
    /// any safetensors file with PyTorch's names and layouts; `path` names it in errors.
    pub fn load_weights(&mut self, ckpt: &Checkpoint, path: &str) -> Result<()> {
        let mut params = self.backend.read_params()?;
        let mut buffers = self.backend.read_buffers()?;
        load_model_tensors(&self.layout, ckpt, &mut params, &mut buffers, path)?;
        self.backend.write_params(&params)?;
        self.backend.write_buffers(&buffers)
    }
}
