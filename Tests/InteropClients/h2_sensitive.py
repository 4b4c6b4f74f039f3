#!/usr/bin/env python3
"""HTTP/2 peer for sensitive-field tests (RFC 7541 §6.2.3 "literal never indexed"): Python's h2 and hpack, an HPACK
implementation independent of libnghttp2.

Usage:
  h2_sensitive.py calls PORT CALLS_JSON
      One h2c connection (prior knowledge) to the gateway; each call of the JSON list, in order, waiting for its
      answer: {"kind": "grpc" | "grpc-async" | "rest", "fields": [[name, value, never_indexed], ...]}. A gRPC call
      is Instill's TriggerNamespacePipeline (TriggerAsyncNamespacePipeline) of demo/echo, a REST one the same
      trigger as JSON. Fields marked never_indexed go
      as hpack.NeverIndexedHeaderTuple. Prints [{"status": ..., "grpc_status": ...}, ...].
  h2_sensitive.py decode FILE
      FILE holds what an HTTP/2 client sent on one connection (from its preface on). Decodes every request
      header block in order with one hpack.Decoder and prints [[[name, value, never_indexed], ...], ...].
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events
import hpack

# TriggerNamespacePipelineRequest{namespace_id: "demo", pipeline_id: "echo", data: [{variable: {prompt: "hello
# world"}}]}, encoded by hand (fields 1, 2 and 4).
GRPC_MESSAGE = bytes.fromhex("0a0464656d6f12046563686f" "221b0a190a170a0670726f6d7074120d1a0b68656c6c6f20776f726c64")
GRPC_PATHS = {
    "grpc": b"/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline",
    # The same message (TriggerAsyncNamespacePipelineRequest has the same fields); answered with an operation.
    "grpc-async": b"/pipeline.pipeline.v1beta.PipelinePublicService/TriggerAsyncNamespacePipeline",
}


def calls(port, spec):
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    results = []
    for call in spec:
        stream = conn.get_next_available_stream_id()
        if call["kind"] in GRPC_PATHS:
            headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", GRPC_PATHS[call["kind"]]),
                       (b":authority", b"127.0.0.1"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
            body = b"\x00" + len(GRPC_MESSAGE).to_bytes(4, "big") + GRPC_MESSAGE
        else:
            headers = [(b":method", b"POST"), (b":scheme", b"http"),
                       (b":path", b"/v1beta/namespaces/demo/pipelines/echo/trigger"), (b":authority", b"127.0.0.1"),
                       (b"content-type", b"application/json")]
            body = b'{"inputs":[{"prompt":"hello world"}]}'
        for name, value, never in call["fields"]:
            kind = hpack.NeverIndexedHeaderTuple if never else hpack.HeaderTuple
            headers.append(kind(name.encode(), value.encode()))
        conn.send_headers(stream, headers)
        conn.send_data(stream, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        result = {}
        done = False
        while not done:
            data = sock.recv(65536)
            if not data:
                raise SystemExit("the gateway closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    for name, value in event.headers:
                        if name == b":status":
                            result["status"] = int(value)
                        elif name == b"grpc-status":
                            result["grpc_status"] = int(value)
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    done = True
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    result["reset"] = event.error_code
                    done = True
            sock.sendall(conn.data_to_send())
        results.append(result)
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()
    return results


def decode(path):
    data = open(path, "rb").read()
    index = 24  # the client preface
    decoder = hpack.Decoder()
    blocks = []
    pending = None
    while index + 9 <= len(data):
        length = int.from_bytes(data[index:index + 3], "big")
        kind, flags = data[index + 3], data[index + 4]
        payload = data[index + 9:index + 9 + length]
        index += 9 + length
        if kind == 0x1:  # HEADERS: padding (0x8) and priority (0x20) before the block fragment
            start, end = 0, len(payload)
            if flags & 0x8:
                start, end = 1, len(payload) - payload[0]
            if flags & 0x20:
                start += 5
            pending = payload[start:end]
        elif kind == 0x9 and pending is not None:
            pending += payload
        else:
            continue
        if flags & 0x4:  # END_HEADERS
            fields = decoder.decode(pending, raw=True)
            # raw=True: HeaderTuple, or NeverIndexedHeaderTuple (indexable False) for a never-indexed literal.
            blocks.append([[f[0].decode(), f[1].decode(), not f.indexable] for f in fields])
            pending = None
    return blocks


if __name__ == "__main__":
    if sys.argv[1] == "calls":
        print(json.dumps(calls(int(sys.argv[2]), json.loads(sys.argv[3]))))
    elif sys.argv[1] == "decode":
        print(json.dumps(decode(sys.argv[2])))
    else:
        raise SystemExit("unknown command " + sys.argv[1])
