import Testing
import TriggerModel

@Suite("RFC 3339 timestamps with milliseconds")
struct RFC3339Tests {
    @Test(
        "known instants",
        arguments: [
            (Int64(0), "1970-01-01T00:00:00.000Z"),
            (1, "1970-01-01T00:00:00.001Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (951_782_400_123, "2000-02-29T00:00:00.123Z"),  // a leap day of a year divisible by 400
            (1_714_566_896_789, "2024-05-01T12:34:56.789Z"),
            (1_798_761_599_999, "2026-12-31T23:59:59.999Z"),
            (4_102_444_800_000, "2100-01-01T00:00:00.000Z"),  // 2100 is not a leap year: Feb 28 → Mar 1
            (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),  // proleptic Gregorian, not Julian
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ]
    )
    func known(milliseconds: Int64, text: String) {
        #expect(RFC3339.format(milliseconds: milliseconds) == text)
    }

    /// Foundation's ISO 8601 style writes this instant as `…15.826Z` (its `Date` is a binary fraction of seconds,
    /// truncated): the reason the gateway keeps its own formatter.
    @Test("the millisecond is exact where a binary fraction of seconds would truncate it")
    func exactMilliseconds() {
        #expect(RFC3339.format(milliseconds: 1_531_627_155_827) == "2018-07-15T03:59:15.827Z")
    }

    @Test("the milliseconds around a new year (2025-01-01T00:00:00Z) format in time order, each once")
    func ordered() {
        // Fixed-width text sorts as time does: a property the operations listing relies on.
        let instants: [Int64] = stride(from: 1_735_689_599_000, through: 1_735_689_601_000, by: 1).map { $0 }
        let texts = instants.map { RFC3339.format(milliseconds: $0) }
        #expect(texts == texts.sorted())
        #expect(Set(texts).count == instants.count)
    }
}
