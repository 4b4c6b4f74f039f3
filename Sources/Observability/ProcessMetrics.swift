#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Prometheus
import Synchronization

/// Prometheus' standard process metrics (https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics),
/// under their standard names so stock dashboards and alerts find them: `process_start_time_seconds`,
/// `process_open_fds` with `process_max_fds` (the open-file limit `limits.max_connections` must stay under),
/// `process_cpu_seconds_total` (user plus system CPU), `process_resident_memory_bytes` and
/// `process_virtual_memory_bytes` (review 18, F4: a leak or a CPU-bound instance is the first thing an operator
/// alerts on).
///
/// Our own because neither library the project may use has them: swift-prometheus 2.4 has no process collector,
/// and swift-metrics-extras (`SystemMetrics`) is not among the packages this project can build from. Read the way
/// client_golang's procfs collector reads them (Linux `/proc`): off the request path, once per scrape.
package final class ProcessMetrics: Sendable {
    private let openFDs: Gauge
    private let maxFDs: Gauge
    private let cpuSeconds: Counter
    private let residentMemory: Gauge
    private let virtualMemory: Gauge
    /// The CPU seconds already added to ``cpuSeconds`` (a counter only grows: each scrape adds what was used since).
    private let cpuCounted = Mutex<Double>(0)

    init(registry: PrometheusCollectorRegistry) {
        let start = registry.gauge(
            name: "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.")
        start.set(to: Self.startTime())
        openFDs = registry.gauge(name: "process_open_fds", help: "Number of open file descriptors.")
        maxFDs = registry.gauge(name: "process_max_fds", help: "Maximum number of open file descriptors.")
        cpuSeconds = registry.counter(
            name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.")
        residentMemory = registry.gauge(name: "process_resident_memory_bytes", help: "Resident memory size in bytes.")
        virtualMemory = registry.gauge(name: "process_virtual_memory_bytes", help: "Virtual memory size in bytes.")
    }

    /// Scrape time: the descriptors open now (`/proc/self/fd`'s entries, less the one reading it) and the soft
    /// `RLIMIT_NOFILE` (the one `open` and `accept` fail at).
    func collect() {
        if let count = Self.openDescriptors() { openFDs.set(to: Double(count)) }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(to: Double(limit.rlim_cur)) }
        if let used = Self.cpuTime() {
            cpuCounted.withLock { counted in
                guard used > counted else { return }
                cpuSeconds.increment(by: used - counted)
                counted = used
            }
        }
        if let memory = Self.memory() {
            residentMemory.set(to: memory.resident)
            virtualMemory.set(to: memory.virtual)
        }
    }

    /// User plus system CPU time of the whole process (every thread) so far, in seconds: `getrusage(RUSAGE_SELF)`,
    /// microsecond resolution (client_golang reads `/proc/self/stat`'s clock ticks, 10 ms).
    static func cpuTime() -> Double? {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return nil }
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }

    /// Virtual and resident size in bytes, from `/proc/self/stat` as client_golang's procfs reads them: `vsize`
    /// (field 23, bytes) and `rss` (field 24, pages of `_SC_PAGESIZE`); nil without procfs.
    static func memory() -> (virtual: Double, resident: Double)? {
        guard let fields = statFields(), fields.count > 21, let vsize = Double(fields[20]),
            let pages = Double(fields[21])
        else { return nil }
        return (vsize, pages * Double(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// `/proc/self/stat`'s fields from the third on (after the command name, which may hold spaces, hence the
    /// last `)`): field N is at index N - 3. Nil without procfs.
    private static func statFields() -> [Substring]? {
        guard let stat = contents(of: "/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// Entries of `/proc/self/fd` but `.`, `..` and the directory's own descriptor; nil without procfs.
    package static func openDescriptors() -> Int? {
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
        guard let fields = statFields(), fields.count > 19, let ticks = Double(fields[19]),
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
