//! Which direct kernels run on this CPU: the instruction sets, their block sizes, and whether a
//! correlation runs direct at all.

use crate::conv_kernels::engine::Plan;

/// Panel rows per AVX-512 weight-gradient block.
pub(super) const WG_NK512: usize = 6;
/// The largest [`Isa::nr`]: the slack a padded sample keeps past its last block.
pub(super) const NR_MAX: usize = 48;

/// Whether `plan` runs on the direct kernel here: any correlation but a pointwise one (which
/// reads its input in place already), on a CPU with AVX2 and FMA.
pub(crate) fn applies(plan: &Plan) -> bool {
    !plan.pointwise()
        && plan.in_channels > 0
        && plan.out_channels > 0
        && plan.out_dims.iter().all(|&d| d > 0)
        && plan.stride.iter().all(|&s| s > 0)
        && plan.offsets.iter().all(|o| !o.is_empty())
        && Isa::detect().is_some()
}

/// The vector instructions a micro-kernel uses, best first.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) enum Isa {
    /// AVX-512F: 8 output channels × 48 columns in 24 zmm accumulators.
    Avx512,
    /// AVX2 + FMA: 4 output channels × 16 columns in 8 ymm accumulators.
    Avx2,
}

impl Isa {
    #[cfg(target_arch = "x86_64")]
    pub(super) fn detect() -> Option<Isa> {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
            Some(Isa::Avx512)
        } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            Some(Isa::Avx2)
        } else {
            None
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn detect() -> Option<Isa> {
        None
    }

    /// Output channels per block.
    pub(super) fn mr(self) -> usize {
        match self {
            Isa::Avx512 => 8,
            Isa::Avx2 => 4,
        }
    }

    /// Floats per vector register.
    pub(super) fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }

    /// Panel rows per weight-gradient block (beside [`weight_grad::WG_MR`] output channels).
    pub(super) fn wg_nk(self) -> usize {
        match self {
            Isa::Avx512 => WG_NK512,
            Isa::Avx2 => 2,
        }
    }

    /// Consecutive output columns per block.
    pub(super) fn nr(self) -> usize {
        match self {
            Isa::Avx512 => 48,
            Isa::Avx2 => 16,
        }
    }
}
