import HTTP2Engine
import Testing

/// `HTTP2StreamObjectTable` (over `HTTP2StreamTable`, an open-addressing table with linear probing and
/// backward-shift removal, issue 11) must behave exactly as a dictionary whichever entry is asked for: after
/// replacements, removals, keys smaller than earlier ones, keys that share a home slot (an even and the next odd
/// id) or whose probe wraps past the table's end, growth and shrinking.
@Suite("HTTP/2 stream table")
struct StreamTableTests {
    final class Box {
        let n: Int
        init(_ n: Int) { self.n = n }
    }

    @Test("lookups, replacements and removals agree with a dictionary")
    func matchesDictionary() {
        var table = HTTP2StreamObjectTable()
        var reference: [HTTP2StreamID: Box] = [:]
        // Held nowhere: `holds` answers by identity, never by the id alone.
        let stranger = Box(0)
        func check() {
            #expect(table.count == reference.count)
            #expect(table.isEmpty == reference.isEmpty)
            for id in (0...9).map({ HTTP2StreamID(Int32($0)) }) {
                #expect(table[id] === reference[id])
                #expect(table.contains(id) == (reference[id] != nil))
                if let held = reference[id] { #expect(table.holds(held, at: id)) }
                #expect(!table.holds(stranger, at: id))
            }
            #expect(Set(table.map(\.key)) == Set(reference.keys))
        }
        // Steps: (stream, value or nil to remove); the last entry is replaced, removed, then re-added.
        let steps: [(Int32, Int?)] = [
            (1, 1), (3, 3), (1, 10), (3, nil), (1, nil), (5, 5), (5, 50), (7, 7), (5, nil), (9, 9),
        ]
        for (stream, value) in steps {
            let id = HTTP2StreamID(stream)
            let box = value.map(Box.init)
            if let box {
                table[id] = box
                reference[id] = box
            } else {
                #expect(table.removeValue(forKey: id) === reference.removeValue(forKey: id))
            }
            check()
        }
        table.removeAll()
        reference.removeAll()
        check()
        #expect(table[HTTP2StreamID(9)] == nil)
    }

    @Test("a seeded walk of adds, replacements and removals agrees with a dictionary at every step")
    func seededWalkMatchesDictionary() {
        var table = HTTP2StreamObjectTable()
        var reference: [HTTP2StreamID: Box] = [:]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        var nextStream: Int32 = 1
        for step in 0..<4_000 {
            let id: HTTP2StreamID
            switch random(4) {
            case 0:  // a new stream, its id greater than any before (RFC 9113 §5.1.1)
                id = HTTP2StreamID(nextStream)
                nextStream += 2
            default:  // any id seen so far, or just past them: the newest, an older one, or an unknown one
                id = HTTP2StreamID(Int32(random(Int(nextStream) + 2)))
            }
            if random(3) == 0 {
                let removed = table.removeValue(forKey: id)
                let expected = reference.removeValue(forKey: id)
                let sameRemoved = removed === expected
                #expect(sameRemoved)
            } else {
                let box = Box(step)
                table[id] = box
                reference[id] = box
            }
            #expect(table.count == reference.count)
            #expect(table.isEmpty == reference.isEmpty)
            let found = table[id]
            let sameFound = found === reference[id]
            #expect(sameFound)
            #expect(table.contains(id) == (reference[id] != nil))
            if step % 50 == 0 {
                for (key, value) in reference {
                    let found = table[key]
                    let same = found === value
                    #expect(same)
                }
                let entries = Array(table)
                #expect(entries.count == reference.count)
                #expect(Set(entries.map(\.key)) == Set(reference.keys))
                for entry in entries {
                    let expected: AnyObject? = reference[entry.key]
                    let same = entry.value === expected
                    #expect(same)
                }
            }
        }
    }

    /// Every removal order of keys that collide and wrap: in a 16-slot table, three ids whose home is the last
    /// slot and three whose home is the first (all in the table: a later stream takes the newest entry's place), so their probes cross the end of the table and each other; a
    /// backward shift that moved an entry wrongly (or left a gap) loses one of them from lookups.
    @Test("removals in every order keep colliding, wrapping keys reachable")
    func collidingWrappingRemovals() {
        func ids(homedAt slot: Int) -> [Int32] {
            let homed = (1...Int32(10_000)).lazy.filter {
                HTTP2StreamObjectTable.homeSlot(of: HTTP2StreamID($0), slotCount: 16) == slot
            }
            return Array(homed.prefix(3))
        }
        let ids = ids(homedAt: 15) + ids(homedAt: 0)
        #expect(ids.count == 6)
        var orders: [[Int32]] = [[]]
        for _ in ids.indices {
            orders = orders.flatMap { order in ids.filter { !order.contains($0) }.map { order + [$0] } }
        }
        #expect(orders.count == 720)
        for insertion in [ids, ids.reversed()] {
            for order in orders {
                var table = HTTP2StreamObjectTable()
                var reference: [HTTP2StreamID: Box] = [:]
                for id in insertion {
                    let box = Box(Int(id))
                    table[HTTP2StreamID(id)] = box
                    reference[HTTP2StreamID(id)] = box
                }
                // A later stream, so that the last of `ids` leaves the newest entry's place for the table too.
                let bystander = HTTP2StreamID(20_001)
                table[bystander] = Box(0)
                #expect(table.slotCount == 16)
                for id in order {
                    let removed = table.removeValue(forKey: HTTP2StreamID(id))
                    let expected = reference.removeValue(forKey: HTTP2StreamID(id))
                    let same = removed === expected && removed != nil
                    #expect(same)
                    for other in ids {
                        let found = table[HTTP2StreamID(other)]
                        let agrees = found === reference[HTTP2StreamID(other)]
                        #expect(agrees, "after removing \(order.prefix { $0 != id } + [id]), id \(other)")
                    }
                }
                #expect(table.count == 1)
                #expect(table.removeValue(forKey: bystander) != nil)
                #expect(table.isEmpty)
            }
        }
    }

    /// A connection's life: a window of concurrent streams moving over thousands of ids while one stream stays
    /// open throughout, as a long server stream beside unary calls does. The table neither loses an entry nor
    /// grows past what the window needs, and shrinks again after a burst, but not below 256 slots: concurrency that
    /// moves between a few and a few tens of streams must not reallocate the table each time.
    @Test("a moving window beside a long-lived stream, then a burst and its end")
    func movingWindowAndBurst() {
        var table = HTTP2StreamObjectTable()
        let longLived = Box(0)
        table[HTTP2StreamID(1)] = longLived
        var open: [Int32] = []
        var next: Int32 = 3
        for _ in 0..<10_000 {
            table[HTTP2StreamID(next)] = Box(Int(next))
            open.append(next)
            next += 2
            if open.count > 6 {
                let oldest = open.removeFirst()
                let removed = table.removeValue(forKey: HTTP2StreamID(oldest)).map { ($0 as! Box).n }
                #expect(removed == Int(oldest))
            }
            #expect(table[HTTP2StreamID(1)] === longLived)
        }
        #expect(table.count == 7)
        #expect(table.slotCount == 16)
        for id in open { #expect((table[HTTP2StreamID(id)] as? Box)?.n == Int(id)) }

        // A burst of 1 000 concurrent streams grows the table; their end shrinks it back.
        var burst: [Int32] = []
        for _ in 0..<1_000 {
            table[HTTP2StreamID(next)] = Box(Int(next))
            burst.append(next)
            next += 2
        }
        #expect(table.count == 1_007)
        #expect(table.slotCount == 2_048)
        for id in burst { #expect((table[HTTP2StreamID(id)] as? Box)?.n == Int(id)) }
        for id in burst { table[HTTP2StreamID(id)] = nil }
        #expect(table.count == 7)
        #expect(table.slotCount == 256)  // shrunk to the floor, no further: see below
        #expect(table[HTTP2StreamID(1)] === longLived)
        for id in open { #expect((table[HTTP2StreamID(id)] as? Box)?.n == Int(id)) }
        for id in open { table[HTTP2StreamID(id)] = nil }
        #expect(table.count == 1)
        #expect(table.slotCount == 256)
    }

    /// Concurrency that moves between a few and eighty streams, as a backend connection's does with the calls of
    /// many clients on it: once grown to 256 slots, the table stays there (with a floor of 64 and 1/8 full for
    /// shrinking it was rebuilt at 128 and 256 slots in turn, twice a cycle).
    @Test("streams moving between 5 and 80 do not rebuild the table each time")
    func oscillatingConcurrency() {
        var table = HTTP2StreamObjectTable()
        var open: [Int32] = []
        var next: Int32 = 1
        var slotCounts: Set<Int> = []
        for cycle in 0..<50 {
            while open.count < 80 {
                table[HTTP2StreamID(next)] = Box(Int(next))
                open.append(next)
                next += 2
            }
            if cycle > 0 { slotCounts.insert(table.slotCount) }
            while open.count > 5 { table[HTTP2StreamID(open.removeFirst())] = nil }
            slotCounts.insert(table.slotCount)
        }
        #expect(slotCounts == [256])
        for id in open { #expect((table[HTTP2StreamID(id)] as? Box)?.n == Int(id)) }
    }
}
