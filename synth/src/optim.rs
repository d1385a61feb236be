//! Adam whose state is in the open, so that training can save it and a
//! resumed run continue with the same moment estimates.
//!
//! The update is libtorch's C++ `torch::optim::Adam` (what tch's `nn::Adam`
//! builds), bit for bit, for the configurations training uses (no weight
//! decay):
//!
//! - [`Adam::zero_grad`] drops every gradient (libtorch 2's `zero_grad` sets
//!   them to none), so a variable the next loss does not reach has no
//!   gradient, and [`Adam::step`] skips it: no step counted, moments and
//!   weights left alone (a batch without edges leaves `W` and `W_trans`
//!   without gradients, see [`crate::model::layers`]).
//! - Each variable has its own step count and its state is created, zero, on
//!   its first gradient.
//! - The step is libtorch's sequence of tensor ops on the same tensors with
//!   the same scalars: `m.mul_(β₁).add_(g, 1 − β₁)`,
//!   `v.mul_(β₂).addcmul_(g, g, 1 − β₂)`, with amsgrad `max_out(v̂, v, v̂)`,
//!   `denom = (v̂.sqrt() / √(1 − β₂ᵗ)).add_(ε)`,
//!   `p.addcdiv_(m, denom, −lr / (1 − β₁ᵗ))`, under no_grad; the bias
//!   corrections in `f64` with `powf` (C++'s `std::pow(double, int64_t)`).
//!
//! tch 0.26 does not expose the scalar of `add_` (alpha), `addcmul_` and
//! `addcdiv_` (value), nor a way to drop a gradient, and the scalar cannot be
//! applied by a separate op: libtorch's vectorized CPU kernel of `add_` with
//! alpha is a fused multiply-add, which a `mul` followed by an `add` rounds
//! differently. `csrc/optim_ops.cpp` (compiled by `build.rs` against
//! libtorch's headers) calls those four methods of `at::Tensor`.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr};

use tch::{nn, Kind, TchError, Tensor};

extern "C" {
    fn strata_optim_add_(this: *mut c_void, other: *const c_void, alpha: f64) -> *mut c_char;
    fn strata_optim_addcmul_(this: *mut c_void, t1: *const c_void, t2: *const c_void, value: f64) -> *mut c_char;
    fn strata_optim_addcdiv_(this: *mut c_void, t1: *const c_void, t2: *const c_void, value: f64) -> *mut c_char;
    fn strata_optim_clear_grad(this: *mut c_void) -> *mut c_char;
    fn strata_optim_free_error(message: *mut c_char);
}

/// Turns the shim's error message (null: none) into a result.
fn checked(message: *mut c_char) -> Result<(), TchError> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string from malloc that
    // only strata_optim_free_error releases.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { strata_optim_free_error(message) };
    Err(TchError::Torch(text))
}

fn handle(t: &Tensor) -> *mut c_void {
    // The C++ side mutates the tensor's storage (its methods are const on
    // the `at::Tensor` handle), never the handle tch owns.
    t.as_ptr() as *mut c_void
}

/// `this += alpha · other` (libtorch's `add_` with alpha).
fn add_(this: &Tensor, other: &Tensor, alpha: f64) -> Result<(), TchError> {
    // SAFETY: both are live tch tensors, i.e. `torch::Tensor *`.
    checked(unsafe { strata_optim_add_(handle(this), other.as_ptr().cast(), alpha) })
}

