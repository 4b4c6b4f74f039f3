import OperationStore

/// HMAC-SHA256 (RFC 2104) over the store's SHA-256: signs webhook bodies so receivers can verify them.
package enum HMACSHA256 {
    package static func hex(key: some Sequence<UInt8>, message: some Sequence<UInt8>) -> String {
        mac(key: Array(key), message: message).map { byte in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
        }.joined()
    }

    package static func mac(key: [UInt8], message: some Sequence<UInt8>) -> [UInt8] {
        let blockSize = 64
        var block = key
        if block.count > blockSize {
            var hash = SHA256()
            hash.update(block)
            block = hash.finalize()
        }
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        var inner = SHA256()
        inner.update(block.map { $0 ^ 0x36 })
        inner.update(message)
        let innerDigest = inner.finalize()
        var outer = SHA256()
        outer.update(block.map { $0 ^ 0x5c })
        outer.update(innerDigest)
        return outer.finalize()
    }
}
