//! With the `synth` feature the `strata` binary links libtorch: embed its
//! library folder as an rpath so the binary and its tests run without
//! LD_LIBRARY_PATH. `LIBTORCH` comes from the environment or `.cargo/config.toml`.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_SYNTH").is_none() {
        return;
    }
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
