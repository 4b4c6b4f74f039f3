@testable import Backends
import NIOCore
import NIOPosix
import Testing

/// ``LoopTable`` and ``PerLoopLists`` over it: each loop of a group finds its own value, a loop of another group
/// finds none (PerLoopLists then uses its shared list).
@Suite("LoopTable: a value per event loop, by the loop's identity")
struct LoopTableTests {
    /// Runs `body` with a group of `threads` loops, its loops in order, and a loop of another group; both groups
    /// shut down after.
    static func withGroups(
        threads: Int, _ body: (any EventLoopGroup, [any EventLoop], any EventLoop) throws -> Void
    ) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let other = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer {
            try? group.syncShutdownGracefully()
            try? other.syncShutdownGracefully()
        }
        try body(group, Array(group.makeIterator()), other.next())
    }

    @Test("each loop of a group finds the value made for it; a loop of another group and an empty table find none")
    func lookup() throws {
        try Self.withGroups(threads: 4) { group, loops, outsider in
            var made = 0
            let table = LoopTable(group: group) { loop -> Int in
                made += 1
                return loops.firstIndex { $0 === loop }!
            }
            #expect(made == 4)
            for (index, loop) in loops.enumerated() {
                #expect(table[loop] == index)
            }
            #expect(table.all == [0, 1, 2, 3])
            #expect(table[outsider] == nil)
            #expect(LoopTable<Int>()[loops[0]] == nil)
        }
    }

    @Test("PerLoopLists: a loop's list is its own; a loop outside the group shares the one other list")
    func perLoopLists() throws {
        try Self.withGroups(threads: 2) { group, loops, outsider in
            let lists = PerLoopLists<Int>(group: group)
            #expect(lists.hasList(for: loops[0]) && lists.hasList(for: loops[1]))
            #expect(!lists.hasList(for: outsider))
            lists.withList(on: loops[0]) { $0.append(1) }
            lists.withList(on: loops[1]) { $0.append(2) }
            lists.withList(on: outsider) { $0.append(3) }
            #expect(lists.withList(on: loops[0]) { $0 } == [1])
            #expect(lists.withList(on: loops[1]) { $0 } == [2])
            #expect(lists.withSharedList { $0 } == [3])
            #expect(lists.count { $0 > 1 } == 2)
            #expect(lists.takeAll().sorted() == [1, 2, 3])
            #expect(lists.count { _ in true } == 0)
        }
    }
}
