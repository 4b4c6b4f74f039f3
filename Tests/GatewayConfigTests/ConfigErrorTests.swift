import GatewayConfig
import Testing

/// Every refusal names the exact key path; the message is checked by its stable beginning.
@Suite("ConfigError paths")
struct ConfigErrorTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var yaml: String
        var path: String
        var message: String
        var testDescription: String { "\(path): \(message)" }
    }

    static let pools = "pools:\n  - {name: demo, transport: inprocess}\n"

    static let cases: [Case] = [
        // Unknown keys, at every level.
        Case(
            yaml: "listne: 1.2.3.4:80\n",
            path: "listne",
            message:
                "unknown key (did you mean \"listen\"?); expected one of: listen, listen_reuse_port, data_dir, auth, tokens, limits, timeouts, pools, routes"
        ),
        Case(
            yaml: "limits: {max_batchh: 3}\n",
            path: "limits.max_batchh",
            message: "unknown key (did you mean \"max_batch\"?)"
        ),
        Case(
            yaml: "timeouts: {grace: 1s}\n",
            path: "timeouts.grace",
            message:
                "unknown key; expected one of: request, idle, shutdown_grace, preface, request_header, body_progress, write_progress, stream_idle"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, endpoint: []}\n",
            path: "pools[0].endpoint",
            message: "unknown key (did you mean \"endpoints\"?)"
        ),
        Case(
            yaml: pools + "routes:\n  - {namespace: a, pool: demo, version: v1}\n",
            path: "routes[0].version",
            message: "unknown key"
        ),
        Case(yaml: "tokens:\n  - {name: a, token: b, role: admin}\n", path: "tokens[0].role", message: "unknown key"),
        // Wrong types.
        Case(yaml: "- a\n- b\n", path: "", message: "expected a mapping, got a list"),
        Case(yaml: "limits: [1]\n", path: "limits", message: "expected a mapping, got a list"),
        Case(yaml: "tokens: abc\n", path: "tokens", message: "expected a list, got \"abc\""),
        Case(
            yaml: "limits: {max_batch: many}\n",
            path: "limits.max_batch",
            message: "expected an integer, got \"many\""
        ),
        Case(yaml: "limits: {max_depth: 1.5}\n", path: "limits.max_depth", message: "expected an integer, got \"1.5\""),
        Case(yaml: "listen: {host: a}\n", path: "listen", message: "expected a string, got a mapping"),
        Case(yaml: "data_dir: ~\n", path: "data_dir", message: "expected a string, got null"),
        Case(yaml: "data_dir: \"\"\n", path: "data_dir", message: "must not be empty"),
        // Durations and sizes.
        Case(
            yaml: "timeouts: {request: 5 minutes}\n",
            path: "timeouts.request",
            message: "expected a duration such as \"500ms\""
        ),
        Case(yaml: "timeouts: {idle: -1s}\n", path: "timeouts.idle", message: "expected a duration"),
        Case(
            yaml: "timeouts: {request: 0s}\n",
            path: "timeouts.request",
            message: "0s is too short: must be at least 1ms"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, connect_timeout: 10x}\n",
            path: "pools[0].connect_timeout",
            message: "expected a duration"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, idle_timeout: 0s}\n",
            path: "pools[0].idle_timeout",
            message: "0s is too short: must be at least 1ms"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, idle_timeout: 86401s}\n",
            path: "pools[0].idle_timeout",
            message: "idle_timeout must be at most 24h"
        ),
        Case(
            yaml: "limits: {max_body_bytes: 32XB}\n",
            path: "limits.max_body_bytes",
            message: "expected a size such as"
        ),
        Case(
            yaml: "limits: {max_body_bytes: 1.5MiB}\n",
            path: "limits.max_body_bytes",
            message: "expected a size such as"
        ),
        // Limits out of range.
        Case(
            yaml: "limits: {max_body_bytes: 1023}\n",
            path: "limits.max_body_bytes",
            message: "1023 bytes is out of range 1024...4294967295"
        ),
        Case(
            yaml: "limits: {max_body_bytes: 4GiB}\n",
            path: "limits.max_body_bytes",
            message: "4294967296 bytes is out of range"
        ),
        Case(yaml: "limits: {max_batch: 0}\n", path: "limits.max_batch", message: "0 is out of range 1...4096"),
        Case(yaml: "limits: {max_batch: 4097}\n", path: "limits.max_batch", message: "4097 is out of range 1...4096"),
        Case(
            yaml: "limits: {max_header_bytes: 1KB}\n",
            path: "limits.max_header_bytes",
            message: "1000 bytes is out of range 1024...1048576"
        ),
        Case(yaml: "limits: {max_depth: 0}\n", path: "limits.max_depth", message: "0 is out of range"),
        // The store reads back values no deeper (`Value.maximumDepth`); 1024 was accepted, and an async request
        // nested past 512 could not be claimed.
        Case(yaml: "limits: {max_depth: 513}\n", path: "limits.max_depth", message: "513 is out of range 1...512"),
        Case(yaml: "limits: {max_json_members: 0}\n", path: "limits.max_json_members", message: "0 is out of range"),
        Case(
            yaml: "limits: {max_json_members: 16777217}\n", path: "limits.max_json_members",
            message: "16777217 is out of range"),
        Case(
            yaml: "limits: {max_concurrent_streams: 0}\n",
            path: "limits.max_concurrent_streams",
            message: "0 is out of range"
        ),
        Case(yaml: "limits: {max_connections: 0}\n", path: "limits.max_connections", message: "0 is out of range"),
        Case(
            yaml: "limits: {max_connections_per_peer: -1}\n",
            path: "limits.max_connections_per_peer",
            message: "-1 is out of range"
        ),
        Case(
            yaml: "limits: {max_connections_per_peer: 1000001}\n",
            path: "limits.max_connections_per_peer",
            message: "1000001 is out of range"
        ),
        Case(
            yaml: "limits: {stream_buffer_bytes: 1023}\n",
            path: "limits.stream_buffer_bytes",
            message: "1023 bytes is out of range 1024...1073741824"
        ),
        Case(
            yaml: "limits: {connection_buffer_bytes: 4GiB}\n",
            path: "limits.connection_buffer_bytes",
            message: "4294967296 bytes is out of range"
        ),
        Case(
            yaml: "limits: {max_decompressed_bytes: 1023}\n",
            path: "limits.max_decompressed_bytes",
            message: "1023 bytes is out of range 1024...4294967295"
        ),
        Case(
            yaml: "limits: {max_body_bytes: 1MiB, max_decompressed_bytes: 1048577}\n",
            path: "limits.max_decompressed_bytes",
            message: "must not be above limits.max_body_bytes (1048577 > 1048576)"
        ),
        Case(
            yaml: "limits: {max_buffered_request_bytes: 1023}\n",
            path: "limits.max_buffered_request_bytes",
            message: "must be 0 (no budget) or at least 1024 bytes"
        ),
        Case(
            yaml: "limits: {max_buffered_request_bytes: -1}\n",
            path: "limits.max_buffered_request_bytes",
            message: "-1 bytes is out of range 0...1125899906842624"
        ),
        Case(
            yaml: "limits: {max_buffered_request_bytes_per_connection: 1023}\n",
            path: "limits.max_buffered_request_bytes_per_connection",
            message: "must be 0 (no bound) or at least 1024 bytes"
        ),
        Case(
            yaml: "limits: {max_buffered_request_bytes_per_connection: -1}\n",
            path: "limits.max_buffered_request_bytes_per_connection",
            message: "-1 bytes is out of range 0...1125899906842624"
        ),
        Case(yaml: "timeouts: {preface: 0s}\n", path: "timeouts.preface", message: "0s is too short"),
        Case(yaml: "timeouts: {request_header: 0s}\n", path: "timeouts.request_header", message: "0s is too short"),
        Case(yaml: "timeouts: {body_progress: -1s}\n", path: "timeouts.body_progress", message: "expected a duration"),
        Case(
            yaml: "timeouts: {write_progress: soon}\n", path: "timeouts.write_progress", message: "expected a duration"),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, max_concurrency: 0}\n",
            path: "pools[0].max_concurrency",
            message: "0 is out of range 1...1000000"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, max_queue: -1}\n",
            path: "pools[0].max_queue",
            message: "-1 is out of range 0...1000000"
        ),
        Case(
            yaml: "store: {kind: postgres, url: \"postgres://u@h/d\", max_connections: 1}\n",
            path: "store.max_connections",
            message: "1 is out of range 2...1000"
        ),
        Case(
            yaml: "store: {max_connections: 8}\n",
            path: "store.max_connections",
            message: "only a postgres store takes max_connections (its pool's size)"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, max_async_queued: 0}\n",
            path: "pools[0].max_async_queued",
            message: "0 is out of range 1...1000000000"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, outlier_detection: {max_ejected_percent: 101}}\n",
            path: "pools[0].outlier_detection.max_ejected_percent",
            message: "101 is out of range 0...100"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: grpc, endpoints: [\"h:1\"], health_check: {path: /x}}\n",
            path: "pools[0].health_check.path",
            message: "only http pools take a path (grpc pools call grpc.health.v1.Health/Check)"
        ),
        Case(
            yaml:
                "pools:\n  - {name: a, transport: http, endpoints: [\"h:1\"], health_check: {unhealthy_threshold: 0}}\n",
            path: "pools[0].health_check.unhealthy_threshold",
            message: "0 is out of range 1...100"
        ),
        Case(
            yaml:
                "pools:\n  - {name: a, transport: http, endpoints: [\"h:1\"], health_check: {interval: 1s, timeout: 1001ms}}\n",
            path: "pools[0].health_check.timeout",
            message: "timeout (1001ms) must not be longer than interval (1s)"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"h:1\"], health_check: {interval: 500ms}}\n",
            path: "pools[0].health_check.interval",
            message: "timeout (1s) must not be longer than interval (500ms)"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, retry: {max_tries: 0}}\n",
            path: "pools[0].retry.max_tries",
            message: "0 is out of range 1...10"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, retry: {max_tries: 11}}\n",
            path: "pools[0].retry.max_tries",
            message: "11 is out of range 1...10"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, retry: {budget_percent: 101}}\n",
            path: "pools[0].retry.budget_percent",
            message: "101 is out of range 0...100"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, retry: {tries: 2}}\n",
            path: "pools[0].retry.tries",
            message: "unknown key"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, outlier_detection: {base_ejection: 10s}}\n",
            path: "pools[0].outlier_detection.max_ejection",
            message: "max_ejection must not be shorter than base_ejection"
        ),
        // Pools.
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess}\n  - {name: a, transport: inprocess}\n",
            path: "pools[1].name",
            message: "duplicate pool name \"a\" (also pools[0].name)"
        ),
        Case(yaml: "pools:\n  - {transport: inprocess}\n", path: "pools[0].name", message: "missing (required)"),
        Case(yaml: "pools:\n  - {name: a}\n", path: "pools[0].transport", message: "missing (required)"),
        Case(
            yaml: "pools:\n  - {name: \"my pool\", transport: inprocess}\n",
            path: "pools[0].name",
            message: "pool names may only use"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: tcp}\n",
            path: "pools[0].transport",
            message: "unknown value \"tcp\"; expected inprocess | http | grpc"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http}\n",
            path: "pools[0].endpoints",
            message: "an http pool needs at least one endpoint"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: grpc, endpoints: []}\n",
            path: "pools[0].endpoints",
            message: "a grpc pool needs at least one endpoint"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, endpoints: [\"1.2.3.4:5\"]}\n",
            path: "pools[0].endpoints",
            message: "an inprocess pool takes no endpoints"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"1.2.3.4:5\", \"host\"]}\n",
            path: "pools[0].endpoints[1]",
            message: "bad endpoint \"host\": missing port"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"grpcs://h:443\"]}\n",
            path: "pools[0].endpoints[0]",
            message: "grpcs:// is for grpc pools; an http pool's endpoints use http:// or https://"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: grpc, endpoints: [\"grpcs://h:1\", \"h:2\"]}\n",
            path: "pools[0].endpoints[1]",
            message: "a pool's endpoints all use TLS or none: endpoints[0] is grpcs:// and this one is not"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"http://h:1\"], tls: true}\n",
            path: "pools[0].endpoints[0]",
            message: "http:// asks for cleartext but the pool has tls"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"https://h:1\"], tls: false}\n",
            path: "pools[0].endpoints[0]",
            message: "https:// asks for TLS but the pool says tls: false"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"h:1\"], tls: {key_file: k.pem}}\n",
            path: "pools[0].tls.key_file",
            message: "needs cert_file: the client certificate this key belongs to"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"h:1\"], tls: {cert_file: c.pem}}\n",
            path: "pools[0].tls.cert_file",
            message: "needs key_file: the client certificate's private key"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: grpc, endpoints: [\"h:1\"], tls: {server_name: 10.0.0.1}}\n",
            path: "pools[0].tls.server_name",
            message: "\"10.0.0.1\" is not a DNS host name (SNI carries no IP addresses)"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: grpc, endpoints: [\"h:1\"], tls: {ca_fil: x.pem}}\n",
            path: "pools[0].tls.ca_fil",
            message: "unknown key (did you mean \"ca_file\"?)"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: inprocess, tls: true}\n",
            path: "pools[0].tls",
            message: "an inprocess pool has no endpoints to reach over TLS"
        ),
        Case(
            yaml: "tls: {cert_file: c.pem, key_file: k.pem, client_principals: {\"CN=a\": a}}\n",
            path: "tls.client_principals",
            message: "needs client_ca_file: only verified client certificates name a principal"
        ),
        Case(
            yaml: "tls: {cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem, client_principals: {alice: a}}\n",
            path: "tls.client_principals.\"alice\"",
            message: "expected a certificate subject in RFC 4514 form, most specific first (CN=alice,O=Example)"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"ftp://h:21\"]}\n",
            path: "pools[0].endpoints[0]",
            message:
                "bad endpoint \"ftp://h:21\": unsupported scheme \"ftp\" (expected http://, https://, grpc://, grpcs:// or none)"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"h:70000\"]}\n",
            path: "pools[0].endpoints[0]",
            message: "bad endpoint \"h:70000\": port \"70000\" is not a number from 0 to 65535"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: http, endpoints: [\"bad_host:80\"]}\n",
            path: "pools[0].endpoints[0]",
            message: "bad endpoint \"bad_host:80\": \"bad_host\" is not an IP address or host name"
        ),
        Case(
            yaml: "pools:\n  - {name: a, transport: grpc, endpoints: [\"h:80/x\"]}\n",
            path: "pools[0].endpoints[0]",
            message: "a grpc endpoint takes no path"
        ),
        // Routes.
        Case(
            yaml: pools
                + "routes:\n  - {namespace: a, pool: demo}\n  - {namespace: b, pool: demo}\n  - {namespace: c, pool: gpu}\n",
            path: "routes[2].pool",
            message: "unknown pool \"gpu\""
        ),
        Case(
            yaml: pools + "routes:\n  - {namespace: \"\", pool: demo}\n",
            path: "routes[0].namespace",
            message: "must not be empty"
        ),
        Case(
            yaml: pools + "routes:\n  - {namespace: a, pipeline: \"\", pool: demo}\n",
            path: "routes[0].pipeline",
            message: "must not be empty"
        ),
        Case(
            yaml: pools + "routes:\n  - {pipeline: echo, pool: demo}\n",
            path: "routes[0].namespace",
            message: "missing (required)"
        ),
        Case(yaml: pools + "routes:\n  - {namespace: a}\n", path: "routes[0].pool", message: "missing (required)"),
        Case(
            yaml: pools + "routes:\n  - {namespace: a, pipeline: \"ec*\", pool: demo}\n",
            path: "routes[0].pipeline",
            message: "\"*\" matches only on its own"
        ),
        Case(
            yaml: pools + "routes:\n  - {namespace: a/b, pool: demo}\n",
            path: "routes[0].namespace",
            message: "\"a/b\" must not contain \"/\""
        ),
        Case(
            yaml: pools + "routes:\n  - {namespace: a, pool: demo}\n  - {namespace: a, pipeline: \"*\", pool: demo}\n",
            path: "routes[1]",
            message: "duplicate route (same namespace, pipeline and release as routes[0])"
        ),
        // Tokens and auth.
        Case(
            yaml: "tokens:\n  - {name: a, token: t1}\n  - {name: b, token: t1}\n",
            path: "tokens[1].token",
            message: "duplicate token (same as tokens[0].token)"
        ),
        Case(yaml: "tokens:\n  - {name: a}\n", path: "tokens[0].token", message: "missing (required)"),
        Case(yaml: "tokens:\n  - {name: \"\", token: x}\n", path: "tokens[0].name", message: "must not be empty"),
        Case(
            yaml: "tokens:\n  - {name: a, token: \"two words\"}\n",
            path: "tokens[0].token",
            message: "must not contain spaces"
        ),
        Case(yaml: "auth: basic\n", path: "auth", message: "unknown value \"basic\"; expected tokens | none"),
        // Listen address.
        Case(yaml: "listen: localhost\n", path: "listen", message: "bad address \"localhost\": missing port"),
        Case(
            yaml: "listen: \"::1:8080\"\n",
            path: "listen",
            message: "bad address \"::1:8080\": an IPv6 address must be written in brackets"
        ),
        Case(yaml: "listen: \"[::1:8080\"\n", path: "listen", message: "bad address \"[::1:8080\": missing \"]\""),
        Case(
            yaml: "listen: \"[::g]:8080\"\n",
            path: "listen",
            message: "bad address \"[::g]:8080\": \"::g\" is not an IP address"
        ),
        Case(yaml: "listen: 1.2.3.4:99999\n", path: "listen", message: "bad address \"1.2.3.4:99999\": port \"99999\""),
        Case(yaml: "listen: \"1.2.3.4:\"\n", path: "listen", message: "bad address \"1.2.3.4:\": port \"\""),
        Case(
            yaml: "listen: 300.1.1.1:80\n",
            path: "listen",
            message: "bad address \"300.1.1.1:80\": \"300.1.1.1\" is not an IP address"
        ),
        Case(yaml: "listen: :80\n", path: "listen", message: "bad address \":80\": missing host"),
        // YAML itself.
        Case(yaml: "listen: [unclosed\n", path: "", message: "invalid YAML at line"),
        Case(yaml: "listen: a:1\nlisten: b:2\n", path: "", message: "invalid YAML: duplicate key \"listen\""),
    ]

    @Test("each refusal names its path", arguments: cases)
    func refused(_ c: Case) {
        let error = #expect(throws: ConfigError.self) {
            try GatewayConfiguration.parse(yaml: c.yaml, source: "config.yaml")
        }
        #expect(error?.source == "config.yaml")
        #expect(error?.path == c.path)
        #expect(error?.message.hasPrefix(c.message) == true, "message was: \(error?.message ?? "-")")
        let prefix = c.path.isEmpty ? "config.yaml: " : "config.yaml: \(c.path): "
        #expect(error?.description == prefix + (error?.message ?? ""))
        // One mistake in the file, one reported (no consequence of it reported again).
        #expect(error?.further == [], "\(error?.description ?? "")")
    }

    /// The values just inside each range load; the ones just outside are in `cases` above.
    @Test(
        "limits at the edge of their range are accepted",
        arguments: [
            ("limits: {max_body_bytes: 1KiB}", "max_body_bytes", 1024),
            ("limits: {max_body_bytes: 4294967295}", "max_body_bytes", 4_294_967_295),
            ("limits: {max_batch: 1}", "max_batch", 1),
            ("limits: {max_batch: 4096}", "max_batch", 4096),
            ("limits: {max_header_bytes: 1MiB}", "max_header_bytes", 1 << 20),
            ("limits: {max_depth: \"512\"}", "max_depth", 512),
            ("limits: {max_json_members: 1}", "max_json_members", 1),
            ("limits: {max_json_members: 16777216}", "max_json_members", 1 << 24),
            ("limits: {max_concurrent_streams: 1}", "max_concurrent_streams", 1),
            ("limits: {max_connections: 1}", "max_connections", 1),
            ("limits: {max_connections: 1000000}", "max_connections", 1_000_000),
            ("limits: {max_connections_per_peer: 0}", "max_connections_per_peer", 0),
            ("limits: {max_connections_per_peer: 1000000}", "max_connections_per_peer", 1_000_000),
            ("limits: {stream_buffer_bytes: 1KiB}", "stream_buffer_bytes", 1024),
            ("limits: {stream_buffer_bytes: 1GiB}", "stream_buffer_bytes", 1 << 30),
            ("limits: {connection_buffer_bytes: 1024}", "connection_buffer_bytes", 1024),
            ("limits: {connection_buffer_bytes: 4294967295}", "connection_buffer_bytes", 4_294_967_295),
            ("limits: {max_decompressed_bytes: 1KiB}", "max_decompressed_bytes", 1024),
            ("limits: {max_body_bytes: 1MiB, max_decompressed_bytes: 1MiB}", "max_decompressed_bytes", 1_048_576),
            // The default, 4 MiB, follows a smaller body cap down.
            ("limits: {max_body_bytes: 1MiB}", "max_decompressed_bytes", 1_048_576),
            ("limits: {}", "max_decompressed_bytes", 4_194_304),
            ("limits: {}", "max_buffered_request_bytes", 1_073_741_824),
            ("limits: {max_buffered_request_bytes: 0}", "max_buffered_request_bytes", 0),
            ("limits: {max_buffered_request_bytes: 1KiB}", "max_buffered_request_bytes", 1024),
            ("limits: {}", "max_buffered_request_bytes_per_connection", 67_108_864),
            ("limits: {max_buffered_request_bytes_per_connection: 0}", "max_buffered_request_bytes_per_connection", 0),
            (
                "limits: {max_buffered_request_bytes_per_connection: 1KiB}",
                "max_buffered_request_bytes_per_connection",
                1024
            ),
        ] as [(String, String, Int)]
    )
    func limitEdges(yaml: String, field: String, expected: Int) throws {
        let limits = try GatewayConfiguration.parse(yaml: yaml, source: "c.yaml").limits
        let fields = [
            "max_body_bytes": limits.maxBodyBytes, "max_batch": limits.maxBatch,
            "max_header_bytes": limits.maxHeaderBytes, "max_depth": limits.maxDepth,
            "max_json_members": limits.maxJSONMembers,
            "max_concurrent_streams": limits.maxConcurrentStreams, "max_connections": limits.maxConnections,
            "max_connections_per_peer": limits.maxConnectionsPerPeer,
            "stream_buffer_bytes": limits.streamBufferBytes, "connection_buffer_bytes": limits.connectionBufferBytes,
            "max_decompressed_bytes": limits.maxDecompressedBytes,
            "max_buffered_request_bytes": limits.maxBufferedRequestBytes,
            "max_buffered_request_bytes_per_connection": limits.maxBufferedRequestBytesPerConnection,
        ]
        #expect(fields[field] == expected)
    }
}
