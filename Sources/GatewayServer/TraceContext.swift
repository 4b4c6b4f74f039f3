import TriggerModel

/// The W3C trace context a trigger travels with (W3C Trace Context Level 1): the client's, continued with a
/// span of the gateway's own, or one the gateway starts when the client sent none.
///
/// - A valid `traceparent` (§3.2) keeps its trace id and flags; the parent id sent on is a new span id, the
///   gateway's own hop (§3.2.2.4: "the ID of this request as known by the caller"), and `tracestate` is passed
///   untouched (§3.3.1).
/// - None, or an invalid one (§3.2.4: a parser that fails "MUST" start a new trace and then "MUST NOT" read
///   `tracestate`): a new random trace id and span id, sampled (flags `01`: the gateway is the trace's root and
///   asks the services after it to record), and no `tracestate`.
///
/// Version `00` is what the gateway writes, whichever version it read (§3.2.4).
struct TraceContext {
    /// `00-<trace id>-<the gateway's span id>-<flags>`: what the backend (and an async run, and its webhook)
    /// receives. A `let`: ``traceID`` views its bytes 3..<35, which only `format` writes.
    let traceParent: String
    var traceState: String?
    /// Whether the gateway started this trace (the request carried no valid `traceparent`).
    var started: Bool

    /// The trace id, 32 lowercase hex digits: what the access log and `RequestRecord.traceID` carry. A view of
    /// ``traceParent``'s bytes 3..<35, where every `traceparent` the gateway writes has it (`format`), not a string
    /// of its own: one allocation and one UTF-8 validation fewer per trigger (issue 11; bench/README.md, "Branch
    /// hotpath12").
    var traceID: Substring {
        let utf8 = traceParent.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: 3)
        return Substring(utf8[start..<utf8.index(start, offsetBy: 32)])
    }

    init(traceParent received: String?, traceState: String?) {
        // The thread's own generator, not a getrandom(2) per word: see `ThreadRandom` for why that is enough.
        let continued = received.flatMap { TraceParent.traceID(of: $0) }
        // The span id first, then (for a new trace) the trace id's halves: one draw per word, none wasted.
        let (span, high, low) = ThreadRandom.withGenerator { random in
            let span = Self.nonZero(random)
            return continued == nil ? (span, Self.nonZero(random), random.next()) : (span, 0, 0)
        }
        if let received, let traceID = continued {
            var flags = received.utf8.dropFirst(53).makeIterator()  // two hex digits: TraceParent checked them
            let zero = UInt8(ascii: "0")
            self.traceParent = Self.format(span: span, flags: (flags.next() ?? zero, flags.next() ?? zero)) { target in
                traceID.withUTF8Bytes { id in
                    // 32 hex digits (TraceParent checked them); anything shorter is padded, never read past. Copied
                    // whole, not byte by byte with a bounds check each (~250 instructions per trigger).
                    let copied = min(id.count, 32)
                    if let source = id.baseAddress { target.copyMemory(from: source, byteCount: copied) }
                    for i in copied..<32 { target.storeBytes(of: UInt8(ascii: "0"), toByteOffset: i, as: UInt8.self) }
                }
            }
            self.traceState = traceState
            self.started = false
        } else {
            // The new trace id's digits written in place: no string of their own (``traceID`` views these).
            self.traceParent = Self.format(span: span, flags: (UInt8(ascii: "0"), UInt8(ascii: "1"))) { target in
                HexWord.write(high, to: target)
                HexWord.write(low, to: target + 16)
            }
            self.traceState = nil
            self.started = true
        }
    }

    /// A random word other than zero: a span id, or a trace id's high half, so that neither id is all zeros
    /// (invalid: §3.2.2.3, §3.2.2.4). Zero maps to one rather than drawing again: one draw per word.
    private static func nonZero(_ random: ThreadRandom.Generator) -> UInt64 {
        let value = random.next() as UInt64
        return value == 0 ? 1 : value
    }

    /// `00-<trace id>-<span as 16 hex digits>-<flags>`, written in place: one allocation. `writeTraceID` writes the
    /// trace id's 32 digits at the pointer it is given (bytes 3..<35, which ``traceID`` views).
    @inline(__always)  // with the trace id's writer: a call through a closure context otherwise (~100 per trigger)
    private static func format(
        span: UInt64, flags: (UInt8, UInt8), traceID writeTraceID: (UnsafeMutableRawPointer) -> Void
    ) -> String {
        String(unsafeUninitializedCapacity: 55) { buffer in
            buffer[0] = UInt8(ascii: "0")
            buffer[1] = UInt8(ascii: "0")
            buffer[2] = UInt8(ascii: "-")
            writeTraceID(UnsafeMutableRawPointer(buffer.baseAddress! + 3))
            buffer[35] = UInt8(ascii: "-")
            HexWord.write(span, to: UnsafeMutableRawPointer(buffer.baseAddress! + 36))
            buffer[52] = UInt8(ascii: "-")
            buffer[53] = flags.0
            buffer[54] = flags.1
            return 55
        }
    }
}
