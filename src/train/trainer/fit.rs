//! The training loop: epochs of batches, validation and early stopping, learning-rate
//! schedules, periodic checkpoints and evaluation.

use super::*;

impl Trainer {
    /// Trains for `config.epochs` epochs, evaluating on `test` after each. With
    /// `config.val_split`, that fraction of `train` is held out and evaluated each epoch;
    /// with `config.early_stopping` as well, training stops when the monitored validation
    /// metric has not improved for `patience` epochs, and the best weights are restored.
    pub fn fit(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Vec<EpochReport>> {
        self.check_data(train)?;
        self.check_data(test)?;
        let split;
        let (train, val) = match self.config.val_split {
            Some(f) => {
                split = train.split(f, self.config.seed)?;
                (&split.0, Some(&split.1))
            }
            None => (train, None),
        };
        let mut tracker = match (self.config.early_stopping, val) {
            (Some(rule), Some(_)) => Some(Tracker::new(rule)),
            (Some(_), None) => {
                return Err(Error::Config(
                    "early stopping needs a validation split (--val-split)".into(),
                ))
            }
            _ => None,
        };
        let mut best: Option<(usize, Vec<f32>, Vec<f32>)> = None;
        let mut reports = Vec::new();
        let mut batcher = Batcher::new(
            train,
            self.config.batch_size,
            self.config.shuffle,
            self.config.seed,
        )?;
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        let mut stopped = false;
        for epoch in self.epoch.saturating_add(1)..=self.config.epochs {
            batcher.start_epoch(epoch - 1);
            let batches = batcher.batches_per_epoch();
            // A resumed run continues mid-epoch: the batches already taken are skipped. A
            // position past the epoch's end comes from another dataset or batch size.
            if self.batch_in_epoch >= batches {
                return Err(Error::Config(format!(
                    "the run resumes after batch {} of epoch {epoch}, which has only {batches} \
                     batches: the checkpoint was saved with another training set or batch size",
                    self.batch_in_epoch
                )));
            }
            for _ in 0..self.batch_in_epoch {
                batcher.next_indices();
            }
            on_event(&Event::EpochStart { epoch, batches });
            self.backend.reset_metrics()?;
            let start = Instant::now();
            let (mut done, mut seen) = (0usize, 0usize);
            let mut loss_sum_before = 0.0f32;
            while let Some(n) = batcher.next_batch(&mut images, &mut labels) {
                self.train_batch(&images, &labels)?;
                if self.config.step_events {
                    // One readback per step: the accumulated loss·batch tells this batch's loss.
                    let sum = self.backend.read_metrics()?[METRIC_LOSS];
                    let clipping = self.config.clip.max_norm.is_some();
                    on_event(&Event::Step {
                        step: self.step,
                        epoch,
                        loss: (sum - loss_sum_before) / n as f32,
                        lr: self.last_lr,
                        grad_norm: if clipping {
                            Some(self.backend.read_grad_norm_sq()?.sqrt())
                        } else {
                            None
                        },
                    });
                    loss_sum_before = sum;
                }
                self.batch_in_epoch += 1;
                if self.scheduler.per_batch() {
                    self.scheduler.step();
                }
                done += 1;
                seen += n;
                if self
                    .config
                    .max_steps
                    .is_some_and(|max| u64::from(self.step) >= max)
                {
                    stopped = true;
                }
                let loss = if done % self.config.log_every.max(1) == 0 || done == batches {
                    Some(self.backend.read_metrics()?[METRIC_LOSS] / seen as f32)
                } else {
                    None
                };
                let images_per_s = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
                on_event(&Event::Batch {
                    done,
                    loss,
                    images_per_s,
                });
                if stopped {
                    break;
                }
            }
            let complete = self.batch_in_epoch >= batches;
            if complete {
                self.epoch = epoch;
                self.batch_in_epoch = 0;
            }
            let m = self.backend.read_metrics()?;
            let seconds = start.elapsed().as_secs_f64();
            let validation = match val {
                Some(v) => Some(self.evaluate(v)?),
                None => None,
            };
            let (test_loss, test_accuracy) = self.evaluate(test)?;
            let report = EpochReport {
                epoch,
                train_loss: m[METRIC_LOSS] / seen.max(1) as f32,
                train_accuracy: m[METRIC_CORRECT] / seen.max(1) as f32,
                val_loss: validation.map(|v| v.0),
                val_accuracy: validation.map(|v| v.1),
                test_loss,
                test_accuracy,
                images_per_s: seen as f64 / seconds.max(1e-9),
                lr: self.last_lr,
                seconds,
                loss_scale: self.backend.read_loss_scale()?,
            };
            if complete && !self.scheduler.per_batch() {
                match &self.config.schedule {
                    // Mode min watches a loss, mode max an accuracy, validation when there
                    // is a split.
                    Schedule::ReduceOnPlateau { mode, .. } => {
                        let metric = match mode {
                            PlateauMode::Min => report.val_loss.unwrap_or(report.train_loss),
                            PlateauMode::Max => {
                                report.val_accuracy.unwrap_or(report.train_accuracy)
                            }
                        };
                        self.scheduler.step_metric(metric)
                    }
                    _ => self.scheduler.step(),
                }
            }
            on_event(&Event::EpochEnd(report.clone()));
            reports.push(report);
            if let (Some(t), Some((vl, va))) = (tracker.as_mut(), validation) {
                match t.observe(vl, va) {
                    Verdict::Improved => {
                        best = Some((
                            epoch,
                            self.backend.read_params()?,
                            self.backend.read_buffers()?,
                        ));
                    }
                    Verdict::Wait => {}
                    Verdict::Stop => break,
                }
            }
            if let Some((path, every)) = self.config.checkpoint_every.clone() {
                if complete && epoch % every.max(1) == 0 {
                    self.checkpoint()?.write(&path)?;
                }
            }
            if stopped {
                break;
            }
        }
        if let Some((epoch, params, buffers)) = best {
            // Reports count this session's epochs; `epoch` is absolute (a run may resume).
            if Some(epoch) != reports.last().map(|r| r.epoch) {
                self.backend.write_params(&params)?;
                self.backend.write_buffers(&buffers)?;
                let (test_loss, test_accuracy) = self.evaluate(test)?;
                on_event(&Event::Restored {
                    epoch,
                    test_loss,
                    test_accuracy,
                });
            }
        }
        Ok(reports)
    }

    /// Mean loss per image and accuracy on a dataset, in evaluation mode.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<(f32, f32)> {
        self.check_data(data)?;
        let mut batcher = Batcher::new(data, self.config.batch_size, false, 0)?;
        let scalars = self.scalars();
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        self.backend.reset_metrics()?;
        while let Some(n) = batcher.next_batch(&mut images, &mut labels) {
            let c = self.plan(false, n)?;
            self.run_plan(c.id, &images, &labels, &scalars)?;
        }
        let m = self.backend.read_metrics()?;
        self.backend.reset_metrics()?;
        let n = data.len as f32;
        Ok((m[METRIC_LOSS] / n, m[METRIC_CORRECT] / n))
    }
}
