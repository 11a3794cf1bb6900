import Foundation

/// W3C Trace Context (https://www.w3.org/TR/trace-context/) for one request: the caller's trace
/// continued when its `traceparent` is valid, else a new trace. The trace id goes into the log line
/// and back to the client in `traceparent` with this server's span id (and `tracestate` as given),
/// so a caller's tracing joins Hydra's logs without Hydra exporting spans (docs/OPERATIONS.md).
struct TraceContext: Sendable {
    /// 32 lowercase hex digits.
    let traceID: String
    /// The caller's span (16 hex digits), nil when the trace starts here.
    let parentID: String?
    /// This request's span in Hydra.
    let spanID: String
    /// The caller's trace flags (sampled = 01), 00 for a new trace.
    let flags: String
    /// The caller's vendor state, passed through unchanged.
    let state: String?

    init(traceparent: String?, tracestate: String?) {
        spanID = Self.randomHex(bytes: 8)
        if let parsed = traceparent.flatMap(Self.parse) {
            (traceID, parentID, flags) = parsed
            state = tracestate.flatMap(Self.validState)
        } else {
            // An invalid traceparent starts a new trace, and its tracestate is not trusted either.
            traceID = Self.randomHex(bytes: 16)
            parentID = nil
            flags = "00"
            state = nil
        }
    }

    /// The response's `traceparent`: this trace, this server's span.
    var traceparent: String { "00-\(traceID)-\(spanID)-\(flags)" }

    /// Response headers carrying the context back.
    var headers: [(String, String)] { [("traceparent", traceparent)] + (state.map { [("tracestate", $0)] } ?? []) }

    /// version-traceid-parentid-flags; version 00 has exactly these four fields, a later version may
    /// add more after a dash (which are ignored); ff is invalid, ids of only zeros are invalid.
    static func parse(_ header: String) -> (String, String, String)? {
        let text = header.trimmingCharacters(in: [" ", "\t"])
        let fields = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 4, fields[0].count == 2, isHex(fields[0]), fields[0] != "ff" else { return nil }
        if fields[0] == "00", fields.count != 4 { return nil }
        let (trace, parent, flags) = (fields[1], fields[2], fields[3])
        guard trace.count == 32, parent.count == 16, flags.count == 2, isHex(trace), isHex(parent), isHex(flags),
              trace.contains(where: { $0 != "0" }), parent.contains(where: { $0 != "0" }) else { return nil }
        return (trace, parent, flags)
    }

    /// tracestate as given, when it is printable ASCII of at most 512 characters (the spec's limit).
    static func validState(_ s: String) -> String? {
        let t = s.trimmingCharacters(in: [" ", "\t"])
        guard !t.isEmpty, t.utf8.count <= 512, t.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
        return t
    }

    private static func isHex(_ s: String) -> Bool { s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) } }

    private static func randomHex(bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        var out = ""
        while true {
            out = (0..<bytes).map { _ in
                let b = UInt8.random(in: 0...255, using: &g)
                return String(b >> 4, radix: 16) + String(b & 15, radix: 16)
            }.joined()
            if out.contains(where: { $0 != "0" }) { return out }
        }
    }
}
