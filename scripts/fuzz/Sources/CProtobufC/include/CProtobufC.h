#ifndef C_PROTOBUF_C_H
#define C_PROTOBUF_C_H
// No API of its own: this target compiles protobuf-c 1.4.1 (upstream v1.4.1, whose header is identical to
// Debian's libprotobuf-c-dev 1.4.1-1) into the fuzzer with ASan and coverage instrumentation. Its definitions
// take precedence over the uninstrumented system libprotobuf-c.so, so the fuzzer sees into the parser.
#endif
