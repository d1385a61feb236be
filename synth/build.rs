//! Embeds libtorch's library folder as an rpath so that this crate's tests and
//! benches find `libtorch_cpu.so` at run time without LD_LIBRARY_PATH, and
//! compiles `csrc/optim_ops.cpp` (the libtorch ops of `src/optim.rs` that tch
//! does not expose) against libtorch's headers: those of `LIBTORCH_INCLUDE`,
//! else `LIBTORCH`, with torch-sys's `LIBTORCH_CXX11_ABI` (default 1).
//! `LIBTORCH` comes from the environment or from `.cargo/config.toml`.

use std::path::PathBuf;

fn main() {
    for var in ["LIBTORCH", "LIBTORCH_INCLUDE", "LIBTORCH_CXX11_ABI"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=csrc/optim_ops.cpp");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    let root = std::env::var_os("LIBTORCH_INCLUDE")
        .or_else(|| std::env::var_os("LIBTORCH"))
        .map(PathBuf::from)
        .expect("synth needs libtorch's headers: set LIBTORCH (see scripts/setup.sh and .cargo/config.toml)");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("csrc/optim_ops.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("strata_optim_ops");
}
