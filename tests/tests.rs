//! End-to-end tests of the `strata` binary and of the library on real data
//! from `../shared/data`. One test binary, grouped by topic.

#[macro_use]
mod util;

mod et_bad_input;
mod et_cli;
mod oracle_parity;
mod public_traces;
mod sim_cli;
#[cfg(feature = "synth")]
mod synth_cli;
