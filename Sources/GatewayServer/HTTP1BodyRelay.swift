import NIOCore
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The streaming relay of a large upload to an http runner (issue 12): the runner request starts
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
/// Each piece of the client's base64 is checked against the standard alphabet as it arrives: a bad one cuts
/// the runner request off at once, and the end-of-body parse does not check those bytes again
/// (`checkedBase64(gatheredAddress:)`). Nothing is trusted before the whole body is in: the runner gets everything
/// but the request's last bytes until the body was parsed and validated the ordinary way (`RESTBodyCollector`), and the request
/// this makes is rendered again and compared with the one sent ahead (the text around the blob, the blob's
/// place in the gathered body, the transport fields). Only when they are the same are the last bytes sent;
/// otherwise (bad base64, a body of another shape, the client gone) the runner request is aborted (its
/// connection closed mid-body: the runner never sees a whole request) and the request goes on, or fails,
/// the ordinary way. Loop-confined: used by one `HTTP1FrontendHandler` on its event loop.
///
/// A `multipart/form-data` trigger body (a file upload, `curl -F`) is relayed the same way: the multipart
/// decoder hands the first file part's bytes over as it finds them (`MultipartFileObserver`), and they are
/// base64-encoded here, three bytes to four characters, into the data URI the runner's JSON carries. The
/// runner request's length must be known before its head goes out; it is derived from the client's
/// `Content-Length`, assuming the file is the body's last part followed by the usual close delimiter
/// (`MultipartFileStart.closingBytes`): a body of another shape shows as a part of another length, and the
/// request sent ahead is cut off. Why not `Transfer-Encoding: chunked` to the runner, which needs no length:
/// runners are not all full HTTP/1.1 servers (Python's `http.server` and WSGI's reference server read
/// `Content-Length` only), every runner request so far carried a `Content-Length` (API.md §5), and a body
/// whose length is not what was derived is served the ordinary way anyway.
final class HTTP1BodyRelay {
    /// Bodies (their declared length) and blobs (their base64 bytes, a file's bytes) smaller than this are not
    /// relayed: the store-and-forward time of a smaller body is below a millisecond or two.
    static let minimumBytes = 1 << 20
    /// How much of the body's beginning is looked at for the blob's start.
    static let windowBytes = 64 << 10
    /// The placeholder blob the runner request is first rendered with: larger than the thresholds that keep a
    /// blob as its canonical text (`JSONValueCodec`) and send it as a piece of its own (`StreamedJSONBody`).
    static let placeholderBytes = 128 << 10
    /// Back-pressure from a runner slower than its client: past `queueHighWater` bytes queued for the runner
    /// (and not yet taken by its connection), the client's connection is not read until the runner has taken
    /// the queue down to `queueLowWater`. So the relay holds a window, not the body, on top of what the
    /// collector gathers. A runner that takes nothing for the body-progress timeout (`timeouts.body_progress`)
    /// makes the client's body stall that long: 408, as for a client that stopped sending.
    static let queueHighWater = 1 << 20
    static let queueLowWater = 256 << 10

    private enum Phase {
        /// JSON: looking for the blob's start in the body's first bytes.
        case scanning
        /// Multipart: waiting for the first file part (`MultipartFileObserver`).
        case awaitingFile
        case relaying(Relaying)
        /// Not relayed (not of the shape, or given up): the ordinary path serves the request.
        case off
    }

    /// Where the relayed blob comes from.
    private enum Source {
        /// The client's base64 text: offsets of its first byte and of the byte after its last in the body.
        case base64Text(start: Int, end: Int)
        /// A multipart file part of `count` bytes, encoded here.
        case file(count: Int)
    }

