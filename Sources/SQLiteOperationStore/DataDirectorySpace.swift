#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The free space of the file system holding an SQLite data directory, for
/// `trigger_gateway_data_directory_free_bytes` and for async readiness after a write refused for lack of space
/// (review 21, M3).
package enum DataDirectorySpace {
    /// Bytes an unprivileged writer may still use on the file system holding `path` (`statvfs`: `f_bavail`
    /// blocks of `f_frsize` bytes; the blocks reserved for root are left out, so the figure is the same whether
    /// the gateway runs as root or not, and never promises what a `nobody` gateway cannot write). Nil when
    /// `statvfs` fails (the directory is gone).
    package static func availableBytes(_ path: String) -> UInt64? {
        var status = statvfs()
        guard statvfs(path, &status) == 0 else { return nil }
        return UInt64(status.f_bavail) &* UInt64(status.f_frsize)
    }
}
