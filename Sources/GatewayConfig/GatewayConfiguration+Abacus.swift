import Yams

extension GatewayConfiguration {
    static let abacusKeys = ["namespace"]

    /// `abacus: {namespace: NAME}`. The namespace is an exact name: the surface maps one namespace, so `*`
    /// (which only routes understand) is refused, as are `/`, spaces and control characters (no ref could
    /// carry them).
    static func readAbacus(_ node: Node, _ reader: ConfigNodeReader) throws(ConfigError) -> AbacusConfiguration {
        let m = try reader.mapping(node, at: "abacus", allowed: abacusKeys)
        var abacus = AbacusConfiguration.defaults
        if let n = m["namespace"] {
            let namespace = try reader.nonEmptyString(n, at: m.path("namespace"))
            guard
                namespace.utf8.allSatisfy({
                    $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "*")
                })
            else {
                throw reader.error(
                    m.path("namespace"),
                    n,
                    "\"\(namespace)\" must be one exact namespace: no \"*\", \"/\", spaces or control characters"
                )
            }
            abacus.namespace = namespace
        }
        return abacus
    }
}
