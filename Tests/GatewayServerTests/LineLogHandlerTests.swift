import Foundation
import Logging
import Observability
import Testing

/// The access log's line formats: logfmt quoting and JSON typing, one line per event.
@Suite("Log lines: logfmt and JSON")
struct LineLogHandlerTests {
    static let metadata: Logger.Metadata = [
        "request_id": "r-1",
        "path": "/v1beta/users/demo/pipelines/echo/trigger",
        "status": .stringConvertible(200),
        "duration_us": .stringConvertible(Int64(1234)),
        "note": "a \"quoted\" word=x\nnext",
        "empty": "",
    ]

    static func line(_ format: LineFormat) -> String {
        String(
            decoding: LineLogHandler.line(
                format: format, timestamp: (1_796_006_369, 7), level: .info, label: "trigger-gateway",
                message: "request", metadata: metadata),
            as: UTF8.self)
    }

    @Test("logfmt: fixed fields first, metadata in key order, values quoted only when they must be")
    func logfmt() {
        #expect(
            Self.line(.logfmt)
                == #"ts=2026-11-30T02:39:29.007Z level=info logger=trigger-gateway msg=request duration_us=1234 "#
                + #"empty="" note="a \"quoted\" word=x\nnext" path=/v1beta/users/demo/pipelines/echo/trigger "#
                + "request_id=r-1 status=200\n")
    }

    @Test("logfmt and JSON: ESC, other C0 controls and DEL are written as \\u00XX, never raw (terminal injection)")
    func controlCharacters() throws {
        let value = "q\u{1B}[31mred\u{07}\u{7F}\u{1F}é"
        for format in [LineFormat.logfmt, .json] {
            let bytes = LineLogHandler.line(
                format: format, timestamp: (1_796_006_369, 7), level: .info, label: "trigger-gateway",
                message: "request", metadata: ["pipeline": .string(value)])
            let raw = bytes.filter { ($0 < 0x20 && $0 != 0x0A) || $0 == 0x7F }
            #expect(raw.isEmpty, "\(format): raw control bytes \(raw)")
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.contains(#""q\u001b[31mred\u0007\u007f\u001fé""#), "\(format): \(text)")
            if format == .json {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
                #expect(object["pipeline"] as? String == value)
            }
        }
    }

    @Test("logfmt and JSON: C1 controls (U+0080–U+009F, CSI among them) are written as \\u00XX, never raw")
    func c1Controls() throws {
        // U+009B is CSI (ESC [ in one character): `\u{9B}31m` turns a terminal red. U+00A0 and é are not controls:
        // their bytes (C2 A0, C3 A9) stay as they are; U+0080 and U+009F are the range's edges.
        let value = "q\u{9B}31mred\u{80}\u{9F}\u{A0}é\u{85}"
        for format in [LineFormat.logfmt, .json] {
            let bytes = LineLogHandler.line(
                format: format, timestamp: (1_796_006_369, 7), level: .info, label: "trigger-gateway",
                message: "request", metadata: ["pipeline": .string(value), "k\u{9B}ey": "v"])
            let text = String(decoding: bytes, as: UTF8.self)
            let c1 = text.unicodeScalars.filter { (0x80...0x9F).contains($0.value) }
            #expect(c1.isEmpty, "\(format): raw C1 controls \(c1.map(\.value))")
            #expect(text.contains(#""q\u009b31mred\u0080\u009f\#u{A0}é\u0085""#), "\(format): \(text)")
            if format == .json {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
                #expect(object["pipeline"] as? String == value)
            } else {
                #expect(text.contains(" k_ey=v"), "\(text)")
            }
        }
        // A lone value with nothing else to quote is quoted for its C1 control alone.
        let bare = LineLogHandler.line(
            format: .logfmt, timestamp: (1_796_006_369, 7), level: .info, label: "trigger-gateway",
            message: "request", metadata: ["pipeline": "a\u{9B}b"])
        #expect(String(decoding: bare, as: UTF8.self).contains(#" pipeline="a\u009bb""#))
    }

    @Test("JSON: one object per line, numbers as numbers, strings escaped")
    func json() throws {
        let text = Self.line(.json)
        #expect(text.hasSuffix("}\n"))
        #expect(text.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["ts"] as? String == "2026-11-30T02:39:29.007Z")
        #expect(object["level"] as? String == "info")
        #expect(object["msg"] as? String == "request")
        #expect(object["status"] as? Int == 200)
        #expect(object["duration_us"] as? Int == 1234)
        #expect(object["note"] as? String == "a \"quoted\" word=x\nnext")
        #expect(object["empty"] as? String == "")
    }

    @Test("the handler writes each event as one line to its descriptor, at its level")
    func writesLines() throws {
        let pipe = Pipe()
        let handler = LineLogHandler(
            label: "t", format: .logfmt, level: .info, fileDescriptor: pipe.fileHandleForWriting.fileDescriptor)
        let logger = Logger(label: "t") { _ in handler }
        logger.debug("hidden")
        logger.info("shown", metadata: ["k": "v"])
        logger.warning("also")
        try pipe.fileHandleForWriting.close()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2, "\(text)")
        #expect(lines.first?.hasSuffix("level=info logger=t msg=shown k=v") == true, "\(text)")
        #expect(lines.last?.contains("level=warning") == true)
    }

    /// Review 18 F5: a reload's `log.level` reaches every logger made from the bootstrapped handler at once.
    @Test("handlers following a LogLevelSwitch change level with it; a level set on one logger is its floor")
    func levelSwitch() throws {
        let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
        let levelSwitch = LogLevelSwitch(.info)
        for level in levels {
            levelSwitch.set(level)
            #expect(levelSwitch.level == level)
        }
        levelSwitch.set(.info)
        let pipe = Pipe()
        let handler = LineLogHandler(
            label: "t", format: .logfmt, fileDescriptor: pipe.fileHandleForWriting.fileDescriptor,
            levelSwitch: levelSwitch)
        let logger = Logger(label: "t") { _ in handler }
        var quiet = logger
        quiet.logLevel = max(quiet.logLevel, .warning)
        logger.debug("hidden at info")
        levelSwitch.set(.debug)
        #expect(logger.logLevel == .debug && quiet.logLevel == .warning)
        logger.debug("shown at debug")
        quiet.info("hidden below its floor")
        levelSwitch.set(.error)
        #expect(quiet.logLevel == .error)
        logger.warning("hidden at error")
        try pipe.fileHandleForWriting.close()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.split(separator: "\n").count == 1, "\(text)")
        #expect(text.contains("msg=\"shown at debug\""), "\(text)")
    }
}
