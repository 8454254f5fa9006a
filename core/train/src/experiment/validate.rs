//! Range checks of a typed experiment that deserialization cannot make; each error names the field.

use dsma_data::error::{CoreError, Result};

use crate::experiment::config::{DatasetKind, Experiment};

impl Experiment {
    /// Checks ranges that deserialization cannot (names the field).
    pub fn validate(&self) -> Result<()> {
        if let Some(r) = &self.reference {
            r.check(self)?;
        }
        self.validate_train()?;
        self.validate_eval()?;
        self.validate_datasets_and_rows()
    }

    /// `train`: counts ≥ 1, learning rates > 0, the EMA decay in [0, 1), the patch.
    fn validate_train(&self) -> Result<()> {
        let t = &self.train;
        let positive = [
            ("train.batch", t.batch),
            ("train.patches_per_case", t.patches_per_case),
            ("train.checkpoint_every", t.checkpoint_every),
            ("train.synthesis.workers", t.synthesis.workers),
            (
                "train.synthesis.prefetch_epochs",
                t.synthesis.prefetch_epochs,
            ),
            ("repeats", self.repeats),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(CoreError::invalid(field, "0; expected ≥ 1"));
            }
        }
        t.patch.validate()?;
        if let Some(c) = &t.synthesis.corrupt {
            c.validate()?;
        }
        for (field, lr) in [
            ("train.stage1.lr", t.stage1.lr),
            ("train.stage2.lr", t.stage2.lr),
        ] {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(CoreError::invalid(field, format!("{lr}; expected > 0")));
            }
        }
        if !(0.0..1.0).contains(&t.ema_decay) {
            return Err(CoreError::invalid(
                "train.ema_decay",
                format!("{}; expected a value in [0, 1)", t.ema_decay),
            ));
        }
        Ok(())
    }

    /// `eval`: the window's overlap in [0, 1) and edges ≥ 1, the threshold in [0, 1].
    fn validate_eval(&self) -> Result<()> {
        let w = &self.eval.window;
        if !(0.0..1.0).contains(&w.overlap) {
            return Err(CoreError::invalid(
                "eval.window.overlap",
                format!("{}; expected a value in [0, 1)", w.overlap),
            ));
        }
        if w.patch.contains(&0) {
            return Err(CoreError::invalid(
                "eval.window.patch",
                format!("{:?}; every edge must be ≥ 1", w.patch),
            ));
        }
        if self.eval.predict.ensemble == super::config::Ensemble::Repeats && self.repeats < 2 {
            return Err(CoreError::invalid(
                "eval.predict.ensemble",
                format!(
                    "repeats with repeats: {}; an ensemble of repeats needs repeats ≥ 2",
                    self.repeats
                ),
            ));
        }
        let tol = self.eval.metrics.nsd_tolerance;
        if !(tol.is_finite() && tol > 0.0) {
            return Err(CoreError::invalid(
                "eval.metrics.nsd_tolerance",
                format!("{tol}; expected a positive number of millimetres"),
            ));
        }
        if !(0.0..=1.0).contains(&self.eval.threshold) {
            return Err(CoreError::invalid(
                "eval.threshold",
                format!("{}; expected a value in [0, 1]", self.eval.threshold),
            ));
        }
        Ok(())
    }

    /// At least one dataset (phantoms with their spec) and one row; row labels unique.
    fn validate_datasets_and_rows(&self) -> Result<()> {
        if self.datasets.is_empty() {
            return Err(CoreError::invalid(
                "datasets",
                "empty; expected at least one dataset",
            ));
        }
        if self.rows.is_empty() {
            return Err(CoreError::invalid(
                "rows",
                "empty; expected at least one row",
            ));
        }
        for d in &self.datasets {
            d.convention()?;
            if d.kind == DatasetKind::Phantom && d.phantom.is_none() {
                return Err(CoreError::invalid(
                    format!("datasets.{}.phantom", d.name),
                    "missing; a phantom dataset needs `phantom: {cases, size, seed}`",
                ));
            }
        }
        let mut labels = std::collections::BTreeSet::new();
        for r in &self.rows {
            if !labels.insert(r.label.as_str()) {
                return Err(CoreError::invalid(
                    "rows",
                    format!(
                        "label `{}` appears twice; row labels must be unique",
                        r.label
                    ),
                ));
            }
        }
        Ok(())
    }
}
