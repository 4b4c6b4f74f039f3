extension StringProtocol {
    /// Calls `body` with the text's UTF-8 bytes, contiguous, without retaining the string.
    ///
    /// `String.withUTF8` and `Substring.withUTF8` are `mutating` (they may make a bridged string contiguous), so a
    /// borrowed argument was copied into a `var` first: a `swift_bridgeObjectRetain` and its release per call,
    /// two atomic operations on any string over 15 bytes (a request target, an id, most field values). Native
    /// strings and substrings, small or not, are contiguous already: `utf8.withContiguousStorageIfAvailable`
    /// lends their bytes as they are, and only a string that is not (none on Linux) takes the copy (issue 11;
    /// bench/README.md "Forty-second session").
    ///
    /// `public` and `@inlinable`, not `package`: Swift 6.3.1 serialises no `@inlinable` body of a `package`
    /// declaration, and an unspecialised call would cost more than the retain it saves.
    @inlinable @inline(__always)
    public func withUTF8Bytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        if let result = try utf8.withContiguousStorageIfAvailable(body) { return result }
        var copy = String(self)
        return try copy.withUTF8(body)
    }
}
