import Synchronization
import Testing
import TriggerModel

@Suite("TriggerCancellation")
struct TriggerCancellationTests {
    @Test("cancel runs the latest handler once; a handler set after cancel runs at once; a cleared one never")
    func handlers() {
        let runs = Mutex<[String]>([])
        let cancellation = TriggerCancellation()
        cancellation.whenCancelled { runs.withLock { $0.append("replaced") } }
        cancellation.whenCancelled { runs.withLock { $0.append("current") } }
        #expect(!cancellation.isCancelled)
        cancellation.cancel()
        cancellation.cancel()
        #expect(cancellation.isCancelled)
        #expect(runs.withLock { $0 } == ["current"])
        cancellation.whenCancelled { runs.withLock { $0.append("late") } }
        #expect(runs.withLock { $0 } == ["current", "late"])

        let cleared = TriggerCancellation()
        cleared.whenCancelled { runs.withLock { $0.append("cleared") } }
        cleared.clearHandler()
        cleared.cancel()
        #expect(runs.withLock { $0 } == ["current", "late"])
    }
}
