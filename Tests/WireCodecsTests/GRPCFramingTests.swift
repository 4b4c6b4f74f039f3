import NIOCore
import SeededRandom
import Testing
import TriggerModel
import WireCodecs

@Suite("gRPC framing")
struct GRPCFramingTests {
    private func framed(_ bytes: [UInt8], flag: UInt8 = 0, declared: UInt32? = nil) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(flag)
        buffer.writeInteger(declared ?? UInt32(bytes.count), endianness: .big)
        buffer.writeBytes(bytes)
        return buffer
    }

    @Test(
        "a message at the cap is accepted; one byte over is rejected from the prefix alone",
        arguments: [(16, true), (17, false)]
    )
    func capEdge(length: Int, accepted: Bool) throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 16)
        if accepted {
            deframer.append(framed([UInt8](repeating: 7, count: length)))
            let message = try #require(try deframer.next())
            #expect(Array(message.readableBytesView) == [UInt8](repeating: 7, count: length))
            #expect(try deframer.next() == nil)
            #expect(!deframer.hasPartialMessage)
        } else {
            // Only the 5-byte prefix has arrived: the body is never waited for.
            deframer.append(framed([], declared: UInt32(length)))
            let error = #expect(throws: GatewayError.self) { try deframer.next() }
            #expect(error?.code == .payloadTooLarge)
            #expect(error?.message == "message of 17 bytes exceeds the limit of 16 bytes")
            // Sticky: the stream cannot be resynchronised.
            deframer.append(framed([1]))
            #expect(throws: GatewayError.self) { try deframer.next() }
        }
    }

    @Test("a 4 GiB declared length is rejected before buffering")
    func hugeDeclaredLength() {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 32 << 20)
        deframer.append(framed([], declared: .max))
        #expect(throws: GatewayError.self) { try deframer.next() }
    }

    @Test("messages fed one byte at a time come out whole, including an empty one")
    func byteAtATime() throws {
        var stream = framed(Array("hello".utf8))
        stream.writeImmutableBuffer(framed([]))
        stream.writeImmutableBuffer(framed(Array("world!".utf8)))
        var deframer = GRPCMessageDeframer(maxMessageBytes: 1024)
        var messages: [String] = []
        for byte in stream.readableBytesView {
            deframer.append(ByteBuffer(bytes: [byte]))
            while let message = try deframer.next() { messages.append(String(buffer: message)) }
        }
        #expect(messages == ["hello", "", "world!"])
        #expect(!deframer.hasPartialMessage)
    }

    @Test("several messages in one buffer, and a message split across two")
    func severalInOneBuffer() throws {
        var stream = framed([1, 2, 3])
        stream.writeImmutableBuffer(framed([4]))
        let third = framed([5, 6, 7, 8])
        stream.writeImmutableBuffer(third.getSlice(at: 0, length: 7)!)
        var deframer = GRPCMessageDeframer(maxMessageBytes: 8)
        deframer.append(stream)
        #expect(try deframer.next().map { Array($0.readableBytesView) } == [1, 2, 3])
        #expect(try deframer.next().map { Array($0.readableBytesView) } == [4])
        #expect(try deframer.next() == nil)
        #expect(deframer.hasPartialMessage)
        deframer.append(third.getSlice(at: 7, length: 2)!)
        #expect(try deframer.next().map { Array($0.readableBytesView) } == [5, 6, 7, 8])
        #expect(!deframer.hasPartialMessage)
    }

    @Test("a truncated message is visible at end of stream", arguments: [1, 4, 5, 7])
    func truncated(prefix: Int) throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 8)
        deframer.append(framed([1, 2, 3]).getSlice(at: 0, length: prefix)!)
        #expect(try deframer.next() == nil)
        #expect(deframer.hasPartialMessage)
    }

    @Test(
        "a compressed message (no grpc-encoding can be in force) is INTERNAL naming the flag; a bad flag byte is invalid"
    )
    func compressionFlag() {
        var compressed = GRPCMessageDeframer(maxMessageBytes: 8)
        compressed.append(framed([1], flag: 1))
        let error = #expect(throws: GatewayError.self) { try compressed.next() }
        #expect(error?.code == .internalError)
        #expect(error?.message.contains("compressed flag") == true)
        var bad = GRPCMessageDeframer(maxMessageBytes: 8)
        bad.append(framed([1], flag: 2))
        let badError = #expect(throws: GatewayError.self) { try bad.next() }
        #expect(badError?.code == .invalidArgument)
    }

    @Test("framing pieces: the prefix goes into the first piece's headroom, or before it; same bytes as whole")
    func framePieces() throws {
        let message = ByteBuffer(bytes: pseudoRandomBytes(70_000))
        var head = ByteBuffer()
        head.writeRepeatingByte(0, count: 5)
        head.writeImmutableBuffer(message.getSlice(at: 0, length: 10)!)
        head.moveReaderIndex(forwardBy: 5)
        let rest = message.getSlice(at: 10, length: message.readableBytes - 10)!
        for pieces: BufferPieces in [[head, rest], [message.getSlice(at: 0, length: 10)!, rest]] {
            let framed = GRPCMessageFramer.frame(pieces: pieces)
            var joined = ByteBuffer()
            for piece in framed { joined.writeImmutableBuffer(piece) }
            #expect(joined == GRPCMessageFramer.frame(message))
            // The message bytes are not copied: the last piece is `rest` itself.
            #expect(
                framed.last.map { $0.withUnsafeReadableBytes { $0.baseAddress } }
                    == rest.withUnsafeReadableBytes { $0.baseAddress })
        }
        #expect(GRPCMessageFramer.frame(pieces: [head, rest]).count == 2)
    }

    @Test("framing pieces handed over: the prefix is written into the first piece's own storage, not a copy")
    func framePiecesInPlace() throws {
        var storage: UInt = 0
        // A fresh encoding, as `RunnerCodec.encodeRunRequestPieces` returns it: the pieces hold the only reference.
        func encoded() -> BufferPieces {
            var head = ByteBuffer()
            head.writeRepeatingByte(0xEE, count: 5)
            head.writeBytes([1, 2, 3])
            head.moveReaderIndex(forwardBy: 5)
            storage = head.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
            return [head]
        }
        let framed = GRPCMessageFramer.frame(pieces: encoded())
        #expect(framed.count == 1)
        #expect(Array(framed[0].readableBytesView) == [0, 0, 0, 0, 3, 1, 2, 3])
        #expect(framed[0].withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) } == storage)
    }

    @Test("pieces: one buffer or several, in order; the first lent in place; joined into one")
    func bufferPieces() throws {
        let a = ByteBuffer(string: "ab")
        let b = ByteBuffer(string: "cde")
        var none = BufferPieces([])
        #expect(none.isEmpty && none.withFirst { _ in true } == nil && none.joined().readableBytes == 0)
        var one = BufferPieces(a)
        #expect(one.count == 1 && one[0] == a && one.joined() == a)
        #expect(one.withFirst { $0.readString(length: 1) } == "a")
        #expect(Array(one) == [ByteBuffer(string: "b")])
        var two: BufferPieces = [a, b]
        #expect(two.count == 2 && Array(two) == [a, b] && two.joined() == ByteBuffer(string: "abcde"))
        #expect(two.withFirst { $0.readString(length: 2) } == "ab")
        #expect(Array(two) == [ByteBuffer(), b])
        #expect(Array(BufferPieces(b).prepending(a)) == [a, b])
        // An array of one is held as one buffer.
        #expect(BufferPieces([a]).count == 1)
    }

    @Test("forEachPiece visits each piece in order and marks only the last; readableBytes sums them")
    func bufferPiecesVisits() {
        let a = ByteBuffer(string: "ab")
        let b = ByteBuffer(string: "cde")
        let c = ByteBuffer(string: "f")
        for (pieces, expected) in [
            (BufferPieces([]), []), (BufferPieces(a), [a]), (BufferPieces([a, b]), [a, b]),
            (BufferPieces([a, b, c]), [a, b, c]),
        ] as [(BufferPieces, [ByteBuffer])] {
            var seen: [ByteBuffer] = []
            var lasts: [Bool] = []
            pieces.forEachPiece { piece, isLast in
                seen.append(piece)
                lasts.append(isLast)
            }
            #expect(seen == expected)
            // END_STREAM goes with the piece marked last: exactly one, the final one (none when there is none).
            #expect(lasts == expected.indices.map { $0 == expected.count - 1 })
            #expect(pieces.readableBytes == expected.reduce(0) { $0 + $1.readableBytes })
        }
    }

    @Test("a message whose headroom holds its prefix is framed in its own storage, shared or not; any other is copied")
    func frameInPlace() throws {
        var message = ByteBuffer()
        message.writeRepeatingByte(0xEE, count: 5)
        message.writeBytes([1, 2, 3])
        message.moveReaderIndex(forwardBy: 5)
        let copied = GRPCMessageFramer.frame(message)
        #expect(Array(copied.readableBytesView) == [0, 0, 0, 0, 3, 1, 2, 3])
        GRPCMessageFramer.writePrefix(intoHeadroomOf: &message)
        let holder = message  // another holder: framing must not write
        let framed = GRPCMessageFramer.frame(message)
        #expect(framed == copied)
        #expect(
            framed.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
                == holder.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) })
        #expect(Array(holder.readableBytesView) == [1, 2, 3])
        // A prefix for another length, or a compressed flag, is not this message's: copied.
        for (flag, length) in [(UInt8(0), UInt32(4)), (UInt8(1), UInt32(3))] {
            var other = holder
            other.setInteger(flag, at: 0)
            other.setInteger(length, at: 1)
            let reframed = GRPCMessageFramer.frame(other)
            #expect(reframed == copied)
            #expect(
                reframed.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
                    != other.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) })
        }
        // Less than 5 bytes of headroom: nothing written, copied.
        var short = ByteBuffer(bytes: [9, 1, 2, 3])
        short.moveReaderIndex(forwardBy: 1)
        GRPCMessageFramer.writePrefix(intoHeadroomOf: &short)
        var whole = short
        whole.moveReaderIndex(to: 0)
        #expect(Array(whole.readableBytesView) == [9, 1, 2, 3])
        #expect(GRPCMessageFramer.frame(short) == copied)
    }

    @Test("the framer writes what the deframer reads")
    func framerRoundTrip() throws {
        let message = ByteBuffer(bytes: (0..<300).map { UInt8(truncatingIfNeeded: $0) })
        let frame = GRPCMessageFramer.frame(message)
        #expect(Array(frame.readableBytesView.prefix(5)) == [0, 0, 0, 1, 44])
        var deframer = GRPCMessageDeframer(maxMessageBytes: 300)
        deframer.append(frame)
        #expect(try deframer.next() == message)
    }

    @Test(
        "grpc-timeout parses",
        arguments: [
            ("1H", TimeAmount.hours(1)), ("2M", .minutes(2)), ("30S", .seconds(30)), ("100m", .milliseconds(100)),
            ("5u", .microseconds(5)), ("7n", .nanoseconds(7)), ("0S", .zero), ("99999999n", .nanoseconds(99_999_999)),
            ("00000001S", .seconds(1)), ("99999999H", .nanoseconds(.max)),
        ]
    )
    func timeoutParses(header: String, amount: TimeAmount) {
        #expect(GRPCTimeout.parse(header) == amount)
    }

    @Test(
        "malformed grpc-timeout values are rejected",
        arguments: [
            "", "S", "1", "100", "123456789S", "-1S", "+1S", " 1S", "1S ", "1s", "1h", "1.5S", "1x", "１S",
        ]
    )
    func timeoutRejects(header: String) {
        #expect(GRPCTimeout.parse(header) == nil)
    }

    @Test(
        "grpc-timeout encodes in the finest unit that fits 8 digits, rounding up",
        arguments: [
            (TimeAmount.nanoseconds(7), "7n"), (.nanoseconds(99_999_999), "99999999n"), (.milliseconds(100), "100000u"),
            (.seconds(1), "1000000u"),
            (.nanoseconds(100_000_001), "100001u"), (.hours(2000), "7200000S"), (.hours(30_000), "1800000M"),
            (.nanoseconds(.max), "2562048H"),
            (.nanoseconds(-5), "0n"),
        ]
    )
    func timeoutEncodes(amount: TimeAmount, header: String) {
        #expect(GRPCTimeout.encode(amount) == header)
        #expect(GRPCTimeout.parse(header).map { $0 >= amount } == true)
    }

    /// A backend call's grpc-timeout (issue 11): one value for the calls of a pool, so HPACK indexes it.
    @Test(
        "grpc-timeout for a backend rounds up to three significant digits, in the coarsest exact unit",
        arguments: [
            (TimeAmount.nanoseconds(59_999_768_000), "1M"), (.nanoseconds(59_850_000_000), "59900m"),
            (.nanoseconds(4_987_310_000), "4990m"), (.seconds(30), "30S"), (.milliseconds(29_999), "30S"),
            (.seconds(90), "90S"), (.hours(2), "2H"), (.nanoseconds(123), "123n"), (.nanoseconds(1_001), "1010n"),
            (.nanoseconds(999_999), "1m"), (.nanoseconds(100_000_001), "101m"), (.nanoseconds(1), "1n"),
            (.nanoseconds(0), "0n"), (.nanoseconds(-5), "0n"), (.nanoseconds(.max), "2562048H"),
            (.hours(2_000_000), "2000000H"),
        ]
    )
    func timeoutEncodesIndexable(amount: TimeAmount, header: String) throws {
        #expect(GRPCTimeout.encodeIndexable(amount) == header)
        let parsed = try #require(GRPCTimeout.parse(header))
        // Never less than the amount, and at most 1 % more.
        #expect(parsed >= amount)
        if amount > .zero, amount < .hours(1_000_000) {
            #expect(parsed.nanoseconds - amount.nanoseconds <= amount.nanoseconds / 100)
        }
    }

    /// The header writer is digit by digit into a small string (issue 11): the same text as the interpolation it
    /// replaced (`reference`, the earlier code), for amounts of every magnitude and unit, seeded.
    @Test("grpc-timeout encodings equal the interpolated value and unit, for amounts of every magnitude")
    func timeoutEncodingsMatchReference() throws {
        let units: [(Int64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"),
            (3_600_000_000_000, "H"),
        ]
        func reference(_ amount: TimeAmount) -> String {
            let nanos = max(amount.nanoseconds, 0)
            for (perUnit, symbol) in units {
                let value = nanos / perUnit + (nanos % perUnit == 0 ? 0 : 1)
                if value <= 99_999_999 { return "\(value)\(symbol)" }
            }
            return "99999999H"
        }
        func referenceIndexable(_ amount: TimeAmount) -> String {
            let nanos = amount.nanoseconds
            guard nanos > 0 else { return "0n" }
            var step: Int64 = 1
            while nanos / step >= 1_000 { step *= 10 }
            let (steps, remainder) = nanos.quotientAndRemainder(dividingBy: step)
            let (rounded, overflow) = (steps + (remainder == 0 ? 0 : 1)).multipliedReportingOverflow(by: step)
            guard !overflow else { return reference(amount) }
            for (perUnit, symbol) in units.reversed() where rounded % perUnit == 0 && rounded / perUnit <= 99_999_999 {
                return "\(rounded / perUnit)\(symbol)"
            }
            return reference(amount)
        }
        var random = SplitMix64(seed: 0x7469_6D65)
        for _ in 0..<20_000 {
            // A magnitude from 1 ns to ~2^62 ns, then any amount below it; a tenth of them whole units.
            var nanos = Int64(random.next() >> (1 + random.next() % 63))
            if random.next() % 10 == 0 { nanos -= nanos % units[Int(random.next() % 6)].0 }
            let amount = TimeAmount.nanoseconds(nanos)
            #expect(GRPCTimeout.encode(amount) == reference(amount), "\(nanos) ns")
            #expect(GRPCTimeout.encodeIndexable(amount) == referenceIndexable(amount), "\(nanos) ns")
        }
    }

    @Test("calls a few milliseconds apart under a 60 s request timeout all send one grpc-timeout value")
    func timeoutIndexableIsShared() {
        let values = Set(
            stride(from: 0, to: 50_000_000, by: 997_001).map {
                GRPCTimeout.encodeIndexable(.nanoseconds(60_000_000_000 - Int64($0)))
            })
        #expect(values == ["1M"])
    }

    @Test(
        "grpc-message percent-encoding round-trips UTF-8 and escapes only what the spec says",
        arguments: [
            ("plain ascii stays", "plain ascii stays"), ("50% off", "50%25 off"), ("tab\there", "tab%09here"),
            ("héllo 👋", "h%C3%A9llo %F0%9F%91%8B"), ("~}", "~}"), ("\u{7F}", "%7F"),
        ]
    )
    func percentEncoding(plain: String, encoded: String) {
        #expect(GRPCStatusMessage.percentEncode(plain) == encoded)
        #expect(GRPCStatusMessage.percentDecode(encoded) == plain)
    }

    @Test(
        "invalid percent sequences are kept literally",
        arguments: [
            ("100%", "100%"), ("%zz", "%zz"), ("%4", "%4"), ("%C3", "\u{FFFD}"), ("a%41b", "aAb"),
        ]
    )
    func percentDecodeTolerates(encoded: String, plain: String) {
        #expect(GRPCStatusMessage.percentDecode(encoded) == plain)
    }
}
