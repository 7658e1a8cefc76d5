//! # zipp-ffi — the C ABI of zipp
//!
//! This crate is the only one that knows about C. It will expose zipp-core through opaque
//! handles with `_new`/`_free`, status codes plus a thread-local
//! `zipp_last_error_message()`, JSON in and out, and strings freed only by
//! `zipp_string_free` (the bindings issue). Every exported function is an explicit
//! `#[no_mangle] extern "C"` item whose body runs inside `catch_unwind`: a panic crossing
//! the C boundary would abort the host program.
//!
//! Status: the version query only; the header is `include/zipp.h`.

use std::ffi::c_char;

/// NUL-terminated copy of the crate version, static for the life of the program.
static VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as a static NUL-terminated string (never free it). Never null.
#[no_mangle]
pub extern "C" fn zipp_version() -> *const c_char {
    // Nothing here can panic, but the rule is uniform: no unwinding across `extern "C"`.
    std::panic::catch_unwind(|| VERSION_C.as_ptr() as *const c_char).unwrap_or(c"unknown".as_ptr())
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_the_core_version() {
        let v = unsafe { std::ffi::CStr::from_ptr(super::zipp_version()) };
        assert_eq!(v.to_str().unwrap(), zipp_core::VERSION);
    }
}
