/// RFC 9110 §5.6.2 tokens, the one definition for every parser that needs them (media types in `Accept`, in
/// data URIs).
package enum HTTPToken {
    /// `tchar`: a letter, a digit or one of ``!#$%&'*+-.^_`|~``.
    package static func isTChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// `token = 1*tchar`.
    package static func isToken(_ bytes: some Collection<UInt8>) -> Bool {
        !bytes.isEmpty && bytes.allSatisfy(isTChar)
    }
}
