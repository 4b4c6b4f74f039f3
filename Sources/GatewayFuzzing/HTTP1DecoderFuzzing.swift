import NIOCore
import NIOEmbedded
import NIOHTTP1
import WireCodecs

/// Differential fuzzing of our HTTP/1.1 request decoder (`HTTP1RequestDecoder`) against NIO's
/// `HTTPRequestDecoder` (llhttp), on the raw input as one connection's client bytes. What must hold:
///
/// - ours gives the same outcome whole, a byte at a time, and in pieces whose sizes come from the input;
/// - every request both decoders read in full has the same method, target, version, fields (names as sent,
///   values) and body;
/// - where llhttp refuses the bytes, ours refuses them too, at the same request or an earlier one; or, when the
///   input ends inside a line (or head) llhttp refused at a byte and ours reads whole, ours refuses it once
///   it ends (CRLF, or CRLF CRLF, appended), or it is a head with a method llhttp does not know.
///
/// Deliberate differences (ours stricter or llhttp's extras not served), where comparison stops:
/// - a method llhttp does not know (its fixed list): RFC 9110 §9.1 methods are tokens; ours reads it and the
///   router answers 405/404;
/// - after a request that asks for an upgrade (`Upgrade`, or CONNECT): llhttp stops parsing (NIO hands the
///   rest on as upgrade bytes); the gateway upgrades nothing, so ours reads on;
/// - after a request that does not persist (`Connection: close`, HTTP/1.0): the gateway closes after it;
/// - after a request whose `Transfer-Encoding` list has an empty element (`chunked,`): RFC 9110 §5.6.1.2 has a
///   recipient ignore empty list elements, so ours reads it as `chunked`; llhttp refuses the head. Both agree on
///   the framing of anything either reads (found by `FUZZ_ONLY=http1`, 2026-12-06:
///   `FailCases/h1dec-transfer-encoding-empty-element`).
/// Field values are compared without the whitespace around them (llhttp keeps a trailing HTAB).
/// Ours refusing what llhttp accepts is allowed (non-ASCII targets, a fragment in the target, HTTP/0.9 and 2.0, a Content-Length of
/// over 18 digits, `Transfer-Encoding: gzip, chunked` answered 501, chunk extensions llhttp reads loosely).
package enum HTTP1DecoderFuzzing {
    struct Request: Equatable {
        var method: String
        var target: String
        var minorVersion: Int
        var fields: [String]
        var body: [UInt8] = []
        var ended = false
        /// The comparison stops after this request (see the type's documentation).
        var last = false
    }

    struct Outcome: Equatable {
        var requests: [Request] = []
        var refused = false
        /// Ours only: the input ended with bytes left over (a line or head not complete).
        var waiting = false
    }

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let input = Array(bytes)
        let ours = decode([input])
        // Split invariance: a byte at a time (short inputs) and in pieces sized by the input's last bytes.
        if input.count <= 512 {
            precondition(decode(input.map { [$0] }) == ours, "HTTP1RequestDecoder: a byte at a time differs")
        }
        let sizes = input.count < 4 ? [1] : input.suffix(4).map { Int($0 % 61) + 1 }
        let pieces = RESTFuzzing.pieces(of: ByteBuffer(bytes: input), sizes: sizes).map { Array($0.readableBytesView) }
        precondition(
            decode(pieces) == ours,
            "HTTP1RequestDecoder: in pieces differs from whole")
        compare(ours: ours, reference: reference(input), input: input)
    }

    static func compare(ours: Outcome, reference: Outcome, input: [UInt8]) {
        let both = min(ours.requests.count, reference.requests.count)
        for k in 0..<both {
            let (a, b) = (ours.requests[k], reference.requests[k])
            if a.last || b.last {
                // Compared up to the head: the request decides where comparison stops.
                precondition(
                    a.method == b.method && a.target == b.target,
                    "HTTP1RequestDecoder: request \(k) differs: \(a) vs llhttp \(b)")
                return
            }
            if a.ended && b.ended {
                precondition(a == b, "HTTP1RequestDecoder: request \(k) differs:\n ours \(a)\n llhttp \(b)")
            } else {
                precondition(
                    a.method == b.method && a.target == b.target && a.fields == b.fields,
                    "HTTP1RequestDecoder: head \(k) differs:\n ours \(a)\n llhttp \(b)")
            }
        }
        guard reference.refused else { return }
        if let lastOurs = ours.requests.last, lastOurs.last { return }
        if ours.refused {
            precondition(
                ours.requests.count <= reference.requests.count,
                "HTTP1RequestDecoder: llhttp refused at request \(reference.requests.count), ours later")
            return
        }
        precondition(ours.waiting, "HTTP1RequestDecoder accepted what llhttp refused: \(excerpt(input))")
        // Ours reads lines whole: the line must be refused once it ends, or the head it is in (a method
        // llhttp does not know is only seen in the head ours reads whole).
        let ended = ["\r\n", "\r\n\r\n"].map { decode([input, Array($0.utf8)]) }
        precondition(
            ended.contains { $0.refused || $0.requests.last.map { !knownMethods.contains($0.method) } == true },
            "HTTP1RequestDecoder: llhttp refused, ours still accepts the line at its end: \(excerpt(input))")
    }

    /// llhttp's methods (llhttp 9, HTTP mode).
    static let knownMethods: Set<String> = [
        "DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "COPY", "LOCK", "MKCOL", "MOVE",
        "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY",
        "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR",
        "LINK", "UNLINK", "SOURCE", "QUERY",
    ]

    static func decode(_ pieces: [[UInt8]]) -> Outcome {
        var decoder = HTTP1RequestDecoder()
        var outcome = Outcome()
        do {
            let leftover = try decoder.feed(reads: pieces) { part in
                switch part {
                case .head(let head):
                    var request = Request(
                        method: head.method, target: head.target, minorVersion: head.minorVersion,
                        fields: head.fields.map { "\($0.name): \($0.value)" })
                    request.last =
                        !head.keepAlive || head.methodIs("CONNECT") || head.first(name: "upgrade") != nil
                        || !knownMethods.contains(request.method)
                        || hasEmptyListElement(head.values(name: "transfer-encoding"))
                    outcome.requests.append(request)
                    return !(request.last && !knownMethods.contains(request.method))
                case .body(let chunk):
                    outcome.requests[outcome.requests.count - 1].body += chunk.readableBytesView
                    return true
                case .end:
                    outcome.requests[outcome.requests.count - 1].ended = true
                    return !outcome.requests[outcome.requests.count - 1].last
                case .needMoreBytes:
                    preconditionFailure("feed(reads:) handed on .needMoreBytes")
                }
            }
            guard let leftover else { return outcome }
            outcome.waiting = leftover > 0 || !decoder.isBetweenRequests
        } catch {
            outcome.refused = true
        }
        return outcome
    }

    /// Whether a list field's lines have an empty element (`chunked,`, `, chunked`; RFC 9110 §5.6.1).
    static func hasEmptyListElement(_ values: [String]) -> Bool {
        values.contains { value in
            value.split(separator: ",", omittingEmptySubsequences: false).contains {
                $0.allSatisfy { $0 == " " || $0 == "\t" }
            }
        }
    }

    /// What NIO's decoder (llhttp) reads of `input`.
    static func reference(_ input: [UInt8]) -> Outcome {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        var outcome = Outcome()
        do {
            try channel.writeInbound(channel.allocator.buffer(bytes: input))
        } catch {
            outcome.refused = true
        }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head):
                var request = Request(
                    method: head.method.rawValue, target: head.uri,
                    minorVersion: head.version.minor, fields: head.headers.map { "\($0.name): \(trimmed($0.value))" })
                let connection = head.headers[canonicalForm: "connection"].map { $0.lowercased() }
                let persists =
                    head.version.minor >= 1
                    ? !connection.contains("close")
                    : connection.contains("keep-alive") && !connection.contains("close")
                request.last =
                    !persists || head.method == .CONNECT || head.headers.contains(name: "upgrade")
                    || !knownMethods.contains(request.method)
                outcome.requests.append(request)
            case .body(let chunk):
                if !outcome.requests.isEmpty {
                    outcome.requests[outcome.requests.count - 1].body += chunk.readableBytesView
                }
            case .end:
                if !outcome.requests.isEmpty { outcome.requests[outcome.requests.count - 1].ended = true }
            }
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return outcome
    }

    /// A field value without the whitespace around it: RFC 9112 §5 excludes it from the value; llhttp keeps a
    /// trailing HTAB.
    static func trimmed(_ value: String) -> String {
        var scalars = Substring(value).unicodeScalars
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        return String(scalars)
    }

    static func excerpt(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(400), as: UTF8.self).debugDescription
    }
}
