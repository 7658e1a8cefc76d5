//! The plumbing every exported function goes through: panic containment, the thread-local
//! last error, the fork gate, and checked conversion of C arguments.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicI32;
use std::sync::OnceLock;

use zipp_core::ErrorKind;

use crate::{zipp_models, zipp_status};

/// Why a call failed: a status and the message `zipp_last_error_message()` returns.
pub(crate) struct Fail {
    /// A `zipp_status` value: a zipp-core [`ErrorKind`] code, or one of the C-only statuses.
    pub status: i32,
    pub message: String,
}

impl From<zipp_core::Error> for Fail {
    /// The status of a zipp-core error *is* its kind's stable code, so a kind added to
    /// zipp-core reaches C with its own status without an edit here.
    fn from(e: zipp_core::Error) -> Fail {
        Fail { status: e.kind().code(), message: e.to_string() }
    }
}

/// A failure with a C-only status (NULL pointer, invalid UTF-8) or a zipp-core kind.
pub(crate) fn fail(status: zipp_status, message: impl Into<String>) -> Fail {
    Fail { status: status as i32, message: message.into() }
}

/// The name of a status: `ZIPP_OK`, the C-only statuses, and `ZIPP_ERR_<KIND>` for every
/// zipp-core [`ErrorKind`] (derived from its stable name); `None` for unknown values.
pub(crate) fn status_name(status: i32) -> Option<&'static CStr> {
    static NAMES: OnceLock<Vec<(i32, CString)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut names = vec![
            (zipp_status::ZIPP_OK as i32, c"ZIPP_OK".to_owned()),
            (zipp_status::ZIPP_ERR_NULL_POINTER as i32, c"ZIPP_ERR_NULL_POINTER".to_owned()),
            (zipp_status::ZIPP_ERR_INVALID_UTF8 as i32, c"ZIPP_ERR_INVALID_UTF8".to_owned()),
        ];
        for kind in ErrorKind::ALL {
            let name = format!("ZIPP_ERR_{}", kind.name().to_ascii_uppercase());
            // Kind names are ASCII identifiers: no NUL.
            names.extend(CString::new(name).ok().map(|n| (kind.code(), n)));
        }
        names
    });
    names.iter().find(|(code, _)| *code == status).map(|(_, name)| name.as_c_str())
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
    match outcome {
        Ok(Ok(())) => zipp_status::ZIPP_OK as i32,
        Ok(Err(fail)) => {
            set_last_error(fail.message);
            fail.status
        }
        Err(panic) => {
            // The same kind and message a panic anywhere else in zipp would give.
            let e = zipp_core::Error::Internal(zipp_core::error::panic_message(&*panic));
            let fail = Fail::from(e);
            set_last_error(fail.message);
            fail.status
        }
    }
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> CallResult<&'a str> {
    if p.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` is NULL")));
    }
    // SAFETY: `p` is non-null and NUL-terminated, valid for the call (the caller's contract).
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| {
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
        // SAFETY: forwarded caller contract.
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// A handle argument.
///
/// # Safety
/// `p` is null or a live handle of type `T` returned by this library and not yet freed.
pub(crate) unsafe fn handle<'a, T>(p: *const T, name: &str) -> CallResult<&'a T> {
    // SAFETY: `p` is NULL or a live handle of type `T` (the caller's contract).
    unsafe { p.as_ref() }.ok_or_else(|| fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` is NULL")))
}

