import Dispatch
import Glibc
import HTTP2Engine
import NIOCore
import Observability
import Prometheus
import ProtoCodec
import TriggerModel
import WireCodecs

/// One measured operation: `run` does the work once and returns something derived from its result, so the
/// optimizer cannot drop it; `bytes` is how many input bytes one run consumes (0: report operations only).
public struct MicroBenchmark {
    public let name: String
    public let bytes: Int
    public let run: () throws -> Int

    public init(name: String, bytes: Int, run: @escaping () throws -> Int) {
        self.name = name
        self.bytes = bytes
        self.run = run
    }
}

/// The inputs a run's benchmarks share, as plain bytes, so a library's row (bench/micro) measures the very bytes
/// the gateway's own row does.
public struct BenchmarkInputs {
    /// The size of the large payloads, in bytes (bench/micro's `--large-mib`).
    public let large: Int
    /// `large` random bytes: the blob of the large rows.
    public let randomBytes: [UInt8]
    /// `randomBytes` in base64 (standard alphabet, padded), as a data URI carries it.
    public let base64Text: [UInt8]
    /// REST trigger bodies `{"data":[{"variable":{...}}]}`: small, medium, and one carrying `randomBytes` as a
    /// data URI.
    public let restBodies: [(label: String, bytes: [UInt8])]
    /// A `multipart/form-data` body: one field and one file part holding `randomBytes`.
    public let multipartBoundary: String
    public let multipartBody: [UInt8]
    /// The read size the multipart rows feed the body in, as NIO's reads hand it to a handler.
    public let multipartReadSize = 64 << 10
    /// Milliseconds since 1970 that the timestamp rows format (operation and schedule times).
    public let timestamps: [Int64]

    public init(large: Int) {
        self.large = large
        let random = GatewayBenchmarks.randomBytes(large)
        randomBytes = Array(random.readableBytesView)
        var encoded = GatewayBenchmarks.allocator.buffer(capacity: Base64.encodedLength(large))
        random.withUnsafeReadableBytes { Base64.encode($0, into: &encoded) }
        base64Text = Array(encoded.readableBytesView)
        let blob: ValueObject = ["file": .blob(Blob(contentType: "application/octet-stream", bytes: random))]
        restBodies = [
            ("small", GatewayBenchmarks.smallVariables), ("medium", GatewayBenchmarks.mediumVariables),
            ("\(large >> 20) MiB data URI", blob),
        ].map { (label: $0.0, bytes: Array(GatewayBenchmarks.restBody($0.1).readableBytesView)) }
        multipartBoundary = "----bench-boundary-7MA4YWxkTrZu0gW"
        multipartBody = Array(
            GatewayBenchmarks.multipartBody(file: random, boundary: multipartBoundary).readableBytesView)
        // A spread of instants: 1970, leap days, the current era, far future.
        timestamps = [0, 951_782_400_123, 1_714_566_896_789, 1_798_761_599_999, 4_102_444_800_000]
    }
}

/// The micro benchmarks of the gateway's own codecs (bench/README.md "Micro benchmarks"): each is a path a
/// request takes through the gateway, measured on the code the gateway itself runs. bench/micro times them
/// (and, beside them, the libraries they are compared with); this module is what it links, so no source is
/// linked or copied into the benchmark package.
public enum GatewayBenchmarks {
    static let limits = CodecLimits(maxBodyBytes: 64 << 20)
    static let allocator = ByteBufferAllocator()

    // MARK: Inputs

    /// The small payload the load runs send: one batch item, two variables.
    static let smallVariables: ValueObject = ["prompt": .string("hello world"), "n": .number(42)]

    /// A wider, nested payload (about 10 KiB of JSON): 100 string fields, a list of numbers, a nested object.
    static let mediumVariables: ValueObject = {
        var entries: [(key: String, value: Value)] = []
        for i in 0..<100 {
            entries.append((key: "field_\(i)", value: .string("value number \(i) of the medium payload")))
        }
        entries.append((key: "numbers", value: .list((0..<200).map { .number(Double($0) * 1.5) })))
        entries.append((key: "nested", value: .object(["a": .object(["b": .object(["c": .bool(true)])])])))
        return ValueObject(entries)
    }()