    private struct Relaying {
        let body: RelayedBody
        let source: Source
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
    /// The frontend's clock: a relayed call's pool `request_timeout` counts from the relay's start, when the
    /// runner begins to receive the body (`RequestContext.poolTimeout`), not from the body's end.
    private let clock: @Sendable () -> NIODeadline
    private let eventLoop: any EventLoop
    /// The client's connection, whose reading stops while the runner is behind (`queueHighWater`).
    private let channel: any Channel
    private var readingPaused = false
    private var phase: Phase
    /// The body's first bytes (JSON, while scanning).
    private var window = ByteBuffer()
    /// Bytes of the body received so far.
    private var received = 0
    /// A relayed file's bytes seen so far, the last 0–2 of them not encoded yet (base64 takes three at a
    /// time), and where the decoder kept the whole file once its part ended.
    private var fileBytesSeen = 0
    private var fileCarry: (count: Int, bytes: (UInt8, UInt8)) = (0, (0, 0))
    private var fileStorageAddress: UInt?
    /// The encoded file's chunks of a read's size, reused once the runner's connection has written them (a
    /// buffer is taken again only when this pool holds its one reference). Fresh ~86 KiB buffers per 64 KiB read
    /// made malloc hand back memory the kernel had taken back: ~1 800 page faults per 32 MiB file, a tenth of
    /// the gateway's CPU per upload (perf, bench/README "Thirty-fourth session"). Only chunks of at least
    /// `pooledChunkMinimum` encoded bytes use it: its buffers are all of one capacity (128 KiB once NIO rounds
    /// it up), and the back-pressure bound counts bytes queued, not capacity, so a client sending its file in
    /// small segments to a slow runner must not make each of them hold one (a review's finding: 4-byte chunks
    /// in 128 KiB buffers). Made at the first such chunk, let go when the file ends or the relay is given up.
    private var fileChunks: NIOPooledRecvBufferAllocator?
    /// A read's worth of file bytes (NIO reads are up to 64 KiB) plus a held-back quantum.
    static let fileChunkInputBytes = (64 << 10) + 2
    static let pooledFileChunks = 16
    /// The smallest chunk (encoded bytes) taken from `fileChunks`: at most 2.7× the chunk in a pooled buffer,
    /// what a read of 36 KiB or more encodes to.
    static let pooledChunkMinimum = 48 << 10
    /// What a pooled buffer holds: a read's worth, encoded (NIO rounds the allocation up to 128 KiB).
    static let pooledChunkCapacity = Base64.encodedLength(fileChunkInputBytes)

    /// Whether a file chunk of `encodedBytes` takes a buffer from `fileChunks` (one of a read's size: from
    /// `pooledChunkMinimum` to `pooledChunkCapacity`); any other gets a buffer of its own size.
    static func takesPooledBuffer(encodedBytes: Int) -> Bool {
        encodedBytes >= pooledChunkMinimum && encodedBytes <= pooledChunkCapacity
    }
    /// JSON: the body offset up to which the blob's base64 (from its start) was relayed and found in the
    /// standard alphabet (`forward`).
    private var checkedUpTo = 0

    /// A relay for this request (`declaredLength`: the body's Content-Length), or nil when it is not of the shape
    /// (see the type's documentation). A multipart body's relay must be handed to the collector
    /// (`RESTBodyCollector.observeFileParts`).
    init?(
        use: RESTBodyUse, collector: RESTBodyCollector, declaredLength: Int, services: FrontendServices,
        channel: any Channel
    ) {
        // The cheap checks first: this runs for every request with a body.
        guard case .trigger(let plan) = use, plan.mode == .sync, plan.target?.sendsBlobsAsBase64 == true,
            declaredLength >= Self.minimumBytes
        else { return nil }
        if collector.keepsCanonicalBase64JSON {
            phase = .scanning
        } else if collector.decodesMultipartBatch {
            phase = .awaitingFile
        } else {
            return nil
        }
        self.plan = plan
        self.declaredLength = declaredLength
        self.limits = services.limits
        self.dispatcher = services.dispatcher
        self.clock = services.clock
        self.channel = channel
        self.eventLoop = channel.eventLoop
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
        case .off, .awaitingFile:
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
            if case .base64Text(let start, let end) = relaying.source {
                forward(chunk, at: offset, start: start, end: end, relaying.body)
            }
        }
    }

