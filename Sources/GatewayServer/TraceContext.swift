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
        let continued = received.flatMap { TraceParent.traceID(of: $0) }
        // The span id first, then (for a new trace) the trace id's halves: one draw per word, none wasted.
        let (span, high, low) = ThreadRandom.withGenerator { random in
            let span = Self.nonZero(random)
            return continued == nil ? (span, Self.nonZero(random), random.next()) : (span, 0, 0)
        }
        if let received, let traceID = continued {
            var flags = received.utf8.dropFirst(53).makeIterator()  // two hex digits: TraceParent checked them
            let zero = UInt8(ascii: "0")
            self.traceID = traceID
            self.traceParent = Self.format(
                traceID: traceID, span: span, flags: (flags.next() ?? zero, flags.next() ?? zero))
            self.traceState = traceState
            self.started = false
        } else {
            let traceID = HexWord.string(high, low)
            self.traceID = traceID
            self.traceParent = Self.format(
                traceID: traceID, span: span, flags: (UInt8(ascii: "0"), UInt8(ascii: "1")))
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

    /// `00-<trace id>-<span as 16 hex digits>-<flags>`, written in place from the id's bytes: one allocation.
    private static func format(traceID: String, span: UInt64, flags: (UInt8, UInt8)) -> String {
        var traceID = traceID
        return traceID.withUTF8 { id in
            String(unsafeUninitializedCapacity: 55) { buffer in
                buffer[0] = UInt8(ascii: "0")
                buffer[1] = UInt8(ascii: "0")
                buffer[2] = UInt8(ascii: "-")
                // 32 hex digits (a parsed or a made trace id); anything shorter is padded, never read past. Copied
                // whole, not byte by byte with a bounds check each (~250 instructions per trigger).
                let copied = min(id.count, 32)
                if let source = id.baseAddress {
                    (buffer.baseAddress! + 3).initialize(from: source, count: copied)
                }
                for i in copied..<32 { buffer[3 + i] = UInt8(ascii: "0") }
                buffer[35] = UInt8(ascii: "-")
                HexWord.write(span, to: UnsafeMutableRawPointer(buffer.baseAddress! + 36))
                buffer[52] = UInt8(ascii: "-")
                buffer[53] = flags.0
                buffer[54] = flags.1
                return 55
            }
        }
    }
}
