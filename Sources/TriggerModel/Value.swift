#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A JSON-like value as it travels through the gateway, plus one case JSON lacks: `blob`.
///
/// Every ingress codec (REST JSON, multipart, protobuf `Struct`) produces `Value`s and every egress codec
/// consumes them, so no protocol type leaks past the codecs. Numbers are `Double` because that is what both
/// JSON (as commonly implemented) and `google.protobuf.Value` carry; codecs print integral numbers without a
/// fraction so `1` round-trips as `1`. An integer a `Double` would round (magnitude past 2^53, RFC 8259 §6's
/// interoperable range) is a `largeInteger` instead, so `9007199254740993` or `18446744073709551615` go out of
/// the JSON codecs and the store as they came in; protocols whose numbers are doubles (`google.protobuf.Value`'s
/// `number_value`) carry its nearest double. Build integers with `Value.integer(_:)`, which picks the case.
///
/// A number keeps whether it was written as a float (``NumberForm``): `2.0` goes on as `2.0`, not `2`, to readers
/// that tell integers from floats (Python's `json`, so every Python runner; Abacus's `FLOAT` variables).
package enum Value: Sendable, Equatable {
    /// The deepest nesting of lists and objects a value the gateway takes may have: the most `limits.max_depth`
    /// allows a client's (`LimitsConfiguration.maxDepthRange`), the most a configured input may have
    /// (`GatewayConfiguration.configValue`), and what the operation store reads back (`PayloadReader`). The limit
    /// went to 1024 while the store refused past 512, so an accepted async request nested deeper could not be
    /// claimed or read. 512, not 1024: the codecs recurse once per level, and 1024 levels overflowed a test
    /// thread's stack under AddressSanitizer.
    package static let maximumDepth = 512

    case null
    case bool(Bool)
    case number(Double, form: NumberForm = .plain)
    /// An integer whose magnitude is past 2^53 (never one a `number` holds exactly up to there).
    case largeInteger(LargeInteger)
    case string(String)
    case list([Value])
    case object(ValueObject)
    case blob(Blob)

    /// Structural equality, where a `number` and a `largeInteger` are equal when they are the same integer as
    /// the JSON writer prints it: an integral double in (2^53, 1e16) is written as its digits and read back as a
    /// `largeInteger`, and is the same JSON value. A number's form is not compared: `2` and `2.0` are the same
    /// JSON value (RFC 8259 §6 gives numbers no type), and tests that care compare the text.
    package static func == (lhs: Value, rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a, _), .number(let b, _)): a == b
        case (.largeInteger(let a), .largeInteger(let b)): a == b
        case (.number(let a, _), .largeInteger(let b)), (.largeInteger(let b), .number(let a, _)): b.isWritten(as: a)
        case (.string(let a), .string(let b)): a == b
        case (.list(let a), .list(let b)): a == b
        case (.object(let a), .object(let b)): a == b
        case (.blob(let a), .blob(let b)): a == b
        default: false
        }
    }

    package var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The number as a `Double`: a `largeInteger` as its nearest double (rounded, as `strtod` rounds).
    package var numberValue: Double? {
        switch self {
        case .number(let n, _): n
        case .largeInteger(let i): i.doubleValue
        default: nil
        }
    }

    /// The number as an exact `Int64`, or nil when it is not a number, not integral or out of `Int64`'s range.
    package var int64Value: Int64? {
        switch self {
        case .number(let n, _): Int64(exactly: n)
        case .largeInteger(let i): Int64(i.digits)
        default: nil
        }
    }

    /// `value` as a `number` when a `Double` holds it exactly and within ±2^53, else as a `largeInteger`.
    package static func integer(_ value: Int64) -> Value {
        value.magnitude <= LargeInteger.maxDoubleExact ? .number(Double(value)) : .largeInteger(LargeInteger(value))
    }

    /// As `integer(_: Int64)`, for unsigned values (`UInt64.max` stays `18446744073709551615`).
    package static func integer(_ value: UInt64) -> Value {
        value <= LargeInteger.maxDoubleExact ? .number(Double(value)) : .largeInteger(LargeInteger(value))
    }

    package var objectValue: ValueObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    package var blobValue: Blob? {
        if case .blob(let b) = self { return b }
        return nil
    }
}

