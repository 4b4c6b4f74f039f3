import NIOCore
import Testing
import TriggerModel
import TestScheduling

@Suite("Base64")
struct Base64Tests {
    private func encode(_ bytes: [UInt8]) -> String {
        var out = ByteBuffer()
        bytes.withUnsafeBytes { Base64.encode($0, into: &out) }
        return out.text
    }

    private func decode(_ text: String) throws(Base64.Failure) -> [UInt8] {
        var out = ByteBuffer()
        let result = Array(text.utf8).withUnsafeBytes { raw in
            Result { () throws(Base64.Failure) in try Base64.decode(raw, into: &out) }
        }
        try result.get()
        return Array(out.readableBytesView)
    }

    @Test(
        "RFC 4648 test vectors encode and decode",
        arguments: [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ]
    )
    func vectors(plain: String, encoded: String) throws {
        #expect(encode(Array(plain.utf8)) == encoded)
        #expect(try decode(encoded) == Array(plain.utf8))
    }

    @Test(
        "Unpadded input decodes like padded input",
        arguments: [("Zg", "f"), ("Zm8", "fo"), ("Zm9vYg", "foob"), ("Zm9vYmE", "fooba")]
    )
    func unpadded(encoded: String, plain: String) throws {
        #expect(try decode(encoded) == Array(plain.utf8))
    }

