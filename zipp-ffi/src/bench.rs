//! Persona benches over C: the seeded synthetic bench (VPTT-Bench's shape) and MovieLens 100K.
//! Both hand out personas one at a time, so a C host streams them into an evaluation.

use std::ffi::c_char;
use std::path::Path;

use zipp_eval::datasets::movielens::{MovieLens, MovieLensOptions};
use zipp_eval::datasets::synthetic::SyntheticBench;

use crate::call::{free_handle, guarded, handle, into_handle, opt_json, opt_str_arg, out_arg, out_ptr};
use crate::{new_persona, zipp_persona};

/// A seeded synthetic persona bench: `len` personas, each generated on demand from
/// `(seed, index)` alone (reproducible, in any order, on any thread). Immutable and
/// thread-safe.
pub struct zipp_synthetic_bench {
    inner: SyntheticBench,
}

/// Creates a synthetic bench. `vocabulary_dir` is the folder of the clip-interrogator
/// phrase lists (NULL: `<default models dir>/clip-interrogator`, which
/// `scripts/provision-models.sh` fills); loading and classifying them takes a moment.
/// `options_json` (NULL: the defaults) is a JSON object, every field optional:
/// `{"seed": 0, "personas": 10000, "posts_per_persona": 30, "words_per_caption": [40, 80],
/// "vocabulary_per_category": [4, 8], "styles_per_persona": [1, 3], "interests_per_persona": [3, 6],
/// "themes_per_persona": [3, 5], "categories_per_post": [4, 7], "examples_per_persona": 3}`
/// (ranges are inclusive `[min, max]`). Missing phrase lists are `ZIPP_ERR_MODEL_NOT_FOUND`,
/// bad options `ZIPP_ERR_SCHEMA`/`ZIPP_ERR_PARSE` (located) or `ZIPP_ERR_INVALID_INPUT`.
///
/// # Safety
/// `vocabulary_dir` and `options_json` are NULL or NUL-terminated strings; `out` is valid
/// for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_synthetic_bench_new(
    vocabulary_dir: *const c_char,
    options_json: *const c_char,
    out: *mut *mut zipp_synthetic_bench,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let dir = opt_str_arg(vocabulary_dir, "vocabulary_dir")?;
        let inner =
            zipp_factory::shared::synthetic_bench(dir.map(Path::new), opt_str_arg(options_json, "options_json")?)?;
        *out = into_handle(zipp_synthetic_bench { inner });
        Ok(())
    })
}

/// The number of personas in the bench.
///
/// # Safety
/// `bench` is NULL or a live handle; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_synthetic_bench_len(bench: *const zipp_synthetic_bench, out: *mut usize) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(bench, "bench")?.inner.len();
        Ok(())
    })
}

/// Generates persona `index` (id `syn-<seed>-<index>`) as a new persona handle (free it with
/// `zipp_persona_free`). `index` past the end is `ZIPP_ERR_INVALID_INPUT`.
///
/// # Safety
/// `bench` is NULL or a live handle; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_synthetic_bench_persona(
    bench: *const zipp_synthetic_bench,
    index: usize,
    out: *mut *mut zipp_persona,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        *out = new_persona(handle(bench, "bench")?.inner.persona(index)?);
        Ok(())
    })
}

/// Frees a synthetic bench. NULL is ignored.
///
/// # Safety
/// `bench` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_synthetic_bench_free(bench: *mut zipp_synthetic_bench) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses
    // (this function\'s `# Safety` contract), as `free_handle` requires.
    unsafe { free_handle(bench) }
}

/// MovieLens 100K in memory (943 users, 1682 movies, 100,000 ratings): one persona per user.
/// Immutable and thread-safe. The data's licence forbids redistributing it or personas made
/// from it.
pub struct zipp_movielens {
    inner: MovieLens,
}

/// Loads MovieLens 100K from `dir` (the folder of its three parquet files; NULL:
/// `<default models dir>/movielens-100k`, which `scripts/provision-models.sh` fills). Missing
/// files are `ZIPP_ERR_MODEL_NOT_FOUND`, corrupt ones `ZIPP_ERR_MODEL_INVALID`, bad values
/// `ZIPP_ERR_SCHEMA`.
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_movielens_load(dir: *const c_char, out: *mut *mut zipp_movielens) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let inner = zipp_factory::shared::movielens(opt_str_arg(dir, "dir")?.map(Path::new))?;
        *out = into_handle(zipp_movielens { inner });
        Ok(())
    })
}

/// The number of users (= personas).
///
/// # Safety
/// `movielens` is NULL or a live handle; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_movielens_users(movielens: *const zipp_movielens, out: *mut usize) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(movielens, "movielens")?.inner.users();
        Ok(())
    })
}

/// The number of movies.
///
/// # Safety
/// `movielens` is NULL or a live handle; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_movielens_movies(movielens: *const zipp_movielens, out: *mut usize) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(movielens, "movielens")?.inner.movies();
        Ok(())
    })
}

/// The number of ratings.
///
/// # Safety
/// `movielens` is NULL or a live handle; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_movielens_ratings(movielens: *const zipp_movielens, out: *mut usize) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(movielens, "movielens")?.inner.ratings();
        Ok(())
    })
}

/// The persona of the user at `index` (0-based, in user-id order; id `ml100k-<user id>`) as a
/// new persona handle. `options_json` (NULL: the defaults) is `{"max_posts": 30,
/// "min_rating": null}` (every field optional: at most `max_posts` rated movies become posts,
/// only ratings of at least `min_rating` stars when set). `index` past the end is
/// `ZIPP_ERR_INVALID_INPUT`.
///
/// # Safety
/// `movielens` is NULL or a live handle; `options_json` NULL or a NUL-terminated string;
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_movielens_persona(
    movielens: *const zipp_movielens,
    index: usize,
    options_json: *const c_char,
    out: *mut *mut zipp_persona,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let movielens = handle(movielens, "movielens")?;
        let options: MovieLensOptions = opt_json(options_json, "options_json", "MovieLens options")?;
        *out = new_persona(movielens.inner.persona(index, &options)?);
        Ok(())
    })
}

/// Frees a MovieLens handle. NULL is ignored.
///
/// # Safety
/// `movielens` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_movielens_free(movielens: *mut zipp_movielens) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses
    // (this function\'s `# Safety` contract), as `free_handle` requires.
    unsafe { free_handle(movielens) }
}
