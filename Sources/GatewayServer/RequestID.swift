/// Request ids the gateway makes when the client sent none: 16 random bytes as hex, like a trace id, from the
/// thread's generator (`ThreadRandom`: unique and random-looking, not secret; nothing authorizes by them).
enum RequestID {
    static func make() -> String {
        let generator = ThreadRandom.current
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        // Written in place: one allocation per id (this runs for most requests).
        return String(unsafeUninitializedCapacity: 32) { buffer in
            for i in 0..<32 {
                let value = i < 16 ? high : low
                let nibble = UInt8(truncatingIfNeeded: value >> (60 - 4 * UInt64(i % 16))) & 0xF
                buffer[i] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
            }
            return 32
        }
    }
}
