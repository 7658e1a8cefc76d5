/* zipp — C ABI of the zipp persona personalization library.
 *
 * Status: version query only; the full ABI (opaque handles, status codes, JSON in/out)
 * arrives with the bindings issue, when this header becomes cbindgen-generated. */
#ifndef ZIPP_H
#define ZIPP_H

#ifdef __cplusplus
extern "C" {
#endif

/* The library version as a static NUL-terminated string (never free it). Never NULL. */
const char *zipp_version(void);

#ifdef __cplusplus
}
#endif

#endif /* ZIPP_H */
