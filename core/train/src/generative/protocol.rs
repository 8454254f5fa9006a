//! The comparator protocol of §4.1, shared by every generative row: generators model one modality
//! in [-1, 1]; their samples are resampled to the segmentation patch, mapped back to that
//! modality's z-score space and turned into four input channels by different random noise.

use ndarray::{Array3, Array4, ArrayView3, Axis};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use dsma_data::error::{CoreError, Result};
use dsma_data::volume::Modality;
use dsma_plugin::ParamDoc;

/// How the four noisy copies of a sample become training data (comparators.md §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseLayout {
    /// One case per sample; channel `c` carries noise level `c` (default).
    #[default]
    Channels,
    /// Four cases per sample, one per noise level, every channel of a case at that level
    /// ("four noisy datasets"); the number of synthetic cases per epoch is unchanged.
    Datasets,
}

/// The protocol settings every comparator's parameters carry under `protocol:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolParams {
    /// The modality the generator models.
    pub modality: Modality,
    /// Gaussian noise σ of each input channel, as a fraction of the intensity range `hi − lo`.
    pub noise: Vec<f64>,
    /// Noisy copies as channels of one case, or as separate cases.
    pub layout: NoiseLayout,
    /// Quantiles of the training split's brain voxels (of `modality`, z-scored) that map to −1 and 1.
    pub range_quantiles: [f64; 2],
    /// Samples drawn for the sample grid written after fitting (`synthesizer/samples.png`).
    pub preview: usize,
    /// `true` (default): follow `train.synthesis.regenerate`, as every other row does (by default one
    /// set, drawn when stage 2 starts and relabelled by every epoch's EMA teacher: the comparators'
    /// "synthetic datasets", §4.1); `false`: one set per run even when that setting asks for more.
    pub regenerate: bool,
}

impl Default for ProtocolParams {
    fn default() -> Self {
        ProtocolParams {
            modality: Modality::Flair,
            noise: vec![0.01, 0.03, 0.05, 0.1],
            layout: NoiseLayout::Channels,
            range_quantiles: [0.005, 0.995],
            preview: 4,
            regenerate: true,
        }
    }
}

impl ProtocolParams {
    /// The parameter doc of `protocol` (its fields in one line).
    pub fn docs() -> Vec<ParamDoc> {
        vec![ParamDoc {
            name: "protocol",
            doc: "§4.1 protocol: modality (flair), noise (σ per input channel × intensity range), layout (channels | datasets), range_quantiles (mapped to ±1), preview (grid PNG samples), regenerate (true: follow train.synthesis.regenerate; false: one set per run)",
        }]
    }

    /// Checks the values (called by the plugins' `new`).
    pub fn validate(&self) -> Result<()> {
        let field = |f: &str| format!("synthesizer.params.protocol.{f}");
        if self.noise.is_empty() || self.noise.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err(CoreError::invalid(
                field("noise"),
                format!("{:?}; expected one or more finite σ ≥ 0", self.noise),
            ));
        }
        let [a, b] = self.range_quantiles;
        if !((0.0..1.0).contains(&a) && a < b && b <= 1.0) {
            return Err(CoreError::invalid(
                field("range_quantiles"),
                format!("[{a}, {b}]; expected 0 ≤ lo < hi ≤ 1"),
            ));
        }
        Ok(())
    }
}

/// The linear map between a modality's z-score values and the generator's [-1, 1]: `lo ↦ −1`,
/// `hi ↦ 1` (values outside are clipped on the way in).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntensityMap {
    /// z-score value mapped to −1.
    pub lo: f32,
    /// z-score value mapped to 1.
    pub hi: f32,
}

