import NIOCore
import Testing
import TriggerModel
import WireCodecs

/// Large data URIs in a trigger body are decoded into the body's own storage (issue 12): the blob is a slice
/// of the body, no second buffer; a body someone else still holds is never changed.
@Suite("JSON bodies decoded in place")
struct JSONInPlaceTests {
    static func body(payload: [UInt8]) -> (body: ByteBuffer, base64: String) {
        var encoded = ByteBuffer()
        payload.withUnsafeBytes { Base64.encode($0, into: &encoded) }
        let base64 = String(buffer: encoded)
        let text =
            #"{"data":[{"variable":{"f":"data:image/png;filename=a.png;base64,"# + base64
            + #"","small":"data:;base64,AAEC","s":"x"}}]}"#
        return (ByteBuffer(string: text), base64)
    }

    /// The edge of `JSONParser.inPlaceBlobBytes` (64 KiB, the whole data URI string): a URI of exactly that many
    /// bytes is kept as the client's canonical text for an http runner, or decoded in place (a slice of the
    /// body); one byte shorter, it is decoded into a buffer of its own. The headers are picked so that both
    /// payloads are canonical base64 (whole quanta).
    @Test(
        "a data URI of exactly 64 KiB is kept or decoded in place; one byte under, decoded into its own buffer",
        arguments: [(header: "data:a/b;base64,", inPlace: true), (header: "data:a/bcde;base64,", inPlace: false)])
    func inPlaceThreshold(header: String, inPlace: Bool) throws {
        let payloadLength = (inPlace ? 65_536 : 65_535) - header.utf8.count
        let payload = pseudoRandomBytes(payloadLength / 4 * 3)
        var encoded = ByteBuffer()
        payload.withUnsafeBytes { Base64.encode($0, into: &encoded) }
        #expect(header.utf8.count + encoded.readableBytes == (inPlace ? 65_536 : 65_535))
        let text = #"{"data":[{"variable":{"f":""# + header + String(buffer: encoded) + #""}}]}"#
        for keep in [true, false] {
            var gatherer = BodyGatherer()
            gatherer.append(ByteBuffer(string: text))
            let address = try #require(gatherer.storageAddress)
            let inputs = try RESTTriggerBody.decode(json: gatherer.take(), limits: .defaults, keepCanonicalBase64: keep)
            let blob = try #require(inputs.first?.variables["f"]?.blobValue)
            #expect(Array(blob.bytes.readableBytesView) == payload)
            #expect((blob.canonicalBase64 != nil) == (keep && inPlace))
            let storage = (blob.canonicalBase64 ?? blob.bytes).withUnsafeReadableBytes {
                UInt(bitPattern: $0.baseAddress!)
            }
            #expect((storage > address && storage < address + UInt(text.utf8.count)) == inPlace, "keep: \(keep)")
        }
    }

