/* What one gateway -> grpc runner request header block costs in HPACK (RFC 7541), with libnghttp2's own coder
 * (the gateway's and the demo runner's): instructions to deflate it (the gateway's side) and to inflate it (the
 * runner's), and its size, over N calls on one connection (one 4 KiB dynamic table each side).
 *
 *   cc -O2 -o /tmp/hpack-cost bench/hpack-cost.c -lnghttp2
 *   for set in 0 1 2 3; do for fn in nghttp2_hd_deflate_hd nghttp2_hd_inflate_hd2; do
 *     valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect=$fn /tmp/hpack-cost $set 2000; done; done
 *   (instructions per block: "Collected" / 2000)
 *
 * Sets: 0 the gateway before branch backendcost (grpc-timeout to the microsecond, new on every call; request-id
 * and traceparent indexed); 1 grpc-timeout rounded to three digits (`1M`: GRPCTimeout.encodeIndexable);
 * 2 that, and request-id and traceparent never indexed (HTTP2CommonFields.isUniquePerMessage); 3 what nghttpx
 * sends the runner for h2load's calls (bench/run's nghttpx row). Why (issue 11): the runner's CPU per request was
 * ~1.5-2x higher behind the gateway than behind nghttpx. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NV(n, v, f) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), (f)}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SET(0-3) CALLS\n", argv[0]);
    return 2;
  }
  int set = atoi(argv[1]), calls = atoi(argv[2]);
  nghttp2_hd_deflater *deflater;
  nghttp2_hd_inflater *inflater;
  if (nghttp2_hd_deflate_new(&deflater, 4096) != 0 || nghttp2_hd_inflate_new(&inflater) != 0) return 1;
  uint8_t block[4096];
  size_t total = 0;
  unsigned seed = 1;
  for (int call = 0; call < calls; call++) {
    /* A request id and a trace's span new on every call, as the gateway makes them (32 and 16 hex digits). */
    char request_id[33], traceparent[56], timeout[16];
    for (int k = 0; k < 32; k++) {
      seed = seed * 1103515245 + 12345;
      request_id[k] = "0123456789abcdef"[(seed >> 16) & 15];
    }
    request_id[32] = 0;
    snprintf(traceparent, sizeof traceparent, "00-%.32s-%08x%08x-01", request_id, seed, seed * 31u);
    snprintf(timeout, sizeof timeout, "%du", 59999000 + (int)(seed % 997)); /* 60 s less the call's age */
    const char *grpc_timeout = set == 0 ? timeout : "1M";
    uint8_t ids = set == 2 ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
    nghttp2_nv gateway[] = {
        NV(":method", "POST", 0), NV(":scheme", "http", 0), NV(":path", "/trigger.runner.v1.Runner/Run", 0),
        NV(":authority", "127.0.0.1:52091", 0), NV("content-type", "application/grpc", 0), NV("te", "trailers", 0),
        NV("grpc-timeout", grpc_timeout, 0), NV("request-id", request_id, ids), NV("traceparent", traceparent, ids)};
    nghttp2_nv nghttpx[] = {
        NV(":method", "POST", 0), NV(":scheme", "http", 0), NV(":path", "/trigger.runner.v1.Runner/Run", 0),
        NV(":authority", "127.0.0.1:49423", 0), NV("user-agent", "h2load nghttp2/1.52.0", 0),
        NV("content-type", "application/grpc", 0), NV("content-length", "69", 0), NV("x-forwarded-proto", "http", 0),
        NV("te", "trailers", 0)};
    ssize_t length = nghttp2_hd_deflate_hd(deflater, block, sizeof block, set == 3 ? nghttpx : gateway, 9);
    if (length < 0) return 1;
    total += (size_t)length;
    uint8_t *in = block;
    size_t left = (size_t)length;
    for (;;) {
      nghttp2_nv field;
      int flags = 0;
      ssize_t read = nghttp2_hd_inflate_hd2(inflater, &field, &flags, in, left, 1);
      if (read < 0) return 1;
      in += read;
      left -= (size_t)read;
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater);
        break;
      }
      if (read == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) return 1;
    }
  }
  printf("set %d: %.1f bytes per header block\n", set, (double)total / calls);
  nghttp2_hd_deflate_del(deflater);
  nghttp2_hd_inflate_del(inflater);
  return 0;
}
