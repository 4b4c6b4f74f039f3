import Foundation

extension Peers {
    /// The venv `scripts/setup.sh --test` installs the Abacus.AI client into (abacusai 1.4.119, CLIENTS.md §4).
    package static var abacusPython: String {
        repositoryRoot.appendingPathComponent(".venv-abacus/bin/python3").path
    }

    /// Runs a scenario of `Tests/InteropClients/abacus_client.py` (the unmodified `abacusai` client) against the
    /// gateway on `port` with `apiKey`, and returns its JSON answer (an `ApiException` the client raised is part
    /// of the answer, under `exception`).
    package static func abacus(
        _ scenario: String,
        port: Int,
        _ arguments: [String] = [],
        apiKey: String = "any-key"
    ) async throws -> [String: Any] {
        guard FileManager.default.isExecutableFile(atPath: abacusPython) else {
            throw PeerError.failed("\(abacusPython) is missing: scripts/setup.sh --test installs it")
        }
        let script = repositoryRoot.appendingPathComponent("Tests/InteropClients/abacus_client.py").path
        let inherited = ProcessInfo.processInfo.environment
        var environment = ["PATH": inherited["PATH"] ?? "/usr/bin:/bin", "ABACUS_API_KEY": apiKey]
        // The client reads nothing from HOME, but pandas and friends may want a writable one.
        environment["HOME"] = inherited["HOME"] ?? NSTemporaryDirectory()
        let output = try await TestProcess.run(
            abacusPython,
            [script, scenario, String(port)] + arguments,
            environment: environment
        )
        guard output.status == 0,
            let object = try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any]
        else {
            throw PeerError.failed(
                "abacus_client.py \(scenario) exited \(output.status): \(output.stderr)\(output.stdoutString)"
            )
        }
        return object
    }
}
