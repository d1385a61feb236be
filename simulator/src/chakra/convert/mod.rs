//! Converters from other trace forms into Chakra ETs: ASTRA-sim 1.0 text
//! workloads ([`text`]) and PyTorch host execution traces ([`pytorch`]).

pub mod pytorch;
pub mod text;
