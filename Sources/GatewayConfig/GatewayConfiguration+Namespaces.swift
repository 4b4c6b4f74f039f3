import Yams

extension GatewayConfiguration {
    /// `namespaces: [{id, kind: user|organization}]`. Ids are exact names (no `*`, `/`, spaces or control
    /// characters: no pipeline ref could carry them) and unique.
    /// Each item is checked on its own (`ConfigMistakes`); the ones with a mistake are left out.
    static func readNamespaces(_ node: Node, _ reader: ConfigNodeReader) -> [NamespaceConfiguration] {
        var namespaces: [NamespaceConfiguration] = []
        reader.forEachItem(node, at: "namespaces") { (i, item) throws(ConfigError) in
            let m = try reader.mapping(item, at: "namespaces[\(i)]", allowed: ["id", "kind"])
            let idNode = try require(m, "id", reader)
            let id = try exactNamespace(idNode, at: m.path("id"), reader)
            if let first = namespaces.firstIndex(where: { $0.id == id }) {
                throw reader.error(m.path("id"), idNode, "duplicate namespace \"\(id)\" (same as namespaces[\(first)])")
            }
            let kind = try reader.choice(
                try require(m, "kind", reader), at: m.path("kind"), as: NamespaceConfiguration.Kind.self)
            namespaces.append(NamespaceConfiguration(id: id, kind: kind))
        }
        return namespaces
    }

    /// `tokens[i].requesters`: a list of exact namespace ids, or `*` (any namespace).
    static func readRequesters(_ node: Node, at path: String, _ reader: ConfigNodeReader) throws(ConfigError)
        -> [String]
    {
        var requesters: [String] = []
        for (i, item) in try reader.sequence(node, at: path).enumerated() {
            if (try? reader.string(item, at: "\(path)[\(i)]")) == RouteConfiguration.wildcard {
                requesters.append(RouteConfiguration.wildcard)
            } else {
                requesters.append(try exactNamespace(item, at: "\(path)[\(i)]", reader))
            }
        }
        return requesters
    }

    private static func exactNamespace(_ node: Node, at path: String, _ reader: ConfigNodeReader) throws(ConfigError)
        -> String
    {
        let id = try reader.nonEmptyString(node, at: path)
        guard
            id.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "*") })
        else {
            throw reader.error(
                path, node, "\"\(id)\" must be one exact namespace: no \"*\", \"/\", spaces or control characters")
        }
        return id
    }
}
