import Foundation

/// A parsed HTTP/1.1 request.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent (path and query).
    public var target: String
    public var headers: [(String, String)] = []
    public var body: [UInt8] = []
    public var keepAlive = true
    /// The body's share of the server's memory budget, given back when the last copy of the request goes.
    package var bodyLease: MemoryLease?

    public init(method: String, target: String) {
        self.method = method
        self.target = target
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    public func headers(_ name: String) -> [String] {
        headers.filter { $0.0.caseInsensitiveCompare(name) == .orderedSame }.map(\.1)
    }

    /// The path as sent, without the query.
    public var rawPath: Substring {
        target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }

    /// The path without the query, percent-decoded: for messages and logs, never for routing.
    public var path: String {
        let raw = String(rawPath)
        return raw.removingPercentEncoding ?? raw
    }

    /// The path's segments after the leading "/", each percent-decoded on its own, so that an encoded
    /// "/" stays inside its segment (`/v1%2Fpredict` is one segment, not two); nil when a segment is
    /// not valid percent-encoding.
    public var pathSegments: [String]? {
        var out: [String] = []
        for segment in rawPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            guard let s = String(segment).removingPercentEncoding else { return nil }
            out.append(s)
        }
        return out
    }

    /// Query parameters in order, percent-decoded; throws a 400 `Problem` for invalid
    /// percent-encoding or a control character (NUL included) in a name or value.
    public func queryParameters() throws -> [(String, String)] {
        guard let q = target.firstIndex(of: "?") else { return [] }
        var out: [(String, String)] = []
        for pair in target[target.index(after: q)...].split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) throws -> String {
                guard let d = String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                    throw Problem(400, "the query string is not valid percent-encoding: '\(s.prefix(40))'")
                }
                guard !d.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                    throw Problem(400, "query parameter '\(String(kv[0]).prefix(40))' holds a control character")
                }
                return d
            }
            out.append((try decode(kv[0]), kv.count > 1 ? try decode(kv[1]) : ""))
        }
        return out
    }
}

/// The media type of a Content-Type or Accept item without its parameters, lowercased
/// (`Image/PNG; q=1` -> `image/png`).
func mediaType(_ value: some StringProtocol) -> String {
    value.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
}

/// An HTTP response; its body is written after the head without another copy.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)] = []
    public var body: [UInt8] = []
    /// Close the connection after this response.
    public var close = false
    /// Fields the request's log line carries (a problem's title and detail, why it was refused,
    /// the outputs served); never sent.
    public var logFields: [String: String] = [:]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ object: Any) -> HTTPResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(data))
    }

    public static func text(_ status: Int, _ text: String, type: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", type)], body: Array(text.utf8))
    }

    /// Status line and headers, with Content-Length and Connection added.
    public func head(keepAlive: Bool, extra: [(String, String)] = []) -> [UInt8] {
        var s = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        for (k, v) in headers + extra { s += "\(k): \(v)\r\n" }
        s += "Content-Length: \(body.count)\r\n"
        if !keepAlive { s += "Connection: close\r\n" }
        s += "\r\n"
        return Array(s.utf8)
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 417: return "Expectation Failed"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }
}

/// RFC 9457 problem details: every error the service sends.
public struct Problem: Error, Sendable {
    public var status: Int
    public var detail: String
    public var headers: [(String, String)] = []
    /// A short word for metrics and logs saying why (queue_full, deadline, ...), where one applies.
    public var reason: String?

    public init(_ status: Int, _ detail: String, headers: [(String, String)] = [], reason: String? = nil) {
        self.status = status
        self.detail = detail
        self.headers = headers
        self.reason = reason
    }

    /// The open inference protocol's error shape, which Triton's and KServe's clients decode.
    public func inferenceError() -> HTTPResponse {
        var r = HTTPResponse.json(status, ["error": detail])
        r.headers += headers
        r.logFields = logFields
        return r
    }

    /// What the log line of a request answered with this problem says about it.
    var logFields: [String: String] {
        var f = ["problem_title": HTTPResponse.reason(status), "problem_detail": String(detail.prefix(300))]
        if let reason { f["reason"] = reason }
        return f
    }

    public func response(instance: String? = nil, requestID: String? = nil) -> HTTPResponse {
        var obj: [String: Any] = ["type": "about:blank", "title": HTTPResponse.reason(status), "status": status, "detail": detail]
        if let instance { obj["instance"] = instance }
        if let requestID { obj["request_id"] = requestID }
        var r = HTTPResponse.json(status, obj)
        r.headers = [("Content-Type", "application/problem+json")] + headers
        r.logFields = logFields
        return r
    }
}
