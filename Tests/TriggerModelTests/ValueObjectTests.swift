import Testing

import TriggerModel

@Suite("ValueObject")
struct ValueObjectTests {
    @Test(
        "init(_:) keeps each key's first position and its last value, scanning or indexed alike",
        arguments: [ValueObject.linearKeyLimit, ValueObject.linearKeyLimit + 1, 1000])
    func repeatedKeys(count: Int) {
        // Keys k0…k(count-1), then k1 again, and "é" in its two canonically equivalent spellings.
        var entries = (0..<count).map { (key: "k\($0)", value: Value.number(Double($0))) }
        entries.append((key: "k1", value: .string("last")))
        entries.append((key: "\u{E9}", value: .null))
        entries.append((key: "e\u{301}", value: .bool(true)))
        let object = ValueObject(entries)
        #expect(object.count == count + 1)
        #expect(object.keys.first == "k0" && object.keys[1] == "k1")
        #expect(object["k1"] == .string("last"))
        #expect(object["k\(count - 1)"] == .number(Double(count - 1)))
        #expect(object.keys.last == "\u{E9}" && object["\u{E9}"] == .bool(true))
    }

    /// A gRPC trigger of 100,000 `Struct` fields is decoded through `init(_:)`: scanning for repeats was
    /// quadratic (~5 × 10^9 key comparisons, minutes in a debug build); indexed, it is linear.
    @Test("init(_:) of 200,000 distinct keys finishes in linear time", .timeLimit(.minutes(1)))
    func manyKeys() {
        let entries = (0..<200_000).map { (key: "k\($0)", value: Value.null) }
        #expect(ValueObject(entries).count == 200_000)
    }
}