    private func stop() {
        phase = .off
        window = ByteBuffer()
    }

    /// Starts the runner request for `provisional` (rendered with a placeholder blob) whose blob will be
    /// `blobBase64Bytes` of base64; nil when the request is not text, one large blob, text.
    private func start(
        _ provisional: TriggerRequest, blobBase64Bytes: Int, source: Source,
        split: (StreamedJSONBody) -> (before: ByteBuffer, blob: ByteBuffer, after: ByteBuffer)?
    ) -> Relaying? {
        var provisional = provisional
        guard let split = split(BackendHTTPBody.streamed(request: provisional)),
            split.blob.readableBytes == Self.placeholderBytes
        else { return nil }
        let body = RelayedBody(
            count: split.before.readableBytes + blobBase64Bytes + split.after.readableBytes, head: split.before)
        provisional.relayedBody = body
        let cancellation = TriggerCancellation()
        let call = dispatcher.runSync(provisional, target: plan.target, on: eventLoop, cancellation: cancellation)
        // The call ended before the body did (refused, failed, answered early): stop queueing bytes for it.
        call.whenComplete { _ in body.fail() }
        let relaying = Relaying(
            body: body, source: source, before: split.before, after: split.after, provisional: provisional,
            call: call, cancellation: cancellation)
        phase = .relaying(relaying)
        return relaying
    }

    /// Starts the runner request for a JSON blob whose base64 begins at `start`.
    private func begin(start: Int, closer: [UInt8]) {
        defer { window = ByteBuffer() }
        let length = declaredLength - start - closer.count
        // Canonical base64 comes in whole quanta of four.
        guard length >= Self.minimumBytes, length % 4 == 0 else { return stop() }
        var synthetic = ByteBufferAllocator().buffer(capacity: start + Self.placeholderBytes + closer.count)
        synthetic.writeBytes(window.readableBytesView.prefix(start))
        synthetic.writeRepeatingByte(UInt8(ascii: "A"), count: Self.placeholderBytes)
        synthetic.writeBytes(closer)
        guard let inputs = try? RESTTriggerBody.decode(json: synthetic, limits: limits, keepCanonicalBase64: true),
            let relaying = self.start(
                plan.makeRequest(inputs: inputs, now: clock()), blobBase64Bytes: length,
                source: .base64Text(start: start, end: start + length), split: { $0.aroundOnlyBlob })
        else { return stop() }
        checkedUpTo = start
        // The blob's bytes received so far are in the window.
        if received > start {
            forward(
                window.getSlice(at: start, length: min(received, start + length) - start)!, at: start,
                start: start, end: start + length, relaying.body)
        }
    }

    /// Queues the part of `chunk` (the body's bytes from `offset`) that is the blob's (`start..<end`).
    private func forward(_ chunk: ByteBuffer, at offset: Int, start: Int, end: Int, _ body: RelayedBody) {
        let from = max(offset, start)
        let to = min(offset + chunk.readableBytes, end)
        guard from < to else { return }
        let slice = chunk.getSlice(at: chunk.readerIndex + from - offset, length: to - from)!
        // Not canonical base64 (the ordinary parse will say where): cut the runner request off now, not after
        // the body's last byte. Only the blob's last two characters may be padding.
        let checked = slice.withUnsafeReadableBytes { bytes -> Int? in
            var n = bytes.count
            if to == end {
                while n > 0, bytes.count - n < 2, bytes[n - 1] == UInt8(ascii: "=") { n -= 1 }
            }
            return Base64.isStandardAlphabet(UnsafeRawBufferPointer(rebasing: bytes[..<n])) ? n : nil
        }
        guard let checked else { return abort() }
        if from == checkedUpTo { checkedUpTo = from + checked }
        body.append(slice)
        holdIfBehind(body)
    }

