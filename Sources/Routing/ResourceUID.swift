import Crypto
import Foundation

/// Stable uids for the resources the gateway names but does not store (namespaces, pipelines, releases):
/// name-based UUIDs, version 5 (RFC 9562 §5.5: SHA-1 of the namespace UUID's bytes followed by the name),
/// in the URL namespace `6ba7b811-9dad-11d1-80b4-00c04fd430c8` (RFC 9562 Appendix A), over the resource's
/// Instill name. So `namespaces/acme` always has the uid `uuid.uuid5(uuid.NAMESPACE_URL, "namespaces/acme")`
/// in Python terms, on every gateway instance and across restarts, and no table is needed to map it back.
package enum ResourceUID {
    /// RFC 9562's `NameSpace_URL`.
    static let urlNamespace: [UInt8] = [
        0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
    ]

    /// The lower-case UUIDv5 text of `name` (`xxxxxxxx-xxxx-5xxx-yxxx-xxxxxxxxxxxx`).
    package static func v5(_ name: String) -> String {
        var hash = Insecure.SHA1()
        hash.update(data: urlNamespace)
        hash.update(data: Array(name.utf8))
        var bytes = Array(hash.finalize().prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        let u = bytes
        return UUID(
            uuid: (u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15])
        ).uuidString.lowercased()
    }

    /// The uid of namespace `id` (user or organization): the UUIDv5 of `namespaces/{id}`.
    package static func namespace(_ id: String) -> String { v5("namespaces/\(id)") }
}
