import Logging
import NIOCore
import Observability
import Synchronization
import TriggerModel

/// The request-body bytes the whole process holds buffered (review 24, M1): HTTP/1.1 and HTTP/2 bodies as they
/// are gathered, gRPC messages (decompressed ones at their inflated size), each until its request hands the body
/// on (decoded into the call), fails or ends. `limits.max_buffered_request_bytes` bounds it; a body that would
/// take it past the bound is refused (503 / RESOURCE_EXHAUSTED) instead of growing the heap until the kernel's
/// OOM killer ends every tenant's calls, as Envoy's overload manager refuses new streams near its heap limit.
///
/// One per `GatewayApp`, kept across reloads (a reload changes ``limit`` only: the bytes held are the
/// process's). Requests take their bytes through a ``RequestBufferClaim``, which grows in steps (per body or per
/// doubling of a body, never per DATA frame) and returns them when it ends.
package final class RequestBufferBudget: Sendable {
    private let limitBytes: Atomic<Int>
    private let used = Atomic<Int>(0)
    /// One warning per reason per 10 s at most, with how many were held back (refusals come in floods).
    let refusalLog = FailureLogLimiter(interval: .seconds(10))

    /// The pool of the bodies read before their request is authenticated (``unauthenticated``); nil in that pool.
    private let preAuthentication: RequestBufferBudget?

    /// `limit`: bytes; 0 is no budget (bytes are still counted, for the gauge).
    package init(limit: Int = 0) {
        limitBytes = Atomic(limit)
        preAuthentication = RequestBufferBudget(preAuthenticationLimit: Self.unauthenticatedLimit(for: limit))
    }

    private init(preAuthenticationLimit limit: Int) {
        limitBytes = Atomic(limit)
        preAuthentication = nil
    }

    /// The bound in force, in bytes; 0: none.
    package var limit: Int {
        get { limitBytes.load(ordering: .relaxed) }
        set {
            limitBytes.store(newValue, ordering: .relaxed)
            preAuthentication?.limit = Self.unauthenticatedLimit(for: newValue)
        }
    }

    /// The bodies a route reads before its request is authenticated, because their credential is in them or the
    /// call needs none (Craft AI's `auth/refresh`, Abacus.AI's `version` and `getApiEndpoint`; each capped at
    /// 16 KiB): a pool of their own, so that bodies anyone may send cannot take the budget authenticated requests
    /// need. A claim's first step is 16 KiB whatever its body's size, so 65 536 streams of one byte each took the
    /// whole 1 GiB default for ~5 MB sent (diff review 60, H-1). When this pool is full only those routes are
    /// refused (503). Its bound: 1/64 of the budget (16 MiB by default, 1 024 bodies at once), at least 1 MiB;
    /// 16 MiB when the budget has no bound.
    package var unauthenticated: RequestBufferBudget { preAuthentication ?? self }

    private static func unauthenticatedLimit(for limit: Int) -> Int {
        limit == 0 ? 16 << 20 : max(1 << 20, limit / 64)
    }

    /// Bytes claimed now from this budget, every request together (`trigger_gateway_request_buffer_bytes`); the
    /// bodies read before authentication count in ``unauthenticated``'s
    /// (`trigger_gateway_request_buffer_unauthenticated_bytes`).
    package var bufferedBytes: Int { used.load(ordering: .relaxed) }

    /// Adds between `minimum` and `preferred` bytes (`minimum` ≤ `preferred`), as many as the bound leaves room
    /// for; nil, adding nothing, when not even `minimum` fits.
    func reserve(minimum: Int, preferred: Int) -> Int? {
        let limit = limitBytes.load(ordering: .relaxed)
        guard limit > 0 else {
            used.add(preferred, ordering: .relaxed)
            return preferred
        }
        var current = used.load(ordering: .relaxed)
        while true {
            let room = limit - current
            guard minimum <= room else { return nil }
            let grant = min(preferred, room)
            let (exchanged, original) = used.compareExchange(
                expected: current, desired: current + grant, ordering: .relaxed)
            if exchanged { return grant }
            current = original
        }
    }

    /// Returns bytes ``reserve(minimum:preferred:)`` added.
    func release(_ bytes: Int) {
        used.subtract(bytes, ordering: .relaxed)
    }
}

/// The bytes one request body holds of the ``RequestBufferBudget``: grown with ``hold(_:from:)`` as the body is
/// buffered, returned whole by ``release()`` or, whatever path the request ended on (answered, refused, reset,
/// timed out, its connection gone), by the deinit of the claim's owner (the HTTP/2 stream's state, the REST body
/// reader, the HTTP/1.1 handler): a claim cannot be dropped without returning its bytes.
///
/// A claim follows the bytes received, never a length the client declared (`Content-Length`, a gRPC message's
/// prefix): with declared lengths, 32 streams each declaring 32 MiB and sending one byte took the whole 1 GiB
/// default, and every other client's body was refused, for a few hundred bytes sent. Received bytes are what the
/// process holds (a declared length's storage is reserved, but its untouched pages are not resident).
struct RequestBufferClaim: ~Copyable {
    /// Bytes held.
    private(set) var bytes = 0
    /// The budget they came from (set by the first hold).
    private var budget: RequestBufferBudget?

