//! Where the generator's tensors live.

use std::cell::Cell;

pub use tch::Device;

/// The device to train and sample on: the first CUDA GPU when one is usable,
/// the CPU otherwise.
pub fn default_device() -> Device {
    Device::cuda_if_available()
}

/// A one-line description of the libtorch runtime, for `--version` style output.
pub fn runtime_summary() -> String {
    let cuda = if tch::Cuda::is_available() {
        format!("CUDA with {} device(s)", tch::Cuda::device_count())
    } else {
        "CPU only".to_string()
    };
    let bf16 = if cpu_has_native_bf16() { "native" } else { "emulated" };
    format!("libtorch via tch, {cuda}, {} threads, bf16 products {bf16} on this CPU", tch::get_num_threads())
}

/// Caps the CPU threads libtorch's operators use (intra-op parallelism).
/// Results on the CPU are bit-for-bit reproducible for one thread count; a
/// different count may round differently.
pub fn set_cpu_threads(threads: usize) {
    tch::set_num_threads(threads.clamp(1, i32::MAX as usize) as i32);
}

/// How the generator's matrix products (every linear layer) are computed.
/// Weights, optimizer state, activations and every other operation stay in
/// fp32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Products in fp32: the same bits on every CPU of a type, for a thread count.
    #[default]
    Fp32,
    /// Products on bfloat16 inputs (8-bit mantissa) accumulated in fp32: about
    /// twice the fp32 rate on CPUs with AVX-512 BF16 or AMX, and on CUDA GPUs
    /// from Ampere on; emulated, and slower than fp32, elsewhere.
    Bf16,
}

impl Precision {
    /// `fp32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

thread_local! {
    static PRECISION: Cell<Precision> = const { Cell::new(Precision::Fp32) };
}

/// Sets the [`Precision`] of the generator's matrix products on the calling
/// thread (the one that trains, samples or evaluates). Training records it in
/// its state file.
pub fn set_precision(precision: Precision) {
    PRECISION.with(|p| p.set(precision));
}

/// The calling thread's [`Precision`] (fp32 unless [`set_precision`] said
/// otherwise).
pub fn precision() -> Precision {
    PRECISION.with(Cell::get)
}

/// Whether this CPU has bfloat16 dot-product instructions (AVX-512 BF16), so
/// that [`Precision::Bf16`] products run at about twice the fp32 rate.
pub fn cpu_has_native_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Makes the C allocator (which libtorch's CPU tensors come from) keep
/// freed memory for reuse instead of handing it back to the kernel: every
/// block comes from the heap, never from a fresh `mmap` (glibc cannot raise
/// its mmap threshold above 32 MiB, and an edge batch's candidate-pair
/// tensors are ~37 MB), and the heap is never trimmed. Training and sampling
/// allocate and free tensors of the same few sizes thousands of times;
/// returning them made every allocation page-fault afresh. Two edge-model
/// epochs on TPU Tile: 2.5 M page faults with a 32 MiB threshold, 0.76 M
/// without mmap (training 11.3 + 11.7 s → 9.4 + 10.0 s), for a peak resident
/// size of 3.1 GB instead of 2.8 GB. The price is a resident size at the
/// run's high-water mark. Process-wide; a no-op off glibc.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator tunables; any value is
    // accepted or refused by glibc itself (the return value says which).
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

#[cfg(test)]
mod tests {
    use tch::{nn, nn::Module, Kind, Tensor};

    /// A tiny linear layer's forward and backward pass on libtorch, with the
    /// gradient checked against the closed form: for y = sum(x·Wᵀ + b),
    /// dy/dW[i][j] = sum over the batch of x[·][j], and dy/db[i] = batch size.
    #[test]
    fn linear_forward_backward_gives_the_analytic_gradient() {
        let _rng = crate::model::tests::rng_lock();
        tch::manual_seed(7);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let layer = nn::linear(vs.root() / "lin", 3, 2, Default::default());
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]);
        let y = layer.forward(&x).sum(Kind::Float);
        y.backward();
        let grad_w = layer.ws.grad();
        let grad_b = layer.bs.as_ref().expect("linear has a bias").grad();
        let want_w = Tensor::from_slice(&[5.0f32, 7.0, 9.0, 5.0, 7.0, 9.0]).view([2, 3]);
        assert!(grad_w.allclose(&want_w, 1e-6, 1e-6, false), "dW = {grad_w}");
        assert!(grad_b.allclose(&Tensor::from_slice(&[2.0f32, 2.0]), 1e-6, 1e-6, false), "db = {grad_b}");
        // The forward value itself matches the parameters it was built from.
        let manual = (x.matmul(&layer.ws.tr()) + layer.bs.as_ref().unwrap()).sum(Kind::Float);
        assert!(y.allclose(&manual, 1e-5, 1e-5, false));
    }

    /// One Adam step moves a parameter against its gradient.
    #[test]
    fn adam_step_reduces_a_quadratic_loss() {
        use tch::nn::OptimizerConfig;
        let _rng = crate::model::tests::rng_lock();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs.root().var("w", &[4], nn::Init::Const(1.0));
        let mut opt = nn::Adam { amsgrad: true, ..Default::default() }.build(&vs, 0.1).unwrap();
        let loss_of = |w: &Tensor| (w * w).sum(Kind::Float).double_value(&[]);
        let before = loss_of(&w);
        for _ in 0..10 {
            let loss = (&w * &w).sum(Kind::Float);
            opt.backward_step(&loss);
        }
        assert!(loss_of(&w) < before * 0.5, "loss {} -> {}", before, loss_of(&w));
    }
}
