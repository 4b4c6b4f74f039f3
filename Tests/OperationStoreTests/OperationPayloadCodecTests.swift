import NIOCore
import OperationStore
import Testing
import TriggerModel

@Suite("OperationPayloadCodec and SHA256")
struct OperationPayloadCodecTests {
    @Test(
        "SHA-256 matches the FIPS 180-4 test vectors",
        arguments: [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
            (
                "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
            ),
        ])
    func sha256Vectors(input: String, hex: String) {
        var hasher = SHA256Sink()
        hasher.update(Array(input.utf8))
        #expect(hasher.finalizeHex() == hex)
    }

    @Test("SHA-256 gives the same digest however the input is split", arguments: [1, 3, 63, 64, 65, 1000])
    func sha256Chunking(chunk: Int) {
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        var hasher = SHA256Sink()
        var offset = 0
        while offset < million.count {
            let end = min(offset + chunk * 997, million.count)
            million[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
        }
        #expect(hasher.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("a request round-trips through the stored form, spilling blobs over the limit by name")
    func requestRoundTrip() throws {
        let codec = OperationPayloadCodec(inlineBlobLimit: 1000, largeIntegerDigits: true)
        var request = Fixtures.richRequest()
        let encoded = codec.encode(request, blobPrefix: "q")
        #expect(encoded.blobs.map(\.name) == ["q0"])
        #expect(encoded.blobs.first?.bytes == Fixtures.bytes(1 << 20))
        #expect(encoded.bytes.readableBytes < 2000)
        let blobs = Dictionary(uniqueKeysWithValues: encoded.blobs.map { ($0.name, $0.bytes) })
        let decoded = try OperationPayloadCodec.decodeRequest(encoded.bytes) { name in
            try #require(blobs[name])
        }
        request.deadline = nil
        #expect(decoded == request)
    }

    @Test("integers past 2^53 are stored as their digits; the nearest-double form of earlier versions still reads")
    func largeIntegers() throws {
        let big = try #require(LargeInteger("18446744073709551615"))
        var request = Fixtures.request(blobs: [])
        request.deadline = nil
        request.inputs[0].variables["big"] = .largeInteger(big)
        request.inputs[0].variables["twoTo53Plus1"] = .integer(Int64(1) << 53 + 1)
        var asDouble = request
        asDouble.inputs[0].variables["big"] = .number(big.doubleValue)
        asDouble.inputs[0].variables["twoTo53Plus1"] = .number(9_007_199_254_740_992)

        // Default: the digits, read back exactly (2^53 + 1 is not rounded to 2^53).
        let digits = OperationPayloadCodec().encode(request, blobPrefix: "q").bytes
        let exact = try OperationPayloadCodec.decodeRequest(digits) { _ in ByteBuffer() }
        #expect(exact.inputs[0].variables["big"] == .largeInteger(big))
        #expect(exact.inputs[0].variables["twoTo53Plus1"]?.int64Value == 9_007_199_254_740_993)
        #expect(exact == request)

        // A row written before 54e6771 (the nearest double, byte for byte what `largeIntegerDigits: false`
        // writes) still reads, as that double.
        let earlier = OperationPayloadCodec(largeIntegerDigits: false).encode(request, blobPrefix: "q").bytes
        #expect(earlier == OperationPayloadCodec().encode(asDouble, blobPrefix: "q").bytes)
        #expect(earlier != digits)
        let read = try OperationPayloadCodec.decodeRequest(earlier) { _ in ByteBuffer() }
        #expect(read == asDouble)

        // A result and an error's details keep the digits too.
        let result = TriggerResult(outputs: [["n": .largeInteger(big)]], metadata: TriggerMetadata(traces: [:]))
        let storedResult = OperationPayloadCodec().encode(result, blobPrefix: "r").bytes
        #expect(try OperationPayloadCodec.decodeResult(storedResult) { _ in ByteBuffer() } == result)
        let error = GatewayError(.invalidArgument, "too big", details: [["n": .largeInteger(big)]])
        let storedError = try OperationPayloadCodec.decodeError(OperationPayloadCodec.encode(error))
        #expect(storedError.details == error.details)

        // The stored digest is every version's: the nearest double, so a retry matches a digest an earlier
        // instance stored for the same key (`idempotentLargeIntegers` tells the two apart).
        #expect(
            OperationPayloadCodec.digest(ref: request.ref, inputs: request.inputs)
                == OperationPayloadCodec.digest(ref: asDouble.ref, inputs: asDouble.inputs))
    }

    /// SDK review 56, M1: under one idempotency key, `9007199254740992` got the operation of `9007199254740993`.
    @Test(
        "under one idempotency key, integers past 2^53 that round to one double are two requests; the stored digest stays every version's"
    )
    func idempotentLargeIntegers() throws {
        func new(_ value: Value) -> NewOperation {
            var request = Fixtures.request(blobs: [])
            request.inputs[0].variables["acct"] = value
            return NewOperation(request: request, idempotencyKey: "k", codec: OperationPayloadCodec())
        }
        let odd = Value.integer(Int64(1) << 53 + 1)
        let even = Value.number(9_007_199_254_740_992)
        let stored = new(odd).operation
        #expect((try new(odd).idempotentAnswer(existing: stored)?.get())?.operation.id == stored.id)
        #expect(throws: (any Error).self) { try new(even).idempotentAnswer(existing: stored)?.get() }

        // The stored digest is the one every version computes (the nearest double): the two match there, and an
        // instance of an earlier version answers a retry of this row as this one does.
        #expect(stored.requestDigest == new(even).operation.requestDigest)
        // And the other way round: a row of `2^53` refuses a retry with `2^53 + 1`.
        #expect(throws: (any Error).self) { try new(odd).idempotentAnswer(existing: new(even).operation)?.get() }
        // Another body under the key: refused on the digest alone.
        #expect(throws: (any Error).self) { try new(.string("x")).idempotentAnswer(existing: stored)?.get() }

        // The same large integer at another place: [L, d] is not [d, L] (d: L's nearest double), though the
        // digests match and each holds L once.
        let swappedA = new(.list([odd, even])), swappedB = new(.list([even, odd]))
        #expect(swappedA.operation.requestDigest == swappedB.operation.requestDigest)
        #expect(throws: (any Error).self) { try swappedB.idempotentAnswer(existing: swappedA.operation)?.get() }
        #expect((try new(.list([odd, even])).idempotentAnswer(existing: swappedA.operation)?.get()) != nil)
        // In another batch item, past a nested object: counted across the batch.
        func batch(_ first: Value, _ second: Value) -> NewOperation {
            var request = Fixtures.request(blobs: [])
            request.inputs = [
                TriggerInput(variables: ["a": .object(["x": first])]), TriggerInput(variables: ["b": second]),
            ]
            return NewOperation(request: request, idempotencyKey: "k", codec: OperationPayloadCodec())
        }
        #expect(throws: (any Error).self) {
            try batch(even, odd).idempotentAnswer(existing: batch(odd, even).operation)?.get()
        }
        #expect((try batch(odd, even).idempotentAnswer(existing: batch(odd, even).operation)?.get()) != nil)
        // One place in each item: a count that restarted per item would take these two for one request.
        func items(_ first: Value, _ second: Value) -> NewOperation {
            var request = Fixtures.request(blobs: [])
            request.inputs = [TriggerInput(variables: ["a": first]), TriggerInput(variables: ["a": second])]
            return NewOperation(request: request, idempotencyKey: "k", codec: OperationPayloadCodec())
        }
        #expect(items(odd, even).operation.requestDigest == items(even, odd).operation.requestDigest)
        #expect(throws: (any Error).self) {
            try items(even, odd).idempotentAnswer(existing: items(odd, even).operation)?.get()
        }
    }

    /// A stored request whose input files were lost reads with those blobs empty (`Operation.lostInput`): its
    /// retry is still answered with it, large integers or not (note 56: the exact digests, blobs included,
    /// differed, and the retry got 409).
    @Test("a retry of a stored request whose input files were lost gets its operation, with a large integer in it")
    func idempotentLostInput() throws {
        var request = Fixtures.request(blobs: [64])
        request.inputs[0].variables["acct"] = Value.integer(Int64(1) << 53 + 1)
        let codec = OperationPayloadCodec(inlineBlobLimit: 16)
        let new = NewOperation(request: request, idempotencyKey: "k", codec: codec)
        var lost = new.operation
        // The stored file gone: read back empty, as `OperationRow` reads a stored row.
        var lostError: GatewayError?
        lost.request = try OperationPayloadCodec.decodeRequest(
            codec.encode(request, blobPrefix: "q").bytes,
            resolveBlob: { throw GatewayError(.dataLoss, "file \($0) is gone") }, toleratingLostBlobs: true,
            lost: &lostError)
        #expect(lostError != nil)
        #expect(lost.request != request, "the blob read back empty")
        let retry = NewOperation(request: request, idempotencyKey: "k", codec: codec)
        #expect((try retry.idempotentAnswer(existing: lost)?.get())?.operation.id == new.operation.id)
    }

    @Test(
        "a number written as a float is stored in that form (contract step); the earlier plain form still reads"
    )
    func numberForms() throws {
        var request = Fixtures.request(blobs: [])
        request.deadline = nil
        request.inputs[0].variables["f"] = .number(2, form: .float)
        request.inputs[0].variables["i"] = .number(2)
        var plain = request
        plain.inputs[0].variables["f"] = .number(2)
        func form(_ request: TriggerRequest, _ name: String) -> NumberForm? {
            guard case .number(_, let form)? = request.inputs[0].variables[name] else { return nil }
            return form
        }

        // What versions before 1e893806 wrote (`numberForms` false): byte for byte the plain number, read plain.
        let earlier = OperationPayloadCodec(numberForms: false).encode(request, blobPrefix: "q").bytes
        #expect(earlier == OperationPayloadCodec().encode(plain, blobPrefix: "q").bytes)
        #expect(form(try OperationPayloadCodec.decodeRequest(earlier) { _ in ByteBuffer() }, "f") == .plain)

        // The default keeps the form: read back as a float; only the float is written differently.
        let forms = OperationPayloadCodec().encode(request, blobPrefix: "q").bytes
        #expect(forms != earlier && forms.readableBytes == earlier.readableBytes)
        let read = try OperationPayloadCodec.decodeRequest(forms) { _ in ByteBuffer() }
        #expect(form(read, "f") == .float)
        #expect(form(read, "i") == .plain)
        #expect(read == request)
        let result = TriggerResult(
            outputs: [["n": .number(-0.0, form: .float)]], metadata: TriggerMetadata(traces: [:]))
        let storedResult = OperationPayloadCodec().encode(result, blobPrefix: "r").bytes
        let readResult = try OperationPayloadCodec.decodeResult(storedResult) { _ in ByteBuffer() }
        guard case .number(let zero, .float)? = readResult.outputs[0]["n"] else {
            Issue.record("\(readResult)")
            return
        }
        #expect(zero == 0 && zero.sign == .minus)
        let error = GatewayError(.invalidArgument, "bad", details: [["limit": .number(2, form: .float)]])
        let readError = try OperationPayloadCodec.decodeError(OperationPayloadCodec.encode(error))
        if case .number(2, .float)? = readError.details.first?["limit"] {
        } else {
            Issue.record("an error's detail lost its number form: \(readError.details)")
        }

        // The digest ignores the form in either version: a retry of `2` and of `2.0` under one key match.
        #expect(
            OperationPayloadCodec.digest(ref: request.ref, inputs: request.inputs)
                == OperationPayloadCodec.digest(ref: plain.ref, inputs: plain.inputs))
    }

    /// `limits.max_depth` goes to 1024 (`Value.maximumDepth`), but the reader refused past 512: an async request
    /// nested deeper was accepted and stored, then could not be claimed or read (its claim batch failed).
    @Test("a value nested as deep as any codec may accept (Value.maximumDepth) reads back; one level deeper is damage")
    func nestingDepth() throws {
        func nested(_ depth: Int) -> Value {
            var value = Value.number(1)
            for _ in 0..<depth { value = .list([value]) }
            return value
        }
        var request = Fixtures.request(blobs: [])
        request.deadline = nil
        request.inputs[0].variables["deep"] = nested(Value.maximumDepth)
        let stored = OperationPayloadCodec().encode(request, blobPrefix: "q").bytes
        #expect(try OperationPayloadCodec.decodeRequest(stored) { _ in ByteBuffer() } == request)
        request.inputs[0].variables["deep"] = nested(Value.maximumDepth + 1)
        let deeper = OperationPayloadCodec().encode(request, blobPrefix: "q").bytes
        #expect(throws: (any Error).self) { try OperationPayloadCodec.decodeRequest(deeper) { _ in ByteBuffer() } }
    }

    @Test("labels round-trip; a request without labels is stored exactly as before labels existed")
    func labels() throws {
        let codec = OperationPayloadCodec()
        var request = Fixtures.request(blobs: [])
        request.deadline = nil
        let plain = codec.encode(request, blobPrefix: "q").bytes
        request.labels = ["craft.deployment": "shout", "craft.io_cap": "60000"]
        let labelled = codec.encode(request, blobPrefix: "q").bytes
        // The labels are a tail: the unlabelled form is a prefix, so rows written before decode unchanged.
        #expect(labelled.readableBytes > plain.readableBytes)
        #expect(labelled.getSlice(at: labelled.readerIndex, length: plain.readableBytes) == plain)
        let decoded = try OperationPayloadCodec.decodeRequest(labelled) { _ in ByteBuffer() }
        #expect(decoded.labels == request.labels)
        let old = try OperationPayloadCodec.decodeRequest(plain) { _ in ByteBuffer() }
        #expect(old.labels.isEmpty)
    }

    @Test("the requester uid round-trips with and without labels, after them, so older rows still decode")
    func requesterUID() throws {
        let codec = OperationPayloadCodec()
        var request = Fixtures.request(blobs: [])
        request.deadline = nil
        let plain = codec.encode(request, blobPrefix: "q").bytes
        request.requesterUID = "8b2c31f3-cbb8-5983-8753-10a6cb2e1fa3"
        let withRequester = codec.encode(request, blobPrefix: "q").bytes
        #expect(withRequester.getSlice(at: withRequester.readerIndex, length: plain.readableBytes) == plain)
        #expect(try OperationPayloadCodec.decodeRequest(withRequester) { _ in ByteBuffer() } == request)
        request.labels = ["craft.deployment": "shout"]
        let both = try OperationPayloadCodec.decodeRequest(codec.encode(request, blobPrefix: "q").bytes) { _ in
            ByteBuffer()
        }
        #expect(both == request)
        #expect(try OperationPayloadCodec.decodeRequest(plain) { _ in ByteBuffer() }.requesterUID == nil)
    }

    @Test(
        "the sensitive fields round-trip with or without labels and requester, after them, so older rows still decode",
        arguments: [(labels: false, requester: false), (false, true), (true, false), (true, true)])
    func sensitiveFields(labels: Bool, requester: Bool) throws {
        let codec = OperationPayloadCodec()
        var request = Fixtures.request(blobs: [])
        request.deadline = nil
        if labels { request.labels = ["craft.deployment": "shout"] }
        if requester { request.requesterUID = "8b2c31f3-cbb8-5983-8753-10a6cb2e1fa3" }
        let without = codec.encode(request, blobPrefix: "q").bytes
        request.sensitiveFields.insert(.traceState)
        request.sensitiveFields.insert(.requesterUID)
        let with = codec.encode(request, blobPrefix: "q").bytes
        let decoded = try OperationPayloadCodec.decodeRequest(with) { _ in ByteBuffer() }
        #expect(decoded == request)
        #expect(decoded.sensitiveFields.rawValue == 0b10100)
        // No requester stays none (the empty string written to reach the byte reads as none).
        #expect(decoded.requesterUID == request.requesterUID)
        // A row without the byte (every row written before it) decodes with none.
        #expect(try OperationPayloadCodec.decodeRequest(without) { _ in ByteBuffer() }.sensitiveFields.isEmpty)
        if labels || requester {
            // A tail of its own: the row without it is a prefix, shorter by the byte (and by the empty requester
            // written before it when there is none).
            #expect(with.readableBytes == without.readableBytes + (requester ? 1 : 2))
            #expect(with.getSlice(at: with.readerIndex, length: without.readableBytes) == without)
        }
    }

    @Test("a blob at the inline limit stays inline; one byte more is spilled", arguments: [(1000, 0), (1001, 1)])
    func inlineLimitEdge(size: Int, spilled: Int) throws {
        let codec = OperationPayloadCodec(inlineBlobLimit: 1000)
        let request = Fixtures.request(blobs: [size])
        let encoded = codec.encode(request, blobPrefix: "q")
        #expect(encoded.blobs.count == spilled)
        let decoded = try OperationPayloadCodec.decodeRequest(encoded.bytes) { _ in encoded.blobs[0].bytes }
        #expect(decoded.inputs == request.inputs)
    }

    @Test("a missing or resized spilled blob is reported as damage, not returned")
    func missingBlob() {
        let codec = OperationPayloadCodec(inlineBlobLimit: 10)
        let encoded = codec.encode(Fixtures.request(blobs: [100]), blobPrefix: "q")
        #expect(throws: GatewayError.self) {
            _ = try OperationPayloadCodec.decodeRequest(encoded.bytes) { _ in Fixtures.bytes(99) }
        }
        var truncated = encoded.bytes
        truncated.moveWriterIndex(to: truncated.writerIndex - 3)
        #expect(throws: GatewayError.self) {
            _ = try OperationPayloadCodec.decodeRequest(truncated) { _ in Fixtures.bytes(100) }
        }
    }

    @Test("results with traces and errors with details round-trip")
    func resultAndErrorRoundTrip() throws {
        let result = Fixtures.result(blobSize: 5000)
        let encoded = OperationPayloadCodec(inlineBlobLimit: 100).encode(result, blobPrefix: "rX-")
        #expect(encoded.blobs.map(\.name) == ["rX-0"])
        let decoded = try OperationPayloadCodec.decodeResult(encoded.bytes) { _ in encoded.blobs[0].bytes }
        #expect(decoded == result)

        for code in [GatewayError.Code.backendFailed, .deadlineExceeded, .cancelled, .internalError, .unavailable] {
            let error = GatewayError(code, "went wrong: ✗", details: [["field": .string("x"), "n": .number(2)]])
            #expect(try OperationPayloadCodec.decodeError(OperationPayloadCodec.encode(error)) == error)
        }
    }

    @Test("the digest covers ref and inputs, not transport fields")
    func digest() {
        let base = Fixtures.request(text: "x", blobs: [500])
        let digest = OperationPayloadCodec.digest(ref: base.ref, inputs: base.inputs)
        #expect(digest.count == 64)

        var sameBody = base
        sameBody.requestID = "other"
        sameBody.principal = "someone"
        sameBody.traceParent = "00-x"
        #expect(OperationPayloadCodec.digest(ref: sameBody.ref, inputs: sameBody.inputs) == digest)

        var otherRelease = base
        otherRelease.ref.release = "v9"
        var otherBlob = base
        var bytes = Fixtures.bytes(500)
        bytes.setInteger(UInt8(0), at: 250)
        otherBlob.inputs[0].variables["file0"] = .blob(Blob(contentType: "image/png", fileName: "f0.png", bytes: bytes))
        var otherSecret = base
        otherSecret.inputs[0].secrets["k"] = "v"
        var otherOrder = base
        otherOrder.inputs[0].variables = ValueObject(base.inputs[0].variables.entries.reversed())
        for changed in [otherRelease, otherBlob, otherSecret, otherOrder] {
            #expect(OperationPayloadCodec.digest(ref: changed.ref, inputs: changed.inputs) != digest)
        }
    }

    @Test(
        "page tokens round-trip and garbage is rejected",
        arguments: [
            "", "o", "x12", "o-5", "o0", "ozzzzzzzzzzzzzzzzzzzzz", "o9ix", "o9ix.", "o9ix.a.b", "i", "i.1", "iab",
            "iab c.1", "ia'b.1", "i" + String(repeating: "A", count: 65) + ".1",
        ])
    func pageTokens(garbage: String) throws {
        let filter = OperationFilter()
        let id = Operation.makeID()
        #expect(
            try OperationPaging.parseToken(OperationPaging.makeToken(afterID: id, filter: filter), filter: filter)
                == .afterID(id))
        // What earlier gateways issued still continues where it was.
        #expect(
            try OperationPaging.parseToken(
                OperationPaging.legacyToken(afterSequence: 12345, filter: filter), filter: filter)
                == .afterSequence(12345))
        let error = #expect(throws: GatewayError.self) { try OperationPaging.parseToken(garbage, filter: filter) }
        #expect(error?.message == "invalid page_token", "\(garbage)")
    }

    @Test("a page token carries the page's last operation id and the filter's tag, not the store's sequence")
    func pageTokenIsOpaque() throws {
        let filter = OperationFilter(pipeline: "demo/echo")
        let token = OperationPaging.makeToken(afterID: "0123456789ABCDEFGHJKMNPQRS", filter: filter)
        let tag = try #require(token.split(separator: ".").last)
        #expect(token == "i0123456789ABCDEFGHJKMNPQRS.\(tag)")
        #expect(OperationPaging.cursorID(token) == "0123456789ABCDEFGHJKMNPQRS")
        #expect(OperationPaging.cursorID(OperationPaging.legacyToken(afterSequence: 5, filter: filter)) == nil)
        #expect(OperationPaging.cursorID(nil) == nil)
    }

    @Test("a page token is good only for the filter it was made under (AIP-158)")
    func pageTokenFilter() throws {
        let filters = [
            OperationFilter(), OperationFilter(pipeline: "demo/echo"), OperationFilter(pipeline: "demo/sleep"),
            OperationFilter(state: .queued), OperationFilter(pipeline: "demo/echo", state: .queued),
            OperationFilter(pipeline: "demo/echo", state: .succeeded),
        ]
        for made in filters {
            let token = OperationPaging.makeToken(afterID: "OP77", filter: made)
            for used in filters {
                if used == made {
                    #expect(try OperationPaging.parseToken(token, filter: used) == .afterID("OP77"))
                } else {
                    let error = #expect(throws: GatewayError.self) {
                        try OperationPaging.parseToken(token, filter: used)
                    }
                    #expect(error?.code == .invalidArgument)
                    #expect(error?.message.hasPrefix("page_token was made for another filter") == true)
                }
            }
        }
    }

    @Test("operation ids are 26 URL-safe characters and do not repeat")
    func operationIDs() {
        let ids = (0..<1000).map { _ in Operation.makeID() }
        #expect(Set(ids).count == 1000)
        let allowed = Set("0123456789abcdefghjkmnpqrstvwxyz")
        #expect(ids.allSatisfy { $0.count == 26 && $0.allSatisfy(allowed.contains) })
    }

    @Test("ids drawn on many threads at once across buffer refills never repeat, and use every character")
    func operationIDsConcurrently() async {
        // 8 × 2 000 ids = 32 000 words: 62 refills of `BufferedSystemRandom`'s 512-word chunk, drawn concurrently.
        let ids = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<8 { group.addTask { (0..<2000).map { _ in Operation.makeID() } } }
            return await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(ids.count == 16_000 && Set(ids).count == 16_000)
        // Each of the 32 characters in each of the first 25 positions (the 26th holds 3 bits): no stuck bits.
        for position in 0..<25 {
            let seen = Set(ids.map { Array($0.utf8)[position] })
            #expect(seen.count == 32, "position \(position): \(seen.count) characters")
        }
    }
}
