/// An HTTP/2 connection's client frames, read at the frame layer (RFC 9113 §4.1; header blocks are not
/// decoded), against which the gateway's frames are judged.
///
/// A stream "expects an answer" when the client opened it with a HEADERS block that completed
/// (END_HEADERS, on the HEADERS frame or its last CONTINUATION), ended its side (END_STREAM on a completed
/// block or on DATA) and did not reset it. What must hold (after the settle phase and once closed):
/// - the gateway's bytes are whole frames, the first a SETTINGS frame on stream 0 (§3.4);
/// - connection-level frames (SETTINGS, PING, GOAWAY, WINDOW_UPDATE) have the lengths §6 gives them, and
///   HEADERS, DATA and RST_STREAM go only on streams the client opened (the gateway never pushes);
/// - nothing but RST_STREAM follows the gateway's END_STREAM or RST_STREAM on a stream (§5.1);
/// - while the connection is open and the gateway has not given up on it (GOAWAY with an error), every
///   stream that expects an answer at or below the last GOAWAY's last-stream-ID has response HEADERS or an
///   RST_STREAM from the gateway.
struct HTTP2Transcript {
    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var length: Int
        /// Offset of the payload in the bytes the frame was read from.
        var payload: Int
    }

    static let data: UInt8 = 0, headers: UInt8 = 1, rstStream: UInt8 = 3, settings: UInt8 = 4
    static let pushPromise: UInt8 = 5, ping: UInt8 = 6, goAway: UInt8 = 7, windowUpdate: UInt8 = 8
    static let continuation: UInt8 = 9
    static let endStream: UInt8 = 0x1, endHeaders: UInt8 = 0x4

    /// Streams the client opened with HEADERS.
    private(set) var opened: Set<UInt32> = []
    /// Streams that expect an answer (see the type's description).
    private(set) var expecting: Set<UInt32> = []

    init(client input: [UInt8]) {
        let client = Self.frames(in: Array(input.dropFirst(24)))
        // nghttp2 reads a header block as it arrives, so a HEADERS frame cut short by the end of the input has
        // opened its stream too (the gateway may reset it at the header timeout).
        if let partial = client.partial, partial.type == Self.headers, partial.stream != 0 {
            opened.insert(partial.stream)
        }
        let frames = client.frames
        var ended: Set<UInt32> = []
        var reset: Set<UInt32> = []
        // The stream whose header block is still open, and whether that block carries END_STREAM.
        var openBlock: (stream: UInt32, endsStream: Bool)?
        for frame in frames {
            switch frame.type {
            case Self.headers:
                if frame.stream != 0 { opened.insert(frame.stream) }
                let endsStream = frame.flags & Self.endStream != 0
                if frame.flags & Self.endHeaders != 0 {
                    if endsStream { ended.insert(frame.stream) }
                    openBlock = nil
                } else {
                    openBlock = (frame.stream, endsStream)
                }
            case Self.continuation:
                if let block = openBlock, block.stream == frame.stream, frame.flags & Self.endHeaders != 0 {
                    if block.endsStream { ended.insert(frame.stream) }
                    openBlock = nil
                }
            case Self.data:
                if frame.flags & Self.endStream != 0 { ended.insert(frame.stream) }
            case Self.rstStream:
                reset.insert(frame.stream)
            default:
                break
            }
        }
        expecting = opened.intersection(ended).subtracting(reset).filter { $0 % 2 == 1 }
    }

    /// The frames that `bytes` holds whole, the header of a last one cut short (if its 9 bytes are there), and
    /// how many bytes are left over after the whole frames.
    static func frames(in bytes: [UInt8]) -> (frames: [Frame], partial: Frame?, leftOver: Int) {
        var frames: [Frame] = []
        var at = 0
        while bytes.count - at >= 9 {
            let length = Int(bytes[at]) << 16 | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2])
            let stream =
                (UInt32(bytes[at + 5]) << 24 | UInt32(bytes[at + 6]) << 16 | UInt32(bytes[at + 7]) << 8
                    | UInt32(bytes[at + 8])) & 0x7fff_ffff
            let frame = Frame(
                type: bytes[at + 3], flags: bytes[at + 4], stream: stream, length: length, payload: at + 9)
            guard bytes.count - at - 9 >= length else { return (frames, frame, bytes.count - at) }
            frames.append(frame)
            at += 9 + length
        }
        return (frames, nil, bytes.count - at)
    }

    /// What the gateway's frames say: the streams it answered, its last GOAWAY, or the first rule broken.
    private struct Reading {
        var answered: Set<UInt32> = []
        var goAway: (lastStream: UInt32, error: UInt32)?
        var violation: String?
    }

    private func read(_ output: [UInt8]) -> Reading {
        var reading = Reading()
        let (frames, _, leftOver) = Self.frames(in: output)
        if leftOver != 0 { reading.violation = "the gateway's HTTP/2 output ends inside a frame (\(leftOver) bytes)" }
        var done: Set<UInt32> = []
        for (index, frame) in frames.enumerated() {
            if index == 0, frame.type != Self.settings || frame.stream != 0 || frame.flags != 0 {
                reading.violation = "the gateway's first HTTP/2 frame is type \(frame.type), not SETTINGS"
                return reading
            }
            switch frame.type {
            case Self.settings:
                if frame.stream != 0 || frame.length % 6 != 0 { reading.violation = "a malformed SETTINGS frame" }
            case Self.ping:
                if frame.stream != 0 || frame.length != 8 { reading.violation = "a malformed PING frame" }
            case Self.goAway:
                guard frame.stream == 0, frame.length >= 8 else {
                    reading.violation = "a malformed GOAWAY frame"
                    break
                }
                let p = frame.payload
                let last =
                    (UInt32(output[p]) << 24 | UInt32(output[p + 1]) << 16 | UInt32(output[p + 2]) << 8
                        | UInt32(output[p + 3])) & 0x7fff_ffff
                let error =
                    UInt32(output[p + 4]) << 24 | UInt32(output[p + 5]) << 16 | UInt32(output[p + 6]) << 8
                    | UInt32(output[p + 7])
                reading.goAway = (last, error)
            case Self.windowUpdate:
                if frame.length != 4 { reading.violation = "a malformed WINDOW_UPDATE frame" }
            case Self.pushPromise:
                reading.violation = "the gateway sent PUSH_PROMISE"
            case Self.headers, Self.data, Self.rstStream:
                guard opened.contains(frame.stream) else {
                    reading.violation =
                        "the gateway sent frame type \(frame.type) on stream \(frame.stream), which the client never opened"
                    break
                }
                if frame.type == Self.rstStream {
                    if frame.length != 4 { reading.violation = "a malformed RST_STREAM frame" }
                    reading.answered.insert(frame.stream)
                    done.insert(frame.stream)
                    break
                }
                if done.contains(frame.stream) {
                    reading.violation =
                        "the gateway sent frame type \(frame.type) on stream \(frame.stream) after ending it"
                }
                if frame.type == Self.headers { reading.answered.insert(frame.stream) }
                if frame.flags & Self.endStream != 0 { done.insert(frame.stream) }
            default:
                break
            }
            if reading.violation != nil { return reading }
        }
        return reading
    }

    /// Streams that expect an answer and have none, the gateway still holding the connection for them.
    private func unanswered(_ reading: Reading) -> [UInt32] {
        if let goAway = reading.goAway, goAway.error != 0 { return [] }
        let last = reading.goAway?.lastStream ?? .max
        return expecting.filter { $0 <= last && !reading.answered.contains($0) }.sorted()
    }

    func allAnswered(_ output: [UInt8]) -> Bool {
        let reading = read(output)
        return reading.violation != nil || unanswered(reading).isEmpty
    }

    func violation(_ output: [UInt8], closed: Bool) -> String? {
        let reading = read(output)
        if let violation = reading.violation { return violation }
        if !closed, let stream = unanswered(reading).first {
            return "HTTP/2 stream \(stream) ended by the client got no answer on an open connection"
        }
        return nil
    }
}
