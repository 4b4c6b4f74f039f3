import HTTP2Engine
import Testing

/// `HTTP2StreamObjectTable` (over `HTTP2StreamTable`) keeps the entry added last aside and answers it with a compare (issue 11); it must behave
/// exactly as the dictionary it fronts, whichever entry is asked for, after replacements and removals.
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
}