    static func randomBytes(_ count: Int) -> ByteBuffer {
        var generator = SystemRandomNumberGenerator()
        var buffer = allocator.buffer(capacity: count)
        var remaining = count
        while remaining >= 8 {
            buffer.writeInteger(generator.next() as UInt64)
            remaining -= 8
        }
        for _ in 0..<remaining { buffer.writeInteger(UInt8.random(in: 0...255)) }
        return buffer
    }

    static func instillRequest(_ variables: ValueObject) -> ByteBuffer {
        InstillCodec.encodeTriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "echo"),
            inputs: [TriggerInput(variables: variables)]
        )
    }

    static func triggerRequest(_ variables: ValueObject) -> TriggerRequest {
        TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "echo"),
            inputs: [TriggerInput(variables: variables)],
            requestID: "bench-0123456789"
        )
    }

    /// `{"data":[{"variable":{...}}]}` as the REST frontend receives it (blobs as data URIs).
    static func restBody(_ variables: ValueObject) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256)
        buffer.writeString("{\"data\":[{\"variable\":")
        JSONValueCodec.write(variables, into: &buffer)
        buffer.writeString("}]}")
        return buffer
    }

    static func multipartBody(file: ByteBuffer, boundary: String) -> ByteBuffer {
        var body = allocator.buffer(capacity: file.readableBytes + 512)
        body.writeString(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"variables[0].prompt\"\r\n\r\nhello\r\n")
        body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"variables[0].file\"; ")
        body.writeString("filename=\"blob.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n")
        var file = file
        body.writeBuffer(&file)
        body.writeString("\r\n--\(boundary)--\r\n")
        return body
    }

    /// Splits `buffer` into the slices NIO would hand a handler (its reads are up to 64 KiB here).
    static func chunks(_ buffer: ByteBuffer, size: Int) -> [ByteBuffer] {
        var rest = buffer
        var slices: [ByteBuffer] = []
        while rest.readableBytes > 0 { slices.append(rest.readSlice(length: min(size, rest.readableBytes))!) }
        return slices
    }

    // MARK: The list

    /// The gateway's rows for one run over `inputs`.
    public static func all(_ inputs: BenchmarkInputs) -> [MicroBenchmark] {
        let large = inputs.large
        let random = ByteBuffer(bytes: inputs.randomBytes)
        let blobVariables: ValueObject = ["file": .blob(Blob(contentType: "application/octet-stream", bytes: random))]
        var list: [MicroBenchmark] = []

        // The request metrics' hot path (issue 11): one finished request recorded on the thread that already has
        // its label combination cached: a per-thread lookup, one counter add, three histogram records.
        let metrics = GatewayMetrics()
        var record = RequestRecord(
            requestID: "bench-0123456789", frontend: .rest, httpVersion: "HTTP/1.1", method: "POST",
            path: "/v1beta/namespaces/demo/pipelines/echo/trigger", operation: "triggerNamespacePipeline",
            status: 200, durationNanoseconds: 1_234_567
        )
        record.route = "demo/*"
        record.mode = "sync"
        record.bytesIn = 120
        record.bytesOut = 480
        metrics.requests.requestFinished(record)
        list.append(
            MicroBenchmark(name: "request metrics: record one finished request", bytes: 0) {
                metrics.requests.requestFinished(record)
                return 1
            })

        list += histogramRows()
        list += chunkPoolRows()

        // gRPC deframing: 100 small messages in one read; one large message in 64 KiB reads.
        let small = instillRequest(smallVariables)
        var hundred = allocator.buffer(capacity: 100 * (small.readableBytes + 5))
        for _ in 0..<100 { GRPCMessageFramer.frame(small, into: &hundred) }
        list.append(
            MicroBenchmark(
                name: "gRPC deframe: 100 × \(small.readableBytes) B messages, one read",
                bytes: hundred.readableBytes
            ) {
                var deframer = GRPCMessageDeframer(maxMessageBytes: 4 << 20)
                deframer.append(hundred)
                var n = 0
                while let message = try deframer.next() { n &+= message.readableBytes }
                return n
            })
        let bigMessage = GRPCMessageFramer.frame(randomBytes(large))
        let bigChunks = chunks(bigMessage, size: 64 << 10)
        list.append(
            MicroBenchmark(
                name: "gRPC deframe: one \(large >> 20) MiB message in 64 KiB reads",
                bytes: bigMessage.readableBytes
            ) {
                var deframer = GRPCMessageDeframer(maxMessageBytes: 64 << 20)
                var n = 0
                for chunk in bigChunks {
                    deframer.append(chunk)
                    while let message = try deframer.next() { n &+= message.readableBytes }
                }
                return n
            })

        // Protobuf (protobuf-c) Struct → model, the gRPC frontend's decode; and the rest of the gRPC path:
        // model → runner RunRequest, runner RunResponse → model, model → Instill response.
        for (label, variables) in [("small", smallVariables), ("medium", mediumVariables)] {
            let request = instillRequest(variables)
            list.append(
                MicroBenchmark(
                    name: "proto Instill request → model (\(label), \(request.readableBytes) B)",
                    bytes: request.readableBytes
                ) {
                    try InstillCodec.decodeTriggerRequest(request, release: false, maxBatch: 32).inputs.count
                })
            let model = triggerRequest(variables)
            list.append(
                MicroBenchmark(name: "model → proto runner RunRequest (\(label))", bytes: 0) {
                    RunnerCodec.encodeRunRequest(model).readableBytes
                })
            let result = TriggerResult(outputs: [variables])
            let response = RunnerCodec.encodeRunResponse(result)
            list.append(
                MicroBenchmark(
                    name: "proto runner RunResponse → model (\(label), \(response.readableBytes) B)",
                    bytes: response.readableBytes
                ) {
                    try RunnerCodec.decodeRunResponse(response).outputs.count
                })
            list.append(
                MicroBenchmark(name: "model → proto Instill response (\(label))", bytes: 0) {
                    InstillCodec.encodeTriggerResponse(result).readableBytes
                })
        }
        let blobRequest = instillRequest(blobVariables)
        list.append(
            MicroBenchmark(
                name: "proto Instill request → model (\(large >> 20) MiB data URI in Struct)",
                bytes: blobRequest.readableBytes
            ) {
                try InstillCodec.decodeTriggerRequest(blobRequest, release: false, maxBatch: 32).inputs.count
            })

        // JSON → model (REST frontend, and the http backend hop), without and with a large data URI; and the
        // JSON parser alone (JSON → `Value`, data URIs decoded), the row Foundation's JSONSerialization is
        // compared with in bench/micro.
        for (label, bytes) in inputs.restBodies {
            let body = ByteBuffer(bytes: bytes)
            list.append(
                MicroBenchmark(name: "JSON parse, WireCodecs (\(label), \(body.readableBytes) B)", bytes: bytes.count) {
                    guard case .object(let object) = try JSONValueCodec.decode(body, limits: limits) else { return 0 }
                    return object.count
                })
            // The frontend hands its gathered body over, and large data URIs are decoded into it; a body the
            // caller keeps (as here, across runs) is copied first. The out-of-place decode is the row after.
            list.append(
                MicroBenchmark(name: "JSON → model (\(label), \(body.readableBytes) B)", bytes: body.readableBytes) {
                    try RESTTriggerBody.decode(json: body, limits: limits).count
                })
            // For an http runner: canonical base64 data URIs checked and kept as text, not decoded (issue 12).
            list.append(
                MicroBenchmark(
                    name: "JSON → model, base64 kept (\(label), \(body.readableBytes) B)", bytes: body.readableBytes
                ) {
                    try RESTTriggerBody.decode(json: body, limits: limits, keepCanonicalBase64: true).count
                })
            list.append(
                MicroBenchmark(
                    name: "JSON → model, out of place (\(label), \(body.readableBytes) B)", bytes: body.readableBytes
                ) {
                    try JSONValueCodec.decodeObject(body, limits: limits).count
                })
        }

        // Model → JSON: the REST response, and the http backend request (blobs become data URIs).
        for (label, variables) in [
            ("small", smallVariables), ("medium", mediumVariables), ("\(large >> 20) MiB blob", blobVariables),
        ] {
            let result = TriggerResult(outputs: [variables])
            var probe = allocator.buffer(capacity: 256)
            RESTResponseBody.encode(result: result, into: &probe)
            list.append(
                MicroBenchmark(
                    name: "model → JSON response (\(label), \(probe.readableBytes) B)",
                    bytes: probe.readableBytes
                ) {
                    var buffer = allocator.buffer(capacity: 256)
                    RESTResponseBody.encode(result: result, into: &buffer)
                    return buffer.readableBytes
                })
        }

        // Multipart: one file part plus one field, fed in 64 KiB reads as the HTTP/1.1 frontend does. Besides
        // random bytes, the scanner's worst cases (a client picks both the file and the boundary): a file of CR
        // bytes (every byte a delimiter's first), and one of near-misses (`CRLF--` and the boundary but its last
        // byte).
        let boundary = inputs.multipartBoundary
        let nearMiss = Array("\r\n--\(boundary)".utf8).dropLast() + [UInt8(ascii: "x")]
        for (label, body) in [
            ("", ByteBuffer(bytes: inputs.multipartBody)),
            (
                " of CR bytes",
                GatewayBenchmarks.multipartBody(
                    file: ByteBuffer(repeating: 0x0D, count: large), boundary: boundary)
            ),
            (
                " of near-miss delimiters",
                GatewayBenchmarks.multipartBody(
                    file: ByteBuffer(bytes: Array(repeatElement(nearMiss, count: large / nearMiss.count).joined())),
                    boundary: boundary)
            ),
        ] {
            let bodyChunks = chunks(body, size: inputs.multipartReadSize)
            list.append(
                MicroBenchmark(
                    name: "multipart parse, WireCodecs (\(large >> 20) MiB file\(label), 64 KiB reads)",
                    bytes: body.readableBytes
                ) {
                    var decoder = try MultipartFormDecoder(boundary: boundary, limits: limits)
                    for chunk in bodyChunks { try decoder.feed(chunk) }
                    return try decoder.finish().count
                })
        }

        // Gatherers (issue 12): each place a growing body is collected, fed in the reads NIO hands over. A
        // gather that copied per chunk would show here as mallocs/op in the hundreds and MB/s collapsing.
        let bodyChunks = chunks(randomBytes(large), size: 64 << 10)
        for declared in [false, true] {
            list.append(
                MicroBenchmark(
                    name: "gather: request/response body, \(large >> 20) MiB in 64 KiB reads (BodyGatherer, "
                        + (declared ? "Content-Length)" : "no length)"),
                    bytes: large
                ) {
                    var gatherer = BodyGatherer(expectedLength: declared ? large : nil)
                    for chunk in bodyChunks { gatherer.append(chunk) }
                    return gatherer.take().readableBytes
                })
        }
        let sseLines = chunks(
            ByteBuffer(
                string: String(
                    repeating: "data: " + String(repeating: "x", count: (64 << 10) - 7) + "\n",
                    count: large / (64 << 10))),
            size: 64 << 10
        )
        let sseEnd = ByteBuffer(string: "\n")
        list.append(
            MicroBenchmark(
                name: "gather: SSE event of \(large >> 20) MiB in 64 KiB data lines (SSEDecoder)", bytes: large
            ) {
                var decoder = SSEDecoder(maxEventBytes: 2 * large)
                for chunk in sseLines { _ = try decoder.feed(chunk) }
                return try decoder.feed(sseEnd).first?.data.readableBytes ?? 0
            })

        // The backend request with a large blob: built whole, or in pieces (issue 12).
        let blobRequestModel = triggerRequest(blobVariables)
        list.append(
            MicroBenchmark(
                name: "http backend body, \(large >> 20) MiB blob: whole (BackendHTTPBody.encode)", bytes: large
            ) {
                var buffer = allocator.buffer(capacity: 256)
                BackendHTTPBody.encode(request: blobRequestModel, into: &buffer)
                return buffer.readableBytes
            })
        list.append(
            MicroBenchmark(name: "http backend body, \(large >> 20) MiB blob: streamed, 256 KiB chunks", bytes: large) {
                var body = BackendHTTPBody.streamed(request: blobRequestModel)
                var n = 0
                while let chunk = body.next(maxBytes: 256 << 10) { n &+= chunk.readableBytes }
                return n
            })
        list.append(
            MicroBenchmark(name: "grpc backend request, \(large >> 20) MiB blob: pack + frame", bytes: large) {
                GRPCMessageFramer.frame(RunnerCodec.encodeRunRequest(blobRequestModel)).readableBytes
            })
        list.append(
            MicroBenchmark(name: "grpc backend request, \(large >> 20) MiB blob: pieces + frame(pieces:)", bytes: large)
            {
                GRPCMessageFramer.frame(pieces: RunnerCodec.encodeRunRequestPieces(blobRequestModel, headroom: 5))
                    .reduce(0) { $0 + $1.readableBytes }
            })

        // Base64 alone (the data URI payload), both codecs the gateway carries.
        let raw = random
        let encoded = ByteBuffer(bytes: inputs.base64Text)
        // Into a buffer reused across runs (the loop alone), and into a fresh buffer per run, sized as the
        // decoder asks (its 3 bytes of slack included), so page faults on new memory are counted too.
        var reused = allocator.buffer(capacity: large + 3)
        list.append(
            MicroBenchmark(
                name: "base64 decode, TriggerModel, reused output (\(large >> 20) MiB decoded)",
                bytes: encoded.readableBytes
            ) {
                reused.clear()
                try encoded.withUnsafeReadableBytes { try Base64.decode($0, into: &reused) }
                return reused.readableBytes
            })
        list.append(
            MicroBenchmark(
                name: "base64 decode, TriggerModel, fresh output (\(large >> 20) MiB decoded)",
                bytes: encoded.readableBytes
            ) {
                var out = allocator.buffer(capacity: large + 3)
                try encoded.withUnsafeReadableBytes { try Base64.decode($0, into: &out) }
                return out.readableBytes
            })
        list.append(
            MicroBenchmark(
                name: "base64 canonical check, TriggerModel (\(large >> 20) MiB decoded)", bytes: encoded.readableBytes
            ) {
                encoded.withUnsafeReadableBytes { Base64.isCanonical($0) } ? encoded.readableBytes : 0
            })
        list.append(
            MicroBenchmark(name: "base64 encode, TriggerModel (\(large >> 20) MiB of bytes)", bytes: large) {
                var out = allocator.buffer(capacity: Base64.encodedLength(large))
                raw.withUnsafeReadableBytes { Base64.encode($0, into: &out) }
                return out.readableBytes
            })
        let uri = "data:application/octet-stream;base64," + String(buffer: encoded)
        list.append(
            MicroBenchmark(name: "data URI decode, ProtoCodec (\(large >> 20) MiB blob)", bytes: uri.utf8.count) {
                try DataURI.decode(uri)?.count ?? 0
            })

        // RFC 3339 timestamps as operations and schedules show them (compared with Foundation's ISO 8601 style).
        let stamps = inputs.timestamps
        list.append(
            MicroBenchmark(name: "RFC 3339 format, TriggerModel (\(stamps.count) timestamps, ms)", bytes: 0) {
                var n = 0
                for stamp in stamps { n &+= RFC3339.format(milliseconds: stamp).utf8.count }
                return n
            })
        return list
    }
}

