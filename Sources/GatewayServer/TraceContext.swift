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
    /// 32 lowercase hex digits: what the access log and `RequestRecord.traceID` carry.
    var traceID: String
    /// `00-<trace id>-<the gateway's span id>-<flags>`: what the backend (and an async run, and its webhook)
    /// receives.
    var traceParent: String
    var traceState: String?
    /// Whether the gateway started this trace (the request carried no valid `traceparent`).
    var started: Bool

    init(traceParent received: String?, traceState: String?) {
        // The thread's own generator, not a getrandom(2) per word: see `ThreadRandom` for why that is enough.
        let random = ThreadRandom.current
        let span = Self.nonZero(random)
        if let received, let traceID = TraceParent.traceID(of: received) {
            var flags = received.utf8.dropFirst(53).makeIterator()  // two hex digits: TraceParent checked them
            let zero = UInt8(ascii: "0")
            self.traceID = traceID
            var id = traceID
            self.traceParent = id.withUTF8 { id in
                Self.format(span: span, flags: (flags.next() ?? zero, flags.next() ?? zero)) { buffer in
                    // 32 hex digits (TraceParent checked them); anything shorter is padded, never read past.
                    // Copied whole, not byte by byte with a bounds check each (~250 instructions per trigger).
                    let copied = min(id.count, 32)
                    if let source = id.baseAddress { buffer.baseAddress!.initialize(from: source, count: copied) }
                    for i in copied..<32 { buffer[i] = UInt8(ascii: "0") }
                }
            }
            self.traceState = traceState
            self.started = false
        } else {
            // The trace id is written once, into the `traceparent`, and cut from it: a `String` cut from a native
            // one is not validated again, as one made from bytes is (bench/README.md, branch hotpath6).
            let high = Self.nonZero(random)
            let low = random.next() as UInt64
            let traceParent = Self.format(span: span, flags: (UInt8(ascii: "0"), UInt8(ascii: "1"))) { buffer in
                Self.writeHex(high, into: buffer, at: 0)
                Self.writeHex(low, into: buffer, at: 16)
            }
            let utf8 = traceParent.utf8
            self.traceID = String(
                traceParent[utf8.index(utf8.startIndex, offsetBy: 3)..<utf8.index(utf8.startIndex, offsetBy: 35)])
            self.traceParent = traceParent
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

    private static func hexDigit(_ nibble: UInt64) -> UInt8 {
        let value = UInt8(truncatingIfNeeded: nibble & 0xF)
        return value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") - 10 + value
    }

    /// `value`'s 16 hex digits, most significant first, into `buffer` from `offset`.
    private static func writeHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        for i in 0..<16 { buffer[offset + i] = hexDigit(value >> (60 - 4 * UInt64(i))) }
    }

    /// `00-<trace id>-<span as 16 hex digits>-<flags>`, written in place (one allocation); `writeTraceID` fills
    /// the trace id's 32 bytes (the buffer it is given).
    private static func format(
        span: UInt64, flags: (UInt8, UInt8), traceID writeTraceID: (UnsafeMutableBufferPointer<UInt8>) -> Void
    ) -> String {
        String(unsafeUninitializedCapacity: 55) { buffer in
            buffer[0] = UInt8(ascii: "0")
            buffer[1] = UInt8(ascii: "0")
            buffer[2] = UInt8(ascii: "-")
            writeTraceID(UnsafeMutableBufferPointer(rebasing: buffer[3..<35]))
            buffer[35] = UInt8(ascii: "-")
            writeHex(span, into: buffer, at: 36)
            buffer[52] = UInt8(ascii: "-")
            buffer[53] = flags.0
            buffer[54] = flags.1
            return 55
        }
    }
}
