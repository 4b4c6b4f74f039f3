import Foundation
package import Testing

/// Runs a test on the thread kept for such tests (``CPUBoundExecutor``) instead of Swift's cooperative pool: for
/// tests that compute for a long time without suspending (byte-by-byte sweeps, megabytes through a debug-built
/// codec, threads racing).
///
/// Why: the unit suites run in parallel, every test a task on the cooperative pool, which has one thread per
/// core (two on CI) and never preempts a task. A test that computes for seconds holds one of those threads for
/// seconds; two of them hold the whole pool, and every other test's continuation (an answer that came back,
/// a timer that fired) waits for them: a 200 ms deadline's answer resumed after 20.1 s (CI of stop 62), a
/// 30 s deadline passed before a call was sent. On a thread outside the pool such a test is time-sliced by the
/// kernel with the pool's threads, in milliseconds. Marking the twenty-odd tests that perf showed computing longest
/// (with two test helpers made ~100× cheaper) took the parallel unit run from 36 s to 26-29 s, and its first
/// answers from 16 s in to 5 s.
///
/// Usage: `@Test("…", .cpuBound)`, or on a `@Suite` for all of its tests.
package struct CPUBoundTrait: TestTrait, SuiteTrait, TestScoping {
    package var isRecursive: Bool { true }

    package func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // A suite's scope is provided for each of its test cases (recursive), not around the whole suite.
        guard testCase != nil else { return try await function() }
        try await withTaskExecutorPreference(CPUBoundExecutor.shared) { try await function() }
    }
}

extension Trait where Self == CPUBoundTrait {
    /// See ``CPUBoundTrait``.
    package static var cpuBound: Self { CPUBoundTrait() }
}

/// The thread ``CPUBoundTrait`` runs its tests on, fed from one queue and alive for the test process's life (a job
/// may be enqueued until the last test ends, so it is never stopped). One: beside the pool's two it takes a third
/// of CI's two cores, and the pool's tests start answering sooner than with two (5 s into the run, not 6: the
/// first tests' "passed after"), for 3 s more in all (29 s, not 26, of the parallel unit run).
final class CPUBoundExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = CPUBoundExecutor(threads: 1)

    /// Guards `jobs`; signalled when one is added.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0

    private init(threads: Int) {
        for index in 0..<threads {
            let thread = Thread { [unowned self] in self.work() }
            thread.name = "cpu-bound-tests-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == jobs.count { condition.wait() }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