/// A mutable handle argument.
///
/// # Safety
/// As [`handle`], and no other thread uses the handle during the call.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> CallResult<&'a mut T> {
    // SAFETY: `p` is NULL or a live handle of type `T` no other thread uses (the caller's
    // contract).
    unsafe { p.as_mut() }.ok_or_else(|| fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` is NULL")))
}

/// An out-parameter: checked for NULL and cleared first, so a failed call leaves it
/// holding the zero value (NULL, 0) rather than garbage. The zero value is written through
/// the raw pointer *before* a reference is formed: the caller's memory may be uninitialised,
/// and a `&mut T` to uninitialised memory is undefined behaviour.
///
/// # Safety
/// `p` is null or valid (and aligned) for writes of `T`, and not otherwise accessed during
/// the call.
pub(crate) unsafe fn out_arg<'a, T: Default>(p: *mut T, name: &str) -> CallResult<&'a mut T> {
    if p.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` (out-parameter) is NULL")));
    }
    // SAFETY: `p` is non-null and valid for writes (caller contract); `write` does not read
    // or drop the old (possibly uninitialised) value.
    unsafe { p.write(T::default()) };
    // SAFETY: `p` now points to an initialised `T` that nothing else accesses during the call.
    Ok(unsafe { &mut *p })
}

/// An out-parameter for a pointer (`T **`), cleared to NULL first (see [`out_arg`]).
///
/// # Safety
/// `p` is null or valid (and aligned) for writes of a pointer.
pub(crate) unsafe fn out_ptr<'a, T>(p: *mut *mut T, name: &str) -> CallResult<&'a mut *mut T> {
    if p.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` (out-parameter) is NULL")));
    }
    // SAFETY: as in `out_arg`: written before any reference to it exists.
    unsafe { p.write(std::ptr::null_mut()) };
    // SAFETY: initialised just above; the caller does not access it during the call.
    Ok(unsafe { &mut *p })
}

/// A new handle owning `value`, for an out-parameter; freed by [`free_handle`] (each
/// handle's `_free` export).
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees a handle made by [`into_handle`]. NULL is ignored; a panic while dropping is
/// contained (a `_free` has no status to report it with).
///
/// # Safety
/// `p` is NULL or a handle of type `T` from [`into_handle`], not yet freed and not in use by
/// another thread.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: `p` came from `Box::into_raw` in `into_handle` and is freed once (caller
        // contract).
        crate::quietly(|| drop(unsafe { Box::from_raw(p) }));
    }
}

/// An optional JSON options argument: NULL is `T::default()`, text is parsed with
/// zipp-core's located errors (`what` names it in messages).
///
/// # Safety
/// As [`opt_str_arg`].
pub(crate) unsafe fn opt_json<T: serde::de::DeserializeOwned + Default>(
    p: *const c_char,
    name: &str,
    what: &str,
) -> CallResult<T> {
    // SAFETY: forwarded caller contract.
    let text = unsafe { opt_str_arg(p, name)? };
    Ok(zipp_factory::shared::options_or_default(text, what)?)
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

/// The cancel flag at `cancel`, if any.
///
/// # Safety
/// `cancel` is NULL or an aligned `int` valid for the call and only written atomically.
pub(crate) unsafe fn cancel_flag<'a>(cancel: *const c_int) -> CallResult<Option<&'a AtomicI32>> {
    if cancel.is_null() {
        Ok(None)
    } else if cancel.align_offset(std::mem::align_of::<AtomicI32>()) != 0 {
        Err(fail(zipp_status::ZIPP_ERR_INVALID_INPUT, "`cancel` is not aligned for an int"))
    } else {
        // SAFETY: non-null and aligned (checked above), valid for the call and written only
        // atomically (the caller's contract); `c_int` is `i32` on every target zipp builds for.
        Ok(Some(unsafe { AtomicI32::from_ptr(cancel as *mut i32) }))
    }
}

/// `spec.build` against the given models handle, or the default models when it is NULL.
///
/// # Safety
/// `models` is NULL or a live handle.
pub(crate) unsafe fn build_with<T>(
    models: *const zipp_models,
    build: impl FnOnce(&zipp_factory::Models) -> zipp_core::Result<T>,
) -> CallResult<T> {
    if models.is_null() {
        Ok(build(&zipp_factory::Models::new())?)
    } else {
        // SAFETY: non-null, and live for the call (the caller's contract).
        Ok(build(&unsafe { handle(models, "models") }?.inner)?)
    }
}
