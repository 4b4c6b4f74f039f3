#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
// The one door to libnghttp2 (Debian 12: 1.52.0). Only HTTP2Engine imports this module.
#include <nghttp2/nghttp2.h>

/// NGHTTP2_VERSION_NUM is a macro Swift cannot see.
static inline int CNghttp2_version_num(void) { return NGHTTP2_VERSION_NUM; }
#endif
