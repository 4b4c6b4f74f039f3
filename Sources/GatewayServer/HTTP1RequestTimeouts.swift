import NIOCore

/// Bounds the time an HTTP/1.1 client may take to send a request (issue 10, item 2): its header block
/// within the request-header timeout of its first bytes, and each piece of its body within the
/// body-progress timeout of the previous one. Over either, the client gets 408 with `Connection: close`
/// and the connection closes. Trickling a byte at a time does not help: unlike the keep-alive idle timeout,
/// these count from the start of the head, or the last *decoded* piece of body, not from the last read.
/// The connection handler (`HTTP1FrontendHandler`) feeds the machine its decoder's events and owns the timer.
enum HTTP1RequestTimeouts {
    /// Where the request decoder stands, and which timer that calls for (issue 10, item 2). No I/O and no
    /// clock: it asks its owner to arm or cancel the one timer, and says what a fired timer means.
    ///
    /// Between requests only the keep-alive idle timeout applies. The header timer runs from the first
    /// bytes of a request (bytes read that produced no part by the end of the read) to the end of its
    /// header block; the body
    /// timer runs from the header block to the first piece of body, and again between pieces, to `.end`.
    struct StateMachine {
        enum State: Equatable {
            /// Between requests: the decoder holds no partial request.
            case idle
            case readingHead
            case readingBody
            /// A timer fired: the connection is closing.
            case timedOut
        }

        enum Action: Equatable {
            case none
            case arm(TimeAmount)
            case cancel
        }

        enum OnTimeout: Equatable {
            case none
            /// Answer 408 with `Connection: close`, then close.
            case respondAndClose
            /// A response is already on its way (the frontend answered early): just close.
            case close
        }

        let headerTimeout: TimeAmount
        let bodyTimeout: TimeAmount
        private(set) var state = State.idle
        /// Responses whose head went out and whose end has not: a 408 must not be interleaved with them.
        private var responsesInFlight = 0
        /// The request being read was already answered (an early error such as 413): no 408 after that.
        private var answeredCurrent = false
        /// Bytes were read and no request part has been decoded since.
        private var undecodedBytes = false

        init(headerTimeout: TimeAmount, bodyTimeout: TimeAmount) {
            self.headerTimeout = headerTimeout
            self.bodyTimeout = bodyTimeout
        }

        /// Bytes arrived from the socket (before the decoder saw them).
        mutating func receivedBytes() {
            undecodedBytes = true
        }

        /// A read ended. Bytes that decoded into nothing while no request was open began a header block.
        mutating func readCompleted() -> Action {
            guard state == .idle, undecodedBytes else { return .none }
            state = .readingHead
            return .arm(headerTimeout)
        }

        mutating func receivedHead() -> Action {
            undecodedBytes = false
            guard state != .timedOut else { return .none }
            answeredCurrent = false
            state = .readingBody
            return .arm(bodyTimeout)
        }

        mutating func receivedBody() -> Action {
            undecodedBytes = false
            guard state == .readingBody else { return .none }
            return .arm(bodyTimeout)
        }

        mutating func receivedEnd() -> Action {
            undecodedBytes = false
            guard state != .timedOut else { return .none }
            state = .idle
            return .cancel
        }

        /// A response head (not a 1xx) was written.
        mutating func sentResponseHead() {
            responsesInFlight += 1
            if state == .readingBody { answeredCurrent = true }
        }

        mutating func sentResponseEnd() {
            responsesInFlight = max(0, responsesInFlight - 1)
        }

        mutating func timeoutFired() -> OnTimeout {
            switch state {
            case .idle, .timedOut:
                return .none
            case .readingHead, .readingBody:
                let answered = responsesInFlight > 0 || (state == .readingBody && answeredCurrent)
                state = .timedOut
                return answered ? .close : .respondAndClose
            }
        }
    }
}
