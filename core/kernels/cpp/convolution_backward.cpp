// aten::convolution_backward for dsma's libtorch backend (the `tch` feature): tch 0.22 binds no
// convolution gradient, and burn's default computes the weight gradient as a convolution with the
// output gradient as a kernel the size of the whole volume. This calls PyTorch's own backward
// (oneDNN on the CPU, cuDNN on CUDA), the kernels a PyTorch training step runs.
#include <ATen/ATen.h>

#include <cstdint>
#include <cstdio>
#include <exception>

extern "C" int dsma_convolution_backward(
    const at::Tensor *grad_output, const at::Tensor *input, const at::Tensor *weight,
    const int64_t *stride, const int64_t *padding, const int64_t *dilation, int transposed,
    const int64_t *output_padding, int64_t groups, int want_input, int want_weight,
    at::Tensor **grad_input, at::Tensor **grad_weight, char *error, size_t error_len) {
  try {
    auto grads = at::convolution_backward(
        *grad_output, *input, *weight, c10::nullopt, at::IntArrayRef(stride, 3),
        at::IntArrayRef(padding, 3), at::IntArrayRef(dilation, 3), transposed != 0,
        at::IntArrayRef(output_padding, 3), groups,
        {want_input != 0, want_weight != 0, false});
    if (want_input != 0) {
      *grad_input = new at::Tensor(std::get<0>(grads));
    }
    if (want_weight != 0) {
      *grad_weight = new at::Tensor(std::get<1>(grads));
    }
    return 0;
  } catch (const std::exception &e) {
    std::snprintf(error, error_len, "%s", e.what());
    return 1;
  }
}
