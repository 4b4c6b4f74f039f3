package import Foundation

/// Independent protocol peers used by interop tests. `scripts/test` installs all of them (apt packages and
/// the Python venv), so a missing one is a set-up failure, not a reason to skip.
package enum Peers {
    /// The repository root, found from this source file's location.
    package static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    package static var python: String {
        let venv = repositoryRoot.appendingPathComponent(".venv/bin/python3").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "/usr/bin/python3"
    }

    /// Runs a scenario of `Tests/InteropClients/grpc_client.py` (grpcio) and returns its JSON answer. With
    /// `progressFile`, `stream-run` appends a line to it per message received, as it arrives.
    package static func grpcio(
        _ scenario: String, port: Int, _ arguments: [String] = [], token: String? = nil, authorization: String? = nil,
        tlsCA: String? = nil, tlsClient: (cert: String, key: String)? = nil, progressFile: String? = nil
    ) async throws -> [String: Any] {
        let script = repositoryRoot.appendingPathComponent("Tests/InteropClients/grpc_client.py").path
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        if let token { env["TG_TOKEN"] = token }
        if let authorization { env["TG_AUTHORIZATION"] = authorization }
        if let tlsCA { env["TG_TLS_CA"] = tlsCA }
        if let progressFile { env["TG_PROGRESS_FILE"] = progressFile }
        if let tlsClient {
            env["TG_TLS_CERT"] = tlsClient.cert
            env["TG_TLS_KEY"] = tlsClient.key
        }
        let output = try await TestProcess.run(python, [script, scenario, String(port)] + arguments, environment: env)
        guard output.status == 0,
            let object = try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any]
        else {
            throw PeerError.failed(
                "grpc_client.py \(scenario) exited \(output.status): \(output.stderr)\(output.stdoutString)")
        }
        return object
    }

    package enum PeerError: Error { case failed(String) }
}
