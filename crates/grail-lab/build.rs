//! Records libtorch's folder as the run path of this package's executables.
include!("../../build/libtorch_rpath.rs");

fn main() {
    emit_libtorch_rpath();
}
