import CHTTPParser
import Foundation

/// Turns a connection's byte stream into requests with http-parser, enforcing the header and body
/// limits as the bytes arrive. It does no I/O, so the same code serves sockets, tests and fuzzing.
package final class RequestReader {
    package enum Event {
        /// More bytes are needed.
        case incomplete
        /// A whole request; `rest` are bytes after it (a pipelined request), not yet parsed.
        case request(HTTPRequest, rest: [UInt8])
        /// The stream cannot go on: answer with the problem and close.
        case failed(Problem)
    }

    let maxHeaderBytes: Int
    let maxBodyBytes: Int
    /// Bytes held in request bodies across all connections; beyond it a body is refused (503) before it is read.
    package var bodyBudget: MemoryBudget?
    /// Seconds a 503 asks the client to wait.
    package var retryAfter = 1
    /// Judges a request's head before its body is read; a problem refuses it.
    package var admit: (HTTPRequest, _ contentLength: UInt64?, _ chunked: Bool) -> Problem? = { _, _, _ in nil }
    /// The client asked for `Expect: 100-continue` and the head was admitted.
    package var sendContinue: () -> Void = {}

    /// The request being parsed (after `.failed`, as much of it as was read: method, keep-alive).
    package private(set) var request = HTTPRequest(method: "", target: "")
    /// The client's X-Request-Id when it is a sane token, otherwise a fresh one; set when the head completes.
    package private(set) var requestID = ""
    /// Body bytes of the current request so far.
    package private(set) var bodyBytes = 0

    private let parser: UnsafeMutablePointer<http_parser>
    private var url: [UInt8] = []
    private var field: [UInt8] = []
    private var value: [UInt8] = []
    private var inValue = false
    private var headerBytes = 0
    private var rejection: Problem?
    private var messageComplete = false
    private var framing = StrictFraming()
    /// The head is complete: later field lines are trailers, which are never merged into the headers.
    private var headersDone = false
    private var chunked = false
    /// The stream failed; nothing more is parsed.
    private var failed = false

    package init(maxHeaderBytes: Int, maxBodyBytes: Int) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        parser = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
        http_parser_init(parser, HTTP_REQUEST)
    }

    deinit { parser.deallocate() }

    /// Parses `data`; stops after the first complete request.
    ///
    /// Every byte goes through `StrictFraming` before http-parser sees it, in steps that end where
    /// the head ends (from then on the body's framing is known) and where a chunked message ends.
    /// A request is served only when both agree on where it ends.
    package func feed(_ data: [UInt8]) -> Event {
        guard !data.isEmpty else { return .incomplete }
        var offset = 0
        while offset < data.count {
            let verdict = data.withUnsafeBufferPointer { framing.scan(UnsafeBufferPointer(rebasing: $0[offset...])) }
            var end = data.count
            var badFraming: String?
            switch verdict {
            case .fine: break
            case let .headEnds(n), let .messageEnds(n): end = offset + n
            case let .bad(at, reason):
                end = offset + at
                badFraming = reason
            }
            let consumed = execute(data, from: offset, to: end)
            if let event = parserEvent(data, restAt: offset + consumed) { return event }
            // http-parser took the bytes without complaint, but the framing is wrong, or the two disagree.
            if let badFraming { return fail(Problem(400, "malformed HTTP request: \(badFraming)")) }
            switch verdict {
            case .headEnds:
                guard headersDone else { return fail(Problem(400, "malformed HTTP request: the head did not end where expected")) }
                framing.beginBody(chunked ? .chunked : .counted)
            case .messageEnds:
                return fail(Problem(400, "malformed HTTP request: the chunked body did not end where expected"))
            case .fine, .bad:
                break
            }
            offset = end
        }
        return .incomplete
    }

    private func fail(_ problem: Problem) -> Event {
        failed = true
        return .failed(problem)
    }

    /// Runs http-parser over `data[from..<to]`; returns the bytes it consumed.
    private func execute(_ data: [UInt8], from: Int, to: Int) -> Int {
        guard to > from, !failed else { return 0 }
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        defer { parser.pointee.data = nil }
        var settings = RequestReader.settings
        return data.withUnsafeBufferPointer { b in
            UnsafeRawPointer(b.baseAddress! + from).withMemoryRebound(to: CChar.self, capacity: to - from) {
                http_parser_execute(parser, &settings, $0, to - from)
            }
        }
    }

    /// What the parser's state after `execute` means: a request, a failure, or nothing yet.
    private func parserEvent(_ data: [UInt8], restAt: Int) -> Event? {
        if failed { return .failed(Problem(400, "malformed HTTP request")) }
        let errno = http_errno(rawValue: parser.pointee.http_errno)
        if errno == HPE_PAUSED || (errno == HPE_OK && messageComplete) {
            if errno == HPE_PAUSED { http_parser_pause(parser, 0) }
            messageComplete = false
            framing.reset()
            let done = request
            // The reader must not keep the body (and its share of the memory budget) alive while the
            // connection idles: only what a failure report needs stays.
            request = HTTPRequest(method: done.method, target: done.target)
            request.keepAlive = done.keepAlive
            return .request(done, rest: Array(data[restAt...]))
        } else if errno == HPE_INVALID_METHOD, rejection == nil {
            return fail(Problem(405, "request method not supported; this service uses GET, HEAD and POST",
                                headers: [("Allow", "GET, HEAD, POST")]))
        } else if errno != HPE_OK {
            return fail(rejection ?? Problem(400, "malformed HTTP request: \(String(cString: http_errno_description(errno)))"))
        }
        return nil
    }

    // MARK: http-parser callbacks

    private static func from(_ p: UnsafeMutablePointer<http_parser>?) -> RequestReader {
        Unmanaged<RequestReader>.fromOpaque(p!.pointee.data!).takeUnretainedValue()
    }

    private static let settings: http_parser_settings = {
        var s = http_parser_settings()
        s.on_message_begin = { p in RequestReader.from(p).messageBegin() }
        s.on_url = { p, at, n in RequestReader.from(p).urlData(at!, n) }
        s.on_header_field = { p, at, n in RequestReader.from(p).headerField(at!, n) }
        s.on_header_value = { p, at, n in RequestReader.from(p).headerValue(at!, n) }
        s.on_headers_complete = { p in RequestReader.from(p).headersComplete() }
        s.on_body = { p, at, n in RequestReader.from(p).bodyData(at!, n) }
        s.on_chunk_header = { p in RequestReader.from(p).chunkHeader() }
        s.on_message_complete = { p in RequestReader.from(p).messageEnd() }
        return s
    }()

    private func messageBegin() -> Int32 {
        request = HTTPRequest(method: "", target: "")
        url = []; field = []; value = []
        inValue = false
        headerBytes = 0
        bodyBytes = 0
        rejection = nil
        messageComplete = false
        headersDone = false
        chunked = false
        requestID = ""
        return 0
    }

    private func countHeader(_ n: Int) -> Int32 {
        headerBytes += n
        if headerBytes > maxHeaderBytes {
            rejection = Problem(431, "request line and headers exceed \(maxHeaderBytes) bytes")
            return 1
        }
        return 0
    }

    private func urlData(_ at: UnsafePointer<CChar>, _ n: Int) -> Int32 {
        url += UnsafeRawBufferPointer(start: at, count: n)
        return countHeader(n)
    }

    private func headerField(_ at: UnsafePointer<CChar>, _ n: Int) -> Int32 {
        if inValue { flushHeader() }
        field += UnsafeRawBufferPointer(start: at, count: n)
        if request.headers.count > 200 {
            rejection = Problem(431, "more than 200 header fields")
            return 1
        }
        return countHeader(n)
    }

    private func headerValue(_ at: UnsafePointer<CChar>, _ n: Int) -> Int32 {
        inValue = true
        value += UnsafeRawBufferPointer(start: at, count: n)
        return countHeader(n)
    }

    private func flushHeader() {
        // Trailer fields are counted against the header limit and otherwise dropped (RFC 9110 6.5.1).
        if !headersDone {
            request.headers.append((String(decoding: field, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        field = []; value = []
        inValue = false
    }

    private func headersComplete() -> Int32 {
        if inValue || !field.isEmpty { flushHeader() }
        headersDone = true
        request.method = String(cString: http_method_str(http_method(rawValue: parser.pointee.method)))
        request.target = String(decoding: url, as: UTF8.self)
        request.keepAlive = http_should_keep_alive(parser) != 0
        requestID = Self.requestID(from: request.header("X-Request-Id"))
        if parser.pointee.http_major != 1 {
            rejection = Problem(505, "HTTP/\(parser.pointee.http_major).\(parser.pointee.http_minor) is not supported; use HTTP/1.1")
            return -1
        }
        let hosts = request.headers("Host")
        if parser.pointee.http_minor >= 1, hosts.count != 1 {
            rejection = Problem(400, "an HTTP/1.1 request needs exactly one Host header")
            return -1
        }
        if hosts.count > 1 || !hosts.allSatisfy(Self.isValidHost) {
            rejection = Problem(400, "invalid Host header: \(hosts.first.map { String($0.prefix(60)) } ?? "")")
            return -1
        }
        let flags = parser.pointee.flags
        chunked = flags & UInt32(F_CHUNKED.rawValue) != 0
        if !request.headers("Transfer-Encoding").isEmpty, !chunked {
            // RFC 9112 6.3: without chunked as the final coding a request body's length is unknowable.
            rejection = Problem(400, "Transfer-Encoding without chunked as the final coding is not supported")
            return -1
        }
        let length: UInt64? = flags & UInt32(F_CONTENTLENGTH.rawValue) != 0 ? parser.pointee.content_length : nil
        if let problem = admit(request, length, chunked) {
            rejection = problem
            return -1
        }
        if let length, length > 0 {
            let lease = MemoryLease(bodyBudget)
            guard lease.grow(to: Int(length)) else { return refuseBody() }
            request.bodyLease = lease
            request.body.reserveCapacity(Int(length))
        }
        if let expect = request.header("Expect") {
            guard expect.lowercased() == "100-continue" else {
                rejection = Problem(417, "unsupported Expect: \(expect.prefix(40))")
                return -1
            }
            // RFC 9110 10.1.1: an HTTP/1.0 client's expectation is ignored.
            if parser.pointee.http_minor >= 1 { sendContinue() }
        }
        return 0
    }

    private func refuseBody() -> Int32 {
        let held = (bodyBudget?.inUse ?? 0) >> 20, limit = (bodyBudget?.limit ?? 0) >> 20
        rejection = Problem(503, "the server holds as many request bodies as its memory budget allows (\(held) of \(limit) MiB); retry later",
                            headers: [("Retry-After", "\(retryAfter)")])
        return -1
    }

    /// RFC 9112 3.2 / RFC 3986 3.2.2: uri-host [ ":" port ], no user info.
    static func isValidHost(_ host: String) -> Bool {
        let bytes = Array(host.utf8)
        var i = 0
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
            let literal = bytes[1..<close]
            guard literal.allSatisfy({ isHexDigit($0) || ":.vV".utf8.contains($0) }) else { return false }
            i = close + 1
        } else {
            while i < bytes.count, bytes[i] != UInt8(ascii: ":") {
                let b = bytes[i]
                guard isUnreserved(b) || "!$&'()*+,;=%".utf8.contains(b) else { return false }
                i += 1
            }
        }
        guard i < bytes.count else { return true }
        guard bytes[i] == UInt8(ascii: ":") else { return false }
        let port = bytes[(i + 1)...]
        return port.count <= 5 && port.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "f"))
    }

    private static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "z"))
            || "-._~".utf8.contains(b)
    }

    private func bodyData(_ at: UnsafePointer<CChar>, _ n: Int) -> Int32 {
        bodyBytes += n
        if bodyBytes > maxBodyBytes {
            rejection = Problem(413, "request body exceeds \(maxBodyBytes) bytes")
            return 1
        }
        request.body += UnsafeRawBufferPointer(start: at, count: n)
        // A chunked body's size is learnt as it comes; what the array holds is what counts.
        if request.body.capacity > request.bodyLease?.bytes ?? 0 {
            let lease = request.bodyLease ?? MemoryLease(bodyBudget)
            request.bodyLease = lease
            guard lease.grow(to: request.body.capacity) else {
                request.body = []
                return refuseBody() == 0 ? 0 : 1
            }
        }
        return 0
    }

    /// A chunk's declared size is judged against the body limit before its bytes are read.
    private func chunkHeader() -> Int32 {
        let size = parser.pointee.content_length
        if size > UInt64(maxBodyBytes - bodyBytes) {
            rejection = Problem(413, "a chunk of \(size) bytes would take the request body past \(maxBodyBytes) bytes")
            return 1
        }
        return 0
    }

    private func messageEnd() -> Int32 {
        messageComplete = true
        http_parser_pause(parser, 1)
        return 0
    }

    static func requestID(from header: String?) -> String {
        if let h = header, !h.isEmpty, h.count <= 128, h.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) }) {
            return h
        }
        return UUID().uuidString.lowercased()
    }
}
