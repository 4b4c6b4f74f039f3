import NIOCore
import NIOHTTP1
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The streaming relay of a large base64 JSON body to an http runner (issue 12): the runner request starts
/// while the client's body is still arriving, and the client's canonical base64 goes to the runner as it
/// comes, so the upload is not received whole before its first byte goes out (store and forward made a
/// 24 MiB body take the time of two transfers plus the runner's work).
///
/// It applies to bodies of one simple shape: a sync trigger for an http pool, `application/json` with a
/// `Content-Length` of at least `minimumBytes`, whose first data URI with `;base64,` (within the first
/// `windowBytes`) is the body's one large blob and its last value, i.e. the body ends with the closing quote
/// and the brackets that close what was open before it (`{"data":[{"variable":{"file":"data:…;base64,…"}}]}`).
/// The runner request is rendered from the body's beginning with a placeholder for the blob (so it is the
/// same JSON the gateway would send, `BackendHTTPBody`), its `Content-Length` derived from the client's.
///
/// Nothing is trusted before the whole body is in: the runner gets everything but the request's last
/// bytes until the body was parsed and validated the ordinary way (`RESTBodyCollector`), and the request
/// this makes is rendered again and compared with the one sent ahead (the text around the blob, the blob's
/// place in the gathered body, the transport fields). Only when they are the same are the last bytes sent;
/// otherwise (bad base64, a body of another shape, the client gone) the runner request is aborted (its
/// connection closed mid-body: the runner never sees a whole request) and the request goes on, or fails,
/// the ordinary way. Loop-confined: used by one `HTTP1FrontendHandler` on its event loop.
final class HTTP1BodyRelay {
    /// Bodies (their declared length) and blobs (their base64 bytes) smaller than this are not relayed: the
    /// store-and-forward time of a smaller body is below a millisecond or two.
    static let minimumBytes = 1 << 20
    /// How much of the body's beginning is looked at for the blob's start.
    static let windowBytes = 64 << 10
    /// The placeholder blob the runner request is first rendered with: larger than the thresholds that keep a
    /// blob as its canonical text (`JSONValueCodec`) and send it as a piece of its own (`StreamedJSONBody`).
    static let placeholderBytes = 128 << 10

    private enum Phase {
        /// Looking for the blob's start in the body's first bytes.
        case scanning
        case relaying(Relaying)
        /// Not relayed (not of the shape, or given up): the ordinary path serves the request.
        case off
    }

    private struct Relaying {
        let body: RelayedBody
        /// The blob's first byte and the byte after its last, as offsets in the client's body.
        let start: Int
        let end: Int
        /// The runner request's text before and after the blob.
        let before: ByteBuffer
        let after: ByteBuffer
        let provisional: TriggerRequest
        let call: EventLoopFuture<TriggerResult>
        let cancellation: TriggerCancellation
    }

    private let plan: RESTTriggerPlan
    private let declaredLength: Int
    private let limits: CodecLimits
    private let dispatcher: TriggerDispatcher
    private let eventLoop: any EventLoop
    private var phase = Phase.scanning
    /// The body's first bytes (while scanning).
    private var window = ByteBuffer()
    /// Bytes of the body received so far.
    private var received = 0

    /// A relay for this request, or nil when it is not of the shape (see the type's documentation).
    init?(
        use: RESTBodyUse, collector: RESTBodyCollector, headers: HTTPHeaders, services: FrontendServices,
        eventLoop: any EventLoop
    ) {
        // The cheap checks first: this runs for every request with a body.
        guard case .trigger(let plan) = use, plan.mode == .sync, plan.target?.sendsBlobsAsBase64 == true,
            collector.keepsCanonicalBase64JSON,
            let declaredLength = headers.first(name: "content-length").flatMap({ Int($0) }),
            declaredLength >= Self.minimumBytes
        else { return nil }
        self.plan = plan
        self.declaredLength = declaredLength
        self.limits = services.limits
        self.dispatcher = services.dispatcher
        self.eventLoop = eventLoop
    }

