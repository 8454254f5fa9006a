//! The two-stage runner: stage 1 on real data, stage 2 on real plus synthetic data with per-sample
//! weights, EMA teacher, sliding-window evaluation, checkpoints with exact resume, and the run
//! folder. [`crate::pipeline`] drives it; its rooms, in the order a run goes through them:
//!
//! | room | modules |
//! | --- | --- |
//! | planning | [`plan`] (runs, hashes, folders), [`plugin_check`] |
//! | data | [`prepare`] (the case store), [`synthesis`] (stage 2's synthetic sets, the generator lane) |
//! | running runs | [`execute`] (the loop over runs), [`run_job`], [`run_folder`], [`stage_lock`], [`registration`], [`progress`] |
//! | the stage loop | [`stages`] (stage 1, stage 2, the session, one epoch) |
//! | scoring / weighting | [`scoring`] |
//! | evaluation | [`evaluate`], [`ensemble`] (ensembles of finished runs) |
//! | checkpointing | [`crate::checkpoint`] (files, module state), `stages::session` (what a run's checkpoint holds) |
//! | reporting | [`records`] (epoch and run results), [`report`] (the table, logs, curves, run record, the output folder's index) |
//!
//! For each run the model's [`registration::TrainFn`] for the chosen backend gets a
//! [`run_job::RunJob`]; progress goes to a [`progress::RunObserver`]; what a run leaves is in
//! [`records`].

pub mod ensemble;
pub mod evaluate;
pub mod execute;
pub mod plan;
pub mod plugin_check;
pub mod prepare;
pub mod progress;
pub mod records;
pub mod registration;
pub mod report;
pub mod run_folder;
pub mod run_job;
pub mod scoring;
pub mod stage_lock;
pub mod stages;
pub mod synthesis;
pub mod teacher;
