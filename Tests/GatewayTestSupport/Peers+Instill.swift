import Foundation

extension Peers {
    /// The Python of `.venv-instill`, where `scripts/setup.sh --test` installs instill-sdk 0.18.0 (its pins
    /// conflict with craft-ai-sdk's and with the gRPC tools' protobuf, CLIENTS.md §1).
    package static var instillPython: String {
        repositoryRoot.appendingPathComponent(".venv-instill/bin/python3").path
    }

    /// What one run of the unmodified Instill SDK ended with: its exit status (the SDK `os._exit(1)`s on any gRPC
    /// error, CLIENTS.md §2.3), its `TG-RESULT` JSON when it got that far, and everything it printed.
    package struct InstillSDKRun: Sendable {
        package var status: Int32
        package var resultJSON: String?
        package var output: String

        package var result: [String: Any]? {
            resultJSON.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    /// Runs a scenario of `Tests/InteropClients/instill_sdk_client.py` (`init_pipeline_client(…, secure=False)`
    /// against `127.0.0.1:<port>`, with `requester_id` when `requester` is given; the `tls-defaults` scenario keeps
    /// `secure=True` and trusts `tlsCA` through `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`).
    package static func instillSDK(
        _ scenario: String, port: Int, _ arguments: [String] = [], token: String, requester: String? = nil,
        tlsCA: String? = nil
    ) async throws -> InstillSDKRun {
        guard FileManager.default.isExecutableFile(atPath: instillPython) else {
            throw PeerError.failed("\(instillPython) is missing: run scripts/setup.sh --test")
        }
        let script = repositoryRoot.appendingPathComponent("Tests/InteropClients/instill_sdk_client.py").path
        // `import instill` writes its logs under $HOME/.config/instill.
        let home = NSTemporaryDirectory() + "tg-instill-home-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }
        var env = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": home,
            "TG_TOKEN": token,
        ]
        if let requester { env["TG_REQUESTER"] = requester }
        if let tlsCA { env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = tlsCA }
        let output = try await TestProcess.run(
            instillPython, [script, scenario, String(port)] + arguments, environment: env)
        let text = output.stdoutString + output.stderr
        let line = output.stdoutString.split(separator: "\n").first { $0.hasPrefix("TG-RESULT ") }
        return InstillSDKRun(
            status: output.status, resultJSON: line.map { String($0.dropFirst("TG-RESULT ".count)) }, output: text)
    }

    /// Runs a scenario of `Tests/InteropClients/instill_generations_client.py` (grpcio stubs of each Instill
    /// wire generation) and returns its JSON answer.
    package static func instillGenerations(
        _ scenario: String, port: Int, _ arguments: [String] = [], token: String? = nil, requesterUID: String? = nil
    ) async throws -> [String: Any] {
        let script = repositoryRoot.appendingPathComponent("Tests/InteropClients/instill_generations_client.py").path
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        if let token { env["TG_TOKEN"] = token }
        if let requesterUID { env["TG_REQUESTER_UID"] = requesterUID }
        let output = try await TestProcess.run(python, [script, scenario, String(port)] + arguments, environment: env)
        guard output.status == 0,
            let object = try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any]
        else {
            throw PeerError.failed(
                "instill_generations_client.py \(scenario) exited \(output.status): \(output.stderr)\(output.stdoutString)"
            )
        }
        return object
    }
}
