import CLibUV
import Foundation
import Logging

/// What the server asks of the application, on the loop thread.
protocol RequestHandler: AnyObject {
    /// Called when a request's head is complete, before its body is read: a problem refuses it
    /// (413 from Content-Length, 411, 415, 404 ...) without reading the body.
    func admit(_ head: HTTPRequest, contentLength: UInt64?, chunked: Bool) -> Problem?
    /// Handles a complete request: an immediate response, or a job that completes later.
    func handle(_ request: HTTPRequest, connectionID: UInt64, requestID: String) -> HandlerResult
    /// Called once when a connection that had a job in flight goes away.
    func cancel(_ job: Job)
    /// Called on the loop when a worker hands a job back (whether or not its client is still there).
    func completed(_ job: Job)
    /// Called once per response written, for metrics and logs.
    func responded(_ record: RequestRecord)
    /// SIGHUP: read the models again.
    func reload()
    /// True when no queued or running work remains (drain may finish).
    var idle: Bool { get }
    /// How a refusal from `admit` or the reader is worded for this request (each protocol has its shape).
    func problemResponse(_ problem: Problem, for request: HTTPRequest, requestID: String) -> HTTPResponse
}

/// One answered request, as its log line and metrics see it.
struct RequestRecord {
    let request: HTTPRequest
    let response: HTTPResponse
    let requestID: String
    let trace: RequestTrace
    /// The peer, "address:port".
    let client: String
    /// From the request's first byte to the answer.
    let seconds: Double
    let bytesIn: Int
}

enum HandlerResult {
    case respond(HTTPResponse)
    case pending(Job)
}

/// The libuv event loop that owns every socket: accepts connections, reads and parses requests
/// (`Connection`), hands complete ones to the `RequestHandler`, takes finished jobs back through
/// a `uv_async_t`, and drains on SIGTERM/SIGINT.
final class HTTPServer {
    let config: ServerConfiguration
    let loop: UnsafeMutablePointer<uv_loop_t>
    weak var handler: RequestHandler?
    let logger: Logger
    let metrics: ServerMetrics
    private var listener: UnsafeMutablePointer<uv_tcp_t>?
    private var async: UnsafeMutablePointer<uv_async_t>!
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []
    private var drainTimer: UnsafeMutablePointer<uv_timer_t>?
    private var drainCheck: UnsafeMutablePointer<uv_timer_t>?
    var connections: [UInt64: Connection] = [:]
    private var nextConnectionID: UInt64 = 1
    private(set) var draining = false
    private var stopped = false
    private let completedLock = NSLock()
    private var completed: [Job] = []
    /// False once the async handle is closed (a drain that timed out may leave workers running).
    private var asyncOpen = true
    /// Port actually bound (useful with port 0).
    private(set) var boundPort = 0
    /// Connections being served (refused ones that linger are not counted against the cap).
    private var servedConnections = 0
    private var lingeringRefusals = 0
    /// Bytes held for connections: request bodies as they arrive and answers not yet written.
    let connectionMemory: MemoryBudget
    /// Where every read lands; the read callback copies what it keeps, so one buffer serves all sockets.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    /// Refusals over the connection cap that may linger at once; beyond it they close at once.
    static let maxLingeringRefusals = 64

