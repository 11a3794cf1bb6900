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

    package init(maxHeaderBytes: Int, maxBodyBytes: Int) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        parser = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
        http_parser_init(parser, HTTP_REQUEST)
    }

    deinit { parser.deallocate() }

    /// Parses `data`; stops after the first complete request.
    package func feed(_ data: [UInt8]) -> Event {
        guard !data.isEmpty else { return .incomplete }
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        var settings = RequestReader.settings
        let consumed = data.withUnsafeBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) {
                http_parser_execute(parser, &settings, $0, b.count)
            }
        }
        parser.pointee.data = nil
        let errno = http_errno(rawValue: parser.pointee.http_errno)
        if errno == HPE_PAUSED {
            http_parser_pause(parser, 0)
            messageComplete = false
            return .request(request, rest: Array(data[consumed...]))
        } else if errno == HPE_INVALID_METHOD, rejection == nil {
            return .failed(Problem(405, "request method not supported; this service uses GET, HEAD and POST",
                                   headers: [("Allow", "GET, HEAD, POST")]))
        } else if errno != HPE_OK {
            return .failed(rejection ?? Problem(400, "malformed HTTP request: \(String(cString: http_errno_description(errno)))"))
        } else if messageComplete {
            // Complete without pausing (cannot happen with these callbacks), handled for safety.
            messageComplete = false
            return .request(request, rest: Array(data[consumed...]))
        }
        return .incomplete
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
        request.headers.append((String(decoding: field, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        field = []; value = []
        inValue = false
    }

    private func headersComplete() -> Int32 {
        if inValue || !field.isEmpty { flushHeader() }
        request.method = String(cString: http_method_str(http_method(rawValue: parser.pointee.method)))
        request.target = String(decoding: url, as: UTF8.self)
        request.keepAlive = http_should_keep_alive(parser) != 0
        requestID = Self.requestID(from: request.header("X-Request-Id"))
        if parser.pointee.http_major != 1 {
            rejection = Problem(505, "HTTP/\(parser.pointee.http_major).\(parser.pointee.http_minor) is not supported; use HTTP/1.1")
            return -1
        }
        if parser.pointee.http_minor >= 1, request.headers("Host").count != 1 {
            rejection = Problem(400, "an HTTP/1.1 request needs exactly one Host header")
            return -1
        }
        let flags = parser.pointee.flags
        let chunked = flags & UInt32(F_CHUNKED.rawValue) != 0
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
        if let expect = request.header("Expect") {
            guard expect.lowercased() == "100-continue" else {
                rejection = Problem(417, "unsupported Expect: \(expect.prefix(40))")
                return -1
            }
            sendContinue()
        }
        return 0
    }

    private func bodyData(_ at: UnsafePointer<CChar>, _ n: Int) -> Int32 {
        bodyBytes += n
        if bodyBytes > maxBodyBytes {
            rejection = Problem(413, "request body exceeds \(maxBodyBytes) bytes")
            return 1
        }
        request.body += UnsafeRawBufferPointer(start: at, count: n)
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