    /// Whether a runner request is under way.
    var isRelaying: Bool {
        if case .relaying = phase { return true }
        return false
    }

    /// The next chunk of the client's body (after the collector took it).
    func received(_ chunk: ByteBuffer) {
        let offset = received
        received += chunk.readableBytes
        switch phase {
        case .off:
            return
        case .scanning:
            window.writeImmutableBuffer(chunk)
            switch RelayPrefixScanner.scan(window.readableBytesView) {
            case .needMore:
                if window.readableBytes >= Self.windowBytes || received >= declaredLength { stop() }
            case .none:
                stop()
            case .found(let start, let closer):
                begin(start: start, closer: closer)
            }
        case .relaying(let relaying):
            forward(chunk, at: offset, relaying)
        }
    }

    private func stop() {
        phase = .off
        window = ByteBuffer()
    }

    /// Starts the runner request for a blob whose base64 begins at `start`.
    private func begin(start: Int, closer: [UInt8]) {
        defer { window = ByteBuffer() }
        let length = declaredLength - start - closer.count
        // Canonical base64 comes in whole quanta of four.
        guard length >= Self.minimumBytes, length % 4 == 0 else { return stop() }
        var synthetic = ByteBufferAllocator().buffer(capacity: start + Self.placeholderBytes + closer.count)
        synthetic.writeBytes(window.readableBytesView.prefix(start))
        synthetic.writeRepeatingByte(UInt8(ascii: "A"), count: Self.placeholderBytes)
        synthetic.writeBytes(closer)
        guard let inputs = try? RESTTriggerBody.decode(json: synthetic, limits: limits, keepCanonicalBase64: true)
        else { return stop() }
        var provisional = plan.makeRequest(inputs: inputs)
        guard let split = BackendHTTPBody.streamed(request: provisional).aroundOnlyBlob,
            split.blob.readableBytes == Self.placeholderBytes
        else { return stop() }
        let body = RelayedBody(
            count: split.before.readableBytes + length + split.after.readableBytes, head: split.before)
        provisional.relayedBody = body
        let cancellation = TriggerCancellation()
        let call = dispatcher.runSync(provisional, target: plan.target, on: eventLoop, cancellation: cancellation)
        // The call ended before the body did (refused, failed, answered early): stop queueing bytes for it.
        call.whenComplete { _ in body.fail() }
        let relaying = Relaying(
            body: body, start: start, end: start + length, before: split.before, after: split.after,
            provisional: provisional, call: call, cancellation: cancellation)
        phase = .relaying(relaying)
        // The blob's bytes received so far are in the window.
        if received > start {
            forward(window.getSlice(at: start, length: min(received, relaying.end) - start)!, at: start, relaying)
        }
    }

    /// Queues the part of `chunk` (the body's bytes from `offset`) that is the blob's.
    private func forward(_ chunk: ByteBuffer, at offset: Int, _ relaying: Relaying) {
        let from = max(offset, relaying.start)
        let to = min(offset + chunk.readableBytes, relaying.end)
        guard from < to else { return }
        relaying.body.append(chunk.getSlice(at: chunk.readerIndex + from - offset, length: to - from)!)
    }

    /// What the frontend does once the whole body was parsed into `request`.
    enum Outcome {
        /// The runner request sent ahead is this request: its answer is `call`'s.
        case relayed(EventLoopFuture<TriggerResult>, TriggerCancellation)
        /// Serve `request` the ordinary way (the runner request sent ahead, if any, was aborted).
        case ordinary
    }

