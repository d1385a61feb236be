//! ASTRA-sim 1.0 text workloads → per-rank Chakra ETs.
