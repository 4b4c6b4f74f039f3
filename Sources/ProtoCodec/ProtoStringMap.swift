import CTriggerProtos

/// A generated `map<string, string>` entry (`key = 1, value = 2`; protobuf-c unpacks a map as its repeated
/// entries). Each generation's entry is a struct of its own with the same two fields, so conforming them here
/// lets one encoder and one decoder serve every such map instead of a copied loop per message.
protocol ProtoStringMapEntry {
    var key: UnsafeMutablePointer<CChar>! { get set }
    var value: UnsafeMutablePointer<CChar>! { get set }
}

extension Pipeline__Pipeline__V1beta__TriggerData__SecretEntry: ProtoStringMapEntry {}
extension Pipeline__V1beta__TriggerData__SecretEntry: ProtoStringMapEntry {}
extension Trigger__Runner__V1__Input__SecretsEntry: ProtoStringMapEntry {}

extension ProtoStringMapEntry {
    /// The map of `count` unpacked entries; a key sent twice keeps its last value (proto3 maps, as the
    /// language guide specifies for parsing), and a NULL entry is skipped.
    static func decode(_ count: Int, _ entries: UnsafeMutablePointer<UnsafeMutablePointer<Self>?>?) -> [String: String]
    {
        var map: [String: String] = [:]
        for i in 0..<count {
            guard let entry = entries?[i] else { continue }
            map[StructCodec.string(entry.pointee.key)] = StructCodec.string(entry.pointee.value)
        }
        return map
    }
}

extension ProtoArena {
    /// A `map<string, string>` field in key order, so equal maps encode to equal bytes; `initialize` is the
    /// entry's generated `…__init`.
    func stringMap<M: ProtoStringMapEntry>(
        _ map: [String: String],
        _ initialize: (UnsafeMutablePointer<M>?) -> Void
    ) -> (count: Int, items: UnsafeMutablePointer<UnsafeMutablePointer<M>?>?) {
        repeated(map.sorted { $0.key < $1.key }) { key, value in
            let entry: UnsafeMutablePointer<M> = message(initialize)
            entry.pointee.key = cString(key)
            entry.pointee.value = cString(value)
            return entry
        }
    }
}
