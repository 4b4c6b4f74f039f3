package import FoundationEssentials
package import NIOCore
package import TriggerModel

/// The columns both stores keep for an operation, as read from a row, and the one way to turn them into an
/// `Operation` (so the two stores cannot drift apart in how they read).
package struct OperationRow: Sendable {
    /// The store's insertion sequence: list order and page tokens.
    package var sequence: Int64
    package var id: String
    package var state: String
    package var request: ByteBuffer
    package var result: ByteBuffer?
    package var error: ByteBuffer?
    package var createdAt: Int64
    package var startedAt: Int64?
    package var finishedAt: Int64?
    package var attempts: Int
    package var leaseOwner: String?
    package var leaseExpiresAt: Int64?
    package var notBefore: Int64
    package var idempotencyKey: String?
    package var requestDigest: String
    package var cutRuns: Int

    package init(
        sequence: Int64, id: String, state: String, request: ByteBuffer, result: ByteBuffer?, error: ByteBuffer?,
        createdAt: Int64, startedAt: Int64?, finishedAt: Int64?, attempts: Int, leaseOwner: String?,
        leaseExpiresAt: Int64?, notBefore: Int64, idempotencyKey: String?, requestDigest: String, cutRuns: Int
    ) {
        self.sequence = sequence
        self.id = id
        self.state = state
        self.request = request
        self.result = result
        self.error = error
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.attempts = attempts
        self.leaseOwner = leaseOwner
        self.leaseExpiresAt = leaseExpiresAt
        self.notBefore = notBefore
        self.idempotencyKey = idempotencyKey
        self.requestDigest = requestDigest
        self.cutRuns = cutRuns
    }

    /// The column list, in `init` order, both stores select.
    package static let columns = """
        seq, id, state, request, result, error, created_at, started_at, finished_at, attempts, lease_owner, \
        lease_expires_at, not_before, idempotency_key, request_digest, cut_runs
        """

    /// The columns added after the first schema, with their types: each store adds the missing ones at open
    /// (`ALTER TABLE … ADD COLUMN`), so a store made by an earlier gateway gains them, and an earlier gateway
    /// still sharing the store (PostgreSQL) keeps working: it neither names nor needs them.
    /// - `cut_runs`: `Operation.cutRuns` (0 for rows an earlier gateway wrote or released);
    /// - `deployment`: the request's `TriggerRequest.deploymentLabel`, what `OperationFilter.deployment` matches
    ///   (NULL for operations of no deployment, and for those an earlier gateway stored).
    /// - `webhook_due`, `webhook_attempts`, `webhook_owner`: a pending completion webhook (``PendingWebhook``):
    ///   when its next attempt is due (milliseconds; NULL: none pending), the attempts made, and the instance's
    ///   claim that holds it. An earlier gateway never sets them (it delivers from memory only), and a row it
    ///   finishes has none pending.
    package static let addedColumns: [(name: String, definition: String)] = [
        ("cut_runs", "INTEGER NOT NULL DEFAULT 0"),
        ("deployment", "TEXT"),
        ("webhook_due", "BIGINT"),
        ("webhook_attempts", "INTEGER NOT NULL DEFAULT 0"),
        ("webhook_owner", "TEXT"),
    ]

    /// Decodes the payloads; `resolveBlob` gives a spilled blob of this operation by name.
    ///
    /// A request blob `resolveBlob` reports lost (a `GatewayError` with code `.dataLoss`) does not fail the row:
    /// the request is made with that blob empty and the operation's `lostInput` set, so that one lost file fails
    /// its own operation, not every read and claim that returns it. A lost result blob still throws: a result
    /// shown without its binaries would be wrong data, not a missing one.
    package func makeOperation(resolveBlob: @escaping (String) throws -> ByteBuffer) throws -> Operation {
        try makeOperation(resolveBlob: resolveBlob, decodingResult: true)
    }

    /// The row's pending webhook delivery (``OperationStore/claimWebhooks(owner:leaseDuration:limit:now:)``), with
    /// `attempts` made. A result blob `resolveBlob` reports lost does not fail the claim's batch: the delivery comes
    /// back with no result and `lostResult` set, for the dispatcher to drop it alone (its body would be the result
    /// without its binaries). Other errors throw as ``makeOperation(resolveBlob:)``'s.
    package func makePendingWebhook(attempts: Int, resolveBlob: @escaping (String) throws -> ByteBuffer) throws
        -> PendingWebhook
    {
        do {
            return PendingWebhook(operation: try makeOperation(resolveBlob: resolveBlob), attempts: attempts)
        } catch let error as GatewayError where error.code == .dataLoss {
            // Request blobs that are lost are tolerated (`lostInput`), so this one is the result's.
            var pending = PendingWebhook(
                operation: try makeOperation(resolveBlob: resolveBlob, decodingResult: false), attempts: attempts)
            pending.lostResult = error
            return pending
        }
    }

    private func makeOperation(resolveBlob: @escaping (String) throws -> ByteBuffer, decodingResult: Bool) throws
        -> Operation
    {
        guard let state = OperationState(rawValue: state) else {
            throw GatewayError(.internalError, "operation \(id) has an unknown state \(self.state)")
        }
        var lostInput: GatewayError?
        let request = try OperationPayloadCodec.decodeRequest(
            self.request, resolveBlob: resolveBlob, toleratingLostBlobs: true, lost: &lostInput)
        var operation = Operation(
            id: id,
            ref: request.ref,
            state: state,
            request: request,
            result: decodingResult
                ? try result.map { try OperationPayloadCodec.decodeResult($0, resolveBlob: resolveBlob) } : nil,
            error: try error.map { try OperationPayloadCodec.decodeError($0) },
            createdAt: Date(storeMilliseconds: createdAt),
            startedAt: startedAt.map(Date.init(storeMilliseconds:)),
            finishedAt: finishedAt.map(Date.init(storeMilliseconds:)),
            attempts: attempts,
            cutRuns: cutRuns,
            leaseOwner: leaseOwner,
            leaseExpiresAt: leaseExpiresAt.map(Date.init(storeMilliseconds:)),
            notBefore: Date(storeMilliseconds: notBefore),
            idempotencyKey: idempotencyKey,
            requestDigest: requestDigest
        )
        operation.lostInput = lostInput
        return operation
    }
}