    @Test("The URL-safe alphabet decodes like the standard one, also mixed and unpadded")
    func urlSafe() throws {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF, 0xFE, 0xEF]
        let standard = encode(bytes)
        #expect(standard == "+/+//u8=")
        #expect(try decode("-_-__u8=") == bytes)
        #expect(try decode("-_-__u8") == bytes)
        #expect(try decode("+_-/_u8") == bytes)
    }

    @Test("Every length and byte value round-trips, into a buffer and into raw memory")
    func roundTrip() throws {
        var random = XorShift(seed: 42)
        for length in 0..<300 {
            let bytes = random.bytes(length)
            let text = encode(bytes)
            #expect(text.utf8.count == Base64.encodedLength(length))
            #expect(try decode(text) == bytes, "length \(length)")
            var raw = [UInt8](repeating: 0, count: Base64.encodedLength(length))
            let written = bytes.withUnsafeBytes { source in
                raw.withUnsafeMutableBytes { Base64.encode(source, into: $0) }
            }
            #expect(written == raw.count)
            #expect(raw == Array(text.utf8))
        }
        let all = (0...255).map { UInt8($0) }
        #expect(try decode(encode(all)) == all)
    }

    /// RFC 4648 §4 one sextet at a time: the reference the table and vector encoders are held to.
    private func referenceEncode(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let group = bytes[i..<min(i + 3, bytes.count)]
            var v = 0
            for (k, byte) in group.enumerated() { v |= Int(byte) << (16 - 8 * k) }
            for k in 0..<4 {
                out.append(k <= group.count ? alphabet[(v >> (18 - 6 * k)) & 0x3F] : UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test("Encoding is RFC 4648's at every length around the vector step's 12-byte groups and 16-byte loads", .cpuBound)
    func encodeMatchesReference() {
        var random = XorShift(seed: 12)
        for length in Array(0..<100) + [1 << 16, (1 << 16) + 1, (1 << 16) + 2, 1 << 20] {
            let bytes = random.bytes(length)
            #expect(encode(bytes) == referenceEncode(bytes), "length \(length)")
        }
        // Every sextet value in every lane of a group: bytes spelling 0…63 repeatedly, at each offset.
        let sextets = (0..<48).map { UInt8(truncatingIfNeeded: $0 &* 0x41 &+ $0 >> 2) } + (0...255).map { UInt8($0) }
        for offset in 0..<12 {
            let bytes = Array(sextets[offset...])
            #expect(encode(bytes) == referenceEncode(bytes), "offset \(offset)")
        }
    }

    @Test("The standard alphabet: every byte value at every position of a 64-byte piece and its short tail")
    func standardAlphabet() {
        let valid = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var random = XorShift(seed: 3)
        let piece = Array(encode(random.bytes(48)).utf8)  // 64 characters, no padding
        #expect(piece.withUnsafeBytes { Base64.isStandardAlphabet($0) })
        for count in [64, 45, 31, 1] {
            for position in 0..<count {
                for byte in 0...255 {
                    var text = Array(piece.prefix(count))
                    text[position] = UInt8(byte)
                    let got = text.withUnsafeBytes { Base64.isStandardAlphabet($0) }
                    if got != valid.contains(UInt8(byte)) {
                        Issue.record("byte \(byte) at \(position) of \(count): \(got)")
                        return
                    }
                }
            }
        }
    }

    @Test(
        "Invalid input reports the offset of the first offending byte",
        arguments: [
            ("Zm9v!mFy", 4), ("Zm 9v", 2), ("Zm9vY", 4), ("Zg=a", 2), ("Z===", 1), ("Zm9v\n", 4), ("Zg===", 2),
            ("Zm=v", 2), ("Zg=", 2), ("\u{e9}AAA", 0), ("AAAAAAA\u{0}", 7),
        ]
    )
    func invalid(text: String, offset: Int) {
        let failure = #expect(throws: Base64.Failure.self) { try decode(text) }
        #expect(failure?.offset == offset, "\(String(describing: failure))")
    }

    @Test("A failed decode leaves the output buffer as it was")
    func failureKeepsOutput() {
        var out = ByteBuffer(string: "keep")
        #expect(throws: Base64.Failure.self) {
            try Array("Zm9vYmFy!!!!".utf8).withUnsafeBytes { try Base64.decode($0, into: &out) }
        }
        #expect(out.text == "keep")
    }

    private func decodeInPlace(_ text: [UInt8]) throws(Base64.Failure) -> [UInt8] {
        var storage = text
        let result = storage.withUnsafeMutableBytes { raw in
            Result { () throws(Base64.Failure) -> Int in try Base64.decodeInPlace(raw) }
        }
        return Array(storage.prefix(try result.get()))
    }

    @Test("Decoding in place gives the same bytes and the same failures as decoding into a buffer (issue 12)")
    func inPlace() throws {
        var random = XorShift(seed: 7)
        // Lengths around the 64 KiB block edge (in base64 characters), padded and unpadded.
        for length in [0, 1, 2, 3, 100, 49_151, 49_152, 49_153, 200_000] {
            let text = Array(encode(random.bytes(length)).utf8)
            #expect(try decodeInPlace(text) == (try decode(String(decoding: text, as: UTF8.self))), "length \(length)")
            let unpadded = Array(text.prefix { $0 != UInt8(ascii: "=") })
            #expect(try decodeInPlace(unpadded) == (try decode(String(decoding: unpadded, as: UTF8.self))))
        }
        let long = Array(encode(random.bytes(150_000)).utf8)
        // A bad byte in a later block, padding at the end of a block, and a truncated length.
        for (position, byte) in [
            (100_001, UInt8(ascii: "!")), (65_535, UInt8(ascii: "=")), (65_536, UInt8(ascii: "=")),
        ] {
            var bad = long
            bad[position] = byte
            let expected = #expect(throws: Base64.Failure.self) { try decode(String(decoding: bad, as: UTF8.self)) }
            let got = #expect(throws: Base64.Failure.self) { try decodeInPlace(bad) }
            #expect(got == expected, "position \(position)")
            #expect(got?.offset == position)
        }
        let truncated = Array(long.prefix(long.count - 3))
        #expect(
            (#expect(throws: Base64.Failure.self) { try decodeInPlace(truncated) })
                == (#expect(throws: Base64.Failure.self) { try decode(String(decoding: truncated, as: UTF8.self)) }))
    }

    private func isCanonical(_ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { Base64.isCanonical($0) }
    }

    @Test(
        "canonical base64: exactly what encode writes (RFC 4648 §3.5, §4)",
        arguments: [
            ("", true), ("Zg==", true), ("Zm8=", true), ("Zm9v", true), ("+/+/", true), ("AAAAZm9vYg==", true),
            // URL-safe alphabet, missing padding, bits past the last byte set: valid to decode, not canonical.
            ("-_-_", false), ("Zg", false), ("Zm8", false), ("Zh==", false), ("Zm9=", false),
            // Not base64 at all.
            ("Zm9v!", false), ("Zm9", false), ("Zm=v", false), ("====", false), ("A===", false), ("Zm 9", false),
            ("Z\u{0}==", false),
        ]
    )
    func canonical(text: String, expected: Bool) throws {
        #expect(isCanonical(text) == expected)
        if expected {
            // Canonical means the decoding re-encodes to the same text, and its length is known without decoding.
            let bytes = try decode(text)
            #expect(encode(bytes) == text)
            #expect(Array(text.utf8).withUnsafeBytes { Base64.decodedLength(canonical: $0) } == bytes.count)
        }
    }

    @Test("A prefix the caller already checked is not checked again; the rest, the padding and the last group are")
    func canonicalWithKnownPrefix() {
        var random = XorShift(seed: 9)
        var text = Array(encode(random.bytes(30)).utf8)  // 40 characters, no padding
        text[5] = UInt8(ascii: "*")
        func check(_ text: [UInt8], known: Int) -> Bool {
            text.withUnsafeBytes { Base64.isCanonical($0, knownStandardAlphabet: known) }
        }
        #expect(check(text, known: 6))  // the caller vouched for byte 5
        #expect(!check(text, known: 5) && !check(text, known: 0) && !check(text, known: -3))
        text[5] = UInt8(ascii: "A")
        text[20] = UInt8(ascii: "*")
        #expect(!check(text, known: 20) && check(text, known: 21))
        // Past the payload, and the parts never skipped: padding, unused bits, length.
        #expect(check(Array("Zg==".utf8), known: 100) && !check(Array("Zh==".utf8), known: 100))
        #expect(!check(Array("Zm9".utf8), known: 100) && !check(Array("Zm=v".utf8), known: 2))
    }

    @Test("A data URI's payload found in checked memory is not checked again; elsewhere it is checked whole")
    func dataURICheckedMemory() {
        var random = XorShift(seed: 10)
        let prefix = "data:application/octet-stream;base64,"
        var text = Array((prefix + encode(random.bytes(300))).utf8)
        let bad = prefix.utf8.count + 100
        text[bad] = UInt8(ascii: "!")
        text.withUnsafeBytes { raw in
            let base = UInt(bitPattern: raw.baseAddress!)
            let payload = base + UInt(prefix.utf8.count)
            let end = base + UInt(raw.count)
            #expect(DataURI.canonicalBase64Header(raw) == nil)
            // Checked from the payload's first byte (or before) past the bad one: trusted.
            #expect(
                DataURI.canonicalBase64Header(raw, checkedAlphabet: payload..<end)?.payloadOffset == prefix.utf8.count)
            #expect(DataURI.canonicalBase64Header(raw, checkedAlphabet: base..<end) != nil)
            // Checked only up to the bad byte, or from after the payload's start, or elsewhere: checked here.
            #expect(DataURI.canonicalBase64Header(raw, checkedAlphabet: payload..<(base + UInt(bad))) == nil)
            #expect(DataURI.canonicalBase64Header(raw, checkedAlphabet: (payload + 1)..<end) == nil)
            #expect(DataURI.canonicalBase64Header(raw, checkedAlphabet: (end + 10)..<(end + 1000)) == nil)
        }
    }

    @Test("every encoding of every length up to 70 is canonical; one changed byte outside the alphabet is not")
    func canonicalEncodings() {
        for length in 0...70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = encode(bytes)
            #expect(isCanonical(text), "\(text)")
            for position in stride(from: 0, to: text.utf8.count, by: 7) {
                var broken = Array(text.utf8)
                broken[position] = UInt8(ascii: "*")
                #expect(!broken.withUnsafeBytes { Base64.isCanonical($0) })
            }
        }
    }

    @Test("a blob held as canonical base64: its bytes decoded on demand, equal to the same blob held as bytes")
    func blobAsBase64() {
        let bytes: [UInt8] = Array(0...255) + [7, 8]
        let text = ByteBuffer(string: encode(bytes))
        let held = Blob(contentType: "image/png", fileName: "a.png", canonicalBase64: text)
        let plain = Blob(contentType: "image/png", fileName: "a.png", bytes: ByteBuffer(bytes: bytes))
        #expect(held.count == bytes.count)
        #expect(held.canonicalBase64 == text && plain.canonicalBase64 == nil)
        #expect(Array(held.bytes.readableBytesView) == bytes)
        #expect(held == plain && plain == held)
        #expect(held != Blob(contentType: "image/png", fileName: "b.png", canonicalBase64: text))
        #expect(DataURI.encode(held) == DataURI.encode(plain))
        var changed = held
        changed.bytes = ByteBuffer(bytes: [1])
        #expect(changed.canonicalBase64 == nil && changed.count == 1)
    }
}
