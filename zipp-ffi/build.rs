//! Gives the shared library a soname on Linux, so programs link against the ABI major
//! version (`libzipp.so.0`) rather than an unversioned file.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libzipp.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
