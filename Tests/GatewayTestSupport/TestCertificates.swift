import Foundation

/// A throwaway PKI made with the openssl command line (an independent peer): two CAs, a server certificate
/// for `localhost` / 127.0.0.1 / ::1 from each, and a client certificate (`CN=alice`) from the first.
package struct TestCertificates: Sendable {
    package let directory: String
    package var caFile: String { "\(directory)/ca.pem" }
    package var serverCert: String { "\(directory)/server.pem" }
    package var serverKey: String { "\(directory)/server.key" }
    package var clientCert: String { "\(directory)/client.pem" }
    package var clientKey: String { "\(directory)/client.key" }
    /// A second client certificate from the same CA, `CN=bob` (another principal).
    package var otherClientCert: String { "\(directory)/client2.pem" }
    package var otherClientKey: String { "\(directory)/client2.key" }
    /// A second CA and a server certificate from it (a renewed certificate, or the wrong CA for a client).
    package var otherCAFile: String { "\(directory)/ca2.pem" }
    package var otherServerCert: String { "\(directory)/server2.pem" }
    package var otherServerKey: String { "\(directory)/server2.key" }

    /// Makes the files in a fresh temporary directory (removed by `remove()`).
    package static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-pki-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        func openssl(_ arguments: [String]) async throws {
            let output = try await TestProcess.run("/usr/bin/openssl", arguments)
            guard output.status == 0 else { throw PKIError.openssl(arguments.joined(separator: " "), output.stderr) }
        }
        for ca in ["ca", "ca2"] {
            try await openssl([
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=trigger-gateway test \(ca)", "-keyout", "\(directory)/\(ca).key", "-out",
                "\(directory)/\(ca).pem",
            ])
        }
        let leaves: [(name: String, ca: String, subject: String, extensions: String)] = [
            (
                "server", "ca", "/CN=localhost",
                "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth"
            ),
            (
                "server2", "ca2", "/CN=localhost",
                "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth"
            ),
            ("client", "ca", "/CN=alice", "extendedKeyUsage=clientAuth"),
            ("client2", "ca", "/CN=bob", "extendedKeyUsage=clientAuth"),
        ]
        for leaf in leaves {
            let extensions = "\(directory)/\(leaf.name).ext"
            try leaf.extensions.write(toFile: extensions, atomically: true, encoding: .utf8)
            try await openssl([
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", leaf.subject,
                "-keyout", "\(directory)/\(leaf.name).key", "-out", "\(directory)/\(leaf.name).csr",
            ])
            try await openssl([
                "x509", "-req", "-in", "\(directory)/\(leaf.name).csr", "-CA", "\(directory)/\(leaf.ca).pem",
                "-CAkey", "\(directory)/\(leaf.ca).key", "-CAcreateserial", "-days", "2", "-extfile", extensions,
                "-out", "\(directory)/\(leaf.name).pem",
            ])
        }
        return certificates
    }

    package func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    package enum PKIError: Error { case openssl(String, String) }
}
