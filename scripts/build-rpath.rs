//! Build script shared by every crate that links libtorch: it records where libtorch's
//! shared libraries are (an absolute rpath), so that tests, benches and binaries run
//! without LD_LIBRARY_PATH wherever the cargo target directory is. With the `cuda`
//! feature it also links libtorch_cuda, which `--as-needed` would otherwise drop.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_CUDA");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
            println!("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined");
        }
    }
}
