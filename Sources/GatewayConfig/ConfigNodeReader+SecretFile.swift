import Foundation
import Yams

extension ConfigNodeReader {
    /// A secret read from the file whose path `node` holds (`tokens[].token_file`, `store.password_file`,
    /// `webhook.secret_file`; review 27 M2): the file's text without leading and trailing whitespace, so a file
    /// written with `echo` or a systemd credential (`LoadCredential=`) works. Read when the configuration is (start,
    /// check-config, each reload: a rotated file takes effect with SIGHUP). Errors name the key and the file, never
    /// its content: unreadable, not UTF-8, empty, or a control character inside (a token travels in a header).
    ///
    /// - Returns: the path as written and the secret.
    func secretFile(_ node: Node, at path: String) throws(ConfigError) -> (path: String, secret: String) {
        let file = try nonEmptyString(node, at: path)
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? "\(error)"
            throw self.error(path, node, "cannot read \(file): \(reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw self.error(path, node, "\(file) is not UTF-8 text")
        }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.isEmpty else { throw self.error(path, node, "\(file) is empty") }
        guard secret.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw self.error(
                path, node, "\(file) holds a control character (only its first and last lines' ends are trimmed)")
        }
        return (file, secret)
    }
}