extension GatewayBenchmarks {
    /// Records per thread in the contended rows' runs.
    static let contendedRecords = 10_000

    /// Histogram records (issue 11: the request families are recorded by every event loop for every call):
    /// the gateway's ``ShardedHistogram`` (the calling thread's shard, found per record as `PoolMetrics` does, or
    /// kept as `RequestMetrics`' per-thread cache does) against swift-prometheus' `ValueHistogram` (a lock per
    /// series), alone and with two threads recording into the same series at once. A contended run is
    /// ``contendedRecords`` records on each of two threads (the caller's and a dispatch worker), so its time per
    /// record is the row's time / 10 000.
    static func histogramRows() -> [MicroBenchmark] {
        let labels = [("pool", "runner"), ("endpoint", "127.0.0.1:9000")]
        let family = ShardedHistogramFamily(name: "bench_seconds", help: "Bench.", bounds: MetricBuckets.seconds)
        let ours = family.series(labels: labels)
        // bench/micro builds and runs every row on its main thread: this shard is that thread's.
        let kept = ours.shard()
        let registry = PrometheusCollectorRegistry()
        let theirs = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(metricName: "bench_seconds", unitName: "", helpText: "Bench."),
            labels: labels,
            buckets: MetricBuckets.seconds
        )
        // Durations spread over the buckets as a loaded gateway's are (mostly under 10 ms).
        let values = [0.0004, 0.0012, 0.0031, 0.0008, 0.0150, 0.0006, 0.0420, 0.0021]
        var next = 0
        func value() -> Double {
            next = (next + 1) & 7
            return values[next]
        }
        func contended(_ record: @escaping @Sendable (Double) -> Void) -> () -> Int {
            {
                let other = DispatchGroup()
                DispatchQueue.global().async(group: other) {
                    for i in 0..<contendedRecords { record(values[i & 7]) }
                }
                for i in 0..<contendedRecords { record(values[i & 7]) }
                other.wait()
                return contendedRecords
            }
        }
        return [
            MicroBenchmark(name: "histogram record, ours (thread's shard looked up per record)", bytes: 0) {
                ours.record(value())
                return 1
            },
            MicroBenchmark(name: "histogram record, ours (thread's shard kept, as the request metrics do)", bytes: 0) {
                kept.record(value())
                return 1
            },
            MicroBenchmark(name: "histogram record, swift-prometheus ValueHistogram (lock per series)", bytes: 0) {
                theirs.record(value())
                return 1
            },
            MicroBenchmark(
                name: "histogram record, ours, 2 threads × \(contendedRecords) into one series at once", bytes: 0,
                run: contended { ours.record($0) }),
            MicroBenchmark(
                name: "histogram record, swift-prometheus ValueHistogram, 2 threads × \(contendedRecords) at once",
                bytes: 0, run: contended { theirs.record($0) }),
        ]
    }
}

