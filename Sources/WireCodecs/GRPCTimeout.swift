package import NIOCore

/// The `grpc-timeout` header of gRPC PROTOCOL-HTTP2.md: `TimeoutValue TimeoutUnit`, where the value is an
/// ASCII integer of at most 8 digits and the unit one of `H M S m u n` (hours … nanoseconds).
package enum GRPCTimeout {
    private static let maxDigits = 8
    private static let maxValue: Int64 = 99_999_999

    /// The timeout, or nil when the header is malformed (empty, a sign, whitespace, more than 8 digits, an
    /// unknown unit). Values too large for `TimeAmount` (99999999H) are clamped to the largest one.
    package static func parse(_ header: String) -> TimeAmount? {
        let utf8 = header.utf8
        guard utf8.count >= 2, utf8.count <= maxDigits + 1, let unitByte = utf8.last,
            let nanosPerUnit = nanoseconds(perUnit: unitByte)
        else { return nil }
        var value: Int64 = 0
        for byte in utf8.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        let (nanos, overflow) = value.multipliedReportingOverflow(by: nanosPerUnit)
        return .nanoseconds(overflow ? .max : nanos)
    }

    /// The header value for `amount`, in the finest unit whose value fits in 8 digits. Rounded up, so a
    /// backend is never told less time than it has (as grpc-swift does); negative amounts become `0n`.
    package static func encode(_ amount: TimeAmount) -> String {
        let nanos = max(amount.nanoseconds, 0)
        // Finest unit first: the first whose rounded-up value fits in eight digits.
        for index in 0..<unitCount {
            let (perUnit, symbol) = unit(index)
            let value = nanos / perUnit + (nanos % perUnit == 0 ? 0 : 1)
            if value <= maxValue { return header(value, symbol) }
        }
        return header(maxValue, UInt8(ascii: "H"))
    }

    /// The header value for `amount` rounded up to three significant digits, in the coarsest unit that holds
    /// that value exactly: 59.999768 s is `1M`, 4.98731 s is `4990m`, 123 ns is `123n`. Never less than
    /// `amount`, and at most 1 % more (`encode` near `TimeAmount`'s largest value, where rounding up overflows).
    ///
    /// Why (issue 11, the runner's cost behind the gateway): a backend call's `grpc-timeout` is the time left
    /// of its deadline, which `encode` wrote to the microsecond, a value new on every call. HPACK (RFC 7541)
    /// cannot index such a value: each call sent it as a new literal and added it to both ends' dynamic tables,
    /// evicting fields that repeat. Rounded to three digits the calls of a pool share a value (all of them,
    /// when the client set no deadline and the request timeout is the one), sent after the first call as
    /// one byte naming a table entry. grpc-core rounds the same way ("encoding may round up arbitrarily").
    /// Rounding up does not let a backend run past the deadline: the gateway enforces the exact deadline
    /// itself and resets the stream (RST_STREAM CANCEL) when it passes.
    package static func encodeIndexable(_ amount: TimeAmount) -> String {
        let nanos = amount.nanoseconds
        guard nanos > 0 else { return "0n" }
        // 10^(digits - 3) for a value of more than three digits: the step the value is rounded up to.
        var step: Int64 = 1
        while nanos / step >= 1_000 { step *= 10 }
        let (steps, remainder) = nanos.quotientAndRemainder(dividingBy: step)
        let (rounded, overflow) = (steps + (remainder == 0 ? 0 : 1)).multipliedReportingOverflow(by: step)
        guard !overflow else { return encode(amount) }
        // Coarsest unit first: the first that holds `rounded` exactly in at most eight digits.
        for index in (0..<unitCount).reversed() {
            let (perUnit, symbol) = unit(index)
            let (value, remainder) = rounded.quotientAndRemainder(dividingBy: perUnit)
            if remainder == 0, value <= maxValue { return header(value, symbol) }
        }
        return encode(amount)
    }

    private static let unitCount = 6

    /// Nanoseconds per unit and the unit's symbol, finest first (`index` 0 to 5): a `switch`, not an array of
    /// `(Int64, Character)` pairs and an interpolated string, which were ~650 instructions per gRPC call (issue 11).
    @inline(__always)
    private static func unit(_ index: Int) -> (perUnit: Int64, symbol: UInt8) {
        switch index {
        case 0: (1, UInt8(ascii: "n"))
        case 1: (1_000, UInt8(ascii: "u"))
        case 2: (1_000_000, UInt8(ascii: "m"))
        case 3: (1_000_000_000, UInt8(ascii: "S"))
        case 4: (60_000_000_000, UInt8(ascii: "M"))
        default: (3_600_000_000_000, UInt8(ascii: "H"))
        }
    }

    /// `value` (0 to ``maxValue``) in decimal, then `unit`: at most nine bytes, so a small string (no allocation).
    private static func header(_ value: Int64, _ unit: UInt8) -> String {
        assert(value >= 0 && value <= maxValue, "a grpc-timeout value has one to eight digits")
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        return String(unsafeUninitializedCapacity: digits + 1) { buffer in
            var left = value
            for index in stride(from: digits - 1, through: 0, by: -1) {
                buffer[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: left % 10)
                left /= 10
            }
            buffer[digits] = unit
            return digits + 1
        }
    }

    /// The nanoseconds of the unit named `symbol`, from ``unit(_:)``'s table; nil for a byte that names none.
    private static func nanoseconds(perUnit symbol: UInt8) -> Int64? {
        for index in 0..<unitCount where unit(index).symbol == symbol { return unit(index).perUnit }
        return nil
    }
}
