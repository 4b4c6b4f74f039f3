#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Prometheus

/// Prometheus' standard process metrics (https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics),
/// under their standard names so stock dashboards and alerts find them: `process_start_time_seconds`, and
/// `process_open_fds` with `process_max_fds` (the open-file limit `limits.max_connections` must stay under).
///
/// Our own because neither library the project may use has them: swift-prometheus 2.4 has no process collector,
/// and swift-metrics-extras (`SystemMetrics`) is not among the packages this project can build from. Read the way
/// client_golang's procfs collector reads them (Linux `/proc`): off the request path, once per scrape.
final class ProcessMetrics: Sendable {
    private let openFDs: Gauge
    private let maxFDs: Gauge

    init(registry: PrometheusCollectorRegistry) {
        let start = registry.gauge(
            name: "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.")
        start.set(to: Self.startTime())
        openFDs = registry.gauge(name: "process_open_fds", help: "Number of open file descriptors.")
        maxFDs = registry.gauge(name: "process_max_fds", help: "Maximum number of open file descriptors.")
    }

    /// Scrape time: the descriptors open now (`/proc/self/fd`'s entries, less the one reading it) and the soft
    /// `RLIMIT_NOFILE` (the one `open` and `accept` fail at).
    func collect() {
        if let count = Self.openDescriptors() { openFDs.set(to: Double(count)) }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(to: Double(limit.rlim_cur)) }
    }

    /// Entries of `/proc/self/fd` but `.`, `..` and the directory's own descriptor; nil without procfs.
    static func openDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let first = UInt8(bitPattern: entry.pointee.d_name.0)
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return max(count - 1, 0)  // the descriptor `opendir` holds
    }

    /// When this process started, in seconds since the Unix epoch: `/proc/self/stat`'s `starttime` (field 22,
    /// clock ticks after boot) plus `/proc/stat`'s `btime`, as procfs gives it; now, without procfs.
    static func startTime() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let fallback = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        guard let stat = contents(of: "/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return fallback }
        // After the command name (which may hold spaces, hence the last `)`): field 3 onwards.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]),
            let boot = contents(of: "/proc/stat")?.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let btime = Double(boot.dropFirst(6).trimmingCharacters(in: " "))
        else { return fallback }
        let hertz = Double(sysconf(Int32(_SC_CLK_TCK)))
        return hertz > 0 ? btime + ticks / hertz : fallback
    }

    /// A small procfs file's text (its size is 0 to `stat`, so read to the end).
    private static func contents(of path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in character: Character) -> Substring {
        var text = self
        while text.first == character { text = text.dropFirst() }
        while text.last == character { text = text.dropLast() }
        return text
    }
}
