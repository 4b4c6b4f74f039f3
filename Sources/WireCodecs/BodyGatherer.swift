package import NIOCore

/// Gathers a body that arrives in chunks into one contiguous buffer, in amortised linear time.
///
/// Why a type of its own: a `ByteBuffer` is copy-on-write, so a buffer that is written to while a second
/// reference to it is alive (a copy bound by `if var`, an enum payload, a closure capture) copies everything
/// gathered so far on every write: a 24 MiB body in 64 KiB chunks then costs ~4.5 GB of copying (issue 12
/// measured 263 full-buffer copies for one 16 MiB upload). Here the buffer is held once and only written in
/// place. With a declared length (`Content-Length`) the storage is allocated once up front; without one it
/// grows by doubling (`ByteBuffer`'s policy), so a body of n bytes is reallocated O(log n) times.
///
/// The gathered bytes live in a box that copies of the gatherer share: a gatherer is a handle on one body
/// being gathered. So the buffer has exactly one owner whatever copies of the handle an enum payload or a
/// `switch` makes, it is written in place, and `take()` hands it over uniquely referenced, which decoding
/// in place needs (`JSONValueCodec.decodeObject(inPlace:)`: otherwise the whole body is copied first).
package struct BodyGatherer {
    private final class Box {
        var buffer: ByteBuffer?
    }

    private let box = Box()
    private var buffer: ByteBuffer? {
        get { box.buffer }
        nonmutating _modify { yield &box.buffer }
        nonmutating set { box.buffer = newValue }
    }
    private var expectedLength: Int?

    /// - Parameter expectedLength: the declared body length, already checked against the cap; the storage
    ///   is allocated for it at the first chunk.
    package init(expectedLength: Int? = nil) {
        self.expectedLength = expectedLength
    }

    /// Starts gathering another body in the same box (a connection's next response): what was gathered is
    /// dropped. Issue 11: one allocation per call less than a new gatherer.
    ///
    /// The box is shared: this drops the bytes of every copy of the handle (as `take()` empties them all), while
    /// each copy keeps its own `expectedLength`. Restart only a gatherer whose copies are no longer read: today
    /// each one restarted is a private field of its owner (the backend client handler, the SSE reader). Not made
    /// non-copyable: `RESTExchange` carries gatherers as enum payloads, which `switch` copies (review 13 F7).
    package mutating func restart(expectedLength: Int?) {
        box.buffer = nil
        self.expectedLength = expectedLength
    }

    /// Bytes gathered so far.
    package var count: Int { buffer?.readableBytes ?? 0 }

    /// Appends `chunk`. The first chunk is adopted without a copy when no larger length is expected.
    package mutating func append(_ chunk: ByteBuffer) {
        guard chunk.readableBytes > 0 else { return }
        if buffer != nil {
            buffer!.writeImmutableBuffer(chunk)  // in place: `buffer!` is mutated through the optional
        } else if let expectedLength, expectedLength > chunk.readableBytes {
            var gathered = LargeBodyStorage.allocate(capacity: expectedLength)
            gathered.writeImmutableBuffer(chunk)
            buffer = gathered
        } else {
            buffer = chunk
        }
    }

    /// Hands the gathered bytes over (their only reference) and leaves the gatherer empty.
    package mutating func take() -> ByteBuffer {
        let taken = box.buffer.take()
        return taken ?? ByteBuffer()
    }

    /// The address of the gathered bytes' storage; it changes whenever the storage is reallocated or copied.
    /// For tests that assert gathering stays linear without timing anything.
    package var storageAddress: UInt? {
        buffer?.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }
}
