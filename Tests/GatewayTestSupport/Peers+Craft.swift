package import Foundation

extension Peers {
    /// The Python of `.venv-craft`, where `scripts/setup.sh --test` installs craft-ai-sdk 0.74.7 (it cannot share
    /// `.venv` with instill-sdk).
    package static var craftPython: String {
        repositoryRoot.appendingPathComponent(".venv-craft/bin/python3").path
    }

    /// Runs a scenario of `Tests/InteropClients/craft_client.py` (the unmodified craft-ai-sdk) against
    /// `http://127.0.0.1:<port>` and returns its JSON answer: `result` or `error`, and `http`, every exchange.
    package static func craft(
        _ scenario: String,
        port: Int,
        _ arguments: [String] = [],
        sdkToken: String = "any-sdk-token",
        stdin: Data? = nil
    ) async throws -> [String: Any] {
        guard FileManager.default.isExecutableFile(atPath: craftPython) else {
            throw PeerError.failed("\(craftPython) is missing: run scripts/setup.sh --test")
        }
        let script = repositoryRoot.appendingPathComponent("Tests/InteropClients/craft_client.py").path
        let env = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "CRAFT_SDK_TOKEN": sdkToken,
            "HOME": NSTemporaryDirectory(),
        ]
        let output = try await TestProcess.run(
            craftPython,
            [script, scenario, "http://127.0.0.1:\(port)"] + arguments,
            stdin: stdin,
            environment: env
        )
        guard output.status == 0,
            let object = try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any]
        else {
            throw PeerError.failed(
                "craft_client.py \(scenario) exited \(output.status): \(output.stderr)\(output.stdoutString)")
        }
        return object
    }
}
