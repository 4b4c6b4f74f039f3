#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Testing
import ThreadLocals

@Suite("Thread-local objects")
struct ThreadLocalObjectTests {
    final class Counter {
        var count = 0
    }

    /// Runs `body` on a new thread and joins it (its thread-local destructors have run when this returns).
    private static func onNewThread(_ body: @escaping () -> Void) {
        final class Job {
            let body: () -> Void
            init(_ body: @escaping () -> Void) { self.body = body }
        }
        let job = Unmanaged.passRetained(Job(body)).toOpaque()
        #if canImport(Glibc)
            var thread = pthread_t()
        #else
            var thread: pthread_t? = nil
        #endif
        let code = pthread_create(
            &thread, nil,
            { argument in
                let job = Unmanaged<Job>.fromOpaque(argument!).takeRetainedValue()
                job.body()
                return nil
            }, job)
        precondition(code == 0)
        #if canImport(Glibc)
            pthread_join(thread, nil)
        #else
            pthread_join(thread!, nil)
        #endif
    }

    @Test("A thread's object is made on its first use and kept; another thread gets its own")
    func perThread() {
        let local = ThreadLocalObject<Counter>()
        nonisolated(unsafe) var made = 0
        let make = {
            made += 1
            return Counter()
        }
        nonisolated(unsafe) var first: ObjectIdentifier?
        nonisolated(unsafe) var second: ObjectIdentifier?
        Self.onNewThread {
            #expect(!local.hasValue)
            local.withValue(makingWith: make) { $0.count += 1 }
            #expect(local.hasValue)
            let count = local.withValue(makingWith: make) { counter in
                first = ObjectIdentifier(counter)
                counter.count += 1
                return counter.count
            }
            #expect(count == 2)
        }
        #expect(made == 1)
        Self.onNewThread {
            let count = local.withValue(makingWith: make) { counter in
                second = ObjectIdentifier(counter)
                return counter.count
            }
            #expect(count == 0)
        }
        #expect(made == 2)
        #expect(first != nil && second != nil)
    }

    @Test("A thread's object is released when the thread exits, and only then")
    func releasedAtThreadExit() {
        let local = ThreadLocalObject<Counter>()
        nonisolated(unsafe) weak var kept: Counter?
        nonisolated(unsafe) var aliveAfterUse = false
        Self.onNewThread {
            local.withValue(makingWith: Counter.init) { kept = $0 }
            // The body's +0 loan is over and the caller holds nothing: only the thread's own retain keeps it.
            aliveAfterUse = kept != nil
        }
        #expect(aliveAfterUse)
        #expect(kept == nil)
    }
}