/// How a `Value.number` was written, where it matters to the next reader: JSON gives numbers no type (RFC 8259
/// §6), but Python's `json` reads `2` as an `int` and `2.0` as a `float`, and Abacus types a variable `INTEGER` or
/// `FLOAT` by the same rule. Only an integral value shows the difference: any other prints with its fraction.
package enum NumberForm: UInt8, Sendable {
    /// Printed as its shortest text: an integral value without a fraction (`2`), another as its shortest
    /// round-trip decimal (`2.5`). Numbers the gateway makes (counts, sizes) and `number_value`s (protobuf carries
    /// no form) are plain.
    case plain
    /// Written with a fraction or an exponent (`2.0`, `1e3`, JSON's `frac` or `exp`), or typed `FLOAT`: an integral
    /// value prints with a fraction (`2.0`, `1000.0`; past 1e16 as an exponent, `1e+16`), as Python prints a
    /// `float`, so it reads back as a float.
    case float
}

/// An object whose keys keep the order they arrived in (JSON objects and protobuf `Struct`s are sent in a
/// meaningful order by users, and echoing them back reordered surprises people).
///
/// Lookups are linear: objects in trigger payloads are small (tens of keys), where a scan beats hashing.
/// Setting an existing key replaces its value in place and keeps its position.
package struct ValueObject: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    package private(set) var entries: [(key: String, value: Value)]

    package init() { self.entries = [] }

    /// `entries` in order; a repeated key keeps its first position and takes the last value (as the setter).
    ///
    /// Linear: past `linearKeyLimit` keys the repeats are found through a dictionary, not by scanning (the
    /// protobuf `Struct` decoders build every object here; scanning was quadratic, so a gRPC trigger of 100,000
    /// fields took about 5 × 10^9 key comparisons, review 24 M2).
    package init(_ entries: [(key: String, value: Value)]) {
        self.entries = []
        self.entries.reserveCapacity(entries.count)
        guard entries.count > Self.linearKeyLimit else {
            for (k, v) in entries { self[k] = v }
            return
        }
        // `String`'s hashing agrees with its `==` (canonical equivalence), so the index merges what the scan would.
        var index: [String: Int] = [:]
        index.reserveCapacity(entries.count)
        for (k, v) in entries {
            if let existing = index[k] {
                self.entries[existing].value = v
            } else {
                index[k] = self.entries.count
                self.entries.append((key: k, value: v))
            }
        }
    }

    /// Up to this many keys `init(_:)` finds repeats by scanning; larger objects index their keys (as the JSON
    /// parser does while it parses).
    package static let linearKeyLimit = 8

    package init(dictionaryLiteral elements: (String, Value)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }

    package var count: Int { entries.count }
    package var isEmpty: Bool { entries.isEmpty }
    package var keys: [String] { entries.map(\.key) }

    package subscript(key: String) -> Value? {
        get { entries.first(where: { $0.key == key })?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key: key, value: newValue))
            }
        }
    }

    package func makeIterator() -> IndexingIterator<[(key: String, value: Value)]> {
        entries.makeIterator()
    }

    package static func == (lhs: ValueObject, rhs: ValueObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for (l, r) in zip(lhs.entries, rhs.entries) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }
}

extension ValueObject {
    /// Builds an object from entries whose keys are already unique, skipping the per-key scan of `init(_:)`
    /// (quadratic in the key count, which a hostile 32 MiB body of tiny keys would exploit). Codecs that
    /// deduplicate while parsing use this; passing duplicate keys is a programmer error.
    package init(uniqueKeyEntries entries: [(key: String, value: Value)]) {
        self.init()
        self.entries = entries
    }
}

extension ValueObject {
    /// Whether `ValueObject` takes two keys, given as the bytes a wire carries them in, for one key: it merges
    /// keys that are `String ==`, which is Unicode canonical equivalence, so different bytes can be one key
    /// ("é" as U+00E9 and as "e" U+0301; "K" and the Kelvin sign U+212A, whose decomposition is "K"). Between
    /// two all-ASCII keys equivalence is identity and the bytes decide; otherwise `decode` (the key's text as
    /// the wire's decoder reads it) gives the `String`s to compare.
    ///
    /// The one place of this rule for the passthrough scanners (issue 11): a message whose keys the decoder
    /// would merge is not in canonical form. The wire must spell each ASCII key one way only (UTF-8, or JSON
    /// with escapes only where the writer puts them), so that equal ASCII keys have equal bytes.
    package static func isSameKey(
        _ a: UnsafeRawBufferPointer,
        _ b: UnsafeRawBufferPointer,
        decode: (UnsafeRawBufferPointer) -> String
    ) -> Bool {
        if isASCII(a), isASCII(b) {
            return a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
        }
        return decode(a) == decode(b)
    }

    /// `isSameKey` for keys whose bytes are their well-formed UTF-8 (protobuf strings).
    package static func isSameKey(utf8 a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        isSameKey(a, b) { String(decoding: $0, as: UTF8.self) }
    }

    private static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes where byte >= 0x80 { return false }
        return true
    }
}