extension GatewayBenchmarks {
    /// libnghttp2's allocations (issue 11): a unary call's pattern through ``NGHTTP2ChunkPool`` (the session's
    /// `nghttp2_mem`) against the process allocator (glibc `malloc`/`free`, which libnghttp2 uses without one).
    /// One run allocates 18 blocks of the sizes libnghttp2 1.52 asks for in a unary call (a stream, outbound
    /// items, a copied header array, HPACK name and value buffers; sizes from its structs, approximate) and
    /// frees them, so the rows' times are per call.
    static func chunkPoolRows() -> [MicroBenchmark] {
        let sizes = [280, 176, 176, 48, 40, 44, 52, 36, 320, 176, 96, 40, 44, 176, 60, 176, 40, 48]
        let pool = NGHTTP2ChunkPool()
        var held = [UnsafeMutableRawPointer?](repeating: nil, count: sizes.count)
        return [
            MicroBenchmark(name: "nghttp2 chunk pool: a unary call's 18 allocations and frees", bytes: 0) {
                for (i, size) in sizes.enumerated() { held[i] = pool.allocate(size) }
                for pointer in held { pool.deallocate(pointer) }
                return held.count
            },
            MicroBenchmark(name: "nghttp2 default allocator (malloc/free): the same 18", bytes: 0) {
                for (i, size) in sizes.enumerated() { held[i] = malloc(size) }
                for pointer in held { free(pointer) }
                return held.count
            },
        ]
    }
}
