import Foundation

// gateway-micro [--seconds S] [--samples N] [--large-mib M] [--filter SUBSTRING]
// Prints a Markdown table; bench/micro/run builds it in release mode and preloads the malloc interposer.
var seconds = 1.0
var samples = 5
var largeMiB = 8
var filter: String?
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
    case "--samples": samples = Int(arguments.next() ?? "") ?? samples
    case "--large-mib": largeMiB = Int(arguments.next() ?? "") ?? largeMiB
    case "--filter": filter = arguments.next()
    default:
        FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
        exit(2)
    }
}

/// Unbuffered, so a long run shows each row as it is measured even through a pipe.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func format(_ value: Double, _ digits: Int = 0) -> String {
    value.isNaN ? "—" : String(format: "%.\(digits)f", value)
}

func formatTime(_ nanos: Double) -> String {
    if nanos >= 1e6 { return String(format: "%.2f ms", nanos / 1e6) }
    if nanos >= 1e3 { return String(format: "%.2f µs", nanos / 1e3) }
    return String(format: "%.0f ns", nanos)
}

emit("| benchmark | time/op | ops/s | MB/s | mallocs/op | malloc'd bytes/op |")
emit("| --- | ---: | ---: | ---: | ---: | ---: |")
for benchmark in Benchmarks.all(large: largeMiB << 20) where filter.map({ benchmark.name.contains($0) }) ?? true {
    let result = try Harness.measure(benchmark, targetSeconds: seconds, samples: samples)
    let mbps = result.bytes == 0 ? "—" : format(result.megabytesPerSecond)
    emit(
        "| \(result.name) | \(formatTime(result.nanosPerOp)) | \(format(result.opsPerSecond)) | \(mbps) | "
            + "\(format(result.mallocsPerOp, 1)) | \(format(result.mallocBytesPerOp)) |"
    )
}
if !Harness.interposerLoaded {
    emit("\n(allocations not counted: run with LD_PRELOAD=…/libMallocInterposerSwift.so, as bench/micro/run does)")
}
