//! Embeds libtorch's library folder as an rpath so that this crate's tests and
//! benches find `libtorch_cpu.so` at run time without LD_LIBRARY_PATH.
//! `LIBTORCH` comes from the environment or from `.cargo/config.toml`.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