    init(config: ServerConfiguration, metrics: ServerMetrics, logger: Logger) {
        // A write to a socket whose peer has gone must fail with EPIPE on that connection, not kill
        // the process (the default action of SIGPIPE).
        signal(SIGPIPE, SIG_IGN)
        self.config = config
        self.metrics = metrics
        self.logger = logger
        connectionMemory = MemoryBudget(limit: config.connectionMemoryBytes)
        loop = UV.allocate(uv_loop_t.self)
        uv_loop_init(loop)
        async = UV.allocate(uv_async_t.self)
        uv_async_init(loop, async) { a in
            guard let a, let data = a.pointee.data else { return }
            Unmanaged<HTTPServer>.fromOpaque(data).takeUnretainedValue().drainCompleted()
        }
        async.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    /// Thread-safe: a worker hands a finished job back to the loop.
    func complete(_ job: Job) {
        completedLock.lock()
        defer { completedLock.unlock() }
        guard asyncOpen else { return }
        completed.append(job)
        uv_async_send(async)
    }

    private func drainCompleted() {
        completedLock.lock()
        let jobs = completed
        completed = []
        completedLock.unlock()
        for job in jobs {
            handler?.completed(job)
            if let c = connections[job.connectionID], c.owns(job) {
                c.finish(job)
            }
        }
        checkDrained()
    }

    /// The socket address for `host`: a numeric IPv4 or IPv6 address as it is, otherwise a name
    /// resolved once at start-up (`localhost`, a pod's host name), IPv4 preferred.
    static func address(host: String, port: Int) throws -> sockaddr_storage {
        var storage = sockaddr_storage()
        let numeric: Int32 = withUnsafeMutablePointer(to: &storage) { p in
            host.contains(":")
                ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(host, Int32(port), $0) }
                : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(host, Int32(port), $0) }
        }
        if numeric == 0 { return storage }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let list else {
            throw Problem(500, "cannot bind \(host):\(port): cannot resolve the host name (\(String(cString: gai_strerror(rc))))")
        }
        defer { freeaddrinfo(list) }
        var chosen: UnsafeMutablePointer<addrinfo>?
        var node: UnsafeMutablePointer<addrinfo>? = list
        while let n = node {
            if n.pointee.ai_family == AF_INET { chosen = n; break }
            if chosen == nil, n.pointee.ai_family == AF_INET6 { chosen = n }
            node = n.pointee.ai_next
        }
        guard let chosen, let addr = chosen.pointee.ai_addr else {
            throw Problem(500, "cannot bind \(host):\(port): the name has no IPv4 or IPv6 address")
        }
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: addr, count: min(Int(chosen.pointee.ai_addrlen), dst.count)))
        }
        return storage
    }

    /// Binds and listens; throws a readable message when the address cannot be used.
    func listen() throws {
        let tcp = UV.allocate(uv_tcp_t.self)
        uv_tcp_init(loop, tcp)
        var storage: sockaddr_storage
        do { storage = try Self.address(host: config.host, port: config.port) } catch {
            UV.close(tcp)
            throw error
        }
        let rc: Int32 = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(tcp, $0, 0) }
        }
        guard rc == 0 else {
            UV.close(tcp)
            throw Problem(500, "cannot bind \(config.host):\(config.port): \(UV.error(rc))")
        }
        tcp.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let lrc = uv_listen(UV.stream(tcp), 511) { server, status in
            guard let server, let data = server.pointee.data, status == 0 else { return }
            Unmanaged<HTTPServer>.fromOpaque(data).takeUnretainedValue().accept(server)
        }
        guard lrc == 0 else {
            UV.close(tcp)
            throw Problem(500, "cannot listen on \(config.host):\(config.port): \(UV.error(lrc))")
        }
        var name = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &name) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = uv_tcp_getsockname(tcp, $0, &len) }
        }
        boundPort = Int(UInt16(bigEndian: withUnsafeBytes(of: name) { $0.load(fromByteOffset: 2, as: UInt16.self) }))
        listener = tcp
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            let s = UV.allocate(uv_signal_t.self)
            uv_signal_init(loop, s)
            s.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_signal_start(s, { s, signum in
                guard let s, let data = s.pointee.data else { return }
                Unmanaged<HTTPServer>.fromOpaque(data).takeUnretainedValue().signalled(signum)
            }, sig)
            signals.append(s)
        }
    }

    private func signalled(_ signum: Int32) {
        if signum == SIGHUP {
            // Its default action would end the process with requests in flight.
            if !draining { handler?.reload() }
            return
        }
        beginDrain(signal: signum)
    }

    /// Runs the loop until drained. The exit status is 0 also when the drain timeout cut work off: a
    /// requested shutdown that happened is a success to the supervisor (Kubernetes, systemd), and the
    /// log says what was cut off (docs/OPERATIONS.md, "Exit status").
    func run() -> Int32 {
        uv_run(loop, UV_RUN_DEFAULT)
        return 0
    }

    private func accept(_ server: UnsafeMutablePointer<uv_stream_t>) {
        let tcp = UV.allocate(uv_tcp_t.self)
        uv_tcp_init(loop, tcp)
        guard uv_accept(server, UV.stream(tcp)) == 0 else {
            UV.close(tcp)
            return
        }
        uv_tcp_nodelay(tcp, 1)
        var refusal: Problem?
        if servedConnections >= config.maxConnections || draining {
            metrics.rejection(connection: "connections")
            guard lingeringRefusals < Self.maxLingeringRefusals else {
                // A flood of refusals must not hold descriptors either: close without an answer.
                UV.close(tcp)
                return
            }
            refusal = Problem(503, draining ? "the server is shutting down" : "too many open connections",
                              headers: [("Retry-After", "\(config.retryAfter)")])
        }
        let id = nextConnectionID
        nextConnectionID += 1
        let c = Connection(id: id, tcp: tcp, server: self, refusal: refusal)
        connections[id] = c
        if c.refused { lingeringRefusals += 1 } else { servedConnections += 1 }
        metrics.connections.set(Int64(servedConnections))
        c.start()
    }

    func removed(_ c: Connection) {
        connections[c.id] = nil
        if c.refused { lingeringRefusals -= 1 } else { servedConnections -= 1 }
        metrics.connections.set(Int64(servedConnections))
        checkDrained()
    }

    // MARK: drain

    private func beginDrain(signal: Int32) {
        guard !draining else { return }
        draining = true
        logger.info("draining", metadata: ["signal": .stringConvertible(Int(signal)), "drain_timeout_s": .stringConvertible(config.drainTimeout),
                                           "open_connections": .stringConvertible(connections.count)])
        if let l = listener {
            UV.close(l)
            listener = nil
        }
        for c in connections.values { c.drain() }
        let t = UV.allocate(uv_timer_t.self)
        uv_timer_init(loop, t)
        t.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(t, { t in
            guard let t, let data = t.pointee.data else { return }
            let server = Unmanaged<HTTPServer>.fromOpaque(data).takeUnretainedValue()
            server.logger.warning("drain timeout reached with work still running; exiting")
            server.shutdown()
        }, UInt64(config.drainTimeout * 1000), 0)
        drainTimer = t
        // Poll as well: a job may finish with nothing else to wake the loop.
        let p = UV.allocate(uv_timer_t.self)
        uv_timer_init(loop, p)
        p.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(p, { p in
            guard let p, let data = p.pointee.data else { return }
            Unmanaged<HTTPServer>.fromOpaque(data).takeUnretainedValue().checkDrained()
        }, 50, 50)
        drainCheck = p
        checkDrained()
    }

    private func checkDrained() {
        guard draining, !stopped, handler?.idle ?? true, connections.values.allSatisfy({ !$0.busy }) else { return }
        logger.info("drained; exiting")
        shutdown()
    }

    /// Closes every handle once; close callbacks that run afterwards must not close them again.
    private func shutdown() {
        guard !stopped else { return }
        stopped = true
        for c in connections.values { c.close() }
        for s in signals { UV.close(s) }
        signals = []
        if let t = drainTimer { UV.close(t); drainTimer = nil }
        if let p = drainCheck { UV.close(p); drainCheck = nil }
        if let l = listener { UV.close(l); listener = nil }
        completedLock.lock()
        asyncOpen = false
        UV.close(async)
        completedLock.unlock()
        uv_stop(loop)
    }

    deinit { readBuffer.deallocate() }
}
