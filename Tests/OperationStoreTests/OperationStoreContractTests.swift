import Foundation
import NIOCore
import OperationStore
import SQLiteOperationStore
import Testing
import TriggerModel

/// The contract every `OperationStore` keeps, run once per implementation.
@Suite("OperationStore contract")
struct OperationStoreContractTests {
    @Test(
        "enqueue then get returns the request byte for byte, with big blobs kept outside the row",
        arguments: StoreKind.allCases)
    func enqueueGetRoundTrip(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let request = Fixtures.richRequest()
            let before = Date()
            let (operation, created) = try await store.enqueue(request, idempotencyKey: nil)
            #expect(created)
            #expect(operation.id.count == 26)
            #expect(operation.state == .queued)
            #expect(operation.attempts == 0)
            #expect(operation.ref == request.ref)
            #expect(abs(operation.createdAt.timeIntervalSince(before)) < 5)
            #expect(operation.notBefore == operation.createdAt)

            var expected = request
            expected.deadline = nil
            #expect(operation.request == expected)

            let fetched = try #require(try await store.get(id: operation.id))
            #expect(fetched == operation)
            let big = try #require(fetched.request.inputs[0].variables["big"]?.blobValue)
            #expect(big.bytes == Fixtures.bytes(1 << 20))
            #expect(big.fileName == "big.bin")
            #expect(fetched.request.inputs[0].variables.keys == request.inputs[0].variables.keys)
            #expect(fetched.request.inputs[0].variables["small"]?.blobValue?.bytes == Fixtures.bytes(10))
            #expect(fetched.request.inputs[0].variables["negativeZero"]?.numberValue?.sign == .minus)
            // Integers past 2^53 keep their digits (`OperationPayloadCodec.largeIntegerDigits`), not the nearest
            // double.
            let variables = fetched.request.inputs[0].variables
            #expect(variables["twoTo53Plus1"]?.int64Value == 9_007_199_254_740_993)
            #expect(variables["uint64Max"] == .integer(UInt64.max))
            #expect(variables["int64Min"]?.int64Value == Int64.min)
            #expect(variables["past64Bits"] == .largeInteger(LargeInteger("-18446744073709551616")!))
            #expect(fetched.request.inputs[0].secrets == ["token": "s3cret", "a": "b"])

            // Only the 1 MiB blob is spilled; the 10-byte and empty ones stay inline.
            #expect(try await harness.blobNames(store, operationID: operation.id).count == 1)

            #expect(try await store.get(id: "nosuchoperation0000000000") == nil)
        }
    }

    @Test("a request with only small blobs keeps them inline", arguments: StoreKind.allCases)
    func smallBlobsInline(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let request = Fixtures.request(blobs: [100, 64 * 1024])
            let (operation, _) = try await store.enqueue(request, idempotencyKey: nil)
            #expect(try await harness.blobNames(store, operationID: operation.id).isEmpty)
            let fetched = try #require(try await store.get(id: operation.id))
            #expect(fetched.request.inputs == request.inputs)
        }
    }

    @Test(
        "the same idempotency key and body give the same operation; another body is a conflict",
        arguments: StoreKind.allCases)
    func idempotency(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let request = Fixtures.request(text: "one", blobs: [100_000])
            let (first, created) = try await store.enqueue(request, idempotencyKey: "key-1")
            #expect(created)
            #expect(first.idempotencyKey == "key-1")

            var retried = request
            retried.requestID = "another-request-id"
            let (second, createdAgain) = try await store.enqueue(retried, idempotencyKey: "key-1")
            #expect(!createdAgain)
            #expect(second.id == first.id)
            #expect(second == first)

            let conflict = await gatewayError {
                _ = try await store.enqueue(Fixtures.request(text: "two"), idempotencyKey: "key-1")
            }
            #expect(conflict?.code == .conflict)
            #expect(conflict?.message.contains("key-1") == true)

            // Keys are per principal.
            var otherTenant = request
            otherTenant.principal = "bob"
            let (other, otherCreated) = try await store.enqueue(otherTenant, idempotencyKey: "key-1")
            #expect(otherCreated)
            #expect(other.id != first.id)

            // No key: always a new operation.
            let a = try await store.enqueue(request, idempotencyKey: nil)
            let b = try await store.enqueue(request, idempotencyKey: nil)
            #expect(a.created && b.created && a.operation.id != b.operation.id)
            // Its digest is never compared (no key to reuse), so it is not computed.
            #expect(a.operation.requestDigest.isEmpty && b.operation.requestDigest.isEmpty)
            #expect(!first.requestDigest.isEmpty)

            // Integers past 2^53 are compared exactly (SDK review 56, M1): 2^53 + 1 and 2^53 are two requests.
            var odd = Fixtures.request(text: "n")
            odd.inputs[0].variables["acct"] = .integer(Int64(1) << 53 + 1)
            var even = odd
            even.inputs[0].variables["acct"] = .number(9_007_199_254_740_992)
            let stored = try await store.enqueue(odd, idempotencyKey: "key-big")
            #expect(stored.created)
            #expect(try await store.enqueue(odd, idempotencyKey: "key-big").operation.id == stored.operation.id)
            #expect(
                await gatewayError { _ = try await store.enqueue(even, idempotencyKey: "key-big") }?.code == .conflict)
        }
    }

    @Test("concurrent enqueues with one idempotency key create exactly one operation", arguments: StoreKind.allCases)
    func concurrentIdempotentEnqueue(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let request = Fixtures.request(text: "race")
            let results = try await harness.withPeer { peer in
                try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                    for i in 0..<10 {
                        let target = i.isMultiple(of: 2) ? store : peer
                        group.addTask {
                            let (operation, created) = try await target.enqueue(request, idempotencyKey: "race-key")
                            return (operation.id, created)
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            #expect(Set(results.map(\.0)).count == 1)
            #expect(results.filter(\.1).count == 1)
        }
    }

    @Test(
        "claim takes the oldest due operations, marks them running under a lease and counts the attempt",
        arguments: StoreKind.allCases)
    func claimSemantics(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            var ids: [String] = []
            for i in 0..<3 {
                ids.append(try await store.enqueue(Fixtures.request(text: "c\(i)"), idempotencyKey: nil).operation.id)
            }
            let now = Fixtures.now() + 1
            let claimed = try await store.claim(owner: "gw-a/0", leaseDuration: .seconds(30), limit: 2, now: now)
            #expect(claimed.map(\.id) == Array(ids.prefix(2)))
            for operation in claimed {
                #expect(operation.state == .running)
                #expect(operation.attempts == 1)
                #expect(operation.leaseOwner == "gw-a/0")
                #expect(operation.leaseExpiresAt == now + 30)
                #expect(operation.startedAt == now)
                #expect(operation.request.inputs[0].variables["text"] != nil)
                #expect(try await store.get(id: operation.id) == operation)
            }
            let rest = try await store.claim(owner: "gw-a/0", leaseDuration: .seconds(30), limit: 5, now: now)
            #expect(rest.map(\.id) == [ids[2]])
            #expect(try await store.claim(owner: "gw-a/0", leaseDuration: .seconds(30), limit: 5, now: now).isEmpty)
            #expect(
                try await store.claim(owner: "gw-a/0", leaseDuration: .seconds(30), limit: 0, now: now + 60).isEmpty)

            // Renewing moves the expiry; a renewed lease is not reclaimed at the old expiry.
            #expect(try await store.renewLease(id: ids[0], owner: "gw-a/0", leaseDuration: .seconds(60), now: now + 20))
            #expect(try await store.get(id: ids[0])?.leaseExpiresAt == now + 80)
            let reclaimed = try await store.claim(owner: "gw-b/0", leaseDuration: .seconds(30), limit: 5, now: now + 40)
            #expect(Set(reclaimed.map(\.id)) == [ids[1], ids[2]])
            #expect(
                !(try await store.renewLease(id: ids[1], owner: "gw-a/0", leaseDuration: .seconds(60), now: now + 41)))
        }
    }

    @Test(
        "200 concurrent enqueues: each answered with its own durable row; duplicates of one key inside a batch share it",
        arguments: StoreKind.allCases)
    func concurrentEnqueues(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let results = try await withThrowingTaskGroup(of: (Int, String, Bool).self) { group in
                for i in 0..<200 {
                    group.addTask {
                        // Every tenth shares one idempotency key (same body), the rest have none.
                        let keyed = i.isMultiple(of: 10)
                        let request = Fixtures.request(text: keyed ? "same" : "g\(i)", blobs: i == 7 ? [100_000] : [])
                        let (operation, created) = try await store.enqueue(request, idempotencyKey: keyed ? "k" : nil)
                        return (i, operation.id, created)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let keyed = results.filter { $0.0.isMultiple(of: 10) }
            #expect(Set(keyed.map(\.1)).count == 1 && keyed.filter(\.2).count == 1)
            let plain = results.filter { !$0.0.isMultiple(of: 10) }
            #expect(Set(plain.map(\.1)).count == 180 && plain.allSatisfy(\.2))
            // Shared commits: fewer transactions than enqueues (200 tasks on two cores always overlap).
            #expect(try #require(harness.transactionCounts(store)).enqueues < 200)
            // Durable and readable from another handle (a restart), the blob included.
            try await harness.withPeer { peer in
                for (i, id, _) in results {
                    let stored = try #require(try await peer.get(id: id))
                    if i == 7 { #expect(stored.request.inputs[0].variables["file0"] != nil) }
                }
            }
        }
    }

    @Test(
        "100 concurrent completions: each stored for its lease holder only, durable; wrong owners change nothing",
        arguments: StoreKind.allCases)
    func concurrentCompletions(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            var ids: [String] = []
            for i in 0..<100 {
                ids.append(try await store.enqueue(Fixtures.request(text: "c\(i)"), idempotencyKey: nil).operation.id)
            }
            let t0 = Fixtures.now() + 1
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(30), limit: 100, now: t0).count == 100)
            let answers = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for (i, id) in ids.enumerated() {
                    group.addTask {
                        // Every tenth completes as an owner without the lease; one carries a result blob file.
                        let owner = i.isMultiple(of: 10) ? "B" : "A"
                        let result = Fixtures.result(text: "r\(i)", blobSize: i == 7 ? 200_000 : 0)
                        return (i, try await store.complete(id: id, owner: owner, result: result, now: t0 + 1))
                    }
                }
                return try await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(answers.count == 100)
            #expect(answers.allSatisfy { $0.value == !$0.key.isMultiple(of: 10) })
            #expect(try #require(harness.transactionCounts(store)).completions < 100)
            try await harness.withPeer { peer in
                for (i, id) in ids.enumerated() {
                    let stored = try #require(try await peer.get(id: id))
                    if i.isMultiple(of: 10) {
                        #expect(stored.state == .running && stored.result == nil)
                    } else {
                        #expect(stored.state == .succeeded)
                        #expect(stored.result == Fixtures.result(text: "r\(i)", blobSize: i == 7 ? 200_000 : 0))
                    }
                }
            }
        }
    }

    @Test(
        "concurrent keyed enqueues in shared commits: one row per key and body, other bodies conflict",
        arguments: StoreKind.allCases)
    func batchedIdempotency(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let stored = try await store.enqueue(Fixtures.request(text: "stored"), idempotencyKey: "stored")
            typealias Kind = BatchedEnqueueKind
            let kindOf = BatchedEnqueueKind.of
            let results = await withTaskGroup(of: (Int, Result<(String, Bool), GatewayError>).self) { group in
                for i in 0..<120 {
                    group.addTask {
                        let (text, key, principal): (String, String?, String) =
                            switch kindOf(i) {
                            case .plain: ("p\(i)", nil, "alice")
                            // Same key and body, blobs spilled: the batch's duplicates share one row.
                            case .dup: ("dup", "dup", "alice")
                            case .storedSame: ("stored", "stored", "alice")
                            case .storedOther: ("not-stored", "stored", "alice")
                            // One key, two bodies: whichever is stored first wins, the other body conflicts.
                            case .raceX: ("x", "race", "alice")
                            case .raceY: ("y", "race", "alice")
                            // Another principal's "dup" key is another operation.
                            case .tenant: ("dup", "dup", "bob")
                            }
                        let blobs = kindOf(i) == .dup ? [100_000] : []
                        let request = Fixtures.request(text: text, principal: principal, blobs: blobs)
                        do {
                            let (operation, created) = try await store.enqueue(request, idempotencyKey: key)
                            return (i, .success((operation.id, created)))
                        } catch let error as GatewayError {
                            return (i, .failure(error))
                        } catch {
                            return (i, .failure(GatewayError(.internalError, "\(error)")))
                        }
                    }
                }
                return await group.reduce(into: [Int: Result<(String, Bool), GatewayError>]()) { $0[$1.0] = $1.1 }
            }
            func answers(_ kind: Kind) -> [Result<(String, Bool), GatewayError>] {
                results.filter { kindOf($0.key) == kind }.map(\.value)
            }
            func successes(_ kind: Kind) -> [(String, Bool)] { answers(kind).compactMap { try? $0.get() } }
            func conflicts(_ kind: Kind) -> Int {
                answers(kind).filter { if case .failure(let e) = $0 { e.code == .conflict } else { false } }.count
            }
            #expect(results.count == 120)
            let plain = successes(.plain)
            #expect(plain.count == 48 && Set(plain.map(\.0)).count == 48)
            #expect(plain.allSatisfy { $0.1 })
            let dup = successes(.dup)
            #expect(dup.count == 12 && Set(dup.map(\.0)).count == 1 && dup.filter(\.1).count == 1)
            let tenant = successes(.tenant)
            #expect(tenant.count == 12 && Set(tenant.map(\.0)).count == 1 && tenant.filter(\.1).count == 1)
            #expect(Set(tenant.map(\.0)).isDisjoint(with: dup.map(\.0)))
            #expect(successes(.storedSame).map(\.0) == Array(repeating: stored.operation.id, count: 12))
            #expect(successes(.storedSame).allSatisfy { !$0.1 })
            #expect(conflicts(.storedOther) == 12)
            // The race: one body's twelve share the row (one created), the other body's twelve conflict.
            let (winner, loser): (Kind, Kind) = successes(.raceX).isEmpty ? (.raceY, .raceX) : (.raceX, .raceY)
            let won = successes(winner)
            #expect(won.count == 12 && Set(won.map(\.0)).count == 1 && won.filter(\.1).count == 1)
            #expect(conflicts(loser) == 12)
            #expect(try #require(harness.transactionCounts(store)).enqueues < 121)
            // Durable, readable from another handle, the shared row's blob included.
            let dupID = try #require(dup.first?.0)
            let raceID = try #require(won.first?.0)
            try await harness.withPeer { peer in
                let row = try #require(try await peer.get(id: dupID))
                #expect(row.request.inputs[0].variables["file0"]?.blobValue?.bytes == Fixtures.bytes(100_000))
                #expect(row.idempotencyKey == "dup")
                #expect(try await peer.get(id: raceID)?.idempotencyKey == "race")
            }
        }
    }

    @Test(
        "one run completed twice at once by its lease owner: one completion answers true, the other false",
        arguments: StoreKind.allCases)
    func duplicateOwnerCompletions(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            var ids: [String] = []
            for i in 0..<30 {
                ids.append(try await store.enqueue(Fixtures.request(text: "d\(i)"), idempotencyKey: nil).operation.id)
            }
            let t0 = Fixtures.now() + 1
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(30), limit: 30, now: t0).count == 30)
            let answers = try await withThrowingTaskGroup(of: (String, Int, Bool).self) { group in
                for id in ids {
                    for copy in 0..<2 {
                        group.addTask {
                            let result = Fixtures.result(text: "\(id) \(copy)")
                            return (id, copy, try await store.complete(id: id, owner: "A", result: result, now: t0 + 1))
                        }
                    }
                }
                return try await group.reduce(into: [String: [Int: Bool]]()) { $0[$1.0, default: [:]][$1.1] = $1.2 }
            }
            // Both copies of most runs wait together for one group commit (60 completions, two cores).
            #expect(try #require(harness.transactionCounts(store)).completions < 60)
            try await harness.withPeer { peer in
                for id in ids {
                    let copies = try #require(answers[id])
                    // As two calls one after the other: the first is stored, the second finds the run finished.
                    #expect(copies.values.filter { $0 }.count == 1, "\(id): \(copies)")
                    let stored = try #require(try await peer.get(id: id))
                    #expect(stored.state == .succeeded)
                    let winner = try #require(copies.first { $0.value }?.key)
                    #expect(stored.result == Fixtures.result(text: "\(id) \(winner)"))
                }
            }
        }
    }

    @Test(
        "one run completed at once by its lease owner and by workers without the lease: only the owner's is stored",
        arguments: StoreKind.allCases)
    func concurrentOwnerAndStrangerCompletions(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            var ids: [String] = []
            for i in 0..<30 {
                ids.append(try await store.enqueue(Fixtures.request(text: "o\(i)"), idempotencyKey: nil).operation.id)
            }
            let t0 = Fixtures.now() + 1
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(30), limit: 30, now: t0).count == 30)
            // Per run: its owner "A" and two strangers ("B", and "A/1", which only shares A's prefix).
            let owners = ["B", "A", "A/1"]
            let answers = try await withThrowingTaskGroup(of: (String, String, Bool).self) { group in
                for (i, id) in ids.enumerated() {
                    for owner in owners {
                        group.addTask {
                            let result = Fixtures.result(text: "\(owner) \(i)", blobSize: i == 3 ? 100_000 : 0)
                            return (
                                id, owner, try await store.complete(id: id, owner: owner, result: result, now: t0 + 1)
                            )
                        }
                    }
                }
                return try await group.reduce(into: [String: Bool]()) { $0["\($1.0) \($1.1)"] = $1.2 }
            }
            #expect(answers.count == 90)
            for id in ids {
                #expect(answers["\(id) A"] == true)
                #expect(answers["\(id) B"] == false)
                #expect(answers["\(id) A/1"] == false)
            }
            #expect(try #require(harness.transactionCounts(store)).completions < 90)
            try await harness.withPeer { peer in
                for (i, id) in ids.enumerated() {
                    let stored = try #require(try await peer.get(id: id))
                    #expect(stored.state == .succeeded)
                    #expect(stored.result == Fixtures.result(text: "A \(i)", blobSize: i == 3 ? 100_000 : 0))
                }
            }
        }
    }

    @Test(
        "a claim's scope limits it to some pipelines (only these keys, or all but these), oldest first",
        arguments: StoreKind.allCases)
    func claimScope(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            var ids: [String: [String]] = [:]
            for i in 0..<6 {
                let pipeline = ["a", "b", "c"][i % 3]
                let id = try await store.enqueue(
                    Fixtures.request(pipeline: pipeline, text: "s\(i)"), idempotencyKey: nil
                )
                .operation.id
                ids[pipeline, default: []].append(id)
            }
            let now = Fixtures.now() + 1
            func claim(_ scope: ClaimScope, limit: Int = 10) async throws -> [String] {
                try await store.claim(owner: "gw/0", leaseDuration: .seconds(30), limit: limit, now: now, scope: scope)
                    .map(\.id)
            }
            #expect(try await claim(.only([])).isEmpty)
            #expect(try await claim(.only(["acme/b"]), limit: 1) == [ids["b"]![0]])
            #expect(try await claim(.only(["acme/a", "acme/zzz"])) == ids["a"]!)
            #expect(try await claim(.excluding(["acme/c"])) == [ids["b"]![1]])
            #expect(try await claim(.excluding([])) == ids["c"]!)
            #expect(try await claim(.all).isEmpty)
        }
    }

    @Test("two instances claiming at once never get the same operation", arguments: StoreKind.allCases)
    func concurrentClaimsAreDisjoint(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let count = 60
            var enqueued: Set<String> = []
            for i in 0..<count {
                enqueued.insert(
                    try await store.enqueue(Fixtures.request(text: "p\(i)"), idempotencyKey: nil).operation.id)
            }
            let now = Fixtures.now() + 1
            let claims = try await harness.withPeer { peer in
                try await withThrowingTaskGroup(of: [String].self) { group in
                    for worker in 0..<8 {
                        let target = worker.isMultiple(of: 2) ? store : peer
                        group.addTask {
                            var mine: [String] = []
                            while true {
                                let batch = try await target.claim(
                                    owner: "gw-\(worker % 2)/\(worker)",
                                    leaseDuration: .seconds(60),
                                    limit: 3,
                                    now: now
                                )
                                if batch.isEmpty { return mine }
                                mine += batch.map(\.id)
                            }
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            let all = claims.flatMap { $0 }
            #expect(all.count == count, "every operation claimed exactly once")
            #expect(Set(all) == enqueued)
        }
    }

    @Test(
        "a restarted instance ends its earlier leases at once; other owners' leases stay, and so do those the new process took already",
        arguments: StoreKind.allCases)
    func expireOwnLeases(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let mine = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let theirs = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let current = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            #expect(
                try await store.claim(owner: "gw1.boot1/3", leaseDuration: .seconds(30), limit: 1, now: t0).map(\.id)
                    == [mine])
            #expect(
                try await store.claim(owner: "gw10.boot9/1", leaseDuration: .seconds(30), limit: 1, now: t0).map(\.id)
                    == [theirs])
            // The new process (boot2) claimed before its take-back ran: spared.
            #expect(
                try await store.claim(owner: "gw1.boot2/1", leaseDuration: .seconds(30), limit: 1, now: t0).map(\.id)
                    == [current])
            #expect(try await store.expireLeases(ownerPrefix: "gw1.", sparing: "gw1.boot2/", now: t0 + 1) == 1)
            #expect(
                try await store.renewLease(id: current, owner: "gw1.boot2/1", leaseDuration: .seconds(30), now: t0 + 1),
                "the new process's own lease is still held")
            let retaken = try await store.claim(
                owner: "gw1.boot2/2", leaseDuration: .seconds(30), limit: 5, now: t0 + 1)
            #expect(retaken.map(\.id) == [mine], "taken back at once, long before its lease would end")
            #expect(retaken.first?.attempts == 2)
            #expect(retaken.first?.takenOverFrom == "gw1.boot1/3", "the earlier process's run is taken over")
            #expect(
                !(try await store.renewLease(id: mine, owner: "gw1.boot1/3", leaseDuration: .seconds(30), now: t0 + 2)))
            #expect(try await store.get(id: theirs)?.leaseOwner == "gw10.boot9/1")
            #expect(try await store.expireLeases(ownerPrefix: "nobody.", sparing: nil, now: t0 + 2) == 0)
            // Without `sparing` every lease of the prefix ends, the new process's too.
            #expect(try await store.expireLeases(ownerPrefix: "gw1.", sparing: nil, now: t0 + 2) == 2)
        }
    }

    @Test(
        "an expired lease is claimed by another owner, and the old owner can no longer finish",
        arguments: StoreKind.allCases)
    func expiredLeaseFencing(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0).map(\.id) == [id])
            #expect(try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 5).isEmpty)
            let taken = try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 10)
            #expect(taken.map(\.id) == [id])
            #expect(taken.first?.attempts == 2)
            #expect(taken.first?.leaseOwner == "B")
            #expect(taken.first?.startedAt == t0, "startedAt is the first attempt's start")

            #expect(
                !(try await store.complete(
                    id: id, owner: "A", result: Fixtures.result(text: "late", blobSize: 200_000), now: t0 + 11)))
            #expect(
                !(try await store.fail(
                    id: id, owner: "A", error: GatewayError(.backendFailed, "x"), retryAt: nil, now: t0 + 11)))
            #expect(!(try await store.renewLease(id: id, owner: "A", leaseDuration: .seconds(10), now: t0 + 11)))
            let stillRunning = try #require(try await store.get(id: id))
            #expect(stillRunning.state == .running)
            #expect(stillRunning.result == nil)
            #expect(stillRunning.leaseOwner == "B")
            #expect(try await harness.blobNames(store, operationID: id).isEmpty, "the loser's result blobs are gone")

            let result = Fixtures.result(text: "winner", blobSize: 200_000)
            #expect(try await store.complete(id: id, owner: "B", result: result, now: t0 + 12))
            #expect(
                !(try await store.complete(id: id, owner: "B", result: Fixtures.result(text: "twice"), now: t0 + 13)))
            #expect(
                !(try await store.complete(id: id, owner: "A", result: Fixtures.result(text: "later"), now: t0 + 13)))

            let done = try #require(try await store.get(id: id))
            #expect(done.state == .succeeded)
            #expect(done.result == result)
            #expect(done.finishedAt == t0 + 12)
            #expect(done.leaseExpiresAt == nil)
            #expect(try await harness.blobNames(store, operationID: id).count == 1)
            #expect(try await store.claim(owner: "C", leaseDuration: .seconds(10), limit: 5, now: t0 + 100).isEmpty)
        }
    }

    @Test(
        "a claim names the owner of each expired lease it takes over; queued and retried operations name none",
        arguments: StoreKind.allCases)
    func claimNamesTakenOverLeases(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            var ids: [String] = []
            for _ in 0..<4 { ids.append(try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id) }
            // After the enqueues, which stamp the real time: under load they took over a second, and operations not
            // yet due at t0 were not claimed.
            let t0 = Fixtures.now() + 1
            // ids[0] under A (lease to t0 + 10), ids[1] under C (lease to t0 + 20), ids[2] failed and queued for a
            // retry at t0 + 5, ids[3] never claimed.
            let first = try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0)
            #expect(first.map(\.id) == [ids[0]])
            #expect(first.first?.takenOverFrom == nil, "claimed from queued")
            #expect(
                try await store.claim(owner: "C", leaseDuration: .seconds(20), limit: 2, now: t0).map(\.id)
                    == [ids[1], ids[2]])
            #expect(
                try await store.fail(
                    id: ids[2], owner: "C", error: GatewayError(.backendFailed, "x"), retryAt: t0 + 5, now: t0))
            // At t0 + 10 - 1 ms no lease has expired: nothing is taken over.
            let early = try await store.claim(
                owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 9.999)
            #expect(early.map(\.id) == [ids[2]])
            #expect(early.first?.takenOverFrom == nil, "a retry is claimed from queued, not taken over")
            // At t0 + 10 A's lease has just expired (a lease ending at `now` is claimable); C's has not.
            let taken = try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 5, now: t0 + 10)
            #expect(taken.map(\.id) == [ids[0], ids[3]])
            #expect(taken.map(\.takenOverFrom) == ["A", nil])
            #expect(taken.first?.attempts == 2)
            #expect(try await store.get(id: ids[0])?.takenOverFrom == nil, "only a claim's answer names it")
            // B's own expired lease, claimed again by B's next claim (a dispatcher's own adoption is told apart by
            // the dispatcher: the store names the owner whatever it is).
            let again = try await store.claim(owner: "B2", leaseDuration: .seconds(10), limit: 5, now: t0 + 20)
            #expect(Set(again.map(\.id)) == Set([ids[0], ids[1], ids[2], ids[3]]))
            #expect(
                Dictionary(uniqueKeysWithValues: again.map { ($0.id, $0.takenOverFrom) })
                    == [ids[0]: "B", ids[1]: "C", ids[2]: "B", ids[3]: "B"])
        }
    }

    @Test("fail with a retry time requeues with notBefore; fail without one is final", arguments: StoreKind.allCases)
    func failAndRetry(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            _ = try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0)
            let firstError = GatewayError(
                .backendFailed, "runner refused", details: [["reason": .string("ECONNREFUSED")]])
            #expect(try await store.fail(id: id, owner: "A", error: firstError, retryAt: t0 + 30, now: t0 + 1))

            let queued = try #require(try await store.get(id: id))
            #expect(queued.state == .queued)
            #expect(queued.notBefore == t0 + 30)
            #expect(queued.error == firstError)
            #expect(queued.leaseOwner == nil)
            #expect(queued.finishedAt == nil)
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0 + 29).isEmpty)

            let again = try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 30)
            #expect(again.map(\.id) == [id])
            #expect(again.first?.attempts == 2)

            let finalError = GatewayError(.deadlineExceeded, "the backend took too long")
            #expect(try await store.fail(id: id, owner: "B", error: finalError, retryAt: nil, now: t0 + 35))
            let failed = try #require(try await store.get(id: id))
            #expect(failed.state == .failed)
            #expect(failed.error == finalError)
            #expect(failed.finishedAt == t0 + 35)
            #expect(failed.result == nil)
            #expect(try await store.claim(owner: "C", leaseDuration: .seconds(10), limit: 1, now: t0 + 100).isEmpty)
        }
    }

    @Test(
        "queuedCount is the store's queue: enqueues, claims, a retry waiting for its time, cancels, a release",
        arguments: StoreKind.allCases)
    func queuedCountFollowsTheQueue(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            #expect(try await store.queuedCount() == 0)
            var ids: [String] = []
            for _ in 0..<4 { ids.append(try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id) }
            #expect(try await store.queuedCount() == 4)
            let t0 = Fixtures.now() + 1
            // Claimed by another owner than the one that enqueued: the count is the store's, not an instance's.
            let claimed = try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 2, now: t0)
            #expect(claimed.count == 2)
            #expect(try await store.queuedCount() == 2)
            // A failed attempt waiting for its retry time is queued.
            #expect(
                try await store.fail(
                    id: claimed[0].id, owner: "B", error: GatewayError(.backendFailed, "down"), retryAt: t0 + 60,
                    now: t0))
            #expect(try await store.queuedCount() == 3)
            #expect(try await store.release(id: claimed[1].id, owner: "B", now: t0))
            #expect(try await store.queuedCount() == 4)
            _ = try await store.cancel(id: ids[3])
            #expect(try await store.queuedCount() == 3)
        }
    }

    /// Review 26 M5: the queue per pipeline, for `trigger_gateway_async_queued{pool}` and the oldest operation's wait.
    @Test(
        "queuedByPipeline: each pipeline's queued operations and the oldest wait: the acceptance while no runner ran it (a hand-back without a call keeps it), else the retry time",
        arguments: StoreKind.allCases)
    func queuedByPipeline(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            func queue() async throws -> [String: (count: Int, since: Int64)] {
                var byKey: [String: (count: Int, since: Int64)] = [:]
                for entry in try await store.queuedByPipeline() {
                    #expect(byKey[entry.key] == nil, "\(entry.key) twice")
                    byKey[entry.key] = (entry.count, entry.oldestSince.storeMilliseconds)
                }
                return byKey
            }
            #expect(try await queue().isEmpty)
            let first = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation
            let second = try await store.enqueue(Fixtures.request(release: "v1"), idempotencyKey: nil).operation
            let other = try await store.enqueue(Fixtures.request(pipeline: "other"), idempotencyKey: nil).operation
            var queued = try await queue()
            #expect(queued.count == 2)
            #expect(queued["acme/echo"]?.count == 2 && queued["acme/echo"]?.since == first.createdAt.storeMilliseconds)
            #expect(
                queued["acme/other"]?.count == 1 && queued["acme/other"]?.since == other.createdAt.storeMilliseconds)

            let t0 = Fixtures.now() + 1
            #expect(try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 3, now: t0).count == 3)
            #expect(try await queue().isEmpty, "running operations are not queued")
            // A runner that is down: handed back without a call, not before t0 + 30; it has waited since it was
            // accepted, not since the hand-back.
            #expect(
                try await store.release(id: first.id, owner: "B", notBefore: t0 + 30, callMade: false, now: t0))
            // Failed and retried at t0 + 60: it waits from then.
            let failure = GatewayError(.backendFailed, "down")
            #expect(try await store.fail(id: second.id, owner: "B", error: failure, retryAt: t0 + 60, now: t0))
            #expect(try await store.fail(id: other.id, owner: "B", error: failure, retryAt: t0 + 60, now: t0))
            queued = try await queue()
            #expect(queued["acme/echo"]?.count == 2 && queued["acme/echo"]?.since == first.createdAt.storeMilliseconds)
            #expect(queued["acme/other"]?.count == 1 && queued["acme/other"]?.since == (t0 + 60).storeMilliseconds)
            _ = try await store.cancel(id: other.id)
            #expect(try await queue()["acme/other"] == nil)
        }
    }

    @Test(
        "queuedCount(pipelineKey:) counts one pipeline's queued operations, releases included (review 18 F8)",
        arguments: StoreKind.allCases)
    func queuedCountOfOnePipeline(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            #expect(try await store.queuedCount(pipelineKey: "acme/echo") == 0)
            for _ in 0..<2 { _ = try await store.enqueue(Fixtures.request(), idempotencyKey: nil) }
            _ = try await store.enqueue(Fixtures.request(release: "v1"), idempotencyKey: nil)
            _ = try await store.enqueue(Fixtures.request(pipeline: "other"), idempotencyKey: nil)
            #expect(try await store.queuedCount(pipelineKey: "acme/echo") == 3)
            #expect(try await store.queuedCount(pipelineKey: "acme/other") == 1)
            #expect(try await store.queuedCount(pipelineKey: "acme/none") == 0)
            // Claimed (running) is not queued; handed back (`release`) it is again.
            let t0 = Fixtures.now() + 1
            let claimed = try await store.claim(
                owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0, scope: .only(["acme/echo"]))
            #expect(claimed.count == 1)
            #expect(try await store.queuedCount(pipelineKey: "acme/echo") == 2)
            #expect(try await store.release(id: claimed[0].id, owner: "A", now: t0))
            #expect(try await store.queuedCount(pipelineKey: "acme/echo") == 3)
        }
    }

    @Test(
        "release hands a cut run back: queued at once, its attempt not counted, only by the lease owner",
        arguments: StoreKind.allCases)
    func releaseDoesNotCountTheAttempt(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            let first = try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0)
            #expect(first.first?.attempts == 1)
            #expect(try await store.release(id: id, owner: "B", now: t0 + 1) == false, "not the owner")
            #expect(try await store.release(id: id, owner: "A", now: t0 + 1))
            let released = try #require(try await store.get(id: id))
            #expect(released.state == .queued)
            #expect(released.attempts == 0)
            #expect(released.leaseOwner == nil)
            #expect(released.leaseExpiresAt == nil)
            #expect(try await store.release(id: id, owner: "A", now: t0 + 1) == false, "no longer running")
            // Claimable at once; the next claim is attempt 1 again.
            let again = try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 1)
            #expect(again.map(\.id) == [id])
            #expect(again.first?.attempts == 1)
        }
    }

    @Test(
        "startedAt is when a runner was first reached: a claim handed back unreached takes it back, a later one keeps the first reached run's (review 23 M1)",
        arguments: StoreKind.allCases)
    func releaseUnreachedTakesTheStartBack(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            // Enqueued now, so that it is claimable at every instant below however slow the machine (claims take
            // the oldest first: `id` before it).
            let other = try await store.enqueue(Fixtures.request(text: "cut"), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            // Claimed, its call refused, handed back: not started.
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0).count == 1)
            #expect(try await store.get(id: id)?.startedAt == t0, "a claim starts the run")
            #expect(try await store.release(id: id, owner: "A", notBefore: t0 + 1, now: t0 + 1))
            let unreached = try #require(try await store.get(id: id))
            #expect(unreached.startedAt == nil, "no runner was reached")
            #expect(unreached.attempts == 0)
            // The next claim reaches a runner: the start is its time; its failure keeps it for the retry.
            #expect(try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 2).count == 1)
            #expect(try await store.get(id: id)?.startedAt == t0 + 2)
            #expect(
                try await store.fail(
                    id: id, owner: "B", error: GatewayError(.unavailable, "x"), retryAt: t0 + 3, now: t0 + 2.5))
            // The retry's call is refused: the first reached run's start stays.
            #expect(try await store.claim(owner: "C", leaseDuration: .seconds(10), limit: 1, now: t0 + 3).count == 1)
            #expect(try await store.release(id: id, owner: "C", notBefore: t0 + 4, now: t0 + 3.5))
            let retried = try #require(try await store.get(id: id))
            #expect(retried.startedAt == t0 + 2, "an earlier run reached a runner")
            #expect(retried.attempts == 1)
            // A run the gateway cut (its call made) keeps the start too.
            #expect(try await store.claim(owner: "D", leaseDuration: .seconds(10), limit: 5, now: t0 + 4).count == 2)
            #expect(try await store.release(id: other, owner: "D", notBefore: t0 + 5, callMade: true, now: t0 + 5))
            #expect(try await store.get(id: other)?.startedAt == t0 + 4)
        }
    }

    @Test(
        "uncountAdoptedClaims takes back the attempts of adopted claims: the operation stays running under its owner; only by the lease owner of a running operation, once (a repeat answers true)",
        arguments: StoreKind.allCases)
    func uncountAdoptedClaimsKeepsTheRun(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0).count == 1)
            // The lease expires; two claims take the operation back (both adopted by A's run).
            #expect(try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 10).count == 1)
            let third = try await store.claim(owner: "C", leaseDuration: .seconds(10), limit: 1, now: t0 + 20)
            #expect(third.first?.attempts == 3)
            #expect(
                try await store.uncountAdoptedClaims(id: id, owner: "B", count: 2, from: 3) == false, "not the owner")
            #expect(
                try await store.uncountAdoptedClaims(id: id, owner: "C", count: 2, from: 2) == false,
                "not the attempts the claim counted")
            #expect(try await store.uncountAdoptedClaims(id: id, owner: "C", count: 2, from: 3))
            // A repeat (its first reply lost) takes nothing back twice, and answers that it is done (review 16 F2).
            #expect(try await store.uncountAdoptedClaims(id: id, owner: "C", count: 2, from: 3), "repeated")
            let uncounted = try #require(try await store.get(id: id))
            #expect(uncounted.attempts == 1)
            #expect(uncounted.state == .running)
            #expect(uncounted.leaseOwner == "C")
            #expect(uncounted.leaseExpiresAt == t0 + 30, "the lease is left as it was")
            // Still C's to finish; once finished, nothing more to take back.
            #expect(
                try await store.fail(
                    id: id, owner: "C", error: GatewayError(.unavailable, "x"), retryAt: t0 + 21, now: t0 + 20))
            #expect(
                try await store.uncountAdoptedClaims(id: id, owner: "C", count: 1, from: 1) == false,
                "no longer running")
            let again = try await store.claim(owner: "D", leaseDuration: .seconds(10), limit: 1, now: t0 + 21)
            #expect(again.first?.attempts == 2)
        }
    }

    @Test(
        "release with a not-before time: its attempt not counted, not claimable before that time, then at once",
        arguments: StoreKind.allCases)
    func releaseWithNotBeforeWaits(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let id = try await store.enqueue(Fixtures.request(), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0).count == 1)
            #expect(try await store.release(id: id, owner: "B", notBefore: t0 + 5, now: t0 + 1) == false)
            #expect(try await store.release(id: id, owner: "A", notBefore: t0 + 5, now: t0 + 1))
            let released = try #require(try await store.get(id: id))
            #expect(released.state == .queued)
            #expect(released.attempts == 0)
            #expect(released.notBefore == t0 + 5)
            #expect(try await store.queuedCount() == 1)
            // One millisecond before its time: not claimable; at its time: claimed, attempt 1 again.
            #expect(try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 4.999).isEmpty)
            let again = try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 1, now: t0 + 5)
            #expect(again.map(\.id) == [id])
            #expect(again.first?.attempts == 1)
        }
    }

    @Test(
        "cancel: queued and running can be cancelled, finished cannot, unknown is not found",
        arguments: StoreKind.allCases)
    func cancelRules(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            let queued = try await store.enqueue(Fixtures.request(text: "q"), idempotencyKey: nil).operation.id
            let cancelled = try await store.cancel(id: queued)
            #expect(cancelled.state == .cancelled)
            #expect(cancelled.finishedAt != nil)
            #expect(try await store.get(id: queued) == cancelled)
            let again = await gatewayError { _ = try await store.cancel(id: queued) }
            #expect(again?.code == .failedPrecondition)
            #expect(again?.message == "operation \(queued) was already cancelled")

            let running = try await store.enqueue(Fixtures.request(text: "r"), idempotencyKey: nil).operation.id
            let t0 = Fixtures.now() + 1
            #expect(
                try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 5, now: t0).map(\.id) == [running]
            )
            #expect(try await store.cancel(id: running).state == .cancelled)
            #expect(!(try await store.complete(id: running, owner: "A", result: Fixtures.result(), now: t0 + 1)))
            #expect(!(try await store.renewLease(id: running, owner: "A", leaseDuration: .seconds(10), now: t0 + 1)))
            #expect(try await store.get(id: running)?.state == .cancelled)
            #expect(try await store.claim(owner: "B", leaseDuration: .seconds(10), limit: 5, now: t0 + 60).isEmpty)

            let succeeded = try await store.enqueue(Fixtures.request(text: "s"), idempotencyKey: nil).operation.id
            _ = try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 5, now: t0 + 2)
            #expect(try await store.complete(id: succeeded, owner: "A", result: Fixtures.result(), now: t0 + 3))
            let finished = await gatewayError { _ = try await store.cancel(id: succeeded) }
            #expect(finished?.code == .failedPrecondition)
            #expect(finished?.message == "operation \(succeeded) has already succeeded")

            let unknown = await gatewayError { _ = try await store.cancel(id: "0000000000000000000000zzzz") }
            #expect(unknown?.code == .notFound)
        }
    }

    @Test(
        "a page token names the page's last operation, not the store's sequence; one whose operation was purged is refused; an earlier gateway's token still pages",
        arguments: StoreKind.allCases)
    func pageTokenCursor(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            var ids: [String] = []
            for i in 0..<7 {
                ids.append(
                    try await store.enqueue(Fixtures.request(text: "\(i)"), idempotencyKey: nil).operation.id)
            }
            let first = try await store.list(filter: OperationFilter(), pageSize: 3, pageToken: nil)
            #expect(first.operations.map(\.id) == Array(ids.reversed().prefix(3)))
            let token = try #require(first.nextPageToken)
            // Opaque to the client, and nothing in it but what the client was shown: the last id and the filter.
            #expect(token == OperationPaging.makeToken(afterID: ids[4], filter: OperationFilter()))
            let second = try await store.list(filter: OperationFilter(), pageSize: 3, pageToken: token)
            #expect(second.operations.map(\.id) == [ids[3], ids[2], ids[1]])

            // A token from a gateway before this one (a store sequence) still pages: one past every row lists
            // from the newest.
            let legacy = OperationPaging.legacyToken(afterSequence: 1 << 40, filter: OperationFilter())
            let fromLegacy = try await store.list(filter: OperationFilter(), pageSize: 3, pageToken: legacy)
            #expect(fromLegacy.operations.map(\.id) == first.operations.map(\.id))

            // The operation a token continues after is purged: refused, not an empty last page that would end
            // the client's listing early. Rows after it do not make it valid again.
            _ = try await store.cancel(id: ids[4])
            #expect(try await store.purge(finishedBefore: Date() + 3600) == 1)
            let gone = await gatewayError {
                _ = try await store.list(filter: OperationFilter(), pageSize: 3, pageToken: token)
            }
            #expect(gone?.code == .invalidArgument)
            #expect(gone?.message.hasPrefix("page_token is no longer valid") == true)
            // A valid token whose page is empty is not an error: the rows after it were purged, not its own.
            let last = try await store.list(filter: OperationFilter(), pageSize: 5, pageToken: nil)
            #expect(last.operations.count == 5)
            let tail = try #require(last.nextPageToken)
            for id in [ids[0]] {
                _ = try await store.cancel(id: id)
            }
            #expect(try await store.purge(finishedBefore: Date() + 3600) == 1)
            let empty = try await store.list(filter: OperationFilter(), pageSize: 5, pageToken: tail)
            #expect(empty.operations.isEmpty && empty.nextPageToken == nil)
        }
    }

    @Test(
        "list filters by pipeline and state and pages newest first without duplicates or gaps",
        arguments: StoreKind.allCases)
    func listAndPaging(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            var a: [String] = []
            var b: [String] = []
            for i in 0..<12 {
                if i.isMultiple(of: 3) {
                    let release: String? = i == 3 ? "v1" : nil
                    b.append(
                        try await store.enqueue(
                            Fixtures.request(pipeline: "b", release: release, text: "\(i)"), idempotencyKey: nil
                        ).operation.id)
                } else {
                    a.append(
                        try await store.enqueue(Fixtures.request(pipeline: "a", text: "\(i)"), idempotencyKey: nil)
                            .operation.id)
                }
            }
            let all = (a + b).sorted()  // for set comparisons only
            _ = try await store.cancel(id: a[1])
            _ = try await store.cancel(id: b[2])

            // Pages of 5 over 12 operations: 5 + 5 + 2, newest first, no token after the last page.
            var seen: [String] = []
            var token: String?
            var pages = 0
            repeat {
                let page = try await store.list(filter: OperationFilter(), pageSize: 5, pageToken: token)
                #expect(page.operations.count <= 5)
                seen += page.operations.map(\.id)
                token = page.nextPageToken
                pages += 1
                if pages == 1 {
                    // An enqueue between pages sorts before page one: it neither repeats nor shifts what follows.
                    _ = try await store.enqueue(Fixtures.request(pipeline: "a", text: "late"), idempotencyKey: nil)
                }
            } while token != nil && pages < 10
            #expect(pages == 3)
            #expect(seen.count == 12)
            #expect(seen.sorted() == all)
            let createdOrder = try await withThrowingTaskGroup(of: (String, Date).self) { group in
                for id in seen { group.addTask { (id, try await store.get(id: id)!.createdAt) } }
                return try await group.reduce(into: [String: Date]()) { $0[$1.0] = $1.1 }
            }
            for (newer, older) in zip(seen, seen.dropFirst()) {
                #expect(createdOrder[newer]! >= createdOrder[older]!)
            }
            #expect(Array(seen.filter { a.contains($0) }.reversed()) == a)

            let onlyB = try await store.list(filter: OperationFilter(pipeline: "acme/b"), pageSize: 100, pageToken: nil)
            #expect(onlyB.operations.map(\.id) == b.reversed())
            #expect(onlyB.nextPageToken == nil)
            #expect(onlyB.operations.allSatisfy { $0.ref.pipeline == "b" })

            let cancelled = try await store.list(
                filter: OperationFilter(state: .cancelled), pageSize: 100, pageToken: nil)
            #expect(Set(cancelled.operations.map(\.id)) == [a[1], b[2]])
            let cancelledA = try await store.list(
                filter: OperationFilter(pipeline: "acme/a", state: .cancelled), pageSize: 100, pageToken: nil)
            #expect(cancelledA.operations.map(\.id) == [a[1]])
            let queuedA = try await store.list(
                filter: OperationFilter(pipeline: "acme/a", state: .queued), pageSize: 3, pageToken: nil)
            #expect(queuedA.operations.count == 3)
            #expect(queuedA.nextPageToken != nil)
            let none = try await store.list(filter: OperationFilter(pipeline: "other/a"), pageSize: 10, pageToken: nil)
            #expect(none.operations.isEmpty && none.nextPageToken == nil)

            let badToken = await gatewayError {
                _ = try await store.list(filter: OperationFilter(), pageSize: 5, pageToken: "garbage")
            }
            #expect(badToken?.code == .invalidArgument)
            // A token is bound to its filter (AIP-158): the next page under the same one, refused under another.
            let next = try #require(queuedA.nextPageToken)
            let page2 = try await store.list(
                filter: OperationFilter(pipeline: "acme/a", state: .queued), pageSize: 3, pageToken: next)
            #expect(Set(page2.operations.map(\.id)).isDisjoint(with: queuedA.operations.map(\.id)))
            for other in [OperationFilter(pipeline: "acme/b", state: .queued), OperationFilter(pipeline: "acme/a")] {
                let refused = await gatewayError {
                    _ = try await store.list(filter: other, pageSize: 3, pageToken: next)
                }
                #expect(refused?.code == .invalidArgument)
                #expect(refused?.message.hasPrefix("page_token was made for another filter") == true)
            }
            let badFilter = await gatewayError {
                _ = try await store.list(filter: OperationFilter(pipeline: "no-slash"), pageSize: 5, pageToken: nil)
            }
            #expect(badFilter?.code == .invalidArgument)
        }
    }

    @Test(
        "purge deletes finished operations before the cutoff with their blobs, and nothing else",
        arguments: StoreKind.allCases)
    func purge(kind: StoreKind) async throws {
        try await StoreHarness.with(kind, inlineBlobLimit: 1024) { harness, store in
            // Far enough ahead that the operations enqueued below (stamped with the real time, seconds apart on a
            // loaded machine) are due at t0.
            let t0 = Fixtures.now() + 30
            let succeeded = try await store.enqueue(
                Fixtures.request(text: "s", blobs: [5000]), idempotencyKey: "purge-me"
            ).operation.id
            _ = try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0)
            #expect(
                try await store.complete(
                    id: succeeded, owner: "A", result: Fixtures.result(blobSize: 4000), now: t0 + 1))
            let cancelled = try await store.enqueue(Fixtures.request(text: "c", blobs: [3000]), idempotencyKey: nil)
                .operation.id
            _ = try await store.cancel(id: cancelled)
            let queued = try await store.enqueue(Fixtures.request(text: "q", blobs: [2000]), idempotencyKey: nil)
                .operation.id
            let running = try await store.enqueue(Fixtures.request(text: "r"), idempotencyKey: nil).operation.id
            _ = try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 5, now: t0 + 2)

            #expect(try await harness.blobNames(store, operationID: succeeded).count == 2)
            #expect(try await harness.blobNames(store, operationID: cancelled).count == 1)

            #expect(try await store.purge(finishedBefore: t0 - 60) == 0)
            #expect(try await store.purge(finishedBefore: Date() + 3600) == 2)
            #expect(try await store.get(id: succeeded) == nil)
            #expect(try await store.get(id: cancelled) == nil)
            #expect(try await harness.blobNames(store, operationID: succeeded).isEmpty)
            #expect(try await harness.blobNames(store, operationID: cancelled).isEmpty)
            let survivors = try await store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil).operations
            #expect(Set(survivors.map(\.id)) == [queued, running])
            #expect(try await harness.blobNames(store, operationID: queued).count == 1)
            #expect(
                try await store.get(id: queued)?.request.inputs[0].variables["file0"]?.blobValue?.bytes
                    == Fixtures.bytes(2000))

            // A purged key is free again.
            #expect(try await store.enqueue(Fixtures.request(text: "new"), idempotencyKey: "purge-me").created)
        }
    }

    /// The SDK reviewer of session 55 (F1): Abacus's `runPipeline` answered a FLOAT `2.0` that every later read
    /// showed as `2` (INTEGER): the enqueue's answer held the request as given, the store its plain numbers.
    @Test(
        "an enqueue answers the operation as it reads back: a number's float form is kept (2.0), deep in lists and objects",
        arguments: StoreKind.allCases)
    func enqueueAnswersAsStored(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { _, store in
            var request = Fixtures.request(text: "f")
            request.inputs[0].variables["f"] = .list([.object(["x": .number(2, form: .float)]), .number(1.5)])
            request.inputs[0].variables["i"] = .number(3)
            let created = try await store.enqueue(request, idempotencyKey: nil).operation
            let read = try #require(try await store.get(id: created.id))
            for operation in [created, read] {
                let f = operation.request.inputs[0].variables["f"]
                guard case .list(let items)? = f, case .number(2, let form)? = items.first?.objectValue?["x"] else {
                    Issue.record("\(String(describing: f))")
                    continue
                }
                #expect(form == .float)
                #expect(items.last == .number(1.5))
                guard case .number(3, .plain)? = operation.request.inputs[0].variables["i"] else {
                    Issue.record("an integer came back in another form")
                    continue
                }
            }
            #expect(created.request.inputs == read.request.inputs)
        }
    }

    @Test(
        "delete removes one finished operation with its blobs whatever its age; not a queued or running one, not an unknown id, not twice",
        arguments: StoreKind.allCases)
    func deleteOne(kind: StoreKind) async throws {
        try await StoreHarness.with(kind, inlineBlobLimit: 1024) { harness, store in
            let t0 = Fixtures.now() + 30
            let succeeded = try await store.enqueue(
                Fixtures.request(text: "s", blobs: [5000]), idempotencyKey: "delete-me"
            ).operation.id
            _ = try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0)
            #expect(
                try await store.complete(
                    id: succeeded, owner: "A", result: Fixtures.result(blobSize: 4000), now: t0 + 1))
            let kept = try await store.enqueue(Fixtures.request(text: "k", blobs: [3000]), idempotencyKey: nil)
                .operation.id
            _ = try await store.cancel(id: kept)
            let queued = try await store.enqueue(Fixtures.request(text: "q"), idempotencyKey: nil).operation.id
            let running = try await store.enqueue(Fixtures.request(text: "r"), idempotencyKey: nil).operation.id
            #expect(try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0 + 2).count == 1)
            #expect(try await harness.blobNames(store, operationID: succeeded).count == 2)

            // Neither unfinished operation, whichever of the two the claim took.
            for id in [queued, running] {
                #expect(try await store.delete(id: id) == false)
                #expect(try await store.get(id: id)?.state.isFinished == false)
            }
            #expect(try await store.delete(id: "no-such-operation") == false)

            // Finished a moment ago (retention would keep it for days): deleted, with its blob files.
            #expect(try await store.delete(id: succeeded))
            #expect(try await store.get(id: succeeded) == nil)
            #expect(try await harness.blobNames(store, operationID: succeeded).isEmpty)
            #expect(try await store.delete(id: succeeded) == false)
            // Only that one: the other finished operation and its blob stay.
            #expect(try await store.get(id: kept)?.state == .cancelled)
            #expect(try await harness.blobNames(store, operationID: kept).count == 1)
            // Its key is free again, as after a purge.
            #expect(try await store.enqueue(Fixtures.request(text: "new"), idempotencyKey: "delete-me").created)
        }
    }

    @Test(
        "a store opened again (a restart, or another instance) sees every committed operation",
        arguments: StoreKind.allCases)
    func reopenSeesCommittedOperations(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let request = Fixtures.request(text: "durable", blobs: [300_000, 12])
            let (queued, _) = try await store.enqueue(request, idempotencyKey: "k")
            let (done, _) = try await store.enqueue(Fixtures.request(text: "done"), idempotencyKey: nil)
            let t0 = Fixtures.now() + 1
            _ = try await store.claim(owner: "A", leaseDuration: .seconds(10), limit: 1, now: t0)
            // The oldest (`queued`) is claimed and finished; `done` stays queued for the next instance.
            #expect(
                try await store.complete(
                    id: queued.id, owner: "A", result: Fixtures.result(blobSize: 100_000), now: t0 + 1))
            try await store.close()

            let reopened = try await harness.open()
            let first = try #require(try await reopened.get(id: queued.id))
            #expect(first.state == .succeeded)
            #expect(first.request == queued.request)
            #expect(first.result == Fixtures.result(blobSize: 100_000))
            #expect(try await reopened.get(id: done.id) == done)
            #expect(try await reopened.enqueue(request, idempotencyKey: "k").operation.id == queued.id)
            #expect(
                try await reopened.claim(owner: "B", leaseDuration: .seconds(10), limit: 5, now: t0 + 2).map(\.id) == [
                    done.id
                ])
            try await reopened.close()
        }
    }

    @Test(
        "a probe is a real write: it succeeds again and again, for several instances, and touches no operation",
        arguments: StoreKind.allCases)
    func probeWritesHeartbeat(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let (queued, _) = try await store.enqueue(Fixtures.request(), idempotencyKey: nil)
            for round in 0..<3 {
                try await store.probe(instance: "instance-a", now: Fixtures.now() + Double(round))
                try await store.probe(instance: "instance-b", now: Fixtures.now() + Double(round))
            }
            try await harness.withPeer { peer in try await peer.probe(instance: "instance-a", now: Fixtures.now()) }
            #expect(try await store.get(id: queued.id) == queued)
            let page = try await store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.map(\.id) == [queued.id])
        }
    }

    @Test(
        "a probe of a closed store fails as unavailable, with nothing internal in its message",
        arguments: StoreKind.allCases)
    func probeAfterClose(kind: StoreKind) async throws {
        try await StoreHarness.with(kind) { harness, store in
            let second = try await harness.open()
            try await second.close()
            let error = await gatewayError { try await second.probe(instance: "closed", now: Fixtures.now()) }
            #expect(error?.code == .unavailable)
            #expect(error?.message == OperationStoreErrors.unavailableMessage)
        }
    }
}

/// What enqueue `i` of `batchedIdempotency` sends: one in ten of each keyed kind, the rest without a key.
private enum BatchedEnqueueKind: Sendable {
    case plain, dup, storedSame, storedOther, raceX, raceY, tenant

    @Sendable static func of(_ i: Int) -> Self {
        switch i % 10 {
        case 0: .dup
        case 1: .storedSame
        case 2: .storedOther
        case 3: .raceX
        case 4: .raceY
        case 5: .tenant
        default: .plain
        }
    }
}
