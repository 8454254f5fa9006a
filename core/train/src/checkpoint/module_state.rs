//! Parameter-level operations on burn modules: forcing lazy weights, EMA, parameter paths.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_store::{ModuleSnapshot, SafetensorsStore};

use std::collections::HashMap;
use std::path::Path;

use dsma_data::error::{CoreError, Result};

/// Visitor that reads every float parameter, which initialises lazily created weights.
struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// Initialises every lazy parameter now, so that clones and copies share the same weights
/// (burn 0.21 initialises on first use; a copy made before that would draw its own weights).
pub fn materialize<B: Backend, M: Module<B>>(module: &M) {
    module.visit(&mut Materialize);
}

/// Collects every float parameter, flattened, in visiting order.
struct Collect<B: Backend> {
    tensors: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.tensors.push(t.reshape([n]));
    }
}

/// Replaces every float parameter by `decay · own + (1 − decay) · other` (other in visiting order).
struct Blend<B: Backend> {
    others: std::vec::IntoIter<Tensor<B, 1>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let value = match self.others.next() {
            Some(other) => {
                let other: Tensor<B, D> = other.reshape(tensor.shape());
                tensor * self.decay + other * (1.0 - self.decay)
            }
            None => tensor,
        };
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Exponential moving average: `ema ← decay · ema + (1 − decay) · student` for every float parameter.
/// Both modules must have the same structure (the same network type and parameters).
pub fn ema_update<B: Backend, M: Module<B>>(ema: M, student: &M, decay: f64) -> M {
    let mut collect = Collect {
        tensors: Vec::new(),
    };
    student.visit(&mut collect);
    ema.map(&mut Blend {
        others: collect.tensors.into_iter(),
        decay,
    })
}

/// Records the dotted path and id of every float parameter.
#[derive(Default)]
struct Paths {
    stack: Vec<String>,
    out: Vec<(String, ParamId)>,
}

impl<B: Backend> ModuleVisitor<B> for Paths {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.out.push((self.stack.join("."), param.id));
    }
}

/// `(path, id)` of every float parameter, in visiting order. Paths are stable across builds of the
/// same network; ids are not (burn draws them at random), so optimizer state is keyed by path on disk.
pub fn parameter_paths<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, ParamId)> {
    let mut p = Paths::default();
    module.visit(&mut p);
    p.out
}

/// Marks every float parameter as trainable.
struct RequireGrad;

impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(true)
    }
}

/// The module with gradients required on every float parameter. A network moved onto an autodiff
/// backend with `AutodiffModule::from_inner` keeps the inner backend's "no gradient" flag, and
/// would silently not train without this.
pub fn require_grad<B: Backend, M: Module<B>>(module: M) -> M {
    module.map(&mut RequireGrad)
}

/// A module's float parameters as safetensors bytes (burn-store); `what` names it in errors.
pub fn module_bytes<B: Backend, M: Module<B>>(m: &M, what: &str) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None);
    m.save_into(&mut store)
        .map_err(|e| CoreError::codec(what, e))?;
    store.get_bytes().map_err(|e| CoreError::codec(what, e))
}

/// Loads safetensors `bytes` (from `file`, named in errors) into `m`; every tensor must fit.
pub fn load_module_bytes<B: Backend, M: Module<B>>(
    mut m: M,
    bytes: &[u8],
    file: &Path,
) -> Result<M> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    let applied = m.load_from(&mut store).map_err(|e| {
        // burn lists every mismatched tensor; the first few say enough.
        let text = e.to_string();
        let short: String = text.chars().take(300).collect();
        let more = if text.chars().count() > 300 { "…" } else { "" };
        CoreError::invalid(
            format!("checkpoint {}", file.display()),
            format!(
                "does not fit this network ({short}{more}); was the network or its parameters changed?"
            ),
        )
    })?;
    if !applied.missing.is_empty() || !applied.errors.is_empty() {
        return Err(CoreError::invalid(
            format!("checkpoint {}", file.display()),
            format!(
                "does not fit this network ({} missing, {} mismatched tensors); was the model changed?",
                applied.missing.len(),
                applied.errors.len()
            ),
        ));
    }
    Ok(m)
}

/// Re-keys optimizer state saved under old parameter ids (burn draws ids at random per build) to
/// the ids of the rebuilt network, matching parameters by visiting order.
pub fn remap_ids<R, V>(record: R, old: &[u64], now: &[(String, ParamId)], path: &Path) -> Result<R>
where
    R: IntoIterator<Item = (ParamId, V)> + FromIterator<(ParamId, V)>,
{
    let map: HashMap<u64, ParamId> = old
        .iter()
        .copied()
        .zip(now.iter().map(|(_, id)| *id))
        .collect();
    record
        .into_iter()
        .map(|(id, r)| {
            map.get(&id.val()).map(|new| (*new, r)).ok_or_else(|| {
                CoreError::invalid(
                    format!("checkpoint {}", path.join("optimizer.bin").display()),
                    "optimizer state for an unknown parameter; the checkpoint is corrupt",
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::TensorData;

    fn linear(weight: [f32; 6], bias: [f32; 3]) -> Linear<Flex> {
        let dev = Default::default();
        let mut l = LinearConfig::new(2, 3).init::<Flex>(&dev);
        l.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(weight.to_vec(), [2, 3]),
            &dev,
        ));
        l.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias.to_vec(), [3]),
            &dev,
        )));
        l
    }

    fn values(t: Tensor<Flex, 1>) -> Vec<f32> {
        t.into_data().to_vec().expect("f32")
    }

    /// ema ← decay · ema + (1 − decay) · student for every parameter, by hand: with decay 0.9,
    /// 1 and 11 give 2, 0 and −10 give −1, −2 and 8 give −1.
    #[test]
    fn ema_update_blends_every_parameter_with_the_decay() {
        let ema = linear([1.0, 0.0, -2.0, 1.0, 1.0, 1.0], [0.0, 10.0, -2.0]);
        let student = linear([11.0, -10.0, 8.0, 1.0, 1.0, 1.0], [10.0, 0.0, 8.0]);
        let out = ema_update(ema, &student, 0.9);
        let w = values(out.weight.val().reshape([6]));
        let want = [2.0, -1.0, -1.0, 1.0, 1.0, 1.0];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{w:?}");
        }
        let b = values(out.bias.as_ref().expect("bias").val());
        for (a, e) in b.iter().zip([1.0, 9.0, -1.0]) {
            assert!((a - e).abs() < 1e-5, "{b:?}");
        }
    }
}
