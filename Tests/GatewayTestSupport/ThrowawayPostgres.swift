import Foundation

/// A PostgreSQL cluster of the test's own (initdb + pg_ctl on a temporary directory and a free loopback
/// port, as `scripts/with-postgres.sh` makes one), so a test can stop and start the server under a running
/// gateway. As root the server runs as the `postgres` OS user (PostgreSQL refuses root).
package final class ThrowawayPostgres: Sendable {
    package let port: Int
    private let directory: String
    private let pgCtl: String

    /// The server binaries are installed (`scripts/test` installs them).
    package static var isAvailable: Bool { binary("initdb") != nil && binary("pg_ctl") != nil }

    /// `postgres://postgres[:password]@127.0.0.1:<port>/postgres` (trust auth: a password is ignored).
    package func url(password: String? = nil) -> String {
        "postgres://postgres\(password.map { ":\($0)" } ?? "")@127.0.0.1:\(port)/postgres"
    }

    private init(port: Int, directory: String, pgCtl: String) {
        self.port = port
        self.directory = directory
        self.pgCtl = pgCtl
    }

    /// Makes the cluster (not started) and runs `body`; always stops and deletes it afterwards.
    package static func with<T: Sendable>(_ body: (ThrowawayPostgres) async throws -> T) async throws -> T {
        guard let initdb = binary("initdb"), let pgCtl = binary("pg_ctl") else {
            throw SetupError("initdb and pg_ctl not found (install postgresql, see scripts/setup.sh)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        if getuid() == 0 { _ = try await TestProcess.run("/usr/bin/chown", ["postgres:", directory]) }
        let made = try await runAsServerUser(
            initdb, ["-D", "\(directory)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        guard made.status == 0 else { throw SetupError("initdb failed: \(made.stderr)") }
        let cluster = ThrowawayPostgres(port: try freePort(), directory: directory, pgCtl: pgCtl)
        do {
            let value = try await body(cluster)
            await cluster.remove()
            return value
        } catch {
            await cluster.remove()
            throw error
        }
    }

    /// Starts the server and waits until it accepts connections. With `tls`, the server also accepts TLS
    /// (`ssl=on`) with `certificates.serverCert` (a `localhost` / 127.0.0.1 certificate from `caFile`); cleartext
    /// connections are still accepted, as with a stock `ssl=on` server.
    package func start(tls certificates: TestCertificates? = nil) async throws {
        var options = "-h 127.0.0.1 -p \(port) -k \(directory) -F -c max_connections=100"
        if let certificates {
            // The server refuses a key that others can read, and reads both files as its own OS user.
            let cert = "\(directory)/server.crt", key = "\(directory)/server.key"
            try? FileManager.default.removeItem(atPath: cert)
            try? FileManager.default.removeItem(atPath: key)
            try FileManager.default.copyItem(atPath: certificates.serverCert, toPath: cert)
            try FileManager.default.copyItem(atPath: certificates.serverKey, toPath: key)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
            if getuid() == 0 { _ = try await TestProcess.run("/usr/bin/chown", ["postgres:", cert, key]) }
            options += " -c ssl=on -c ssl_cert_file=\(cert) -c ssl_key_file=\(key)"
        }
        let started = try await Self.runAsServerUser(
            pgCtl,
            [
                "start", "-D", "\(directory)/data", "-w", "-t", "60", "-l", "\(directory)/server.log", "-o",
                options,
            ])
        guard started.status == 0 else {
            let log = (try? String(contentsOfFile: "\(directory)/server.log", encoding: .utf8)) ?? ""
            throw SetupError("pg_ctl start failed: \(started.stderr) \(log)")
        }
    }

    /// `psql -Atc sql` against the cluster (trust auth): the rows, `|`-separated, one a line.
    package func psql(_ sql: String) async throws -> String {
        guard let psql = Self.binary("psql") else { throw SetupError("psql not found") }
        let output = try await TestProcess.run(psql, [url(), "-Atc", sql])
        guard output.status == 0 else { throw SetupError("psql failed: \(output.stderr)") }
        return output.stdoutString.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server (fast: open sessions are ended, as when a server goes away) and waits for it.
    package func stop() async throws {
        let stopped = try await Self.runAsServerUser(pgCtl, ["stop", "-D", "\(directory)/data", "-m", "fast", "-w"])
        guard stopped.status == 0 else { throw SetupError("pg_ctl stop failed: \(stopped.stderr)") }
    }

    private func remove() async {
        if FileManager.default.fileExists(atPath: "\(directory)/data/postmaster.pid") {
            _ = try? await Self.runAsServerUser(pgCtl, ["stop", "-D", "\(directory)/data", "-m", "immediate", "-w"])
        }
    }

    /// Runs a server tool with its output in a file and none of this process's descriptors: the server
    /// that `pg_ctl start` leaves running would inherit them, and Foundation's `Process` (which learns of
    /// a child's end from a socket the child inherits) and any pipe it held would then never see an end.
    /// A Python shim forks, closes every descriptor above stderr in the child, execs the tool, and waits.
    private static func runAsServerUser(_ executable: String, _ arguments: [String]) async throws -> TestProcess.Output
    {
        let command = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] : [executable]
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("tg-pgctl-\(UUID().uuidString).log")
            .path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let shim = """
            import os, sys
            pid = os.fork()
            if pid == 0:
                out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.closerange(3, 65536)
                os.execv(sys.argv[2], sys.argv[2:])
            sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            """
        var output = try await TestProcess.run("/usr/bin/python3", ["-c", shim, log] + command + arguments)
        output.stderr += (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return output
    }

    /// A PostgreSQL tool (`psql`, `initdb`, …): on PATH, else the newest under /usr/lib/postgresql.
    package static func binary(_ name: String) -> String? {
        if let found = TestProcess.which(name) { return found }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for version in versions.sorted().reversed() {
            let candidate = "\(root)/\(version)/bin/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// A loopback port nothing listens on now (bound, read, released), for a server about to bind it. The next bind
    /// to port 0 anywhere may take it too: a peer that must stay down (refused connects) holds a ``ReservedPort``.
    package static func freePort() throws -> Int {
        let (fd, port) = try LoopbackSocket.bind()
        close(fd)
        return port
    }

    package struct SetupError: Error, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = description }
    }
}
