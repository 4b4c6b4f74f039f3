import NIOCore
import Synchronization

/// One list per event loop of a group (backend connections, as nghttpx's workers and Envoy's per-worker
/// pools keep them), so a call on a loop only ever takes its own loop's lock: never one that another loop's
/// calls take. Callers that are not on a loop of the group (Swift concurrency callers: the async dispatcher,
/// streams, health checks) share one more list, ``withSharedList(_:)``.
final class PerLoopLists<Element: Sendable>: Sendable {
    private final class Slot: Sendable {
        let list = Mutex<[Element]>([])
    }

    /// By the loop's identity; fixed at init, so reading it needs no lock.
    private let slots: LoopTable<Slot>
    private let elsewhere = Slot()

    init(group: any EventLoopGroup) {
        slots = LoopTable(group: group) { _ in Slot() }
    }

    /// Whether `loop` is a loop of the group (has a list of its own).
    func hasList(for loop: any EventLoop) -> Bool { slots[loop] != nil }

    /// Runs `body` on `loop`'s list under that list's lock.
    func withList<R>(on loop: any EventLoop, _ body: (inout [Element]) throws -> R) rethrows -> R {
        try (slots[loop] ?? elsewhere).list.withLock { try body(&$0) }
    }

    /// Runs `body` on the shared list under its lock.
    func withSharedList<R>(_ body: (inout [Element]) throws -> R) rethrows -> R {
        try elsewhere.list.withLock { try body(&$0) }
    }

    /// The elements of every list matching `isIncluded`, counted.
    func count(where isIncluded: (Element) -> Bool) -> Int {
        (slots.all + [elsewhere]).reduce(0) { total, slot in
            total + slot.list.withLock { $0.filter(isIncluded).count }
        }
    }

    /// Empties every list and returns what they held.
    func takeAll() -> [Element] {
        (slots.all + [elsewhere]).flatMap { slot in
            slot.list.withLock { list in
                defer { list.removeAll() }
                return list
            }
        }
    }
}
