import Backends
import Dispatch
import Foundation
import Synchronization
import Testing
import TestScheduling

/// The slot limiter as a state machine: cap, bounded queue, hand-over order, withdrawal, and — under threads
/// racing on the lock-free fast path — no slot handed out past the cap and no queued caller left waiting
/// beside a free slot.
@Suite("concurrency limiter: cap, queue, hand-over, lock-free fast path")
struct ConcurrencyLimiterTests {
    @Test("slots up to the cap, then the queue, then overloaded")
    func capQueueOverload() throws {
        let limiter = ConcurrencyLimiter(name: "p", maxConcurrency: 2, maxQueue: 1)
        #expect(limiter.tryAcquire())
        #expect(try limiter.acquire(onSlot: {}) == .granted)
        #expect(limiter.running == 2)
        #expect(!limiter.tryAcquire())
        guard case .queued = try limiter.acquire(onSlot: {}) else {
            Issue.record("a third caller should queue")
            return
        }
        #expect(throws: (any Error).self) { try limiter.acquire(onSlot: {}) }
        #expect(throws: (any Error).self) { try limiter.admit() }
        #expect(limiter.running == 2)
    }

    @Test("a released slot goes to the oldest queued caller; running never dips while callers wait")
    func handOverInOrder() throws {
        let limiter = ConcurrencyLimiter(name: "p", maxConcurrency: 1, maxQueue: 3)
        let order = Mutex<[Int]>([])
        #expect(limiter.tryAcquire())
        for n in 1...3 {
            guard case .queued = try limiter.acquire(onSlot: { order.withLock { $0.append(n) } }) else {
                Issue.record("caller \(n) should queue")
                return
            }
        }
        // A newcomer may not jump the queue even though the fast path is lock-free.
        #expect(!limiter.tryAcquire())
        for expected in 1...3 {
            limiter.release()
            #expect(order.withLock { $0 } == Array(1...expected))
            #expect(limiter.running == 1)
        }
        limiter.release()
        #expect(limiter.running == 0)
        #expect(limiter.tryAcquire())
    }

    @Test("a withdrawn caller is not handed a slot; withdrawing after the hand-over says so")
    func withdraw() throws {
        let limiter = ConcurrencyLimiter(name: "p", maxConcurrency: 1, maxQueue: 2)
        let served = Mutex<[Int]>([])
        #expect(limiter.tryAcquire())
        guard case .queued(let first) = try limiter.acquire(onSlot: { served.withLock { $0.append(1) } }),
            case .queued(let second) = try limiter.acquire(onSlot: { served.withLock { $0.append(2) } })
        else {
            Issue.record("both callers should queue")
            return
        }
        #expect(limiter.withdraw(first))
        limiter.release()
        #expect(served.withLock { $0 } == [2])
        #expect(!limiter.withdraw(second))
        limiter.release()
        #expect(limiter.running == 0)
    }

    @Test("background work waits behind callers and is never refused")
    func backgroundAfterCallers() async throws {
        let limiter = ConcurrencyLimiter(name: "p", maxConcurrency: 1, maxQueue: 1)
        #expect(limiter.tryAcquire())
        let order = Mutex<[String]>([])
        let background = Task {
            try await limiter.acquire(background: true)
            order.withLock { $0.append("background") }
        }
        // Queue a caller only once the background waiter is queued.
        while limiter.queued == 0 { await Task.yield() }
        _ = try limiter.acquire(onSlot: { order.withLock { $0.append("caller") } })
        limiter.release()
        #expect(order.withLock { $0 } == ["caller"])
        limiter.release()
        try await background.value
        #expect(order.withLock { $0 } == ["caller", "background"])
        limiter.release()
        #expect(limiter.running == 0)
    }

    @Test("threads racing on acquire and release: never past the cap, every queued caller served", .cpuBound)
    func racingThreads() {
        let cap = 1
        let threads = 4
        let rounds = 20_000
        let limiter = ConcurrencyLimiter(name: "p", maxConcurrency: cap, maxQueue: threads)
        let holders = Atomic<Int>(0)
        let mostHolders = Atomic<Int>(0)
        let stuck = Atomic<Int>(0)
        let queuedCalls = Atomic<Int>(0)
        let ready = Atomic<Int>(0)
        let done = DispatchGroup()
        for _ in 0..<threads {
            // Threads of their own (not Dispatch's pool, which runs one per core) that start together.
            done.enter()
            Thread {
                ready.add(1, ordering: .relaxed)
                while ready.load(ordering: .relaxed) < threads {}
                race()
                done.leave()
            }.start()
        }
        done.wait()
        #expect(stuck.load(ordering: .relaxed) == 0)
        #expect(mostHolders.load(ordering: .relaxed) == cap)
        #expect(limiter.running == 0)
        // The slow path (queue, hand-over) was really taken, many times.
        #expect(queuedCalls.load(ordering: .relaxed) > 100)

        @Sendable func race() {
            for round in 0..<rounds {
                if !limiter.tryAcquire() {
                    let handed = DispatchSemaphore(value: 0)
                    do {
                        if case .queued = try limiter.acquire(onSlot: { handed.signal() }) {
                            queuedCalls.add(1, ordering: .relaxed)
                            // A lost hand-over (a free slot beside a queued caller) would leave this waiting.
                            if handed.wait(timeout: .now() + .seconds(2)) == .timedOut {
                                stuck.add(1, ordering: .relaxed)
                                return
                            }
                        }
                    } catch {
                        stuck.add(1, ordering: .relaxed)
                        return
                    }
                }
                let now = holders.add(1, ordering: .sequentiallyConsistent).newValue
                _ = mostHolders.max(now, ordering: .relaxed)
                // Give the core away while holding the slot, so other threads meet a full limiter even on a
                // loaded machine where these threads would otherwise run one after another.
                if round % 2 == 0 { sched_yield() }
                holders.subtract(1, ordering: .sequentiallyConsistent)
                limiter.release()
            }
        }
    }
}

extension ConcurrencyLimiter.Ticket: Equatable {
    static func == (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case (.granted, .granted): true
        case (.queued(let x), .queued(let y)): x == y
        default: false
        }
    }
}
