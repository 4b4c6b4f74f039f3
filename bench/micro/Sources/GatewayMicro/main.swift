import Foundation
import GatewayBenchmarks

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

/// Our rows in their order, each library row right after the last of ours on the same topic (the name up to its
/// first comma, e.g. "base64 decode"), so a table reads ours-then-library per topic.
func sideBySide(_ ours: [MicroBenchmark], _ libraries: [MicroBenchmark]) -> [MicroBenchmark] {
    func topic(_ benchmark: MicroBenchmark) -> Substring { benchmark.name.prefix { $0 != "," } }
    var rows = ours
    for library in libraries {
        let at = rows.lastIndex { topic($0) == topic(library) }.map { $0 + 1 } ?? rows.endIndex
        rows.insert(library, at: at)
    }
    return rows
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
let inputs = BenchmarkInputs(large: largeMiB << 20)
for benchmark in sideBySide(GatewayBenchmarks.all(inputs), LibraryBenchmarks.all(inputs))
where filter.map({ benchmark.name.contains($0) }) ?? true {
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