/// An integer past ±2^53 kept exact as its decimal text: JSON's grammar has no integer size limit (RFC 8259 §6),
/// and a client's 64-bit id or counter must not come back rounded (`9007199254740993` as `…992`) or as a float
/// (`…992.0`). The gateway does no arithmetic on these; it only carries them.
package struct LargeInteger: Sendable, Hashable, CustomStringConvertible {
    /// 2^53: every integer up to this magnitude is exact in a `Double`, so `Value.number` holds it.
    package static let maxDoubleExact: UInt64 = 1 << 53

    /// The canonical decimal text: an optional `-`, then digits without a leading zero; magnitude above 2^53.
    package let digits: String

    package var description: String { digits }

    /// The nearest `Double` (what `google.protobuf.Value.number_value` can carry).
    package var doubleValue: Double { Double(digits) ?? .nan }

    /// Whether `number` is this integer as the JSON writer prints a double: integral and below 1e16 in
    /// magnitude, as digits (past that it writes an exponent, which reads back as a `Double`).
    package func isWritten(as number: Double) -> Bool {
        guard number == number.rounded(.towardZero), abs(number) < 1e16 else { return false }
        return String(Int64(number)) == digits
    }

    package init(_ value: Int64) {
        precondition(value.magnitude > Self.maxDoubleExact, "a Double holds \(value) exactly: use Value.number")
        self.digits = String(value)
    }

    package init(_ value: UInt64) {
        precondition(value > Self.maxDoubleExact, "a Double holds \(value) exactly: use Value.number")
        self.digits = String(value)
    }

    /// Parses the JSON integer grammar (`-?(0|[1-9][0-9]*)`, RFC 8259 §6); nil for other text or when the
    /// magnitude is at most 2^53 (those are `Value.number`s: see `Value.integer(text:)`).
    package init?(_ text: some StringProtocol) {
        let utf8 = text.utf8
        var digitsStart = utf8.startIndex
        if utf8.first == UInt8(ascii: "-") { digitsStart = utf8.index(after: digitsStart) }
        let magnitude = utf8[digitsStart...]
        guard let first = magnitude.first, first != UInt8(ascii: "0"),
            magnitude.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 })
        else { return nil }
        // More than 16 digits is past 2^53 (16 digits); 16 digits compare as a number.
        if magnitude.count <= 16, let m = UInt64(String(decoding: magnitude, as: UTF8.self)),
            m <= Self.maxDoubleExact
        {
            return nil
        }
        self.digits = String(text)
    }
}

extension Value {
    /// The `largeInteger`s (integers past 2^53) this value is or holds, each with its position in a depth-first
    /// walk that counts every value (containers, members in order, elements in order), appended to `found`;
    /// `position` is where the walk starts and is advanced past this value.
    ///
    /// Two values of one shape agree on their large integers exactly when these lists are equal: the position
    /// tells `[L, d]` from `[d, L]` (d being L's nearest double), which a shape-blind digest of the rest cannot.
    package func appendLargeIntegers(to found: inout [(position: Int, value: LargeInteger)], position: inout Int) {
        switch self {
        case .largeInteger(let value): found.append((position, value))
        case .list(let items):
            position += 1
            for item in items { item.appendLargeIntegers(to: &found, position: &position) }
            return
        case .object(let object):
            position += 1
            object.appendLargeIntegers(to: &found, position: &position)
            return
        case .null, .bool, .number, .string, .blob: break
        }
        position += 1
    }
}

extension ValueObject {
    /// Each member's large integers in order (`Value.appendLargeIntegers(to:position:)`).
    package func appendLargeIntegers(to found: inout [(position: Int, value: LargeInteger)], position: inout Int) {
        for entry in entries { entry.value.appendLargeIntegers(to: &found, position: &position) }
    }
}

extension Value {
    /// A JSON integer literal (`-?(0|[1-9][0-9]*)`) as a `number` when within ±2^53, else a `largeInteger`
    /// holding its digits; nil for text that is not such a literal. `-0` is `-0.0`, as the parser's fast path
    /// reads it (the JSON writer prints it `0`).
    package static func integer(text: some StringProtocol) -> Value? {
        if let large = LargeInteger(text) { return .largeInteger(large) }
        let utf8 = text.utf8
        let negative = utf8.first == UInt8(ascii: "-")
        let magnitude = negative ? utf8.dropFirst() : utf8[...]
        guard let first = magnitude.first, magnitude.count == 1 || first != UInt8(ascii: "0"),
            magnitude.count <= 16, magnitude.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }),
            let m = UInt64(String(decoding: magnitude, as: UTF8.self))
        else { return nil }
        return .number(negative ? -Double(m) : Double(m))
    }
}