    /// Stops reading the client while the runner is `queueHighWater` bytes behind; reading resumes when its
    /// connection has taken the queue down to `queueLowWater`, or the body ended (completed, or given up:
    /// the ordinary path then reads the rest).
    private func holdIfBehind(_ body: RelayedBody) {
        guard !readingPaused, body.queuedBytes > Self.queueHighWater else { return }
        let loop = eventLoop
        let relay = NIOLoopBound(self, eventLoop: loop)
        guard body.whenDrained(to: Self.queueLowWater, { loop.execute { relay.value.resumeReading() } }) else {
            return
        }
        readingPaused = true
        try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
    }

    private func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        // Turning `autoRead` back on issues the read that was not made.
        try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
    }

    /// The addresses of the gathered JSON body (its storage at `gatheredAddress`, `gatheredStorageAddress`) that
    /// were relayed and found in base64's standard alphabet on the way (`forward`), for the end-of-body parse
    /// not to check them again (`RESTBodyCollector.checkedAlphabet`); nil when not relaying a JSON blob. Should
    /// the parse find the blob elsewhere than these addresses, it checks it whole (and `finish` cuts the runner
    /// request off).
    func checkedBase64(gatheredAddress: UInt?) -> Range<UInt>? {
        guard case .relaying(let relaying) = phase, case .base64Text(let start, _) = relaying.source,
            let gatheredAddress, checkedUpTo > start
        else { return nil }
        return (gatheredAddress + UInt(start))..<(gatheredAddress + UInt(checkedUpTo))
    }

    /// What the frontend does once the whole body was parsed into `request`.
    enum Outcome {
        /// The runner request sent ahead is this request: its answer is `call`'s.
        case relayed(EventLoopFuture<TriggerResult>, TriggerCancellation)
        /// Serve `request` the ordinary way (the runner request sent ahead, if any, was aborted).
        case ordinary
    }

    /// Compares the request the whole body made with the one sent ahead and completes that one when they are
    /// the same; `gatheredAddress` is where the collector gathered a JSON body (`gatheredStorageAddress`, read
    /// before the body was parsed), so the blob is known to be the very bytes that were relayed (a multipart
    /// file: the buffer whose bytes were encoded, `fileEnded`).
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
        // The call under way keeps the deadline it started with: the pool's `request_timeout` counted from the
        // relay's start, where the finished request's would count from now (RequestContext.poolTimeout).
        sameFields.deadline = relaying.provisional.deadline
        sameFields.deadlineIsClients = relaying.provisional.deadlineIsClients
        sameFields.requestTimeoutDeadline = relaying.provisional.requestTimeoutDeadline
        let streamed = BackendHTTPBody.streamed(request: request)
        let split: (before: ByteBuffer, blob: ByteBuffer, after: ByteBuffer)?
        let expectedAddress: UInt?
        let expectedCount: Int
        switch relaying.source {
        case .base64Text(let start, let end):
            split = streamed.aroundOnlyBlob
            expectedAddress = gatheredAddress.map { $0 + UInt(start) }
            expectedCount = end - start
        case .file(let count):
            split = streamed.aroundOnlyBlobBytes
            expectedAddress = fileBytesSeen == count ? fileStorageAddress : nil
            expectedCount = count
        }
        guard sameFields == relaying.provisional, let split, let expectedAddress,
            split.blob.readableBytes == expectedCount,
            split.blob.withUnsafeReadableBytes({ UInt(bitPattern: $0.baseAddress) }) == expectedAddress,
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
        fileChunks = nil
    }
}

extension HTTP1BodyRelay: MultipartFileObserver {
    func fileBegan(_ file: MultipartFileStart) -> Bool {
        guard case .awaitingFile = phase else { return false }
        // Only the first file part is looked at: it is relayed if the body ends right after it.
        phase = .off
        let count = declaredLength - file.dataOffset - file.closingBytes
        guard count >= Self.minimumBytes,
            let inputs = try? file.inputs(ifLastWith: ByteBuffer(repeating: 0, count: Self.placeholderBytes)),
            start(
                plan.makeRequest(inputs: inputs, now: clock()), blobBase64Bytes: Base64.encodedLength(count),
                source: .file(count: count), split: { $0.aroundOnlyBlobBytes }) != nil
        else { return false }
        return true
    }