/// What a store does before inserting a new operation: one place for id, digest, timestamps and encoding.
package struct NewOperation: Sendable {
    package var operation: Operation
    package var encodedRequest: OperationPayloadCodec.Encoded
    /// Idempotency keys are scoped by principal, so two tenants never collide on (or probe) each other's keys.
    package var idempotencyScope: String?
    package var pipelineKey: String
    /// The `deployment` column: the request's `TriggerRequest.deploymentLabel`.
    package var deployment: String?
}

extension NewOperation {
    /// The new operation of `request`: a fresh id, `now` (to the store's milliseconds) as creation and earliest
    /// run time, the request digest when `idempotencyKey` is given, the request encoded by `codec`.
    ///
    /// In an extension, built through the memberwise initializer from locals (the request moved into the
    /// `Operation` last): assigned field by field in the struct's own `init`, Swift 6.3.1 built it in a stack copy
    /// of `self` and copied that out (an outlined copy of `NewOperation`, and two of `TriggerRequest`, ~2 k
    /// instructions per enqueue; bench/README.md, branch asynccost5; the same as hotpath2's struct inits).
    package init(request: TriggerRequest, idempotencyKey: String?, codec: OperationPayloadCodec, now: Date = Date()) {
        var request = request
        request.deadline = nil
        let created = Date(storeMilliseconds: now.storeMilliseconds)
        let encodedRequest = codec.encode(request, blobPrefix: "q")
        let idempotencyScope = idempotencyKey == nil ? nil : (request.principal ?? "")
        let pipelineKey = OperationFilter.pipelineKey(request.ref)
        let deployment = request.labels[TriggerRequest.deploymentLabel]
        let requestDigest =
            idempotencyKey == nil ? "" : OperationPayloadCodec.digest(ref: request.ref, inputs: request.inputs)
        let ref = request.ref
        self.init(
            operation: Operation(
                id: Operation.makeID(), ref: ref, state: .queued, request: consume request, createdAt: created,
                notBefore: created, idempotencyKey: idempotencyKey, requestDigest: requestDigest),
            encodedRequest: encodedRequest, idempotencyScope: idempotencyScope, pipelineKey: pipelineKey,
            deployment: deployment)
    }
}

extension NewOperation {
    /// This enqueue's answer when its idempotency key names `existing` (created: false), or
    /// `idempotencyConflict` when `existing` was made from another request; nil when the key names none.
    ///
    /// The stored digest takes integers past 2^53 as their nearest double (`OperationPayloadCodec.digest`), so
    /// `9007199254740993`'s is `9007199254740992`'s: when the digests match, the two requests' large integers
    /// (the stored request keeps their digits since 54e6771) must be the same ones at the same places too. A
    /// first enqueue pays nothing for it, and a key reused with another body is refused on the digest alone;
    /// the walk runs only on a match, over values, never hashing blobs again (a stored request whose input files
    /// were lost, `lostInput`, has them empty, and still answers its retry).
    package func idempotentAnswer(existing: Operation?) -> Result<(operation: Operation, created: Bool), any Error>? {
        guard let key = operation.idempotencyKey, let existing else { return nil }
        guard existing.requestDigest == operation.requestDigest,
            Self.largeIntegers(of: existing.request.inputs).elementsEqual(
                Self.largeIntegers(of: operation.request.inputs),
                by: { $0.position == $1.position && $0.value == $1.value })
        else {
            return .failure(OperationStoreErrors.idempotencyConflict(key))
        }
        return .success((existing, false))
    }

    /// The large integers of `inputs`' variables with their places (`Value.appendLargeIntegers(to:position:)`),
    /// counted across the batch.
    private static func largeIntegers(of inputs: [TriggerInput]) -> [(position: Int, value: LargeInteger)] {
        var found: [(position: Int, value: LargeInteger)] = []
        var position = 0
        for input in inputs { input.variables.appendLargeIntegers(to: &found, position: &position) }
        return found
    }
}

extension OperationFilter {
    /// Validates `pipeline` (`namespace/pipeline`, both non-empty).
    package func validatedPipelineKey() throws(GatewayError) -> String? {
        guard let pipeline else { return nil }
        let parts = pipeline.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw OperationStoreErrors.invalidFilter(pipeline)
        }
        return pipeline
    }
}

/// Names result blobs so a late worker's files never overwrite the current owner's.
package enum ResultBlobPrefix {
    package static func make() -> String {
        "r" + Operation.makeID().prefix(8) + "-"
    }
}