    /// Compares the request the whole body made with the one sent ahead and completes that one when they are
    /// the same; `gatheredAddress` is where the collector gathered the body (`gatheredStorageAddress`, read
    /// before the body was parsed), so the blob is known to be the very bytes that were relayed.
    func finish(_ request: TriggerRequest, gatheredAddress: UInt?) -> Outcome {
        guard case .relaying(let relaying) = phase else { return .ordinary }
        phase = .off
        // The call ended before the body did: the runner answered early (a 200, or a 400/413 from a proxy or
        // auth layer in front of it) or its connection failed mid-body. That request was made, and it stays
        // this request's only one: sending the body again could run the pipeline twice (README, backend
        // pools: "a call that may have run is not retried"), so the client gets that call's outcome.
        if relaying.body.isEnded { return .relayed(relaying.call, relaying.cancellation) }
        var sameFields = request
        sameFields.inputs = relaying.provisional.inputs
        sameFields.relayedBody = relaying.body
        guard sameFields == relaying.provisional, let gatheredAddress,
            let split = BackendHTTPBody.streamed(request: request).aroundOnlyBlob,
            split.blob.readableBytes == relaying.end - relaying.start,
            split.blob.withUnsafeReadableBytes({ UInt(bitPattern: $0.baseAddress) })
                == gatheredAddress + UInt(relaying.start),
            split.before == relaying.before, split.after == relaying.after
        else {
            abort(relaying)
            return .ordinary
        }
        relaying.body.complete(tail: relaying.after)
        return .relayed(relaying.call, relaying.cancellation)
    }

    /// Gives the runner request up (the body failed, or the client went away).
    func abort() {
        if case .relaying(let relaying) = phase { abort(relaying) }
        phase = .off
    }

    private func abort(_ relaying: Relaying) {
        // Cancelled first: the connection's close is then the caller's doing, not the endpoint's failure.
        relaying.cancellation.cancel()
        relaying.body.fail()
    }
}

/// Finds where the base64 of a body's first data URI starts, in the body's first bytes (`HTTP1BodyRelay`).
enum RelayPrefixScanner {
    enum Result: Equatable {
        /// Not decided within these bytes.
        case needMore
        /// Not of the shape (brackets that do not nest).
        case none
        /// The base64 starts at `start`; the body ends with `closer` if the blob is its last value.
        case found(start: Int, closer: [UInt8])
    }

    /// Scans `bytes` (a body's beginning) for the first string that starts with `data:` and has `;base64,`
    /// within its first 256 bytes and does not end within `bytes`; strings that end are skipped (a small
    /// data URI before the large one). `closer` is the closing quote and the brackets that close what is
    /// open at the blob. The JSON itself is not validated here: the body's ordinary parse does that.
    static func scan<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes) -> Result where Bytes.Index == Int {
        let marker = Array(";base64,".utf8)
        let dataPrefix = Array("data:".utf8)
        var stack: [UInt8] = []
        var i = bytes.startIndex
        let end = bytes.endIndex
        func matches(_ pattern: [UInt8], at index: Int) -> Bool {
            guard index + pattern.count <= end else { return false }
            for (k, byte) in pattern.enumerated() where bytes[index + k] != byte { return false }
            return true
        }
        while i < end {
            switch bytes[i] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                stack.append(bytes[i])
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard !stack.isEmpty else { return .none }
                stack.removeLast()
            case UInt8(ascii: "\""):
                let content = i + 1
                if content + dataPrefix.count > end { return .needMore }
                if matches(dataPrefix, at: content) {
                    var k = content + dataPrefix.count
                    let limit = min(end, content + 256)
                    while k < limit, bytes[k] != UInt8(ascii: "\""), bytes[k] != UInt8(ascii: "\\") {
                        if matches(marker, at: k) {
                            let start = k + marker.count
                            // A data URI that ends within these bytes is not the large one.
                            var j = start
                            while j < end, bytes[j] != UInt8(ascii: "\""), bytes[j] != UInt8(ascii: "\\") { j += 1 }
                            if j == end {
                                let closer =
                                    [UInt8(ascii: "\"")]
                                    + stack.reversed().map {
                                        $0 == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                                    }
                                return .found(start: start - bytes.startIndex, closer: closer)
                            }
                            break
                        }
                        k += 1
                    }
                    if k == end { return .needMore }
                }
                // Skip the string.
                var j = content
                while j < end, bytes[j] != UInt8(ascii: "\"") {
                    j += bytes[j] == UInt8(ascii: "\\") ? 2 : 1
                }
                if j >= end { return .needMore }
                i = j
            default:
                break
            }
            i += 1
        }
        return .needMore
    }
}
