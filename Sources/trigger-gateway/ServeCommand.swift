import ArgumentParser
import DemoRunner
import Foundation
import GatewayApp
import GatewayConfig
import GatewayServer
import Logging
import NIOCore
import NIOPosix
import Observability
import OperationStore
import ServiceLifecycle
import TriggerModel
import UnixSignals

/// `serve [--config FILE] [--listen HOST:PORT] [--admin-listen HOST:PORT] [--data-dir DIR] [--log-format logfmt|json] [--log-level LEVEL]`
/// (API.md §6).
struct ServeCommand: AsyncParsableCommand {
    /// How long past `timeouts.shutdown_grace` a stop may take before it is cancelled (see `run`).
    static let stopDeadlineMargin: Duration = .seconds(30)
    /// How long a cancelled stop may take before the process ends with a fatal error.
    static let cancellationDeadline: Duration = .seconds(10)

    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway. With no config: the embedded default on 127.0.0.1:8080."
    )

    @Option(help: "YAML configuration file; every field has a default.")
    var config: String?

    @Option(help: "Address to listen on, HOST:PORT (overrides the file; port 0 picks a free one).")
    var listen: String?

    @Option(
        help: """
            Address of the admin listener (/metrics, /healthz, /readyz), HOST:PORT (overrides the file's \
            admin.listen, or adds one; port 0 picks a free one).
            """)
    var adminListen: String?

    @Flag(
        help: """
            Bind the listen address with SO_REUSEPORT (as the file's listen_reuse_port: true), so that a new \
            instance of the same user can listen on the port before the old one is stopped.
            """)
    var listenReusePort = false

    @Option(help: "Directory for the embedded store and spilled blobs (overrides the file).")
    var dataDir: String?

    @Option(help: "Log line format: logfmt or json (overrides the file's log.format; default logfmt).")
    var logFormat: LogConfiguration.Format?

    @Option(
        help: """
            Least severe level logged: trace, debug, info, notice, warning, error, critical (overrides the \
            file's log.level; default info). The access log is written at every level; log.access: false \
            turns it off.
            """)
    var logLevel: LogConfiguration.Level?

    func run() async throws {
        // Trapped first: the default action of each ends the process. SIGHUP came ~30 ms into the start-up (the
        // configuration read) and killed it where a reload was meant; a SIGUSR1 from a logrotate `postrotate` kept
        // from nginx, nghttpx or Envoy (their "reopen the log files") killed it at any time, requests in flight.
        // A SIGHUP or stop signal that comes before the services run is handled once they do.
        let reloadSignals = await UnixSignalsSequence(trapping: .sighup)
        let stopSignals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let ignoredSignals = await UnixSignalsSequence(trapping: .sigusr1, .sigusr2)
        GatewayBuild.stamp(revision: stampedRevision)
        // systemd's `Type=notify` (sd_notify(3)): ready once listening, reloading during a SIGHUP's reload, stopping
        // from the stop signal on. Nil unless the service manager asked for it.
        let notifier = ServiceManagerNotifier.fromEnvironment(ProcessInfo.processInfo.environment)
        // systemd socket activation, read first: its variables are unset at once (sd_listen_fds(3)), and a bad
        // descriptor is one line and exit 1 before anything else starts.
        let inherited: (listener: InheritedListener?, ignored: String?)
        do {
            inherited = try SocketActivation.takeListener()
        } catch {
            throw Self.fatal(["\(error)"], exitCode: 1, format: logFormat)
        }
        let inheritedListen = inherited.listener?.address
        var configuration: GatewayConfiguration
        var digest = ConfigFile.embeddedDigest
        let listenOverride: ListenAddress?
        let adminListenOverride: ListenAddress?
        do throws(ConfigError) {
            listenOverride = try listen.map { text throws(ConfigError) in try ListenAddress(parsingFlag: text) }
            adminListenOverride = try adminListen.map { text throws(ConfigError) in
                try ListenAddress(parsingFlag: text, flag: "--admin-listen")
            }
            if let config {
                (configuration, digest) = try ConfigFile.load(
                    path: config, listen: listenOverride, inheritedListen: inheritedListen, dataDir: dataDir,
                    adminListen: adminListenOverride)
            } else {
                configuration = .defaults
                if let listenOverride { configuration.listen = listenOverride }
                if let inheritedListen {
                    if listenOverride != nil {
                        configuration.warnings += ConfigFile.inheritedListenWarnings(
                            configured: configuration.listen, inherited: inheritedListen, source: "--listen")
                    }
                    configuration.listen = inheritedListen
                }
                if let dataDir { configuration.dataDir = dataDir }
                if let adminListenOverride {
                    configuration.applyAdminListen(adminListenOverride)
                    do throws(ConfigError) {
                        try configuration.validateAdminListen()
                    } catch {
                        var refusal = error
                        refusal.source = "--admin-listen"
                        throw refusal
                    }
                }
                do throws(ConfigError) {
                    try configuration.validateListenPolicy()
                } catch {
                    // The embedded default has no file to add tokens to: name the flag that set the address, and
                    // say that the fix is a file (or a loopback address).
                    var refusal = error
                    // The address that serves: the inherited socket's when there is one (it wins over the flag).
                    refusal.source = inheritedListen == nil ? "--listen" : "the inherited socket (socket activation)"
                    refusal.path = ""
                    refusal.message =
                        "refusing to listen on \(configuration.listen) without authentication: the embedded default "
                        + "has no tokens. Listen on a loopback address (127.0.0.1, [::1], localhost), or pass "
                        + "--config FILE with tokens (or \"auth: none\" to serve without authentication)"
                    throw refusal
                }
            }
        } catch {
            // Every mistake of the file, one prefixed line each (then their count), as check-config lists them.
            throw Self.fatal(error.lines, exitCode: 2, format: logFormat)
        }

        if listenReusePort { configuration.listenReusePort = true }
        if let logFormat { configuration.log.format = logFormat }
        if let logLevel { configuration.log.level = logLevel }
        let log = configuration.log
        let level = Logger.Level(rawValue: log.level.rawValue) ?? .info
        let format = LineFormat(rawValue: log.format.rawValue) ?? .logfmt
        // One line per event on stderr, written as it happens (LineLogHandler); the access log is one of them.
        // Every handler follows one level, which a reload changes (`log.level`, review 18 F5).
        let levelSwitch = LogLevelSwitch(level)
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, levelSwitch: levelSwitch) }
        let logger = Logger(label: "trigger-gateway")
        // The access log apart (review 26 L7): logger `access`, at `info` whatever `log.level` says; `log.access`
        // switches it (GatewayApp).
        let accessLogger = Logger(label: "access") { label in LineLogHandler(label: label, format: format, level: .info)
        }
        // The data directory is this process's alone (its instance id, the SQLite store): a second gateway on it
        // would take this one's leases back and run its running operations again. Taken before the store opens.
        let dataDirectoryLock: DataDirectoryLock
        do {
            dataDirectoryLock = try DataDirectoryLock(dataDir: configuration.dataDir)
        } catch {
            throw Self.fatal(["\(error)"], exitCode: 1, format: log.format)
        }
        if let exposure = DataDirectoryLock.exposure(ofDataDir: configuration.dataDir) {
            logger.warning("\(exposure)", metadata: ["path": "\(configuration.dataDir)"])
        }
        for warning in configuration.warnings {
            logger.warning("\(warning.message)", metadata: ["config.key": "\(warning.path)"])
        }
        if let ignored = inherited.ignored { logger.warning("\(ignored); binding listen") }
        if inherited.listener != nil, configuration.listenReusePort {
            logger.warning(
                "listen_reuse_port does nothing on an inherited socket: its socket unit sets its options (ReusePort=)",
                metadata: ["config.key": "listen_reuse_port"])
        }
        for (path, exposure) in GatewayApp.exposedKeyFiles(configuration) {
            logger.warning("\(exposure)", metadata: ["path": "\(path)"])
        }
        // The store opens before anything listens: an async trigger is only ever answered with an id the
        // store has committed. SQLite that cannot open is a configuration error (the data dir); a PostgreSQL
        // server that is down is not: sync and stream triggers do not need it, so the gateway serves them,
        // answers async 503, and connects in the background (StoreHealthService).
        let store: (any OperationStore)?
        do {
            let toOpen = configuration
            let openLogger = logger
            if configuration.store.kind == .postgres {
                // A server that does not answer must not hold the listener back for the store's whole
                // operation timeout: after a few seconds it is left to the background reconnects.
                let opened = await StoreHealthService.withTimeout(.seconds(3)) {
                    try await GatewayApp.openStore(toOpen, logger: openLogger)
                }
                store = try (opened ?? .failure(GatewayError(.unavailable, "no answer within 3 s"))).get()
            } else {
                store = try await GatewayApp.openStore(toOpen, logger: openLogger)
            }
        } catch let error as ConfigError {
            throw Self.fatal(["\(error)"], exitCode: 2, format: log.format)
        } catch {
            let reason = (error as? GatewayError)?.message ?? "\(error)"
            guard configuration.store.kind == .postgres else {
                throw Self.fatal(["cannot open the operation store: \(reason)"], exitCode: 1, format: log.format)
            }
            logger.warning(
                "operation store not ready at start-up: serving sync and stream triggers, async triggers answer 503 until it is ready",
                metadata: ["store": "\(GatewayApp.storeName(configuration))", "error": "\(reason)"]
            )
            store = nil
        }
        let storeConfiguration = configuration
        let storeLogger = logger
        var reopenStore: StoreHealthService.Opener?
        if configuration.store.kind == .postgres {
            reopenStore = { try await GatewayApp.openStore(storeConfiguration, logger: storeLogger) }
        }
        let app = GatewayApp(
            configuration: configuration,
            group: MultiThreadedEventLoopGroup.singleton,
            inProcessRunner: DemoPipelines(),
            logger: logger,
            store: store,
            reopenStore: reopenStore,
            digest: digest,
            logLevel: levelSwitch,
            accessLogger: accessLogger,
            inheritedListener: inherited.listener
        )
        logger.info(
            "configuration loaded",
            metadata: [
                "config.digest": "\(digest)", "config.source": "\(configuration.source)",
                "gateway.version": "\(GatewayBuild.version)",
                "gateway.revision": "\(GatewayBuild.revision)",
            ])
        var services = app.services.map { service in
            // An admin listener that cannot bind stops the gateway gracefully: the serving listener, bound by then,
            // drains. Cancelled instead (the default), it kept waiting on its channel past the group's cancellation
            // deadline, and the process died of ServiceGroup's fatal error rather than exit 1 with the reason.
            service is AdminServer
                ? ServiceGroupConfiguration.ServiceConfiguration(
                    service: service, failureTerminationBehavior: .gracefullyShutdownGroup)
                : ServiceGroupConfiguration.ServiceConfiguration(service: service)
        }
        let configPath = self.config
        let reusePortOverride: Bool? = listenReusePort ? true : nil
        let dataDir = self.dataDir
        services.append(
            .init(
                service: ConfigReloadService(signals: reloadSignals, logger: logger) { [logger] in
                    let reload = { () -> String in
                        let ignored = "SIGHUP ignored: running the embedded default, there is no file to reload"
                        guard let configPath else {
                            logger.warning("\(ignored)")
                            return ignored
                        }
                        let outcome = app.reload(
                            fromFile: configPath, listen: listenOverride, inheritedListen: inheritedListen,
                            dataDir: dataDir, logFormat: logFormat, logLevel: logLevel,
                            listenReusePort: reusePortOverride, adminListen: adminListenOverride)
                        // Refused or applied, the gateway serves (the running configuration stays when refused).
                        return outcome == .applied
                            ? "configuration reloaded" : "configuration reload refused; the running configuration stays"
                    }
                    // Type=notify-reload waits for RELOADING=1 then READY=1, for an ignored SIGHUP too.
                    if let notifier { notifier.reloading(reload) } else { _ = reload() }
                }
            )
        )
        services.append(.init(service: IgnoredSignalsService(signals: ignoredSignals, logger: logger)))
        var groupConfiguration = ServiceGroupConfiguration(
            services: services,
            // SIGTERM and SIGINT are ours (`stopSignals` below): the stop's first line names the signal before the
            // group's graceful shutdown begins, which is what the group did on them itself.
            gracefulShutdownSignals: [],
            logger: logger
        )
        // A stop always ends (review 26 H1: a store call that ignored its cancellation held one for good). The
        // services bound their own drain by `shutdown_grace`, the store's close by twice its call timeout; a stop
        // still running `stopDeadlineMargin` after the grace is escalated to cancellation, and one that does not
        // end `cancellationDeadline` after that ends the process (a fatal error: the exit systemd reports), as
        // nginx's `worker_shutdown_timeout` and Envoy's drain time bound theirs.
        groupConfiguration.maximumGracefulShutdownDuration =
            configuration.timeouts.shutdownGrace + Self.stopDeadlineMargin
        groupConfiguration.maximumCancellationDuration = Self.cancellationDeadline
        let group = ServiceGroup(configuration: groupConfiguration)
        // The stop's first line (review 26 L3: a reload had one, a stop started with `scheduler stopped`): the
        // signal and the grace the drain has, logged before the graceful shutdown it then starts. Later signals
        // change nothing (the stop is under way, bounded by the grace and `stopDeadlineMargin`).
        let shutdownGrace = configuration.timeouts.shutdownGrace
        let stopWatch = Task { [logger] in
            for await signal in stopSignals {
                logger.info(
                    "stopping",
                    metadata: ["signal": "\(signal)", "shutdown_grace": "\(ConfigUnits.format(shutdownGrace))"])
                notifier?.stopping()
                await group.triggerGracefulShutdown()
                break
            }
        }
        defer { stopWatch.cancel() }
        let listenHost = configuration.listenHost
        let adminHost = configuration.admin?.listen.host
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                tasks.addTask {
                    // Tests and scripts start us on port 0 and read the port from this line.
                    let address = try await app.server.localAddress()
                    let listening = ListenAddress(host: address.ipAddress ?? listenHost, port: address.port ?? 0)
                    // The admin port first, on a line of its own that says `admin listener on` (never `listening
                    // on`, which scripts read as the serving port): known to whoever reads the ready line.
                    var adminListening: ListenAddress?
                    if let admin = app.admin, let host = adminHost {
                        // Its bind failure is not thrown here: that would cancel the group, whose listener does not
                        // end on cancellation; the group stops gracefully and throws it instead (see `services`).
                        guard let bound = try? await admin.localAddress() else { return }
                        adminListening = ListenAddress(host: bound.ipAddress ?? host, port: bound.port ?? 0)
                    }
                    if format == .json {
                        // `serve --log-format json 2>&1 | jq` must read every line as JSON (review 9, finding 6):
                        // the same words, as a log line of the chosen format on stdout.
                        var stdout = Logger(label: "trigger-gateway") {
                            LineLogHandler(label: $0, format: .json, fileDescriptor: 1)
                        }
                        stdout.logLevel = .info
                        if let adminListening {
                            stdout.info(
                                "admin listener on \(adminListening)", metadata: ["admin.address": "\(adminListening)"])
                        }
                        stdout.info("listening on \(listening)", metadata: ["listen.address": "\(listening)"])
                    } else {
                        let admin = adminListening.map { "admin listener on \($0)\n" } ?? ""
                        FileHandle.standardOutput.write(Data("\(admin)listening on \(listening)\n".utf8))
                    }
                    notifier?.ready(status: "listening on \(listening)")
                }
                try await tasks.waitForAll()
            }
        } catch {
            // One line naming the address and the reason, then a non-zero exit (what systemd shows).
            var failure = error
            // The admin listener's failure first: when it is what failed, the serving listener may never have bound
            // (its address would never be set).
            var adminFailed = false
            if let admin = app.admin {
                do { _ = try await admin.localAddress() } catch let listen as ListenFailure {
                    failure = listen
                    adminFailed = true
                } catch {}
            }
            if !adminFailed {
                do { _ = try await app.server.localAddress() } catch let listen as ListenFailure {
                    failure = listen
                } catch {}
            }
            throw Self.fatal(["\(failure)"], exitCode: 1, format: log.format)
        }
        dataDirectoryLock.release()
        // The last line of a stop: every service (listener, async dispatcher, webhooks, store) has ended. With the
        // drain's summary (review 26 L3): requests `shutdown_grace` cut, async runs it handed back to the queue.
        logger.info(
            "stopped",
            metadata: [
                "requests.cut": .stringConvertible(app.server.requestsCutAtShutdown),
                "async.handed_back": .stringConvertible(app.asyncRunsHandedBackAtStop),
                "async.not_handed_back": .stringConvertible(app.asyncRunsNotHandedBackAtStop),
            ])
    }
}

extension LogConfiguration.Format: ExpressibleByArgument {}
extension LogConfiguration.Level: ExpressibleByArgument {}

extension ServeCommand {
    /// A fatal start-up error: `lines` on stderr, then exit `exitCode` (thrown by the caller). With the JSON format
    /// (`--log-format json`, or the file's `log.format` once it is read), each line is a JSON object at `critical`
    /// with an `exit_code` field, like every other line, so a JSON log pipeline parses the line that explains a
    /// crash loop (review 27 L2); else the bare `trigger-gateway: …` line. A failure before the format is known (an
    /// unreadable file without `--log-format`) is the bare line.
    static func fatal(_ lines: [String], exitCode: Int32, format: LogConfiguration.Format?) -> ExitCode {
        for line in lines {
            if format == .json {
                LineLogHandler.writeDetachedLine(
                    format: .json, level: .critical, label: "trigger-gateway", message: line,
                    metadata: ["exit_code": .stringConvertible(exitCode)])
            } else {
                FileHandle.standardError.write(Data("trigger-gateway: \(line)\n".utf8))
            }
        }
        return ExitCode(exitCode)
    }
}
