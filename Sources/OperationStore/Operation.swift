package import FoundationEssentials
package import TriggerModel

/// One durable async trigger: the request as accepted, where it is in its life, and its result or error.
///
/// Stores hand out `Operation`s as snapshots; changing one changes nothing in the store. All timestamps
/// have millisecond precision (what the stores keep), so an operation read back equals the one returned
/// by `enqueue`.
package struct Operation: Sendable, Equatable {
    /// Random, URL-safe (26 characters of lowercase Crockford base32, 130 bits).
    package var id: String
    package var ref: PipelineRef
    package var state: OperationState
    /// The request as accepted; `deadline` is not kept (it is a monotonic instant of the accepting process).
    package var request: TriggerRequest
    /// Set when `state == .succeeded`.
    package var result: TriggerResult?
    /// Set when `state == .failed`; on a `queued` operation it is the last failed attempt's error.
    package var error: GatewayError?
    package var createdAt: Date
    /// When the first run that reached a runner was claimed; a later attempt (a retry, a run cut and taken again)
    /// keeps it, so `finishedAt − startedAt` is the whole time the operation was being run (README "Async runs").
    /// A claim handed back because its call reached no runner (`release(…, callMade: false)`) takes it back when
    /// no earlier run reached one: nil again until a run does (review 23, M1).
    package var startedAt: Date?
    package var finishedAt: Date?
    /// Backend calls made, the one in progress included (so 1 during the first run): claims, less those handed
    /// back because their call reached no runner (`release(…, callMade: false)`).
    package var attempts: Int
    /// Of `attempts`, the runs the gateway itself cut and handed back (a graceful stop: `release(…, callMade:
    /// true)`): calls made that the attempt limit does not hold against the operation.
    package var cutRuns: Int
    package var leaseOwner: String?
    package var leaseExpiresAt: Date?
    /// Only in a `claim`'s answer: the owner of the lease this claim took over, when the operation was `running`
    /// under a lease that had expired (its run's instance died or lost the store mid-run, so the pipeline may run
    /// a second time); nil for an operation claimed from `queued`, and in every other answer.
    package var takenOverFrom: String?
    /// Only in a store's answer, never stored: set when the request's stored input files are missing (a data
    /// directory restored from a copy that lacks them, a file removed by hand: `.dataLoss`, naming the file).
    /// `request` then has those binaries empty, so the operation can be shown, listed and cancelled but not run: a
    /// dispatcher that claims it fails it with this error instead of calling a runner (review 27, H1: one such row
    /// made every claim fail, and so stopped the whole queue).
    package var lostInput: GatewayError?
    /// A queued operation is not claimed before this instant (retry backoff).
    package var notBefore: Date
    package var idempotencyKey: String?
    /// Lowercase hex SHA-256 of the canonical form of `ref` and the inputs (see `OperationPayloadCodec`) when the
    /// operation has an `idempotencyKey`; empty without one. It is only ever compared to tell a retry with the same
    /// key and body from a conflicting reuse of the key (`NewOperation.idempotentAnswer`), so an operation without a
    /// key is not hashed (a SHA-256 over the inputs was ~4 % of an accepted operation's instructions, issue 12).
    package var requestDigest: String

    package init(
        id: String,
        ref: PipelineRef,
        state: OperationState,
        request: TriggerRequest,
        result: TriggerResult? = nil,
        error: GatewayError? = nil,
        createdAt: Date,
        startedAt: Date? = nil,
        finishedAt: Date? = nil,
        attempts: Int = 0,
        cutRuns: Int = 0,
        leaseOwner: String? = nil,
        leaseExpiresAt: Date? = nil,
        takenOverFrom: String? = nil,
        notBefore: Date,
        idempotencyKey: String? = nil,
        requestDigest: String
    ) {
        self.id = id
        self.ref = ref
        self.state = state
        self.request = request
        self.result = result
        self.error = error
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.attempts = attempts
        self.cutRuns = cutRuns
        self.leaseOwner = leaseOwner
        self.leaseExpiresAt = leaseExpiresAt
        self.takenOverFrom = takenOverFrom
        self.notBefore = notBefore
        self.idempotencyKey = idempotencyKey
        self.requestDigest = requestDigest
    }

    /// The attempts the attempt limit counts: `attempts` less the runs the gateway cut itself (`cutRuns`).
    package var countedAttempts: Int { max(attempts - cutRuns, 0) }

    /// `operations/<id>`: the name clients see.
    package var name: String { "operations/\(id)" }

    /// A new random id: 26 characters of Crockford's base-32 alphabet (no i, l, o, u: readable, URL-safe,
    /// case-insensitive) carrying 128 bits from the system's generator (`BufferedSystemRandom`: ids must be
    /// unguessable, see there).
    package static func makeID() -> String {
        var high = BufferedSystemRandom.next()
        var low = BufferedSystemRandom.next()
        return String(unsafeUninitializedCapacity: 26) { out in
            for i in 0..<26 {
                out[i] = idAlphabet[Int(low & 31)]
                low = (low >> 5) | ((high & 31) << 59)
                high >>= 5
            }
            return 26
        }
    }

    private static let idAlphabet: [UInt8] = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)
}
