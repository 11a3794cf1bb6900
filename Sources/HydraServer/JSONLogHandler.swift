import Foundation
import Logging

/// One JSON object per line on standard error: time, level, message, label and metadata
/// (request_id and the like; numbers as JSON numbers), for log collectors. Lines are formatted by
/// the caller (a few microseconds) and written by `LogWriter`'s thread, so a slow or stalled reader
/// of stderr never blocks the event loop. `text`: the same fields as `time LEVEL message key=value`
/// for a terminal. JSON is the default because the service runs under collectors (Kubernetes,
/// podman), which parse it; a person at a terminal asks for text.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let writer: LogWriter
    let text: Bool

    public init(label: String, writer: LogWriter = .standardError, text: Bool = false) {
        self.label = label
        self.writer = writer
        self.text = text
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, Logger.Metadata.Value)] = [
            ("ts", .string(Self.timestamp())), ("level", .string(event.level.rawValue)),
            ("msg", .string(event.message.description)), ("logger", .string(label)),
        ]
        let merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 })
        if text {
            var line = "\(Self.timestamp()) \(event.level.rawValue.uppercased()) \(event.message)"
            for key in merged.keys.sorted() {
                var value = ""
                Self.append(merged[key]!, to: &value)
                line += " \(key)=\(value)"
            }
            return writer.write(line + "\n")
        }
        for key in merged.keys.sorted() where !["ts", "level", "msg", "logger"].contains(key) { fields.append((key, merged[key]!)) }
        var line = "{"
        for (i, (k, v)) in fields.enumerated() {
            if i > 0 { line += "," }
            Self.appendString(k, to: &line)
            line += ":"
            Self.append(v, to: &line)
        }
        line += "}\n"
        writer.write(line)
    }

    /// RFC 3339 UTC with milliseconds, without a formatter object (those cost ~70 us each).
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }

    static func append(_ v: Logger.Metadata.Value, to line: inout String) {
        switch v {
        case let .string(s): appendString(s, to: &line)
        case let .stringConvertible(c):
            if let n = c as? Int { line += String(n) } else if let d = c as? Double, d.isFinite { line += "\(d)" } else {
                appendString(c.description, to: &line)
            }
        case let .array(a):
            line += "["
            for (i, e) in a.enumerated() {
                if i > 0 { line += "," }
                append(e, to: &line)
            }
            line += "]"
        case let .dictionary(d):
            line += "{"
            for (i, k) in d.keys.sorted().enumerated() {
                if i > 0 { line += "," }
                appendString(k, to: &line)
                line += ":"
                append(d[k]!, to: &line)
            }
            line += "}"
        }
    }

    /// A JSON string literal (RFC 8259: quote, backslash and control characters escaped).
    static func appendString(_ s: String, to line: inout String) {
        line += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where u.value < 0x20 || u.value == 0x7F:
                let hex = String(u.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: line.unicodeScalars.append(u)
            }
        }
        line += "\""
    }
}

/// Writes log lines to a file descriptor from its own thread, fed by a bounded queue. When the
/// queue is full (the reader of the descriptor is slow or gone) lines are dropped and counted,
/// so that logging can never stall the thread that logs.
public final class LogWriter: @unchecked Sendable {
    public static let standardError = LogWriter(fd: 2)

    /// Bytes of lines that may wait; a line that does not fit is dropped.
    public let capacityBytes: Int
    private let fd: Int32
    private let condition = NSCondition()
    private var queue: [String] = []
    private var queuedBytes = 0
    private var writing = false
    private var _dropped = 0
    private var started = false

    public init(fd: Int32, capacityBytes: Int = 1 << 20) {
        self.fd = fd
        self.capacityBytes = capacityBytes
    }

    /// Lines dropped because the queue was full.
    public var dropped: Int { condition.lock(); defer { condition.unlock() }; return _dropped }

    public func write(_ line: String) {
        condition.lock()
        defer { condition.unlock() }
        if !started {
            started = true
            let t = Thread { [self] in run() }
            t.name = "hydra-log"
            t.start()
        }
        guard queuedBytes + line.utf8.count <= capacityBytes else {
            _dropped += 1
            return
        }
        queue.append(line)
        queuedBytes += line.utf8.count
        condition.signal()
    }

    /// Waits up to `seconds` for queued lines to be written (at exit).
    public func flush(timeout seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while !queue.isEmpty || writing {
            if !condition.wait(until: deadline) { return }
        }
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let batch = queue
            queue = []
            writing = true
            condition.unlock()
            var bytes = Array(batch.joined().utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break } // the descriptor is gone; these lines are lost
                offset += n
            }
            bytes = []
            condition.lock()
            queuedBytes -= batch.reduce(0) { $0 + $1.utf8.count }
            writing = false
            condition.broadcast()
            condition.unlock()
        }
    }
}
