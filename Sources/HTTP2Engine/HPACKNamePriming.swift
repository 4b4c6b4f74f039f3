import CNghttp2

/// Keeps the names of the fields a session sends never indexed (``HTTP2CommonFields/uniquePerMessageSlot(_:)``:
/// `request-id`, `traceparent`, `idempotency-key`) in its HPACK encoder's dynamic table, so that their values go
/// out as "literal never indexed, indexed name" (RFC 7541 §6.2.3, one byte for the name) instead of with a literal
/// name as well.
///
/// libnghttp2's encoder refers to a never-indexed field's name by index when it finds the name in its tables
/// (`search_hd_table` looks the name alone up for `NGHTTP2_NV_FLAG_NO_INDEX`), but none of these names is in the
/// static table and nothing else puts them in the dynamic one: each was a Huffman-coded literal on every message,
/// on both sides of every gRPC call (issue 11: with `:path`, which libnghttp2 never indexes, five Huffman strings
/// per call, ~4 k of the gateway's instructions, and as many for the runner to decode). So the first message of a
/// session that carries one of these fields sends it with incremental indexing: one entry (its name and that
/// message's value, ~100 bytes of the peer's 4 KiB table; the values are identifiers, not secrets), after which
/// the field is never indexed again but its name is an index. A value marked sensitive (received never indexed,
/// ``HTTP2Headers/Field/neverIndexed``) never takes the turn: it must not enter the peer's table (RFC 7541 §7.1.3),
/// so the next unmarked one does.
///
/// libnghttp2 does not say when the entry is evicted (fields indexed later push it out of a full table), so the
/// field is indexed again every ``reprimeInterval`` messages that carry it: after an eviction the names are
/// literals again for at most that many messages, and the entries cost the table one field's room per interval.
///
/// One per session (``NGHTTP2Session``), touched only while a header block is handed to libnghttp2, on the
/// session's event loop. `package` for its tests (HTTP2EngineTests also run against a release build, which cannot
/// be imported `@testable`).
package struct HPACKNamePriming {
    /// Messages carrying a field between two that index it.
    package static let reprimeInterval: UInt16 = 256

    /// Per name (its slot): messages carrying it left before the next one indexes it; 0 means the next one does.
    private var remaining: (UInt16, UInt16, UInt16) = (0, 0, 0)

    package init() {}

    /// How the next field named `name` this session sends is encoded.
    package enum Indexing: Equatable {
        /// As libnghttp2's encoder chooses (it indexes most fields): any other name, or a never-indexed one
        /// whose turn to index it this is.
        case encoderDecides
        /// A "literal never indexed" (`NGHTTP2_NV_FLAG_NO_INDEX`).
        case neverIndexed

        /// The `nghttp2_nv` flags of the field.
        var flags: UInt8 {
            self == .neverIndexed ? UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue) : UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
        }
    }

    /// How the next field named `name` goes out (each call is one field sent: the turns count them).
    package mutating func indexing(for name: String) -> Indexing {
        guard let slot = HTTP2CommonFields.uniquePerMessageSlot(name) else { return .encoderDecides }
        switch slot {
        case 0: return Self.next(&remaining.0)
        case 1: return Self.next(&remaining.1)
        default: return Self.next(&remaining.2)
        }
    }

    private static func next(_ remaining: inout UInt16) -> Indexing {
        guard remaining == 0 else {
            remaining -= 1
            return .neverIndexed
        }
        remaining = reprimeInterval - 1
        return .encoderDecides
    }
}
