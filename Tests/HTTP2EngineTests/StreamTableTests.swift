import HTTP2Engine
import Testing

/// `HTTP2StreamObjectTable` (over `HTTP2StreamTable`) keeps the entry added last aside, out of its dictionary, and
/// answers it with a compare (issue 11); it must behave exactly as a dictionary, whichever entry is asked for,
/// after replacements (of the newest entry and of older ones), removals, and keys smaller than earlier ones.
@Suite("HTTP/2 stream table")
struct StreamTableTests {
    final class Box {
        let n: Int
        init(_ n: Int) { self.n = n }
    }

    @Test("lookups, replacements and removals agree with a dictionary, newest entry or not")
    func matchesDictionary() {
        var table = HTTP2StreamObjectTable()
        var reference: [HTTP2StreamID: Box] = [:]
        func check() {
            #expect(table.count == reference.count)
            #expect(table.isEmpty == reference.isEmpty)
            for id in (0...9).map({ HTTP2StreamID(Int32($0)) }) { #expect(table[id] === reference[id]) }
            #expect(Set(table.map(\.key)) == Set(reference.keys))
        }
        // Steps: (stream, value or nil to remove); the newest entry is replaced, removed, then re-added.
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
}
