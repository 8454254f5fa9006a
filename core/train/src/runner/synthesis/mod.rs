//! Stage 2's synthetic data: one synthetic case (or generated image) per real training case and
//! epoch, made ahead of the trainer ([`queue`]), where a row's cases come from and each epoch's set
//! ([`sets`]), a comparator's fit ([`generator_fit`]) and the generator lane that fits and draws
//! ahead of earlier runs ([`generator_lane`]).

pub mod generator_fit;
pub mod generator_lane;
pub mod queue;
pub mod sets;
