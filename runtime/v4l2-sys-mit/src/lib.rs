//! Raw V4L2 bindings: a patched copy of the MIT-licensed `v4l2-sys-mit` 0.3.0 crate.
//!
//! Upstream runs bindgen over `<linux/videodev2.h>` in its build script, which needs libclang
//! at build time. This copy includes bindings generated once per target architecture with the
//! same bindgen version (0.65.1) and committed under `bindings/`; `regenerate.sh` rebuilds them.

#![allow(clippy::all)]
#![allow(deref_nullptr)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(non_upper_case_globals)]
// https://github.com/rust-lang/rust-bindgen/issues/1651
// (`unaligned_references` is a hard error in current Rust and the lint no longer exists.)
#![allow(renamed_and_removed_lints)]
#![allow(unaligned_references)]

// The generated files are included rather than declared as modules, so rustfmt leaves them
// exactly as bindgen wrote them. The pointer-width conditions keep the ILP32 ABIs (x32,
// aarch64 ilp32), whose C types differ, out of the 64-bit bindings.
#[cfg(all(
    target_os = "linux",
    target_arch = "x86_64",
    target_pointer_width = "64"
))]
include!("../bindings/x86_64.rs");

#[cfg(all(
    target_os = "linux",
    target_arch = "aarch64",
    target_pointer_width = "64"
))]
include!("../bindings/aarch64.rs");

#[cfg(all(target_os = "linux", target_arch = "arm"))]
include!("../bindings/arm.rs");

#[cfg(all(
    target_os = "linux",
    not(any(
        all(target_arch = "x86_64", target_pointer_width = "64"),
        all(target_arch = "aarch64", target_pointer_width = "64"),
        target_arch = "arm"
    ))
))]
compile_error!(
    "v4l2-sys-mit: no pre-generated V4L2 bindings for this target architecture; add it to \
     runtime/v4l2-sys-mit/regenerate.sh, run that script and include the new file in src/lib.rs"
);