/// `this += value · t1 · t2` (libtorch's `addcmul_`).
fn addcmul_(this: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> Result<(), TchError> {
    // SAFETY: as in add_.
    checked(unsafe { strata_optim_addcmul_(handle(this), t1.as_ptr().cast(), t2.as_ptr().cast(), value) })
}

/// `this += value · t1 / t2` (libtorch's `addcdiv_`).
fn addcdiv_(this: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> Result<(), TchError> {
    // SAFETY: as in add_.
    checked(unsafe { strata_optim_addcdiv_(handle(this), t1.as_ptr().cast(), t2.as_ptr().cast(), value) })
}

/// Makes a variable's gradient undefined.
fn clear_grad(var: &Tensor) -> Result<(), TchError> {
    // SAFETY: as in add_.
    checked(unsafe { strata_optim_clear_grad(handle(var)) })
}

/// A contiguous copy with its own storage.
fn deep_copy(t: &Tensor) -> Result<Tensor, TchError> {
    let mut copy = t.f_empty_like()?.f_contiguous()?;
    copy.f_copy_(t)?;
    Ok(copy)
}

/// Adam's hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Normalize by the largest second moment so far (AMSGrad).
    pub amsgrad: bool,
}

impl AdamConfig {
    /// tch's `nn::Adam::default()` (β 0.9 / 0.999, ε 1e-8, no weight decay)
    /// with this learning rate and amsgrad flag.
    pub fn new(lr: f64, amsgrad: bool) -> Self {
        let d = nn::Adam::default();
        debug_assert_eq!(d.wd, 0.0, "weight decay is not implemented");
        AdamConfig { lr, beta1: d.beta1, beta2: d.beta2, eps: d.eps, amsgrad }
    }
}

/// One variable's state (libtorch's `AdamParamState`).
#[derive(Debug)]
pub struct ParamState {
    /// Steps taken (those with a gradient).
    pub step: i64,
    /// Running mean of the gradient.
    pub exp_avg: Tensor,
    /// Running mean of the squared gradient.
    pub exp_avg_sq: Tensor,
    /// With amsgrad: the elementwise maximum of `exp_avg_sq` so far.
    pub max_exp_avg_sq: Option<Tensor>,
}

/// The names of the tensors of a saved state: `FIELD.VARIABLE`.
pub const STATE_FIELDS: [&str; 4] = ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

/// Adam over the trainable variables of one [`nn::VarStore`].
#[derive(Debug)]
pub struct Adam {
    config: AdamConfig,
    /// The trainable variables by name (shallow handles of the store's).
    params: BTreeMap<String, Tensor>,
    state: BTreeMap<String, ParamState>,
}

impl Adam {
    /// An optimizer over `vs`'s trainable variables, with no state yet.
    pub fn new(vs: &nn::VarStore, config: AdamConfig) -> Self {
        let params = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        Adam { config, params, state: BTreeMap::new() }
    }

    /// The hyperparameters.
    pub fn config(&self) -> AdamConfig {
        self.config
    }

    /// The state of each variable that has had a gradient.
    pub fn state(&self) -> &BTreeMap<String, ParamState> {
        &self.state
    }

    /// Drops every variable's gradient.
    pub fn zero_grad(&mut self) -> Result<(), TchError> {
        self.params.values().try_for_each(clear_grad)
    }

    /// [`Self::zero_grad`], backpropagates `loss`, [`Self::step`].
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<(), TchError> {
        self.zero_grad()?;
        loss.f_backward()?;
        self.step()
    }

    /// Updates every variable that has a gradient.
    pub fn step(&mut self) -> Result<(), TchError> {
        let _guard = tch::no_grad_guard();
        let AdamConfig { lr, beta1, beta2, eps, amsgrad } = self.config;
        for (name, p) in &self.params {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            let st = match self.state.entry(name.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(ParamState {
                    step: 0,
                    exp_avg: p.f_zeros_like()?,
                    exp_avg_sq: p.f_zeros_like()?,
                    max_exp_avg_sq: if amsgrad { Some(p.f_zeros_like()?) } else { None },
                }),
            };
            st.step += 1;
            let bias_correction1 = 1.0 - beta1.powf(st.step as f64);
            let bias_correction2 = 1.0 - beta2.powf(st.step as f64);
            let _ = st.exp_avg.f_mul_scalar_(beta1)?;
            add_(&st.exp_avg, &grad, 1.0 - beta1)?;
            let _ = st.exp_avg_sq.f_mul_scalar_(beta2)?;
            addcmul_(&st.exp_avg_sq, &grad, &grad, 1.0 - beta2)?;
            let second = match &st.max_exp_avg_sq {
                Some(max) => {
                    let _ = st.exp_avg_sq.f_max_out(max, max)?;
                    max
                }
                None => &st.exp_avg_sq,
            };
            let mut denom = second.f_sqrt()?.f_div_scalar(bias_correction2.sqrt())?;
            let _ = denom.f_add_scalar_(eps)?;
            addcdiv_(p, &st.exp_avg, &denom, -(lr / bias_correction1))?;
        }
        Ok(())
    }

    /// The state as named CPU tensors, `FIELD.VARIABLE` ([`STATE_FIELDS`];
    /// `step` an int64 scalar).
    pub fn export(&self) -> Result<Vec<(String, Tensor)>, TchError> {
        let cpu = |t: &Tensor| deep_copy(&t.f_to_device(tch::Device::Cpu)?);
        let mut out = Vec::new();
        for (name, st) in &self.state {
            out.push((format!("step.{name}"), Tensor::from(st.step)));
            out.push((format!("exp_avg.{name}"), cpu(&st.exp_avg)?));
            out.push((format!("exp_avg_sq.{name}"), cpu(&st.exp_avg_sq)?));
            if let Some(max) = &st.max_exp_avg_sq {
                out.push((format!("max_exp_avg_sq.{name}"), cpu(max)?));
            }
        }
        Ok(out)
    }

    /// Replaces the state with one [`Self::export`] wrote: `tensors` by
    /// `FIELD.VARIABLE` name, every variable one of this optimizer's, with
    /// all its fields (`max_exp_avg_sq` exactly with amsgrad) in the
    /// variable's shape and kind. The error names the variable.
    pub fn import(&mut self, tensors: &BTreeMap<String, Tensor>) -> Result<(), String> {
        let mut fields: BTreeMap<&str, BTreeMap<&str, &Tensor>> = BTreeMap::new();
        for (key, t) in tensors {
            let (field, var) = key
                .split_once('.')
                .filter(|(f, _)| STATE_FIELDS.contains(f))
                .ok_or_else(|| format!("{key}: not an optimizer state tensor (FIELD.VARIABLE)"))?;
            if !self.params.contains_key(var) {
                return Err(format!("{var}: optimizer state for a variable the model does not train"));
            }
            fields.entry(var).or_default().insert(field, t);
        }
        let mut state = BTreeMap::new();
        for (var, f) in fields {
            let p = &self.params[var];
            let step = match f.get("step") {
                Some(t) if t.kind() == Kind::Int64 && t.numel() == 1 => {
                    t.f_reshape([1]).and_then(|t| t.f_int64_value(&[0])).map_err(|e| format!("{var}: step: {e}"))?
                }
                Some(t) => {
                    return Err(format!("{var}: step is {:?} {:?}, expected an int64 scalar", t.kind(), t.size()))
                }
                None => return Err(format!("{var}: no step")),
            };
            if step < 1 {
                return Err(format!("{var}: step {step}"));
            }
            let moment = |field: &str| -> Result<Tensor, String> {
                let t = f.get(field).ok_or_else(|| format!("{var}: no {field}"))?;
                if t.size() != p.size() || t.kind() != p.kind() {
                    return Err(format!(
                        "{var}: {field} is {:?} {:?}, the variable {:?} {:?}",
                        t.kind(),
                        t.size(),
                        p.kind(),
                        p.size()
                    ));
                }
                t.f_to_device(p.device()).and_then(|t| deep_copy(&t)).map_err(|e| format!("{var}: {field}: {e}"))
            };
            let max_exp_avg_sq = match (self.config.amsgrad, f.contains_key("max_exp_avg_sq")) {
                (true, _) => Some(moment("max_exp_avg_sq")?),
                (false, false) => None,
                (false, true) => return Err(format!("{var}: max_exp_avg_sq without amsgrad")),
            };
            let st =
                ParamState { step, exp_avg: moment("exp_avg")?, exp_avg_sq: moment("exp_avg_sq")?, max_exp_avg_sq };
            state.insert(var.to_string(), st);
        }
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::OptimizerConfig;
    use tch::Device;

    use super::*;
    use crate::model::tests::rng_lock;

    fn bits(t: &Tensor) -> Vec<u32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap().into_iter().map(f32::to_bits).collect()
    }

    /// Six steps of ours and of tch's `nn::Adam` (libtorch's) on the same
    /// variables leave the same bits, with and without amsgrad, a variable
    /// without gradient every third step skipped (its step count says so),
    /// and sizes that are not multiples of the vector width.
    #[test]
    fn steps_like_libtorchs_adam() {
        let _rng = rng_lock();
        for amsgrad in [false, true] {
            let make = || {
                tch::manual_seed(11);
                let vs = nn::VarStore::new(Device::Cpu);
                let a = vs.root().randn("a", &[37], 0.0, 1.0);
                let b = vs.root().randn("b", &[5, 3], 0.0, 1.0);
                (vs, a, b)
            };
            let ((vs1, a1, b1), (vs2, a2, b2)) = (make(), make());
            let mut ours = Adam::new(&vs1, AdamConfig::new(0.01, amsgrad));
            let mut theirs = nn::Adam { amsgrad, ..Default::default() }.build(&vs2, 0.01).unwrap();
            for i in 0..6 {
                tch::manual_seed(100 + i);
                let x = Tensor::randn([37], (Kind::Float, Device::Cpu));
                let loss = |a: &Tensor, b: &Tensor| {
                    let l = (a * &x).sin().sum(Kind::Float);
                    if i % 3 == 2 {
                        l
                    } else {
                        l + (b * b).exp().mean(Kind::Float) * (i as f64 + 1.0)
                    }
                };
                ours.backward_step(&loss(&a1, &b1)).unwrap();
                theirs.backward_step(&loss(&a2, &b2));
                assert_eq!(bits(&a1), bits(&a2), "amsgrad {amsgrad}, step {i}: a");
                assert_eq!(bits(&b1), bits(&b2), "amsgrad {amsgrad}, step {i}: b");
            }
            assert_eq!((ours.state()["a"].step, ours.state()["b"].step), (6, 4));
            assert_eq!(ours.state()["b"].max_exp_avg_sq.is_some(), amsgrad);
        }
    }

    /// An exported state imported into a fresh optimizer steps on the same.
    #[test]
    fn an_imported_state_continues_the_exported_one() {
        let _rng = rng_lock();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().randn("a", &[21], 0.0, 1.0);
        let step = |opt: &mut Adam| opt.backward_step(&(&a * &a).sin().sum(Kind::Float)).unwrap();
        let mut first = Adam::new(&vs, AdamConfig::new(0.1, true));
        step(&mut first);
        let saved: BTreeMap<String, Tensor> = first.export().unwrap().into_iter().collect();
        let mut second = Adam::new(&vs, AdamConfig::new(0.1, true));
        second.import(&saved).unwrap();
        let before = a.copy();
        step(&mut first);
        let after_first = a.copy();
        tch::no_grad(|| a.shallow_clone().copy_(&before));
        step(&mut second);
        assert_eq!(bits(&after_first), bits(&a));
        assert_eq!(second.state()["a"].step, 2);
        // What import refuses, naming the variable.
        let copy = |m: &BTreeMap<String, Tensor>| -> BTreeMap<String, Tensor> {
            m.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect()
        };
        let mut wrong = copy(&saved);
        wrong.remove("max_exp_avg_sq.a");
        assert_eq!(Adam::new(&vs, AdamConfig::new(0.1, true)).import(&wrong).unwrap_err(), "a: no max_exp_avg_sq");
        let e = Adam::new(&vs, AdamConfig::new(0.1, false)).import(&saved).unwrap_err();
        assert!(e.contains("a: max_exp_avg_sq without amsgrad"), "{e}");
        wrong = copy(&saved);
        wrong.insert("exp_avg.b".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu)));
        let e = Adam::new(&vs, AdamConfig::new(0.1, true)).import(&wrong).unwrap_err();
        assert!(e.starts_with("b: "), "{e}");
    }
}
