// Shared by the build scripts of every crate whose executables (binaries, tests, benches)
// link libtorch. It records the real folder of libtorch's shared libraries as the
// executable's run path, so `cargo test` and installed binaries find libtorch without
// LD_LIBRARY_PATH. The folder comes from torch-sys (`links = "tch"`), whichever way it
// found libtorch (LIBTORCH, LIBTORCH_USE_PYTORCH or the `.libtorch` link from setup).

/// Emits `-Wl,-rpath,<libtorch lib dir>` for this package's executables.
fn emit_libtorch_rpath() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let cuda = dir.join("libtorch_cuda.so").exists();
    // The setup folder holds links; the run path must name the folder of the real files
    // so that libtorch's own `$ORIGIN` run paths (CUDA runtime wheels) resolve.
    let real = std::fs::canonicalize(dir.join("libtorch_cpu.so"))
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .unwrap_or(dir);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", real.display());
    // A CUDA libtorch (LIBTORCH at a CUDA PyTorch, docs/inference.md): nothing references
    // libtorch_cuda directly, so rustc's `--as-needed` would drop it, and with it every
    // CUDA kernel (`tch::Cuda::is_available()` false on a GPU machine). Keep it linked.
    // (Setup's CPU folder links only the CPU libraries, though the wheel holds both.)
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed,-ltorch_cuda,--pop-state");
    }
}
