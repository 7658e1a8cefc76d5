//! The plumbing every exported function goes through: panic containment, the thread-local
//! last error, the fork gate, and checked conversion of C arguments.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::zipp_status;

/// Why a call failed: a status and the message `zipp_last_error_message()` returns.
pub(crate) struct Fail {
    pub status: zipp_status,
    pub message: String,
}

impl From<zipp_core::Error> for Fail {
    fn from(e: zipp_core::Error) -> Fail {
        let status = match e.kind() {
            "io" => zipp_status::ZIPP_ERR_IO,
            "parse" => zipp_status::ZIPP_ERR_PARSE,
            "schema" => zipp_status::ZIPP_ERR_SCHEMA,
            "invalid_input" => zipp_status::ZIPP_ERR_INVALID_INPUT,
            "model_not_found" => zipp_status::ZIPP_ERR_MODEL_NOT_FOUND,
            "model_invalid" => zipp_status::ZIPP_ERR_MODEL_INVALID,
            "tokenizer" => zipp_status::ZIPP_ERR_TOKENIZER,
            "compute" => zipp_status::ZIPP_ERR_COMPUTE,
            // A kind added to zipp-core later still reaches C as an error, never as success.
            _ => zipp_status::ZIPP_ERR_INTERNAL,
        };
        Fail { status, message: e.to_string() }
    }
}

pub(crate) fn fail(status: zipp_status, message: impl Into<String>) -> Fail {
    Fail { status, message: message.into() }
}

pub(crate) type CallResult<T = ()> = Result<T, Fail>;

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

// `try_with` throughout: a host may call zipp from a thread-local destructor after this
// thread's Rust thread-locals are gone; the error message is then lost, but nothing panics.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |m| m.as_ptr())).unwrap_or(std::ptr::null())
}

fn set_last_error(message: String) {
    // Messages never contain NUL (they are Rust-formatted), but a NUL from user input
    // echoed back would make CString::new fail: replace it rather than lose the message.
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = Some(c));
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = None);
}

/// Runs `f` as the body of an exported function: clears the last error, holds the fork gate,
/// contains panics, and turns a failure into its status with the message stored.
pub(crate) fn guarded(f: impl FnOnce() -> CallResult) -> i32 {
    clear_last_error();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _inside = zipp_core::runtime::enter();
        f()
    }));
    let status = match outcome {
        Ok(Ok(())) => zipp_status::ZIPP_OK,
        Ok(Err(fail)) => {
            set_last_error(fail.message);
            fail.status
        }
        Err(panic) => {
            let what = zipp_core::error::panic_message(&*panic);
            set_last_error(format!("internal error (a bug in zipp, please report it): {what}"));
            zipp_status::ZIPP_ERR_INTERNAL
        }
    };
    status as i32
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> CallResult<&'a str> {
    if p.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` is NULL")));
    }
    CStr::from_ptr(p).to_str().map_err(|e| {
        fail(
            zipp_status::ZIPP_ERR_INVALID_UTF8,
            format!("`{name}` is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })
}

/// A string argument where NULL means "not given".
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, name: &str) -> CallResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        str_arg(p, name).map(Some)
    }
}

/// A handle argument.
///
/// # Safety
/// `p` is null or a live handle of type `T` returned by this library and not yet freed.
pub(crate) unsafe fn handle<'a, T>(p: *const T, name: &str) -> CallResult<&'a T> {
    p.as_ref().ok_or_else(|| fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` is NULL")))
}

/// A mutable handle argument.
///
/// # Safety
/// As [`handle`], and no other thread uses the handle during the call.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> CallResult<&'a mut T> {
    p.as_mut().ok_or_else(|| fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` is NULL")))
}

/// An out-parameter: checked for NULL and cleared first, so a failed call leaves it
/// holding the zero value (NULL, 0) rather than garbage.
///
/// # Safety
/// `p` is null or valid for writes of `T`.
pub(crate) unsafe fn out_arg<'a, T: Default>(p: *mut T, name: &str) -> CallResult<&'a mut T> {
    match p.as_mut() {
        Some(out) => {
            std::ptr::write(out, T::default());
            Ok(out)
        }
        None => Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` (out-parameter) is NULL"))),
    }
}

/// An out-parameter for a pointer (`T **`), cleared to NULL first.
///
/// # Safety
/// `p` is null or valid for writes of a pointer.
pub(crate) unsafe fn out_ptr<'a, T>(p: *mut *mut T, name: &str) -> CallResult<&'a mut *mut T> {
    match p.as_mut() {
        Some(out) => {
            std::ptr::write(out, std::ptr::null_mut());
            Ok(out)
        }
        None => Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` (out-parameter) is NULL"))),
    }
}

/// Hands a Rust string to C; freed by `zipp_string_free`.
pub(crate) fn c_string(s: String) -> CallResult<*mut c_char> {
    CString::new(s).map(CString::into_raw).map_err(|e| {
        fail(
            zipp_status::ZIPP_ERR_INVALID_INPUT,
            format!("the result contains a NUL byte at {} and cannot be returned as a C string", e.nul_position()),
        )
    })
}
