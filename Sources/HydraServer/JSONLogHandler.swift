import Foundation
import Logging

/// One JSON object per line on standard error: time, level, message, label and metadata
/// (request_id and the like), for log collectors.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    private static let lock = NSLock()

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level, message = event.message, extra = event.metadata
        var obj: [String: Any] = [
            "ts": ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withInternetDateTime, .withFractionalSeconds]),
            "level": level.rawValue, "msg": message.description, "logger": label,
        ]
        for (k, v) in metadata.merging(extra ?? [:], uniquingKeysWith: { $1 }) { obj[k] = Self.plain(v) }
        guard var data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        data.append(0x0A)
        Self.lock.lock()
        FileHandle.standardError.write(data)
        Self.lock.unlock()
    }

    static func plain(_ v: Logger.Metadata.Value) -> Any {
        switch v {
        case let .string(s): return s
        case let .stringConvertible(c):
            if let n = c as? Int { return n }
            if let d = c as? Double { return d.isFinite ? d : "\(d)" }
            return c.description
        case let .array(a): return a.map(plain)
        case let .dictionary(d): return d.mapValues(plain)
        }
    }
}
