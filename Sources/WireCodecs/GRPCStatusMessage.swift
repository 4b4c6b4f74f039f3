import TriggerModel

/// The percent-encoding of the `grpc-message` trailer (gRPC PROTOCOL-HTTP2.md "Status-Message"): the UTF-8
/// bytes of the message, with every byte outside 0x20–0x7E, and `%` itself, written as `%XX`.
package enum GRPCStatusMessage {
    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    package static func percentEncode(_ s: String) -> String {
        let utf8 = s.utf8
        if !utf8.contains(where: needsEncoding) { return s }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count * 3)
        for byte in utf8 {
            if needsEncoding(byte) {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` sequences. The spec says a receiver must not fail on bad input, so a `%` not followed by
    /// two hex digits is kept literally, and bytes that are not valid UTF-8 become U+FFFD.
    package static func percentDecode(_ s: String) -> String {
        PercentDecoding.decode(s.utf8)
    }

    private static func needsEncoding(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte > 0x7E || byte == UInt8(ascii: "%")
    }
}
