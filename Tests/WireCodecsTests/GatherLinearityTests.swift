import NIOCore
import Testing
import TriggerModel
import WireCodecs
import TestScheduling

/// Every place that gathers a growing body stays linear (issue 12): a buffer shared while it grows is copied
/// whole on every write, which these tests see as its storage moving once per chunk. Counted, never timed:
/// 16 MiB in 4 KiB chunks moves O(log n) times when gathered in place (≤ 20 here) and 4096 times when not.
@Suite("linear gathering: multipart parts, gRPC deframer, SSE decoder", .cpuBound)
struct GatherLinearityTests {
    static let chunk = 4096
    static let chunks = 4096
    static let maxMoves = 20

    /// Counts how often `address` changes (nil, before anything is gathered, does not count) while `feed` runs
    /// over every chunk.
    static func countMoves(chunks: [ByteBuffer], feed: (ByteBuffer) throws -> UInt?) rethrows -> Int {
        var moves = 0
        var last: UInt?
        for chunk in chunks {
            guard let address = try feed(chunk) else { continue }
            if address != last { moves += 1 }
            last = address
        }
        return moves
    }

    static func slices(_ buffer: ByteBuffer, size: Int) -> [ByteBuffer] {
        var rest = buffer
        var out: [ByteBuffer] = []
        while rest.readableBytes > 0 { out.append(rest.readSlice(length: min(size, rest.readableBytes))!) }
        return out
    }

    @Test("a 16 MiB multipart file part fed in 4 KiB reads: its storage moves O(log n) times, bytes intact")
    func multipartPart() throws {
        let boundary = "----linear-7MA4YWxk"
        let file = ByteBuffer(bytes: pseudoRandomBytes(Self.chunk * Self.chunks))
        var body = ByteBuffer(
            string: "--\(boundary)\r\nContent-Disposition: form-data; name=\"variables[0].f\"; filename=\"a.bin\"\r\n"
                + "Content-Type: application/octet-stream\r\n\r\n")
        body.writeImmutableBuffer(file)
        body.writeString("\r\n--\(boundary)--\r\n")
        var decoder = try MultipartFormDecoder(boundary: boundary, limits: CodecLimits(maxBodyBytes: 64 << 20))
        let moves = try Self.countMoves(chunks: Self.slices(body, size: Self.chunk)) { chunk in
            try decoder.feed(chunk)
            return decoder.partStorageAddress
        }
        #expect(moves >= 1 && moves <= Self.maxMoves, "part storage moved \(moves) times")
        let inputs = try decoder.finish()
        #expect(inputs.first?.variables["f"]?.blobValue?.bytes == file)
    }

    /// With the body's `Content-Length`, the first file part's storage is allocated whole at its start (sized for
    /// the rest of the body: issue 12, no growth copies, its pages advised as huge pages), so it never moves; a
    /// second file part is not sized (an upper bound for every part would be a large storage each).
    @Test("with a declared length, the first file part's storage never moves; a second one's grows as before")
    func multipartFirstFileSized() throws {
        let boundary = "----sized-7MA4YWxk"
        let second = ByteBuffer(bytes: pseudoRandomBytes(Self.chunk * 1_024, seed: 7))
        let file = ByteBuffer(bytes: pseudoRandomBytes(Self.chunk * Self.chunks))
        func head(_ name: String) -> String {
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"variables[0].\(name)\"; filename=\"\(name).bin\"\r\n"
                + "Content-Type: application/octet-stream\r\n\r\n"
        }
        for (order, expectSized) in [(["f", "g"], true), (["g", "f"], false)] {
            var body = ByteBuffer()
            var starts: [(offset: Int, name: String)] = []  // where each part's header begins
            for name in order {
                starts.append((body.readableBytes, name))
                body.writeString(head(name))
                body.writeImmutableBuffer(name == "f" ? file : second)
                body.writeString("\r\n")
            }
            body.writeString("--\(boundary)--\r\n")
            var decoder = try MultipartFormDecoder(
                boundary: boundary, limits: CodecLimits(maxBodyBytes: 64 << 20), declaredLength: body.readableBytes)
            var addresses: [String: Set<UInt>] = [:]
            var firstCapacity: [String: Int] = [:]
            var fed = 0
            for chunk in Self.slices(body, size: Self.chunk) {
                fed += chunk.readableBytes
                // The part whose bytes this chunk ended in: the last one whose header began before its end.
                let current = starts.last { $0.offset < fed }?.name ?? ""
                try decoder.feed(chunk)
                if let address = decoder.partStorageAddress { addresses[current, default: []].insert(address) }
                if firstCapacity[current] == nil, let capacity = decoder.partStorageCapacity {
                    firstCapacity[current] = capacity
                }
            }
            // "f" (16 MiB) is sized only when it is the first file part: room for all of it from its first
            // bytes, and never moved. Unsized, it starts small and grows (whether realloc moves it is the
            // allocator's business: mremap may grow it in place).
            let moves = addresses["f"]?.count ?? 0
            let sized = (firstCapacity["f"] ?? 0) >= file.readableBytes
            #expect(sized == expectSized, "order \(order): first capacity \(firstCapacity["f"] ?? 0)")
            if expectSized { #expect(moves == 1, "order \(order): \(moves) addresses") }
            let inputs = try decoder.finish()
            #expect(inputs.first?.variables["f"]?.blobValue?.bytes == file)
            #expect(inputs.first?.variables["g"]?.blobValue?.bytes == second)
        }
    }

    @Test("a 16 MiB gRPC message in 4 KiB DATA frames: reserved once at its prefix, then never moves")
    func deframer() throws {
        let message = ByteBuffer(bytes: pseudoRandomBytes(Self.chunk * Self.chunks))
        var deframer = GRPCMessageDeframer(maxMessageBytes: 32 << 20)
        var received: ByteBuffer?
        let moves = try Self.countMoves(chunks: Self.slices(GRPCMessageFramer.frame(message), size: Self.chunk)) {
            chunk in
            deframer.append(chunk)
            let address = deframer.bufferedStorageAddress
            if let next = try deframer.next() { received = next }
            return address
        }
        // The first frame is adopted as received; reserving the whole message moves it once more.
        #expect(moves >= 1 && moves <= 3, "deframer storage moved \(moves) times")
        #expect(received == message)
    }

    @Test("an SSE event of 4096 data lines of 4 KiB each: its data grows in place")
    func sseDecoder() throws {
        let line = "data: " + String(repeating: "x", count: Self.chunk - 7) + "\n"
        var decoder = SSEDecoder(maxEventBytes: 64 << 20)
        let moves = try Self.countMoves(chunks: Array(repeating: ByteBuffer(string: line), count: Self.chunks)) {
            chunk in
            let events = try decoder.feed(chunk)
            if !events.isEmpty { Issue.record("an event ended early") }
            return decoder.dataStorageAddress
        }
        #expect(moves >= 1 && moves <= Self.maxMoves, "SSE data storage moved \(moves) times")
        let events = try decoder.feed(ByteBuffer(string: "\n"))
        #expect(events.count == 1)
        #expect(events.first?.data.readableBytes == Self.chunks * (Self.chunk - 7) + Self.chunks - 1)
    }
}
