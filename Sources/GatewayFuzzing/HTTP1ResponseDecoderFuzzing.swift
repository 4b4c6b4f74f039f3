import NIOCore
import WireCodecs

/// Fuzzing of our HTTP/1.1 response decoder (`HTTP1ResponseDecoder`, what the http transport reads runners'
/// answers with) on the raw input as one backend connection's bytes, closed at the end. An input that starts
/// with the byte 0x01 is, after it, the answers to HEAD requests. What must hold:
///
/// - the same outcome whole, a byte at a time (short inputs), and in pieces whose sizes come from the input:
///   the same responses, bodies, ends and failure, and the same bytes left over;
/// - a response that ended has exactly its declared `Content-Length` of body; one without a body (1xx, 204,
///   304, HEAD) has none; a close-delimited one ends only at the close and does not persist;
/// - no more body bytes than the input held; no interim (1xx) head handed on; no trap on any input (a
///   failure is a typed error, after which the decoder is not used again).
///
/// Not a differential against NIO's `HTTPResponseDecoder`: llhttp reads responses more loosely than we
/// mean to (a Content-Length with Transfer-Encoding, a status of any three digits), and its response framing
/// needs the request heads it answers; the request decoder's differential fuzzer covers the shared field-line,
/// framing-field and chunk rules against llhttp already.
package enum HTTP1ResponseDecoderFuzzing {
    struct Response: Equatable {
        var status: Int
        var framing: HTTP1ResponseHead.Framing
        var keepAlive: Bool
        var body: [UInt8] = []
        var ended = false
    }

    struct Outcome: Equatable {
        var responses: [Response] = []
        var failure: HTTP1ResponseDecoder.Failure?
        var leftover = 0
    }

    package static func run(_ bytes: UnsafeRawBufferPointer) {
        let toHEAD = bytes.first == 0x01
        let input = Array(toHEAD ? bytes.dropFirst() : bytes[...])
        let whole = decode([input], toHEAD: toHEAD)
        if input.count <= 512 {
            precondition(
                decode(input.map { [$0] }, toHEAD: toHEAD) == whole, "HTTP1ResponseDecoder: a byte at a time differs")
        }
        let sizes = input.count < 4 ? [1] : input.suffix(4).map { Int($0 % 61) + 1 }
        let pieces = RESTFuzzing.pieces(of: ByteBuffer(bytes: input), sizes: sizes).map { Array($0.readableBytesView) }
        precondition(decode(pieces, toHEAD: toHEAD) == whole, "HTTP1ResponseDecoder: in pieces differs from whole")
        var bodyBytes = 0
        for response in whole.responses {
            bodyBytes += response.body.count
            precondition(
                response.status >= 200 && response.status <= 599, "HTTP1ResponseDecoder: status \(response.status)")
            switch response.framing {
            case .none:
                precondition(response.body.isEmpty && response.ended, "HTTP1ResponseDecoder: a body where none may be")
            case .contentLength(let length):
                precondition(
                    response.ended ? response.body.count == length : response.body.count < length,
                    "HTTP1ResponseDecoder: \(response.body.count) body bytes for Content-Length \(length)")
            case .untilClose:
                precondition(!response.keepAlive, "HTTP1ResponseDecoder: a close-delimited response persists")
            case .chunked:
                break
            }
        }
        precondition(bodyBytes <= input.count, "HTTP1ResponseDecoder: more body than input")
    }

    static func decode(_ pieces: [[UInt8]], toHEAD: Bool) -> Outcome {
        var decoder = HTTP1ResponseDecoder()
        decoder.respondsToHEAD = toHEAD
        var outcome = Outcome()
        do {
            outcome.leftover = try decoder.feed(reads: pieces, closed: true) { part in
                switch part {
                case .head(let head):
                    outcome.responses.append(
                        Response(status: head.status, framing: head.framing, keepAlive: head.keepAlive))
                case .body(let chunk):
                    outcome.responses[outcome.responses.count - 1].body += chunk.readableBytesView
                case .end:
                    outcome.responses[outcome.responses.count - 1].ended = true
                case .needMoreBytes:
                    preconditionFailure("HTTP1ResponseDecoder.feed handed on .needMoreBytes")
                }
            }
        } catch {
            outcome.failure = error
        }
        return outcome
    }
}
