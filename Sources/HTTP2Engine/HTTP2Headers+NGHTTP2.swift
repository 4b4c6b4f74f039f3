import CNghttp2

extension HTTP2Headers {
    /// Calls `body` with an `nghttp2_nv` array viewing this block; valid only inside `body`.
    ///
    /// All names and values are packed into one byte buffer, and both it and the `nghttp2_nv` array are
    /// temporary allocations (on the stack for a block of ordinary size): issue 11, the three arrays built
    /// here before were three heap allocations per block, three blocks per proxied gRPC call. No
    /// NGHTTP2_NV_FLAG_NO_COPY_* flag is set: libnghttp2 copies every pair during the `nghttp2_submit_*`
    /// call, so nothing here has to outlive it. Fields whose value is new on every message go out never
    /// indexed (`HTTP2CommonFields.uniquePerMessageSlot`), but for the session's `priming` turns, which index them
    /// so that their names stay in the encoder's table (``HPACKNamePriming``). A field marked
    /// ``HTTP2Headers/Field/neverIndexed`` goes never indexed always.
    ///
    /// Inlined into its caller: out of line, its three nested closures each retained and released what they
    /// captured (the session, the block's storage), ~10 atomic operations per proxied gRPC call (issue 11).
    @inline(__always)
    func withNGHTTP2NVArray<T>(
        priming: inout HPACKNamePriming, _ body: (UnsafePointer<nghttp2_nv>?, Int) -> T
    ) -> T {
        // Over the buffer by index: `for field in fields` copied each field, a retain and a release of both its
        // strings per field and loop (issue 11: ~13 fields per proxied gRPC call, visited twice).
        self.fields.withUnsafeBufferPointer { fields in
            guard !fields.isEmpty else { return body(nil, 0) }
            var byteCount = 0
            for index in fields.indices {
                byteCount += fields[index].name.utf8.count + fields[index].value.utf8.count
            }
            // At least one byte, so that an all-empty block still has a base address.
            return withUnsafeTemporaryAllocation(byteCount: Swift.max(byteCount, 1), alignment: 1) { storage in
                withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: fields.count) { nva in
                    let base = storage.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    var offset = 0
                    for index in fields.indices {
                        let name = offset
                        offset += Self.copyUTF8(fields[index].name, to: base + offset)
                        let value = offset
                        offset += Self.copyUTF8(fields[index].value, to: base + offset)
                        nva.initializeElement(
                            at: index,
                            to: nghttp2_nv(
                                name: base + name,
                                value: base + value,
                                namelen: value - name,
                                valuelen: offset - value,
                                // A sensitive field (received so, RFC 7541 §7.1.3) goes never indexed and
                                // takes no priming turn: its value must not enter the peer's table.
                                flags: fields[index].neverIndexed
                                    ? UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue)
                                    : priming.indexing(for: fields[index].name).flags
                            )
                        )
                    }
                    // `nghttp2_nv` is a trivial C struct: nothing to deinitialise.
                    return body(UnsafePointer(nva.baseAddress), fields.count)
                }
            }
        }
    }

    /// Copies `string`'s UTF-8 bytes to `target` (room for all of them is the caller's); returns their count.
    private static func copyUTF8(_ string: String, to target: UnsafeMutablePointer<UInt8>) -> Int {
        if let count = string.utf8.withContiguousStorageIfAvailable({ bytes -> Int in
            if let source = bytes.baseAddress { target.initialize(from: source, count: bytes.count) }
            return bytes.count
        }) {
            return count
        }
        var count = 0
        for byte in string.utf8 {
            (target + count).initialize(to: byte)
            count += 1
        }
        return count
    }
}
