import GatewayServer
import NIOCore
import TriggerModel
import WireCodecs

/// The streaming relay's parsers (issue 12, `HTTP1BodyRelay`) on the raw input:
///
/// - `RelayPrefixScanner.scan` never traps or reads past its bytes, on an `Array` and on a slice that does not
///   start at index 0 alike (the relay scans a `ByteBufferView`), with the same answer; a `.found(start,
///   closer)` has `start` within the bytes, `;base64,` right before it, no `"` or `\` after it, and a closer of
///   `"` then only `}`/`]`; every prefix of the input that is decided (`.none`, `.found`) agrees with the whole
///   input, except that a `.found` blob may end (its string closes) in the bytes the prefix did not have;
/// - the multipart decoder's file-part observer (`MultipartFileObserver`), with the body in pieces whose sizes
///   come from the input's last bytes (an epilogue the decoder discards, so the fuzzer steers the chunking
///   without changing the parts): each observed part's bytes, in order, are the blob `fileEnded` gets and the
///   body's bytes at `dataOffset`; `dataOffset`s increase and each starts past the previous part's end; no
///   bytes outside an observed part; no callback once `feed` has thrown; the callbacks and the outcome are the
///   same at once, a byte at a time and in the derived pieces; when the body decodes, the observed blobs are
///   its file parts' contents, and a file that is the body's last part makes, through
///   `MultipartFileStart.inputs(ifLastWith:)`, the batch `finish()` returns.
enum RelayFuzzing {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        prefixScanner(Array(bytes))
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        let (boundary, body) = RESTFuzzing.multipartFraming(buffer)
        multipartObserver(body, boundary: boundary)
    }

    // MARK: Prefix scanner

    /// The relay looks at no more than its window; inputs are shorter than that, so the whole input is used.
    static func prefixScanner(_ bytes: [UInt8]) {
        let whole = RelayPrefixScanner.scan(bytes)
        check(whole, in: bytes[...])
        // The same bytes at a non-zero start index, as a `ByteBufferView` of a buffer read from has.
        let padded = [UInt8](repeating: UInt8(ascii: "{"), count: 7) + bytes
        precondition(RelayPrefixScanner.scan(padded[7...]) == whole, "scanner answer depends on the start index")
        // A spread of prefixes (every one for inputs up to 64 bytes; each scan is linear and the replay of the
        // whole corpus in CI pays for them): 64 lengths, plus those just before and at a found blob's start.
        var lengths = Set(stride(from: 0, to: bytes.count, by: max(1, bytes.count / 64)))
        if case .found(let start, _) = whole {
            lengths.formUnion([start - 1, start].filter { $0 >= 0 && $0 < bytes.count })
        }
        for length in lengths.sorted() {
            let prefix = bytes[0..<length]
            let answer = RelayPrefixScanner.scan(prefix)
            check(answer, in: prefix)
            switch answer {
            case .needMore:
                break
            case .none:
                precondition(whole == .none, "scanner: a prefix said .none, the whole input \(whole)")
            case .found(let start, _):
                if whole != answer {
                    // Only allowed when the blob's string ends in the bytes the prefix did not have.
                    let ends = bytes[length...].contains { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
                    precondition(
                        ends && start <= length,
                        "scanner: a prefix said \(answer), the whole input \(whole) with no end to the blob")
                }
            }
        }
    }

    private static func check(_ answer: RelayPrefixScanner.Result, in bytes: ArraySlice<UInt8>) {
        guard case .found(let start, let closer) = answer else { return }
        let marker = Array(";base64,".utf8)
        precondition(start >= marker.count && start <= bytes.count, "scanner: start \(start) outside the bytes")
        precondition(Array(bytes[(start - marker.count)..<start]) == marker, "scanner: no ;base64, before start")
        precondition(
            !bytes[start...].contains { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") },
            "scanner: the blob found ends within the bytes")
        precondition(closer.first == UInt8(ascii: "\""), "scanner: closer does not start with a quote")
        precondition(
            closer.dropFirst().allSatisfy { $0 == UInt8(ascii: "}") || $0 == UInt8(ascii: "]") },
            "scanner: closer holds more than brackets")
    }

    // MARK: Multipart file-part observer

    /// What the observer was told, in order.
    private enum Event: Equatable {
        case began(name: String, fileName: String?, contentType: String?, dataOffset: Int, closingBytes: Int)
        case bytes([UInt8])
        case ended(ByteBuffer)
    }

    /// Records the callbacks and checks those that need no other view: bytes only inside an observed part,
    /// never empty; what `fileEnded` gets is what came through `fileBytes`; nothing after an error.
    private final class Recorder: MultipartFileObserver {
        /// Every other file part is declined, so a declined part is seen to get no bytes.
        var accept = true
        var observing = false
        var seen: [UInt8] = []
        var failed = false
        var starts: [MultipartFileStart] = []
        /// The events with adjacent `bytes` merged (chunking changes how the bytes are cut, nothing else).
        var events: [Event] = []

        func fileBegan(_ start: MultipartFileStart) -> Bool {
            precondition(!failed, "observer: fileBegan after the decoder threw")
            precondition(!observing, "observer: fileBegan inside an observed part")
            events.append(
                .began(
                    name: start.name, fileName: start.fileName, contentType: start.contentType,
                    dataOffset: start.dataOffset, closingBytes: start.closingBytes))
            starts.append(start)
            observing = accept
            accept.toggle()
            seen = []
            return observing
        }

        func fileBytes(_ bytes: UnsafeRawBufferPointer) {
            precondition(!failed, "observer: fileBytes after the decoder threw")
            precondition(observing, "observer: fileBytes outside an observed part")
            precondition(bytes.count > 0, "observer: empty fileBytes")
            seen += bytes
            if case .bytes(let earlier) = events.last {
                events[events.count - 1] = .bytes(earlier + Array(bytes))
            } else {
                events.append(.bytes(Array(bytes)))
            }
        }

        func fileEnded(_ body: ByteBuffer) {
            precondition(!failed, "observer: fileEnded after the decoder threw")
            precondition(observing, "observer: fileEnded for a part not observed")
            precondition(Array(body.readableBytesView) == seen, "observer: fileEnded's blob is not the bytes seen")
            observing = false
            events.append(.ended(body))
        }
    }

    private struct Run {
        var events: [Event]
        var starts: [MultipartFileStart]
        var outcome: Result<[TriggerInput], GatewayError>
    }

    private static func decode(_ pieces: [ByteBuffer], boundary: String) -> Run? {
        guard var decoder = try? MultipartFormDecoder(boundary: boundary, limits: RESTFuzzing.limits) else {
            return nil
        }
        let recorder = Recorder()
        decoder.fileObserver = recorder
        let outcome: Result<[TriggerInput], GatewayError>
        do {
            for piece in pieces { try decoder.feed(piece) }
            outcome = .success(try decoder.finish())
        } catch {
            recorder.failed = true
            outcome = .failure(error as? GatewayError ?? GatewayError(.internalError, "\(error)"))
        }
        return Run(events: recorder.events, starts: recorder.starts, outcome: outcome)
    }

    /// Piece sizes from the body's last 16 bytes, cycled: a byte `b` is `b % 64 + 1` bytes, 0xFF the rest.
    static func derivedPieces(of body: ByteBuffer) -> [ByteBuffer] {
        let view = body.readableBytesView
        let sizes = view.suffix(16).map { $0 == 0xFF ? Int.max : Int($0 % 64) + 1 }
        guard !sizes.isEmpty else { return [] }
        return RESTFuzzing.pieces(of: body, sizes: sizes)
    }

    static func multipartObserver(_ body: ByteBuffer, boundary: String) {
        guard let atOnce = decode([body], boundary: boundary) else { return }
        var chunkings = [("in derived pieces", derivedPieces(of: body))]
        // A byte at a time too, for bodies with a file part and short enough for CI's replay of the corpus.
        if !atOnce.starts.isEmpty && body.readableBytes <= 2048 {
            var drip: [ByteBuffer] = []
            var rest = body
            while let byte = rest.readSlice(length: 1) { drip.append(byte) }
            chunkings.append(("a byte at a time", drip))
        }
        for (name, pieces) in chunkings {
            let run = decode(pieces, boundary: boundary)!
            switch (atOnce.outcome, run.outcome) {
            case (.success(let a), .success(let b)):
                precondition(a == b, "multipart with observer: batch differs \(name)")
                precondition(atOnce.events == run.events, "multipart observer: callbacks differ \(name)")
            case (.failure(let a), .failure(let b)):
                precondition(a.code == b.code, "multipart with observer: error differs \(name): \(a) / \(b)")
            default:
                preconditionFailure(
                    "multipart with observer: outcome differs \(name): \(atOnce.outcome) / \(run.outcome)")
            }
        }
        // Offsets: increasing, and each observed part is the body's bytes at its offset.
        let bytes = Array(body.readableBytesView)
        var partEnd = 0
        var offset = 0
        for event in atOnce.events {
            switch event {
            case .began(_, _, _, let dataOffset, let closingBytes):
                precondition(dataOffset >= partEnd && dataOffset <= bytes.count, "observer: dataOffset not monotonic")
                precondition(closingBytes == boundary.utf8.count + 8, "observer: closingBytes")
                offset = dataOffset
                partEnd = dataOffset
            case .bytes(let seen):
                precondition(
                    offset + seen.count <= bytes.count && Array(bytes[offset..<(offset + seen.count)]) == seen,
                    "observer: the bytes seen are not the body's at dataOffset")
                offset += seen.count
                partEnd = offset
            case .ended:
                break
            }
        }
        guard case .success(let batch) = atOnce.outcome else { return }
        // The decoded body's file parts, from the decoder's parts mode.
        guard
            var partsDecoder = try? MultipartFormDecoder(
                boundary: boundary, limits: RESTFuzzing.limits, collectingParts: true),
            (try? partsDecoder.feed(body)) != nil, let parts = try? partsDecoder.finishParts()
        else {
            preconditionFailure("multipart: decodes as a batch but not as parts")
        }
        let files = parts.filter(\.isFile)
        precondition(
            files.count == atOnce.starts.count,
            "observer: told of \(atOnce.starts.count) files, body has \(files.count)")
        let ended = atOnce.events.compactMap { if case .ended(let blob) = $0 { blob } else { nil } }
        // Parts 0, 2, 4, … were accepted.
        for (k, blob) in ended.enumerated() {
            precondition(files[2 * k].body == blob, "observer: file part \(2 * k) differs from its decoded content")
        }
        if let last = parts.last, last.isFile {
            let made = try? atOnce.starts.last!.inputs(ifLastWith: last.body)
            precondition(made == batch, "observer: inputs(ifLastWith:) of the last file differs from finish()")
        }
    }
}
