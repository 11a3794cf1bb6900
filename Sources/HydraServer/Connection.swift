import CLibUV
import Foundation
import HydraEngine

/// One client socket: reads requests through its `RequestReader` (http-parser and the limits), serves one request
/// at a time in order (pipelined requests wait in `pending`), and owns its timer. Loop thread only.
final class Connection {
    enum State { case idle, reading, busy, writing, lingering, closed }

    let id: UInt64
    unowned let server: HTTPServer
    private let tcp: UnsafeMutablePointer<uv_tcp_t>
    private let timer: UnsafeMutablePointer<uv_timer_t>
    private var state = State.idle
    private var openHandles = 2
    /// Bytes received while a request was being served (pipelining), parsed afterwards.
    private var pending: [UInt8] = []
    /// Set for a connection accepted over the cap: it is answered with this and closed.
    private let refusal: Problem?
    private var reading = false

    private let reader: RequestReader
    /// The request being served (or refused).
    private var request = HTTPRequest(method: "", target: "")
    private var requestStart = 0.0
    private var requestID = ""

    private var job: Job?
    private var draining = false
    /// The client's address, for logs.
    private let peer: String

    var busy: Bool { state == .busy || state == .writing }

    init(id: UInt64, tcp: UnsafeMutablePointer<uv_tcp_t>, server: HTTPServer, refusal: Problem? = nil) {
        self.id = id
        self.tcp = tcp
        self.server = server
        self.refusal = refusal
        peer = UV.peerName(tcp)
        timer = UV.allocate(uv_timer_t.self)
        uv_timer_init(server.loop, timer)
        reader = RequestReader(maxHeaderBytes: server.config.maxHeaderBytes, maxBodyBytes: server.config.maxBodyBytes)
        reader.bodyBudget = server.connectionMemory
        reader.retryAfter = server.config.retryAfter
        let me = Unmanaged.passUnretained(self).toOpaque()
        tcp.pointee.data = me
        timer.pointee.data = me
        reader.admit = { [unowned server] head, length, chunked in server.handler?.admit(head, contentLength: length, chunked: chunked) }
        reader.sendContinue = { [unowned self] in write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), then: nil) }
    }

    static func from(_ p: UnsafeMutableRawPointer?) -> Connection { Unmanaged<Connection>.fromOpaque(p!).takeUnretainedValue() }

    var refused: Bool { refusal != nil }

    func start() {
        if let refusal {
            // Answered before anything is read; the linger after it lets an uploading client read it.
            requestID = RequestReader.requestID(from: nil)
            return fail(refusal)
        }
        armTimer(server.config.idleTimeout)
        startReading()
    }

    /// Whether `job` is this connection's current job (a late completion for a dead request is ignored).
    func owns(_ job: Job) -> Bool { self.job === job }

    // MARK: reading

    private func startReading() {
        guard !reading, state != .closed else { return }
        reading = true
        uv_read_start(UV.stream(tcp), { h, _, buf in
            // One buffer for the whole loop: `received` copies what it keeps before the next read.
            let b = Connection.from(h!.pointee.data).server.readBuffer
            buf!.pointee = uv_buf_init(b.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(b.count))
        }, { s, n, _ in
            Connection.from(s!.pointee.data).received(n)
        })
    }

    private func stopReading() {
        guard reading else { return }
        reading = false
        uv_read_stop(UV.stream(tcp))
    }

    private func received(_ n: Int) {
        if n < 0 {
            // EOF or reset: the client is gone. A queued job is dropped, a running one's result discarded.
            if let job { server.handler?.cancel(job) }
            job = nil
            close()
            return
        }
        guard n > 0 else { return }
        server.metrics.bytesIn.increment(by: Int64(n))
        if state == .lingering {
            lingerBytes += n
            if lingerBytes > Connection.lingerLimit { close() }
            return
        }
        let bytes = UnsafeRawBufferPointer(start: server.readBuffer.baseAddress, count: n)
        if state == .busy || state == .writing {
            pending += bytes
            // Backpressure: a pipelining client waits in TCP, not in this process's memory.
            if pending.count >= server.readBuffer.count { stopReading() }
            return
        }
        parse(Array(bytes))
    }

    private func parse(_ data: [UInt8]) {
        guard !data.isEmpty, state == .idle || state == .reading else { return }
        if state == .idle {
            state = .reading
            requestStart = MonotonicClock.now()
            armTimer(server.config.requestTimeout)
        }
        switch reader.feed(data) {
        case .incomplete:
            break
        case let .request(r, rest):
            request = r
            requestID = reader.requestID
            pending = rest + pending
            dispatch()
        case let .failed(problem):
            request = reader.request
            requestID = reader.requestID.isEmpty ? RequestReader.requestID(from: nil) : reader.requestID
            fail(problem)
        }
    }

    // MARK: serving

    private func dispatch() {
        state = .busy
        uv_timer_stop(timer)
        guard let handler = server.handler else { return fail(Problem(503, "server is shutting down")) }
        switch handler.handle(request, connectionID: id, requestID: requestID) {
        case let .respond(r): respond(r)
        case let .pending(j): job = j
        }
    }

    /// A finished job comes back from a worker.
    func finish(_ job: Job) {
        guard self.job === job, let response = job.response else { return }
        self.job = nil
        respond(response)
    }

    private func respond(_ response: HTTPResponse) {
        guard state != .closed else { return }
        var r = response
        let keepAlive = request.keepAlive && !r.close && !draining && !server.draining
        var extra: [(String, String)] = []
        if !r.headers.contains(where: { $0.0.lowercased() == "x-request-id" }) { extra.append(("X-Request-Id", requestID)) }
        // Two traceparent headers are as invalid as a malformed one: a new trace.
        let parents = request.headers("traceparent")
        let trace = RequestTrace(traceparent: parents.count == 1 ? parents[0] : nil, tracestate: request.headers("tracestate").joined(separator: ","))
        extra += trace.headers
        let head = r.head(keepAlive: keepAlive, extra: extra)
        server.handler?.responded(RequestRecord(request: request, response: r, requestID: requestID, trace: trace, client: peer,
                                                seconds: MonotonicClock.now() - requestStart, bytesIn: reader.bodyBytes))
        state = .writing
        armTimer(server.config.writeTimeout)
        let body = request.method == "HEAD" ? [] : r.body
        r.body = []
        write(head, body, then: { [weak self] in self?.responseWritten(keepAlive: keepAlive) })
    }

    private func responseWritten(keepAlive: Bool) {
        guard state != .closed else { return }
        guard keepAlive else { return linger() }
        state = .idle
        request = HTTPRequest(method: "", target: "")
        armTimer(server.config.idleTimeout)
        startReading()
        if !pending.isEmpty {
            let next = pending
            pending = []
            parse(next)
        }
    }

    /// Answers a request that cannot be served and closes: the rest of its bytes are not read.
    private func fail(_ problem: Problem) {
        switch problem.status {
        case 408: server.metrics.rejection(connection: "timeout")
        case 413: server.metrics.rejection(connection: "too_large")
        case 431: server.metrics.rejection(connection: "headers")
        default: break
        }
        request.keepAlive = false
        if request.method.isEmpty { request.method = "?" }
        state = .busy
        stopReading()
        respond(server.handler?.problemResponse(problem, for: request, requestID: requestID) ?? problem.response(requestID: requestID))
    }

    // MARK: writing

    private final class WriteRequest {
        let req: UnsafeMutablePointer<uv_write_t>
        var parts: [[UInt8]]
        let connection: Connection
        let then: (() -> Void)?
        /// Unsent answers count against the connections' memory budget until written.
        let lease: MemoryLease
        init(parts: [[UInt8]], connection: Connection, then: (() -> Void)?) {
            req = UV.allocate(uv_write_t.self)
            self.parts = parts
            self.connection = connection
            self.then = then
            lease = MemoryLease(connection.server.connectionMemory)
        }
        deinit { free(req) }
    }

    private func write(_ parts: [UInt8]..., then: (() -> Void)?) {
        let w = WriteRequest(parts: parts.filter { !$0.isEmpty }, connection: self, then: then)
        let total = w.parts.reduce(0) { $0 + $1.count }
        w.lease.grow(to: total, force: true)
        server.metrics.bytesOut.increment(by: Int64(total))
        w.req.pointee.data = Unmanaged.passRetained(w).toOpaque()
        // The byte arrays live in `w` until the write callback, so their storage outlives the write.
        var bufs = w.parts.indices.map { i in
            // Read-only access: no copy-on-write of a large body; libuv never writes into it.
            w.parts[i].withUnsafeBufferPointer { b in
                uv_buf_init(UnsafeMutableRawPointer(mutating: b.baseAddress!).assumingMemoryBound(to: CChar.self), UInt32(b.count))
            }
        }
        let rc = uv_write(w.req, UV.stream(tcp), &bufs, UInt32(bufs.count)) { req, status in
            let w = Unmanaged<WriteRequest>.fromOpaque(req!.pointee.data!).takeRetainedValue()
            // EPIPE, ECONNRESET (SIGPIPE is ignored) or ECANCELED: that connection is over, nothing else.
            if status == 0 { w.then?() } else { w.connection.close() }
        }
        if rc != 0 {
            Unmanaged<WriteRequest>.fromOpaque(w.req.pointee.data!).release()
            close()
        }
    }

    // MARK: timers and closing

    /// Bytes a closing connection reads and discards before it gives up on a clean close.
    static let lingerLimit = 64 << 20
    /// Seconds a closing connection waits for the client to stop sending.
    static let lingerSeconds = 2.0
    private var lingerBytes = 0

    /// Closes after an answer that ends the connection. Closing a socket with unread bytes makes TCP
    /// reset it, and a client still sending its body (a 413 or a 503 sent before the body was read)
    /// would then lose the answer. So the write side is shut (FIN after the answer) and what the
    /// client still sends is read and dropped until it closes, for at most 2 s or 64 MiB.
    private func linger() {
        state = .lingering
        let req = UV.allocate(uv_shutdown_t.self)
        if uv_shutdown(req, UV.stream(tcp), { req, _ in free(req) }) != 0 {
            free(req)
            return close()
        }
        armTimer(Connection.lingerSeconds)
        startReading()
    }

    private func armTimer(_ seconds: Double) {
        uv_timer_start(timer, { t in Connection.from(t!.pointee.data).timedOut() }, UInt64(max(1, seconds * 1000)), 0)
    }

    private func timedOut() {
        switch state {
        case .idle: close()
        case .reading:
            request = reader.request
            fail(Problem(408, "the request was not received within \(server.config.requestTimeout) s"))
        case .writing, .lingering: close() // the client does not read its response, or never stops sending
        case .busy, .closed: break
        }
    }

    /// SIGTERM: idle connections close now, busy ones after their response.
    func drain() {
        draining = true
        if state == .idle { close() }
    }

    func close() {
        guard state != .closed else { return }
        state = .closed
        if let job { server.handler?.cancel(job) }
        job = nil
        uv_timer_stop(timer)
        for h in [UV.handle(tcp), UV.handle(timer)] {
            uv_close(h) { h in
                let c = Connection.from(h!.pointee.data)
                free(h)
                c.handleClosed()
            }
        }
    }

    private func handleClosed() {
        openHandles -= 1
        if openHandles == 0 { server.removed(self) }
    }
}
