import Foundation
import Logging
import OperationStore
@testable import PostgresOperationStore
import PostgresNIO
import Testing
import TriggerModel

/// Cluster review 59, M1: a second gateway started with a copy of a live one's `instance-id` took the live one's
/// leases back at start (as a restart does) and ran its operations again; the copy was seen a beat later. A
/// restarted instance now asks `instanceInUseElsewhere` first: a heartbeat of another boot that beats again is a
/// live copy, one that does not is the crashed predecessor.
@Suite("PostgreSQL: another live process under this instance id")
struct PostgresInstanceInUseTests {
    static let interval = Duration.milliseconds(100)

    /// Runs `body` with the harness's store (this process) and a second store on the same database (the copy).
    static func withTwoStores(
        _ body: (PostgresOperationStore, PostgresOperationStore, String) async throws -> Void
    ) async throws {
        try await StoreHarness.with(.postgres) { harness, store in
            let this = try #require(store as? PostgresOperationStore)
            let copy = try await PostgresOperationStore.open(
                try #require(harness.postgresConfiguration), logger: quietLogger())
            do {
                try await body(this, copy, "instance-\(Operation.makeID())")
                try await copy.close()
            } catch {
                try? await copy.close()
                throw error
            }
        }
    }

    /// `store` beating `instance` every `interval` until cancelled, as the health service does.
    static func beating(_ store: PostgresOperationStore, _ instance: String) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await store.probe(instance: instance, now: Date())
                try? await Task.sleep(for: interval)
            }
        }
    }

    @Test("a copy that beats is in use elsewhere, also while this store's own beats replace its row")
    func liveCopy() async throws {
        try await Self.withTwoStores { this, copy, instance in
            let copyBeats = Self.beating(copy, instance)
            defer { copyBeats.cancel() }
            try await Task.sleep(for: .milliseconds(250))
            // The copy beats every 100 ms; the wait (twice the interval given) has room for a slow beat.
            #expect(try await this.instanceInUseElsewhere(instance: instance, probeInterval: .milliseconds(400)))
            // This process beats too (its health service): the row is often its own when read again.
            let ownBeats = Self.beating(this, instance)
            defer { ownBeats.cancel() }
            for _ in 0..<3 {
                #expect(try await this.instanceInUseElsewhere(instance: instance, probeInterval: .milliseconds(400)))
            }
        }
    }

    @Test("a predecessor that beat a moment ago and never again, one long gone, none, or this store's own: not in use")
    func deadPredecessor() async throws {
        try await Self.withTwoStores { this, copy, instance in
            #expect(try await !this.instanceInUseElsewhere(instance: instance, probeInterval: Self.interval))
            // The crashed predecessor: one last beat, just now.
            try await copy.probe(instance: instance, now: Date())
            let clock = ContinuousClock()
            let started = clock.now
            #expect(try await !this.instanceInUseElsewhere(instance: instance, probeInterval: Self.interval))
            #expect(started.duration(to: clock.now) >= Self.interval, "decided before the next beat was due")
            // This store's first beat replaced it: its own row.
            try await this.probe(instance: instance, now: Date())
            #expect(try await !this.instanceInUseElsewhere(instance: instance, probeInterval: Self.interval))
            // A beat older than `recentForeignBeat` (60 s): answered at once, without waiting.
            try await copy.probe(
                instance: instance, now: Date() - 120)
            let at = clock.now
            #expect(try await !this.instanceInUseElsewhere(instance: instance, probeInterval: .seconds(30)))
            #expect(at.duration(to: clock.now) < .seconds(5))
        }
    }
}
