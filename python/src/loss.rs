//! dsma's training loss (`dsma_train::loss`, eqs. 14–15) on NumPy arrays, on the CPU backend: the
//! value the package's PyTorch loss (`dsma.weighted_dice_loss`) is tested against.

use burn::tensor::{Tensor, TensorData};
use dsma_kernels::backend::CpuBackend;
use dsma_pyhost::arrays::array_arg;
use ndarray::{Ix1, Ix5};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dice_loss_reference, m)?)?;
    Ok(())
}

/// `(1/N) Σ_n w_n L_dice,n` with `L_dice` the soft Dice of sigmoid(`logits`) against `targets`
/// per sample and region channel, averaged over channels (ε = 1e-5, as MONAI), computed by
/// dsma's Rust loss. `logits`, `targets`: float32 [N, C, z, y, x]; `weights`: float32 [N].
#[pyfunction]
fn dice_loss_reference(
    py: Python<'_>,
    logits: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
    weights: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let expected = "float32 [N, C, z, y, x]";
    let l = array_arg::<f32, Ix5>(logits, "logits", expected)?;
    let t = array_arg::<f32, Ix5>(targets, "targets", expected)?;
    let w = array_arg::<f32, Ix1>(weights, "weights", "float32 [N]")?;
    let (lv, tv, wv) = (l.as_array(), t.as_array(), w.as_array());
    if lv.shape() != tv.shape() || wv.len() != lv.shape()[0] {
        return Err(PyValueError::new_err(format!(
            "`logits` {:?}, `targets` {:?} and `weights` {:?} do not match",
            lv.shape(),
            tv.shape(),
            wv.shape()
        )));
    }
    let shape: [usize; 5] = std::array::from_fn(|i| lv.shape()[i]);
    let (lv, tv, wv) = (
        lv.iter().copied().collect::<Vec<f32>>(),
        tv.iter().copied().collect::<Vec<f32>>(),
        wv.to_vec(),
    );
    Ok(py.detach(|| {
        let dev = Default::default();
        let logits = Tensor::<CpuBackend, 5>::from_data(TensorData::new(lv, shape), &dev);
        let targets = Tensor::<CpuBackend, 5>::from_data(TensorData::new(tv, shape), &dev);
        let n = wv.len();
        let weights = Tensor::<CpuBackend, 1>::from_data(TensorData::new(wv, [n]), &dev);
        let loss = dsma_train::loss::weighted_dice_loss(logits, targets, weights);
        f64::from(loss.into_scalar())
    }))
}