    /// Growth steps: a body claims at least this much more each time it outgrows its claim (one atomic per step,
    /// not per DATA frame; one HTTP/2 DATA frame at the default SETTINGS_MAX_FRAME_SIZE, so a stream that sent a
    /// byte holds no more than its state costs anyway) ...
    static let minimumStep = 16 << 10
    /// ... a quarter of what it holds between the two (so a claim overstates its body by a quarter at most, and
    /// a small budget is not taken by one body's growth) ... and at most this much more: a 32 MiB body takes about
    /// 150 steps, against some 2,000 DATA frames.
    static let maximumStep = 256 << 10

    init() {}

    deinit {
        if bytes > 0 { budget?.release(bytes) }
    }

    /// Makes the claim at least `needed` bytes (what the body holds now: bytes received, a decompressed message's
    /// inflated size). False, claiming nothing more, when the budget has no room for them: the caller refuses the
    /// body. Within the claim this is a comparison, no atomic.
    @inline(__always)
    mutating func hold(_ needed: Int, from budget: RequestBufferBudget) -> Bool {
        if needed <= bytes { return true }
        return grow(to: needed, from: budget)
    }

    private mutating func grow(to minimum: Int, from budget: RequestBufferBudget) -> Bool {
        let step = min(max(bytes / 4, Self.minimumStep), Self.maximumStep)
        let preferred = max(minimum, bytes + step)
        guard let granted = budget.reserve(minimum: minimum - bytes, preferred: preferred - bytes) else {
            return false
        }
        if self.budget == nil { self.budget = budget }
        bytes += granted
        return true
    }

    /// Returns the bytes held (the body was handed on or dropped); the claim may grow again after.
    mutating func release() {
        guard bytes > 0 else { return }
        budget?.release(bytes)
        bytes = 0
    }
}

extension FrontendServices {
    /// The error a body refused for the budget gets (503 / RESOURCE_EXHAUSTED).
    static func requestBufferFullError(limit: Int) -> GatewayError {
        GatewayError(
            .requestBufferFull,
            "the gateway is holding its limit of \(limit) bytes of request bodies "
                + "(limits.max_buffered_request_bytes); retry later")
    }

    /// The budget a body takes its bytes from: ``RequestBufferBudget/unauthenticated`` for one read before its
    /// request is authenticated (`RESTBodyCollector.unauthenticated`), else the process's.
    @inline(__always)
    func bodyBudget(unauthenticated: Bool) -> RequestBufferBudget {
        unauthenticated ? requestBuffer.unauthenticated : requestBuffer
    }

    /// A body refused for its budget (``bodyBudget(unauthenticated:)``): counted and logged
    /// (``refusedRequestBody(_:error:peer:)``); the error to answer (503 / RESOURCE_EXHAUSTED).
    func refusedForBudget(unauthenticated: Bool, peer: String?) -> GatewayError {
        guard unauthenticated else {
            let error = Self.requestBufferFullError(limit: requestBuffer.limit)
            refusedRequestBody(.requestBuffer, error: error, peer: peer)
            return error
        }
        let error = GatewayError(
            .requestBufferFull,
            "the gateway is holding its limit of \(requestBuffer.unauthenticated.limit) bytes of request bodies read "
                + "before authentication (1/64 of limits.max_buffered_request_bytes); retry later")
        refusedRequestBody(.unauthenticatedBuffer, error: error, peer: peer)
        return error
    }

    /// A request body refused for `reason`: counted (`trigger_gateway_requests_refused_total{reason}`) and logged
    /// as a warning naming the client (`peer.address`), the first at once and then at most one per 10 s per
    /// reason, saying how many were held back meanwhile and since when (`refusals.held_back_since`).
    func refusedRequestBody(_ reason: RequestBufferMetrics.Refusal, error: GatewayError, peer: String?) {
        metrics?.requestBuffer.refused(reason)
        guard let heldBack = requestBuffer.refusalLog.admitLine(reason.rawValue) else { return }
        var metadata: Logger.Metadata = [
            "peer.address": "\(peer ?? "unknown")",
            "reason": "\(reason.rawValue)",
            "error": "\(error.message)",
        ]
        heldBack.annotate(&metadata, countKey: "refusals.held_back")
        logger.warning("request body refused", metadata: metadata)
    }
}
