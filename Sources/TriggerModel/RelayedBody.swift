package import NIOCore
import Synchronization

/// The body of a runner request whose bytes are still arriving from the client (issue 12, the streaming
/// relay): the HTTP/1.1 frontend hands an http runner the client's canonical base64 as it comes, instead of
/// receiving the whole body before the first byte goes out.
///
/// One producer (the frontend) appends bytes and ends the body with `complete(tail:)` only once the client's
/// whole body was received and validated; until then the runner has fewer than `count` bytes, so it cannot
/// have run anything. A body that fails validation (or whose client went away) is `fail`ed: the connection
/// carrying it is closed mid-body, which a runner must treat as an aborted request (RFC 9112 §8: a message
/// whose body is shorter than its `Content-Length` is incomplete).
///
/// One consumer (the backend connection writing it) takes the bytes in order with `next(whenReady:)`. Bytes
/// handed out are not kept, so the body cannot be sent twice: a second consumer gets ``Failure/replayed``.
package final class RelayedBody: Sendable {
    /// Why a relayed body was not sent whole.
    package enum Failure: Error, Equatable {
        /// The frontend gave the body up (validation, the client gone); the runner request is aborted.
        case aborted
        /// A second send of the same body (a retry): its first bytes are gone.
        case replayed
    }

    /// What the consumer gets from `next(whenReady:)`.
    package enum Next {
        case bytes(ByteBuffer)
        /// Nothing queued yet; `whenReady` runs (once, on the producer's thread) when that changes.
        case wait
        /// Every byte was handed out.
        case end
        case failed(any Error)
    }

    private struct State {
        var queue = CircularBuffer<ByteBuffer>()
        var queuedBytes = 0
        var handedOut = 0
        var complete = false
        var failure: (any Error)?
        var consumerClaimed = false
        var wake: (@Sendable () -> Void)?
        /// The producer's wait for the queue to drain (`whenDrained`).
        var drained: (lowWater: Int, resume: @Sendable () -> Void)?

        /// Takes the producer's resume when the queue is at its low-water mark or the body ended.
        mutating func takeResumeIfDrained() -> (@Sendable () -> Void)? {
            guard let drained, queuedBytes <= drained.lowWater || complete || failure != nil else { return nil }
            self.drained = nil
            return drained.resume
        }
    }

    /// Bytes of the whole body (the runner request's `Content-Length`), known before the first one.
    package let count: Int
    private let state = Mutex(State())

    /// A body of `count` bytes whose first bytes are `head`.
    package init(count: Int, head: ByteBuffer) {
        self.count = count
        state.withLock { state in
            state.queue.append(head)
            state.queuedBytes = head.readableBytes
        }
    }

    /// Bytes queued and not yet taken by the consumer (for a producer that wants to bound them).
    package var queuedBytes: Int { state.withLock { $0.queuedBytes } }

    /// Asks to be told when the consumer has taken the queue down to `lowWater` bytes, or the body ended:
    /// `resume` runs once, on the thread that made it so (the consumer's, or the one ending the body). A
    /// producer that stops reading its source meanwhile keeps the queue bounded by its window instead of by
    /// the body when the consumer is the slower (a runner reading slowly). Returns false, and drops
    /// `resume`, when that is so already: the producer goes on. One wait at a time.
    package func whenDrained(to lowWater: Int, _ resume: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state in
            guard state.queuedBytes > lowWater, !state.complete, state.failure == nil else { return false }
            precondition(state.drained == nil, "one drain wait at a time")
            state.drained = (lowWater, resume)
            return true
        }
    }

    /// Whether `complete` or `fail` ended the body.
    package var isEnded: Bool { state.withLock { $0.complete || $0.failure != nil } }

    /// Chunks under this many bytes are written into the queue's last buffer while that one is under it too.
    package static let coalescingBytes = 16 << 10

    /// Queues the next bytes of the body (before its tail). A small chunk (under `coalescingBytes`) goes into
    /// the queue's last buffer when that one is small too: the producer's back-pressure (`queuedBytes`) counts
    /// bytes, and a client sending a few bytes per TCP segment made one chunk per read, each a buffer of ~100
    /// bytes for its few (or a slice holding the whole read buffer), so a queue at its bytes' limit held many
    /// times that in memory. The last buffer is the queue's alone until the consumer takes it: written in place,
    /// or copied once if it is a slice of something else.
    package func append(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        let wake = state.withLock { state -> (@Sendable () -> Void)? in
            guard !state.complete, state.failure == nil else { return nil }
            if bytes.readableBytes < Self.coalescingBytes, let last = state.queue.indices.last,
                state.queue[last].readableBytes < Self.coalescingBytes
            {
                state.queue[last].writeImmutableBuffer(bytes)
            } else {
                state.queue.append(bytes)
            }
            state.queuedBytes += bytes.readableBytes
            defer { state.wake = nil }
            return state.wake
        }
        wake?()
    }

    /// Queues the last bytes and ends the body. Precondition: everything appended plus `tail` is `count` bytes.
    package func complete(tail: ByteBuffer) {
        let wake = state.withLock { state -> (@Sendable () -> Void)? in
            guard !state.complete, state.failure == nil else { return nil }
            precondition(state.handedOut + state.queuedBytes + tail.readableBytes == count, "relayed body length")
            if tail.readableBytes > 0 {
                state.queue.append(tail)
                state.queuedBytes += tail.readableBytes
            }
            state.complete = true
            defer { state.wake = nil }
            return state.wake
        }
        wake?()
        state.withLock { $0.takeResumeIfDrained() }?()
    }

    /// Ends the body unfinished: the consumer gets `error` and aborts its request. No effect once complete.
    package func fail(_ error: any Error = Failure.aborted) {
        let wake = state.withLock { state -> (@Sendable () -> Void)? in
            guard !state.complete, state.failure == nil else { return nil }
            state.failure = error
            state.queue.removeAll()
            state.queuedBytes = 0
            defer { state.wake = nil }
            return state.wake
        }
        wake?()
        state.withLock { $0.takeResumeIfDrained() }?()
    }

    /// Claims the body for one consumer; false when another consumer had it already.
    package func claim() -> Bool {
        state.withLock { state in
            defer { state.consumerClaimed = true }
            return !state.consumerClaimed
        }
    }

    /// The next queued bytes (all that is queued, joined into one write by the caller's channel), `.wait`
    /// with `whenReady` kept for the producer's next step, `.end`, or the failure.
    package func next(whenReady: @escaping @Sendable () -> Void) -> Next {
        let (next, resume) = state.withLock { state -> (Next, (@Sendable () -> Void)?) in
            if let failure = state.failure { return (.failed(failure), nil) }
            if !state.queue.isEmpty {
                let bytes = state.queue.removeFirst()
                state.queuedBytes -= bytes.readableBytes
                state.handedOut += bytes.readableBytes
                return (.bytes(bytes), state.takeResumeIfDrained())
            }
            if state.complete { return (.end, nil) }
            state.wake = whenReady
            return (.wait, nil)
        }
        resume?()
        return next
    }
}

extension RelayedBody: Equatable {
    package static func == (lhs: RelayedBody, rhs: RelayedBody) -> Bool { lhs === rhs }
}