    func fileBytes(_ bytes: UnsafeRawBufferPointer) {
        guard case .relaying(let relaying) = phase, case .file(let count) = relaying.source else { return }
        fileBytesSeen += bytes.count
        // Longer than the body's length allows for a last part: not of the shape.
        guard fileBytesSeen <= count else { return abort() }
        if fileCarry.count + bytes.count < 3 {
            // Still short of a quantum: hold the bytes back.
            for byte in bytes {
                switch fileCarry.count {
                case 0: fileCarry.bytes.0 = byte
                default: fileCarry.bytes.1 = byte
                }
                fileCarry.count += 1
            }
            return
        }
        let encoded = Base64.encodedLength(fileCarry.count + bytes.count)
        let chunk: ByteBuffer
        if Self.takesPooledBuffer(encodedBytes: encoded) {
            if fileChunks == nil {
                fileChunks = NIOPooledRecvBufferAllocator(
                    capacity: Self.pooledFileChunks,
                    recvAllocator: FixedSizeRecvByteBufferAllocator(capacity: Self.pooledChunkCapacity))
            }
            chunk = fileChunks!.buffer(allocator: channel.allocator) { encodeFileBytes(bytes, into: &$0) }.0
        } else {
            var exact = channel.allocator.buffer(capacity: encoded)
            encodeFileBytes(bytes, into: &exact)
            chunk = exact
        }
        relaying.body.append(chunk)
        holdIfBehind(relaying.body)
    }

    /// Appends the base64 of the held-back bytes and `bytes` to `chunk`, holding back the last 0–2 bytes that do
    /// not make a whole quantum. Precondition: held-back and new bytes are three or more together.
    private func encodeFileBytes(_ bytes: UnsafeRawBufferPointer, into chunk: inout ByteBuffer) {
        var input = bytes
        if fileCarry.count > 0 {
            // Complete the held-back quantum first.
            let need = 3 - fileCarry.count
            let quantum: [UInt8] =
                fileCarry.count == 1
                ? [fileCarry.bytes.0, input[0], input[1]] : [fileCarry.bytes.0, fileCarry.bytes.1, input[0]]
            quantum.withUnsafeBytes { Base64.encode($0, into: &chunk) }
            input = UnsafeRawBufferPointer(rebasing: input[need...])
            fileCarry.count = 0
        }
        let whole = input.count / 3 * 3
        Base64.encode(UnsafeRawBufferPointer(rebasing: input[..<whole]), into: &chunk)
        switch input.count - whole {
        case 1: fileCarry = (1, (input[whole], 0))
        case 2: fileCarry = (2, (input[whole], input[whole + 1]))
        default: break
        }
    }

    func fileEnded(_ body: ByteBuffer) {
        guard case .relaying(let relaying) = phase, case .file(let count) = relaying.source else { return }
        // Shorter than derived: another part or a longer epilogue follows; not of the shape.
        guard fileBytesSeen == count else { return abort() }
        if fileCarry.count > 0 {
            // The last, padded quantum.
            var chunk = ByteBufferAllocator().buffer(capacity: 4)
            let rest: [UInt8] = fileCarry.count == 1 ? [fileCarry.bytes.0] : [fileCarry.bytes.0, fileCarry.bytes.1]
            rest.withUnsafeBytes { Base64.encode($0, into: &chunk) }
            fileCarry.count = 0
            relaying.body.append(chunk)
        }
        fileStorageAddress = body.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        fileChunks = nil
    }
}

/// Finds where the base64 of a body's first data URI starts, in the body's first bytes (`HTTP1BodyRelay`).
package enum RelayPrefixScanner {
    package enum Result: Equatable {
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
    package static func scan<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes) -> Result where Bytes.Index == Int {
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
