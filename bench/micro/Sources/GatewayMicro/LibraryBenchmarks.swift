import ExtrasBase64
import Foundation
import GatewayBenchmarks
import MultipartKit
import NIOCore

/// The libraries our own codecs are measured against, on the same inputs (``BenchmarkInputs``), so each of our
/// rows has its library's row beside it in one run (bench/README.md "Our code or a library").
enum LibraryBenchmarks {
    static func all(_ inputs: BenchmarkInputs) -> [MicroBenchmark] {
        let large = inputs.large
        var list: [MicroBenchmark] = []

        // swift-extras-base64 1.2.0: decoding into caller memory (a MutableSpan over a buffer reused across
        // runs, as our "reused output" row), into a fresh array, and encoding.
        let text = inputs.base64Text
        let raw = inputs.randomBytes
        var output = [UInt8](repeating: 0, count: Base64.decodedLength(bytesCount: text.count))
        list.append(
            MicroBenchmark(
                name: "base64 decode, ExtrasBase64, reused output (\(large >> 20) MiB decoded)",
                bytes: text.count
            ) {
                var span = output.mutableSpan
                return try Base64.decode(bytes: text.span, into: &span)
            })
        list.append(
            MicroBenchmark(
                name: "base64 decode, ExtrasBase64, fresh output (\(large >> 20) MiB decoded)",
                bytes: text.count
            ) {
                try Base64.decode(bytes: text).count
            })
        list.append(
            MicroBenchmark(name: "base64 encode, ExtrasBase64 (\(large >> 20) MiB of bytes)", bytes: large) {
                Base64.encodeToBytes(bytes: raw).count
            })

        // Foundation's JSONSerialization on the REST bodies: parsing only (data URIs stay strings; our row also
        // decodes them into blobs).
        for (label, bytes) in inputs.restBodies {
            let data = Data(bytes)
            list.append(
                MicroBenchmark(
                    name: "JSON parse, Foundation JSONSerialization (\(label), \(bytes.count) B)", bytes: bytes.count
                ) {
                    (try JSONSerialization.jsonObject(with: data) as? [String: Any])?.count ?? 0
                })
        }

        // vapor/multipart-kit's streaming MultipartParser, fed the same 64 KiB reads; counts the body bytes
        // (our decoder also gathers each part's bytes).
        let boundary = inputs.multipartBoundary
        let body = ByteBuffer(bytes: inputs.multipartBody)
        var reads: [ByteBuffer] = []
        var rest = body
        while rest.readableBytes > 0 {
            reads.append(rest.readSlice(length: min(inputs.multipartReadSize, rest.readableBytes))!)
        }
        list.append(
            MicroBenchmark(
                name: "multipart parse, MultipartKit (\(large >> 20) MiB file, 64 KiB reads)",
                bytes: body.readableBytes
            ) {
                let parser = MultipartParser(boundary: boundary)
                var parts = 0
                var gathered = ByteBuffer()
                parser.onBody = { chunk in gathered.writeBuffer(&chunk) }
                parser.onPartComplete = {
                    parts += 1
                    gathered.clear()
                }
                for read in reads { try parser.execute(read) }
                return parts
            })

        // Foundation's ISO 8601 style with fractional seconds (truncates: see Sources/TriggerModel/RFC3339.swift).
        let dates = inputs.timestamps.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        list.append(
            MicroBenchmark(
                name: "RFC 3339 format, Foundation ISO8601FormatStyle (\(dates.count) timestamps, ms)",
                bytes: 0
            ) {
                var n = 0
                for date in dates { n &+= date.formatted(style).utf8.count }
                return n
            })
        return list
    }
}