impl IntensityMap {
    /// Quantiles `q` of `values` (the training split's brain voxels).
    pub fn from_values(mut values: Vec<f32>, q: [f64; 2]) -> Result<Self> {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return Err(CoreError::invalid(
                "generator training data",
                "no brain voxels in the training split",
            ));
        }
        values.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
        let (lo, hi) = (at(q[0]), at(q[1]));
        Ok(IntensityMap {
            lo,
            hi: if hi > lo { hi } else { lo + 1.0 },
        })
    }
    /// The range `hi − lo` (noise levels are fractions of it).
    pub fn range(&self) -> f32 {
        self.hi - self.lo
    }
    /// z-score → [-1, 1] (clipped).
    pub fn to_unit(&self, z: f32) -> f32 {
        (2.0 * (z - self.lo) / self.range() - 1.0).clamp(-1.0, 1.0)
    }
    /// [-1, 1] → z-score (generator output is clipped to [-1, 1] first).
    pub fn to_zscore(&self, u: f32) -> f32 {
        self.lo + (u.clamp(-1.0, 1.0) + 1.0) * 0.5 * self.range()
    }
}

/// Trilinear resampling of `v` to `shape` (`[z, y, x]`), voxel centres aligned as PyTorch's
/// `interpolate(mode="trilinear", align_corners=False)`: output index `o` reads source coordinate
/// `(o + 0.5)·n_in/n_out − 0.5`, clamped to the volume.
pub fn resample(v: ArrayView3<f32>, shape: [usize; 3]) -> Array3<f32> {
    let mut cur = v.to_owned();
    for (axis, &n_out) in shape.iter().enumerate() {
        cur = resample_axis(cur.view(), axis, n_out);
    }
    cur
}

fn resample_axis(v: ArrayView3<f32>, axis: usize, n_out: usize) -> Array3<f32> {
    let n_in = v.len_of(Axis(axis));
    if n_in == n_out {
        return v.to_owned();
    }
    let mut dims = [v.dim().0, v.dim().1, v.dim().2];
    dims[axis] = n_out;
    let scale = n_in as f64 / n_out as f64;
    let taps: Vec<(usize, usize, f32)> = (0..n_out)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(n_in - 1);
            (i0, i1, (s - i0 as f64) as f32)
        })
        .collect();
    let mut out = Array3::<f32>::zeros(dims);
    for (o, &(i0, i1, f)) in taps.iter().enumerate() {
        let a = v.index_axis(Axis(axis), i0);
        let b = v.index_axis(Axis(axis), i1);
        let mut dst = out.index_axis_mut(Axis(axis), o);
        ndarray::Zip::from(&mut dst)
            .and(&a)
            .and(&b)
            .for_each(|d, &x, &y| *d = x * (1.0 - f) + y * f);
    }
    out
}

/// The cases made from one generated volume `u` (in [-1, 1], already at the patch shape): mapped
/// to z-score space, then `channels` noisy copies (σ_c = `noise[c] · range`, cycling through
/// `noise` when it has fewer entries), as one case (`Channels`) or one case per level (`Datasets`).
pub fn noisy_copies(
    u: ArrayView3<f32>,
    map: &IntensityMap,
    p: &ProtocolParams,
    channels: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Array4<f32>> {
    let z = u.mapv(|x| map.to_zscore(x));
    let sigma = |c: usize| p.noise[c % p.noise.len()] as f32 * map.range();
    let mut noisy = |s: f32| {
        z.mapv(|v| {
            let e: f32 = StandardNormal.sample(rng);
            v + s * e
        })
    };
    let (d, h, w) = z.dim();
    match p.layout {
        NoiseLayout::Channels => {
            let mut img = Array4::<f32>::zeros((channels, d, h, w));
            for c in 0..channels {
                img.index_axis_mut(Axis(0), c).assign(&noisy(sigma(c)));
            }
            vec![img]
        }
        NoiseLayout::Datasets => (0..p.noise.len())
            .map(|level| {
                let mut img = Array4::<f32>::zeros((channels, d, h, w));
                for c in 0..channels {
                    img.index_axis_mut(Axis(0), c).assign(&noisy(sigma(level)));
                }
                img
            })
            .collect(),
    }
}

/// A standard-normal latent of `len` values from `rng` (the generators' `z`).
pub fn normal_vec(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

/// A uniform integer in `0..=max` (crop positions).
pub fn uniform_index(max: usize, rng: &mut ChaCha8Rng) -> usize {
    rng.random_range(0..=max)
}
