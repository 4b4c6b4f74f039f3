import NIOCore
import Synchronization
import WireCodecs

/// Takes a streamed answer's next item on the backend connection's loop (``HTTPBackendConnection/pullOnLoop(to:)``):
/// how the loop-native ``HTTPBackendStreamSource`` pulls, with no promise and no callback made per event (issue 11:
/// they were ~10 % of an SSE event's relay, a future's deinit alone ~1 k instructions). Called at most once per pull,
/// possibly inside it (an item already decoded).
protocol HTTPBackendStreamReceiver: AnyObject {
    func receive(_ item: Result<HTTPBackendStreamItem?, any Error>)
}

/// The event-loop side of one streamed answer from an HTTP backend: decodes SSE as the body arrives and
/// hands events to the consumer one `pull` at a time.
///
/// Decoded events wait in `pending`; that queue only ever holds what one socket read produced, because a
/// new read is asked for (`pull` returns true, or `wantsMore` in `channelReadComplete`) only while the
/// consumer is waiting and nothing is pending. A response that is not `text/event-stream` (an error status,
/// or a backend that answered a plain JSON result) is gathered whole, bounded by `maxResponseBytes`.
final class HTTPBackendSSEReader {
    private var decoder: SSEDecoder
    private let maxResponseBytes: Int
    private var pending = CircularBuffer<HTTPBackendStreamItem>()
    /// Who waits for the next item: the async consumer's promise or the loop-native source.
    private enum Waiter {
        case promise(EventLoopPromise<HTTPBackendStreamItem?>)
        case receiver(any HTTPBackendStreamReceiver)

        func complete(_ result: Result<HTTPBackendStreamItem?, any Error>) {
            switch self {
            case .promise(let promise): promise.completeWith(result)
            case .receiver(let receiver): receiver.receive(result)
            }
        }
    }
    private var waiter: Waiter?
    /// Set from the response head; nil until it arrived.
    private var whole: HTTPBackendResponse?
    /// The body of `whole`, gathered as it arrives (linear: see `BodyGatherer`).
    private var wholeBody = BodyGatherer()
    private var isEventStream = false
    private var sawHead = false
    private(set) var ended = false
    private var keepAlive = false
    private var failure: (any Error)?
    /// Told of each read that brought SSE comments (keep-alives) from the runner.
    private let progress: StreamProgress?

    init(maxResponseBytes: Int, maxEventBytes: Int, progress: StreamProgress? = nil) {
        self.decoder = SSEDecoder(maxEventBytes: maxEventBytes)
        self.maxResponseBytes = maxResponseBytes
        self.progress = progress
    }

    /// Where a non-SSE answer's body is gathered (tests: linear gathering, see `BodyGatherer`).
    var gatheredStorageAddress: UInt? { wholeBody.storageAddress }

    /// The consumer waits and nothing decoded is pending: the connection should read further.
    var wantsMore: Bool { waiter != nil && pending.isEmpty && !ended && failure == nil }

    /// The response fully arrived on a keep-alive connection with nothing left over.
    var reusable: Bool { ended && keepAlive && failure == nil && waiter == nil }

    /// Registers the consumer's wait; true when the caller must issue a read to make progress.
    func pull(_ promise: EventLoopPromise<HTTPBackendStreamItem?>) -> Bool {
        pull(.promise(promise))
    }

    /// ``pull(_:)`` for the loop-native source: `receiver` is told at once when an item is ready.
    func pull(to receiver: any HTTPBackendStreamReceiver) -> Bool {
        pull(.receiver(receiver))
    }

    private func pull(_ next: Waiter) -> Bool {
        precondition(waiter == nil, "one pull at a time")
        if let item = pending.popFirst() {
            next.complete(.success(item))
            return false
        }
        if let failure {
            next.complete(.failure(failure))
            return false
        }
        if ended {
            next.complete(.success(nil))
            return false
        }
        waiter = next
        return true
    }

    /// One part of the response (interim 1xx heads were dropped by the decoder).
    func receive(_ part: HTTP1ResponseDecoder.Part) throws {
        switch part {
        case .head(let head):
            sawHead = true
            keepAlive = head.keepAlive
            let contentType = head.first(name: "content-type")
            isEventStream =
                (200..<300).contains(head.status)
                && contentType.map { MediaType.parse($0).type } == SSEEncoder.contentType
            if !isEventStream {
                wholeBody.restart(expectedLength: head.contentLength.map { min($0, maxResponseBytes) })
                whole = HTTPBackendResponse(
                    status: head.status,
                    body: ByteBuffer(),
                    keepAlive: keepAlive
                )
            }
        case .body(let chunk):
            guard sawHead else { return }
            if isEventStream {
                let comments = decoder.comments
                for event in try decoder.feed(chunk) {
                    deliver(.event(name: event.event, data: event.data))
                }
                if decoder.comments != comments { progress?.record() }
            } else if whole != nil {
                guard wholeBody.count + chunk.readableBytes <= maxResponseBytes else {
                    throw HTTPBackendClientHandler.Failure.responseTooLarge(maxResponseBytes)
                }
                wholeBody.append(chunk)
            }
        case .end:
            guard sawHead else { return }
            ended = true
            if var whole {
                self.whole = nil
                whole.body = wholeBody.take()
                deliver(.response(whole))
            }
            if let waiter, pending.isEmpty {
                self.waiter = nil
                waiter.complete(.success(nil))
            }
        case .needMoreBytes:
            break  // never handed here: the connection's read loop stops at it
        }
    }

    func fail(_ error: any Error) {
        guard !ended, failure == nil else { return }
        failure = error
        if let waiter {
            self.waiter = nil
            waiter.complete(.failure(error))
        }
    }

    private func deliver(_ item: HTTPBackendStreamItem) {
        if let waiter {
            self.waiter = nil
            waiter.complete(.success(item))
        } else {
            pending.append(item)
        }
    }
}

@available(*, unavailable)
extension HTTPBackendSSEReader: Sendable {}

/// The last time a streamed answer showed the runner alive without an event (an SSE comment), written on the
/// backend connection's loop and read by the frontend's relay on another (``TriggerEventSource/lastProgress``):
/// hence an atomic, uptime nanoseconds, 0 for never.
final class StreamProgress: Sendable {
    private let nanoseconds = Atomic<UInt64>(0)

    func record(_ now: NIODeadline = .now()) {
        nanoseconds.store(now.uptimeNanoseconds, ordering: .relaxed)
    }

    var last: NIODeadline? {
        let value = nanoseconds.load(ordering: .relaxed)
        return value == 0 ? nil : .uptimeNanoseconds(value)
    }
}
