import CNghttp2

extension HTTP2Headers {
    /// Calls `body` with an `nghttp2_nv` array viewing this block; valid only inside `body`.
    ///
    /// All names and values are packed into one byte array so the block costs two allocations. No
    /// NGHTTP2_NV_FLAG_NO_COPY_* flag is set: libnghttp2 copies every pair during the `nghttp2_submit_*`
    /// call, so nothing here has to outlive it.
    func withNGHTTP2NVArray<T>(_ body: (UnsafePointer<nghttp2_nv>?, Int) -> T) -> T {
        guard !self.isEmpty else { return body(nil, 0) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(self.fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        var spans: [(name: Int, nameLength: Int, value: Int, valueLength: Int)] = []
        spans.reserveCapacity(self.count)
        for field in self.fields {
            let name = bytes.count
            bytes.append(contentsOf: field.name.utf8)
            let value = bytes.count
            bytes.append(contentsOf: field.value.utf8)
            spans.append((name, value - name, value, bytes.count - value))
        }
        if bytes.isEmpty { bytes.append(0) }  // keep a base address for all-empty blocks
        return bytes.withUnsafeMutableBufferPointer { storage in
            let base = storage.baseAddress!
            let nva = spans.map { span in
                nghttp2_nv(
                    name: base + span.name,
                    value: base + span.value,
                    namelen: span.nameLength,
                    valuelen: span.valueLength,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                )
            }
            return nva.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
        }
    }
}
