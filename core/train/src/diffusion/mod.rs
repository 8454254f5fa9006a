//! The diffusion core both diffusion comparators share (`diffusion-wu`, `diffusion-yu`): the
//! schedule and its closed forms ([`schedule`]), the noise-prediction U-Net ([`unet`]), the
//! ε-prediction loss, and an ancestral sampler over any list of timesteps (all `T`, or a strided
//! subset: respaced DDPM). Conventions follow DDPM (Ho et al. 2020) and the guided-diffusion /
//! AnoDDPM code: linear β 1e-4 → 0.02, `T = 1000`, `σ_t² = β_t`, `x̂_0` clipped to [-1, 1].

pub mod process;
pub mod schedule;
pub mod train;
pub mod unet;

pub use process::{
    predict_x0, q_sample, reverse_step, sample_loop, DiffusionParams, ReverseOptions, Variance,
};
pub use schedule::{Posterior, Schedule};
pub use unet::{Denoiser, DenoiserConfig};
