import TriggerModel

/// Request ids the gateway makes when the client sent none: 16 random bytes as hex, like a trace id, from the
/// thread's generator (`ThreadRandom`: unique and random-looking, not secret; nothing authorizes by them).
enum RequestID {
    /// The longest client-sent id kept, in bytes: room for any trace id, UUID or ULID with a prefix, and
    /// small enough that echoing, logging and forwarding it costs nothing (an 8 KB one was echoed before).
    static let maxLength = 200

    /// The request's id: the client's `request-id` when it is acceptable (``isAcceptable(_:)``), else one of
    /// ours (``make()``), exactly as when it sent none. REST and gRPC both take theirs from here.
    static func resolve(_ sent: String?) -> String {
        if let sent, isAcceptable(sent) { return sent }
        return make()
    }

    /// A client's id is kept when it is 1 to ``maxLength`` bytes of visible ASCII (RFC 5234 VCHAR, 0x21–0x7E):
    /// no space, control or non-ASCII byte, so it is one token in a logfmt line and safe in any header.
    static func isAcceptable(_ sent: String) -> Bool {
        let bytes = sent.utf8
        return !bytes.isEmpty && bytes.count <= maxLength && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    static func make() -> String {
        let (high, low) = ThreadRandom.withGenerator { ($0.next() as UInt64, $0.next() as UInt64) }
        // Written in place: one allocation per id (this runs for most requests).
        return HexWord.string(high, low)
    }
}
