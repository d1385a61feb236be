// The three libtorch tensor ops whose scalar argument tch 0.26 does not
// expose (`add_`'s alpha, `addcmul_`'s and `addcdiv_`'s value), and resetting
// a gradient to undefined (`zero_grad` with set_to_none). synth/src/optim.rs
// drives them; see its module doc for why they cannot be composed from tch's
// ops (the CPU kernel of `add_` with alpha is a fused multiply-add).
//
// Every function takes tch's tensor handles (`torch::Tensor *`), returns null
// on success and otherwise a message that strata_optim_free_error releases.

#include <ATen/core/Tensor.h>

#include <cstdlib>
#include <cstring>
#include <exception>

namespace {

char *error_message(const char *what) {
  char *copy = static_cast<char *>(std::malloc(std::strlen(what) + 1));
  if (copy != nullptr) {
    std::strcpy(copy, what);
  }
  return copy;
}

template <class F> char *guarded(F f) {
  try {
    f();
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e.what());
  } catch (...) {
    return error_message("unknown C++ exception");
  }
}

} // namespace

extern "C" {

// self += alpha * other
char *strata_optim_add_(at::Tensor *self, const at::Tensor *other, double alpha) {
  return guarded([&] { self->add_(*other, alpha); });
}

// self += value * tensor1 * tensor2
char *strata_optim_addcmul_(at::Tensor *self, const at::Tensor *tensor1, const at::Tensor *tensor2, double value) {
  return guarded([&] { self->addcmul_(*tensor1, *tensor2, value); });
}

// self += value * tensor1 / tensor2
char *strata_optim_addcdiv_(at::Tensor *self, const at::Tensor *tensor1, const at::Tensor *tensor2, double value) {
  return guarded([&] { self->addcdiv_(*tensor1, *tensor2, value); });
}

// Drops the gradient of a variable (it becomes undefined).
char *strata_optim_clear_grad(at::Tensor *self) {
  return guarded([&] {
    at::Tensor &grad = self->mutable_grad();
    if (grad.defined()) {
      grad.reset();
    }
  });
}

void strata_optim_free_error(char *message) { std::free(message); }
}