    @Test("a 200 KB blob, a small blob and a string: each decodes as out of place would")
    func sameValues() throws {
        let (body, _) = Self.body(payload: pseudoRandomBytes(200_000))
        let expected = try JSONValueCodec.decodeObject(body)
        let inputs = try RESTTriggerBody.decode(
            json: ByteBuffer(bytes: Array(body.readableBytesView)), limits: .defaults)
        #expect(
            inputs.first?.variables
                == expected["data"].flatMap { value -> ValueObject? in
                    guard case .list(let items) = value, case .object(let item)? = items.first else { return nil }
                    return item["variable"]?.objectValue
                })
        let blob = try #require(inputs.first?.variables["f"]?.blobValue)
        #expect(blob.contentType == "image/png" && blob.fileName == "a.png")
        #expect(inputs.first?.variables["small"]?.blobValue?.bytes == ByteBuffer(bytes: [0, 1, 2]))
    }

    @Test("the caller's own copy of the body is left as it was")
    func callerKeepsBody() throws {
        let payload = pseudoRandomBytes(100_000)
        let (body, _) = Self.body(payload: payload)
        let before = Array(body.readableBytesView)
        let inputs = try RESTTriggerBody.decode(json: body, limits: .defaults)
        #expect(Array(body.readableBytesView) == before)
        #expect(inputs.first?.variables["f"]?.blobValue.map { Array($0.bytes.readableBytesView) } == payload)
    }

    /// Under 64 KiB a body holds no string long enough to decode in place, so it is parsed where it lies (a slice
    /// of a read buffer, in the gateway), not made unique first; the other holder's bytes stay as they were.
    @Test("a body of 64 KiB less one byte, still held by the caller, decodes as out of place and is left as it was")
    func sharedShortBody() throws {
        let prefix = #"{"data":[{"variable":{"small":"data:;base64,AAEC","s":""#
        let suffix = #""}}]}"#
        let filler = String(repeating: "x", count: 65_535 - prefix.utf8.count - suffix.utf8.count)
        let body = ByteBuffer(string: prefix + filler + suffix)
        #expect(body.readableBytes == 65_535)
        let before = Array(body.readableBytesView)
        let expected = try JSONValueCodec.decodeObject(body)
        let inputs = try RESTTriggerBody.decode(json: body, limits: .defaults)
        #expect(Array(body.readableBytesView) == before)
        #expect(inputs.first?.variables["s"] == .string(filler))
        #expect(inputs.first?.variables["small"]?.blobValue?.bytes == ByteBuffer(bytes: [0, 1, 2]))
        #expect(expected["data"] != nil)
    }

    @Test("a body handed over whole is decoded without a copy: the blob lies inside the body's storage")
    func noCopy() throws {
        let payload = pseudoRandomBytes(300_000)
        var gatherer = BodyGatherer()
        gatherer.append(Self.body(payload: payload).body)
        let address = try #require(gatherer.storageAddress)
        let inputs = try RESTTriggerBody.decode(json: gatherer.take(), limits: .defaults)
        let blob = try #require(inputs.first?.variables["f"]?.blobValue)
        let blobAddress = blob.bytes.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress!) }
        #expect(blobAddress > address && blobAddress < address + 200)
        #expect(Array(blob.bytes.readableBytesView) == payload)
    }

    @Test("bad base64 in a large data URI names the same offset as the out-of-place decoder")
    func badPayload() throws {
        let (body, base64) = Self.body(payload: pseudoRandomBytes(120_000))
        var bytes = Array(body.readableBytesView)
        let payloadStart = bytes.count - base64.utf8.count - #"","small":"data:;base64,AAEC","s":"x"}}]}"#.utf8.count
        bytes[payloadStart + 90_001] = UInt8(ascii: "!")
        let inPlace = gatewayError { _ = try RESTTriggerBody.decode(json: ByteBuffer(bytes: bytes), limits: .defaults) }
        let outOfPlace = gatewayError { _ = try JSONValueCodec.decodeObject(ByteBuffer(bytes: bytes)) }
        #expect(inPlace?.message == outOfPlace?.message)
        #expect(inPlace?.message.contains("offset 90001") == true, "\(String(describing: inPlace))")
    }

    // MARK: Kept as canonical base64 (requests for http runners)

    @Test("kept as base64: the blob is the client's text, a slice of the body; nothing decoded or copied")
    func keptAsBase64() throws {
        let payload = pseudoRandomBytes(300_000)
        let (body, base64) = Self.body(payload: payload)
        var gatherer = BodyGatherer()
        // A buffer of its own: `body` is kept for comparing, and a shared body would be copied first.
        gatherer.append(ByteBuffer(bytes: Array(body.readableBytesView)))
        let address = try #require(gatherer.storageAddress)
        let inputs = try RESTTriggerBody.decode(json: gatherer.take(), limits: .defaults, keepCanonicalBase64: true)
        let blob = try #require(inputs.first?.variables["f"]?.blobValue)
        let text = try #require(blob.canonicalBase64)
        #expect(String(buffer: text) == base64)
        let textAddress = text.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress!) }
        #expect(textAddress > address && textAddress < address + 200, "the text was copied out of the body")
        #expect(blob.count == payload.count && blob.contentType == "image/png" && blob.fileName == "a.png")
        #expect(Array(blob.bytes.readableBytesView) == payload)
        // Small blobs are decoded as ever: they must not keep a large body alive.
        #expect(inputs.first?.variables["small"]?.blobValue?.canonicalBase64 == nil)
        // The same values as decoding.
        let decoded = try RESTTriggerBody.decode(json: body, limits: .defaults)
        #expect(inputs == decoded)
    }

    @Test(
        "kept as base64 only when canonical: URL-safe or unpadded payloads are decoded in place as before",
        arguments: [true, false]
    )
    func nonCanonicalDecoded(urlSafe: Bool) throws {
        // 100 001 bytes: the encoding ends in one `=`, which the unpadded variant drops.
        let payload = pseudoRandomBytes(100_001)
        let (original, base64) = Self.body(payload: payload)
        var text = Array(original.readableBytesView)
        let start = text.count - base64.utf8.count - #"","small":"data:;base64,AAEC","s":"x"}}]}"#.utf8.count
        if urlSafe {
            for i in start..<(start + base64.utf8.count) {
                if text[i] == UInt8(ascii: "+") { text[i] = UInt8(ascii: "-") }
                if text[i] == UInt8(ascii: "/") { text[i] = UInt8(ascii: "_") }
            }
        } else {
            text.remove(at: start + base64.utf8.count - 1)
        }
        let inputs = try RESTTriggerBody.decode(
            json: ByteBuffer(bytes: text), limits: .defaults, keepCanonicalBase64: true)
        let blob = try #require(inputs.first?.variables["f"]?.blobValue)
        #expect(blob.canonicalBase64 == nil)
        #expect(Array(blob.bytes.readableBytesView) == payload)
    }

    @Test("kept as base64: bad base64 still fails naming its offset, as without")
    func keptBadPayload() throws {
        let (body, base64) = Self.body(payload: pseudoRandomBytes(120_000))
        var bytes = Array(body.readableBytesView)
        let payloadStart = bytes.count - base64.utf8.count - #"","small":"data:;base64,AAEC","s":"x"}}]}"#.utf8.count
        bytes[payloadStart + 90_001] = UInt8(ascii: "!")
        let kept = gatewayError {
            _ = try RESTTriggerBody.decode(json: ByteBuffer(bytes: bytes), limits: .defaults, keepCanonicalBase64: true)
        }
        let decoded = gatewayError { _ = try RESTTriggerBody.decode(json: ByteBuffer(bytes: bytes), limits: .defaults) }
        #expect(kept?.code == .invalidArgument)
        #expect(kept?.message == decoded?.message)
        #expect(kept?.message.contains("offset 90001") == true, "\(String(describing: kept))")
    }
}
