package import NIOCore
package import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An incremental Server-Sent Events parser (WHATWG HTML §9.2.6) for the HTTP backend's streaming answers: feed
/// it chunks, get back the complete events they finished.
///
/// Lines may end in CRLF, LF or CR (a CRLF split across chunks counts once); `data:` lines join with `\n`;
/// comments, `id:` and `retry:` are ignored; an event with no data is not dispatched; an unterminated event at
/// the end of the stream is dropped, as the spec says.
///
/// An event without an `event:` line, or named `message` (the spec's default type, the same event to an
/// `EventSource`), comes out with an empty name, so that the relay gives it the API's default name
/// (`PIPELINE_STATUS_UPDATED` or `PIPELINE_OUTPUT_UPDATED`, ``SSEEncoder``; API.md §2) as README promises for an
/// http runner's unnamed events. Runners built on sse-starlette or hand-written `data:`-only servers send no
/// `event:` line (review 17, finding 2: they reached Instill clients as `event: message`).
package struct SSEDecoder {
    private let maxEventBytes: Int
    private var line: [UInt8] = []
    private var eventName: String?
    private var data = ByteBuffer()
    private var hasData = false
    /// The previous chunk ended in CR: an LF that starts the next chunk belongs to that line break.
    private var skipLeadingLF = false
    /// Comment lines (`: ping`) read so far: a runner's sign of life between events (keep-alives), which the
    /// relay's idle rule counts (``HTTPBackendSSEReader``).
    package private(set) var comments = 0

    /// - Parameter maxEventBytes: the most one event (its lines and data) may take before `feed` throws.
    package init(maxEventBytes: Int = CodecLimits.defaults.maxBodyBytes) {
        self.maxEventBytes = maxEventBytes
    }

    /// Parses `chunk` and returns the events it completed, in order.
    ///
    /// - Throws: `GatewayError(.backendFailed)` when one event grows past `maxEventBytes`.
    package mutating func feed(_ chunk: ByteBuffer) throws -> [(event: String, data: ByteBuffer)] {
        var events: [(event: String, data: ByteBuffer)] = []
        try chunk.withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress, raw.count > 0 else { return }
            var i = 0
            if skipLeadingLF {
                skipLeadingLF = false
                if raw[0] == 0x0A { i = 1 }
            }
            var lineStart = i
            // Line ends are found with memchr (a byte loop cost ~10 instructions a byte, issue 11). `nextCR`: the
            // first CR at or after `i` (raw.count: none), searched again only once passed, so a chunk of LF-ended
            // lines is scanned for CR once, not once per line.
            var nextCR = -1
            while i < raw.count {
                if nextCR < i {
                    nextCR = memchr(base + i, 0x0D, raw.count - i).map { base.distance(to: $0) } ?? raw.count
                }
                let end: Int
                if let lf = memchr(base + i, 0x0A, nextCR - i) {
                    end = base.distance(to: lf)
                } else if nextCR < raw.count {
                    end = nextCR
                } else {
                    break
                }
                try endLine(UnsafeRawBufferPointer(rebasing: raw[lineStart..<end]), events: &events)
                i = end + 1
                if raw[end] == 0x0D {
                    if i < raw.count {
                        if raw[i] == 0x0A { i += 1 }
                    } else {
                        skipLeadingLF = true
                    }
                }
                lineStart = i
            }
            if lineStart < raw.count {
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[lineStart...]))
                try checkSize()
            }
        }
        return events
    }

    private mutating func endLine(
        _ tail: UnsafeRawBufferPointer,
        events: inout [(event: String, data: ByteBuffer)]
    ) throws {
        if line.isEmpty {
            try processLine(tail, events: &events)
        } else {
            line.append(contentsOf: tail)
            let whole = line
            line.removeAll(keepingCapacity: true)
            try whole.withUnsafeBytes { try processLine($0, events: &events) }
        }
    }

    private mutating func processLine(
        _ line: UnsafeRawBufferPointer,
        events: inout [(event: String, data: ByteBuffer)]
    ) throws {
        if line.isEmpty {
            if hasData {
                events.append((eventName ?? "", data))
            }
            eventName = nil
            data = ByteBuffer()
            hasData = false
            return
        }
        if line[0] == UInt8(ascii: ":") {
            comments &+= 1
            return
        }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.count
        var valueStart = min(colon + 1, line.count)
        if valueStart < line.count && line[valueStart] == 0x20 { valueStart += 1 }
        let value = valueStart..<line.count
        if HeadParser.equals(line, 0..<colon, "data") {
            if hasData { data.writeInteger(UInt8(0x0A)) }
            data.writeBytes(UnsafeRawBufferPointer(rebasing: line[value]))
            hasData = true
            try checkSize()
        } else if HeadParser.equals(line, 0..<colon, "event") {
            eventName = Self.eventName(line, value)
        }
    }

    /// An `event:` value: nil for `message` (see the type's documentation); the API's own names as the constants
    /// they are, so the event every runner names (`PIPELINE_OUTPUT_UPDATED`, 23 bytes: no small string) costs no
    /// allocation, and no reference counting where it goes (issue 11).
    private static func eventName(_ line: UnsafeRawBufferPointer, _ value: Range<Int>) -> String? {
        if HeadParser.equals(line, value, "message") { return nil }
        if HeadParser.equals(line, value, "PIPELINE_OUTPUT_UPDATED") { return SSEEncoder.outputEvent }
        if HeadParser.equals(line, value, "PIPELINE_STATUS_UPDATED") { return SSEEncoder.statusEvent }
        if HeadParser.equals(line, value, "PIPELINE_ERROR_UPDATED") { return SSEEncoder.errorEvent }
        return String(decoding: UnsafeRawBufferPointer(rebasing: line[value]), as: UTF8.self)
    }

    /// Where the data of the event being received is gathered (tests: an event of many `data:` lines grows
    /// in amortised linear time; see `BodyGatherer`).
    package var dataStorageAddress: UInt? {
        guard data.readableBytes > 0 else { return nil }
        return data.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }

    private func checkSize() throws {
        guard line.count + data.readableBytes <= maxEventBytes else {
            throw GatewayError(.backendFailed, "backend sent an SSE event larger than \(maxEventBytes) bytes")
        }
    }

    /// The `TriggerEvent` an event of the HTTP backend hop stands for (the inverse of `SSEEncoder.encode`):
    /// `PIPELINE_ERROR_UPDATED` → `.error`; data with `outputs` and `metadata` → `.end`; with `outputs` only →
    /// `.output`; any other object → `.status` under the event's name.
    ///
    /// Output data already in the form the SSE encoder writes (`CanonicalSyncResponse`: `{"outputs":[...]}`, or
    /// the sync response of the final event) is kept as that text (`TriggerResult.restOutputsJSON`, `restJSON`) and
    /// decoded only if a consumer reads the outputs: a REST client's stream then gets the runner's bytes as they
    /// are (issue 11: parsing and re-encoding were ~40 % of a relayed event's instructions). Any other data takes
    /// ``triggerEventTree(event:data:limits:)``, with the same result and errors either way.
    ///
    /// - Throws: `GatewayError(.backendFailed)` when the data is not a JSON object of the expected shape.
    package static func triggerEvent(event: String, data: ByteBuffer, limits: CodecLimits) throws -> TriggerEvent {
        if event != SSEEncoder.errorEvent,
            let document = CanonicalSyncResponse.passthrough(data, maxDepth: limits.maxDepth)
        {
            let decode: @Sendable (ByteBuffer) -> [ValueObject] = { json in
                do {
                    switch try triggerEventTree(event: "", data: json, limits: limits) {
                    case .output(_, let result), .end(let result): return result.outputs
                    case .status, .error: return []
                    }
                } catch {
                    // Unreachable: the scan accepts only what the parser accepts and the shape check passes.
                    assertionFailure("canonical SSE event data failed to decode: \(error)")
                    return []
                }
            }
            switch document.shape {
            case .outputsEvent:
                return .output(
                    name: event, result: TriggerResult(restOutputsJSON: document.body, decodeOutputs: decode))
            case .syncResponse:
                return .end(TriggerResult(restJSON: document.body, decodeOutputs: decode))
            }
        }
        return try triggerEventTree(event: event, data: data, limits: limits)
    }

    /// ``triggerEvent(event:data:limits:)`` through a `Value` tree, never keeping the runner's text: the reference
    /// the passthrough must agree with (tests and the fuzzers compare the two).
    package static func triggerEventTree(event: String, data: ByteBuffer, limits: CodecLimits) throws -> TriggerEvent {
        let object: ValueObject
        do {
            guard case .object(let o) = try JSONValueCodec.parse(data, limits: limits.forBackendAnswers, path: "")
            else {
                throw GatewayError(.backendFailed, "backend SSE event \(event) has data that is not a JSON object")
            }
            object = o
        } catch let error as JSONParseFailure {
            throw GatewayError(.backendFailed, "backend SSE event \(event) has invalid JSON: \(error.error.message)")
        }
        if event == SSEEncoder.errorEvent {
            return .error(
                RESTResponseBody.error(of: object)
                    ?? GatewayError(.backendFailed, object["message"]?.stringValue ?? "backend reported an error")
            )
        }
        guard object["outputs"] != nil else { return .status(name: event, data: object) }
        do {
            let result = try RESTResponseBody.result(of: object)
            return object["metadata"] != nil ? .end(result) : .output(name: event, outputs: result.outputs)
        } catch {
            throw GatewayError(.backendFailed, "backend SSE event \(event) has an unexpected body: \(error.message)")
        }
    }
}
