//! A model plugin registers once and is built on every backend of this build.

use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use dsma_data::Result;
use dsma_kernels::KernelBackend;
use dsma_plugin::backend::BackendKind;
use dsma_plugin::{PluginKind, PluginParams, Registry};
use dsma_train::model::{ModelFactory, SegmentationModel};
use dsma_train::runner::registration::{model, models};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TinyParams {
    bias: bool,
}
impl PluginParams for TinyParams {}

#[derive(Module, Debug)]
struct Tiny<B: Backend> {
    conv: Conv3d<B>,
}

impl<B: Backend> SegmentationModel<B> for Tiny<B> {
    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.conv.forward(x)
    }
}

struct TinyFactory;

impl ModelFactory for TinyFactory {
    const NAME: &'static str = "tiny-test-model";
    const VERSION: &'static str = "0.0.1";
    const DESCRIPTION: &'static str = "1×1×1 convolution, for tests";
    type Params = TinyParams;
    type Model<B: KernelBackend> = Tiny<B>;
    fn build<B: KernelBackend>(p: &TinyParams, device: &B::Device) -> Result<Tiny<B>> {
        Ok(Tiny {
            conv: Conv3dConfig::new([4, 3], [1, 1, 1])
                .with_bias(p.bias)
                .init(device),
        })
    }
}

dsma_train::register_model!(TinyFactory);

#[test]
fn registered_model_is_listed_probed_on_cpu_and_named_in_errors() {
    assert!(models().iter().any(|m| m.name == "tiny-test-model"));
    let reg = Registry::builtin();
    let info = reg.describe("tiny-test-model").unwrap();
    assert_eq!(info.kind, PluginKind::Model);
    // The one plugin registry answers for models too (no backend needed to count parameters).
    let entry = reg.model("tiny-test-model").unwrap();
    assert_eq!(
        (entry.parameter_count)(&serde_json::json!({"bias": true})).unwrap(),
        4 * 3 + 3
    );
    assert!((entry.check)(&serde_json::json!({"bais": true})).is_err());
    let err = reg.model("tiny-tset-model").err().unwrap().to_string();
    assert!(err.contains("did you mean `tiny-test-model`"), "{err}");
    let m = model("tiny-test-model").unwrap();
    let probe = m
        .probe(
            BackendKind::Cpu,
            &serde_json::json!({"bias": true}),
            [1, 4, 6, 5, 4],
        )
        .unwrap();
    assert_eq!(probe.output_shape, [1, 3, 6, 5, 4]);
    assert_eq!(probe.parameters, 4 * 3 + 3);
    let no_bias = m
        .probe(BackendKind::Cpu, &serde_json::json!({}), [2, 4, 3, 3, 3])
        .unwrap();
    assert_eq!(no_bias.parameters, 12);
    let err = m
        .probe(
            BackendKind::Cpu,
            &serde_json::json!({"bais": true}),
            [1, 4, 2, 2, 2],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tiny-test-model") && err.contains("bais"),
        "{err}"
    );
    let err = model("tiny-tset-model").err().unwrap().to_string();
    assert!(err.contains("did you mean `tiny-test-model`"), "{err}");
    if !BackendKind::Cuda.available() {
        let err = m
            .probe(BackendKind::Cuda, &serde_json::json!({}), [1, 4, 2, 2, 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cuda"), "{err}");
    }
}
