import CFuzzDriver
import Foundation
import GatewayFuzzing

/// The fuzzer binary's entry. SwiftPM links an executable module's entry as `<module>_main`, and
/// `-sanitize=fuzzer` brings libFuzzer's own `main`; so this module is built with `-parse-as-library` and
/// defines `FuzzGateway_main`, which hands control to libFuzzer with `LLVMFuzzerRunDriver`.
///
/// `FuzzGateway --write-seeds DIR` writes the generated seed corpus instead of fuzzing.
@_cdecl("FuzzGateway_main")
func fuzzGatewayMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    let arguments = CommandLine.arguments
    if arguments.count == 3, arguments[1] == "--write-seeds" {
        return writeSeeds(to: arguments[2])
    }
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput)
}

/// libFuzzer's callback. Exported under its conventional name too: the `main` in libFuzzer's archive, which
/// `--defsym main=FuzzGateway_main` displaces, still references it.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch only {
    case "relay": fuzzRelayParsers(bytes)
    case "http1": fuzzHTTP1Decoder(bytes)
    case "h1resp": fuzzHTTP1ResponseDecoder(bytes)
    case "rest": fuzzRESTDecoders(bytes)
    default: fuzzGatewayInput(bytes)
    }
    return 0
}

/// `FUZZ_ONLY=relay`: only the streaming relay's parsers, not the whole connection (see `fuzzRelayParsers`);
/// `FUZZ_ONLY=http1`: only our HTTP/1.1 request decoder against NIO's (see `fuzzHTTP1Decoder`);
/// `FUZZ_ONLY=h1resp`: only our HTTP/1.1 response decoder (see `fuzzHTTP1ResponseDecoder`);
/// `FUZZ_ONLY=rest`: only the REST bodies' decoders and passthroughs (see `fuzzRESTDecoders`).
private let only = ProcessInfo.processInfo.environment["FUZZ_ONLY"]

private func writeSeeds(to directory: String) -> CInt {
    for seed in gatewayFuzzSeeds() {
        let path = directory + "/seed-" + seed.name
        guard FileManager.default.createFile(atPath: path, contents: Data(seed.bytes)) else {
            print("cannot write \(path)")
            return 1
        }
    }
    return 0
}
