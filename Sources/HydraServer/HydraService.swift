import Foundation
import HydraEngine
import HydraOutputs
import HydraWeights
import Logging

/// The inference service: models with their worker pools, routes, admission control, probes,
/// metrics and logs, on top of `HTTPServer`.
public final class HydraService: RequestHandler {
    public struct NamedModel {
        public var name: String
        public var model: Model
        /// Where to read it again (the model repository's load); nil: it cannot be.
        public var source: ModelSource?
        public var precision: Precision
        public init(name: String, model: Model, source: ModelSource? = nil, precision: Precision = .f32) {
            self.name = name
            self.model = model
            self.source = source
            self.precision = precision
        }
    }

    /// A model the operator's folder or list names (`catalog`).
    public struct ModelSpec: Sendable {
        public var name: String
        public var source: ModelSource
        public var precision: Precision
        public init(name: String, source: ModelSource, precision: Precision) {
            self.name = name
            self.source = source
            self.precision = precision
        }
    }

    /// What SIGHUP reads again: the model folder or list as it is now. Nil: SIGHUP is logged and ignored.
    public var catalog: (() throws -> [ModelSpec])?

    /// The server's version, as `hydra --version` and `GET /v2` report it.
    public static let version = "0.1.0"

    let config: ServerConfiguration
    let server: HTTPServer
    let logger: Logger
    let metrics: ServerMetrics
    private var repository: ModelRepository!
    private var modelOrder: [String] { repository.order }
    private var inFlight = 0
    private let started: Double
    let web = WebAssets.load()

    /// Loads replicas for every model (ready when this returns) and prepares the server.
    public init(config: ServerConfiguration, models: [NamedModel], logger: Logger, startedAt: Double? = nil) throws {
        precondition(!models.isEmpty)
        started = startedAt ?? MonotonicClock.now()
        var config = config
        var limits: [String: WorkerLimits] = [:]
        if let maxMemory = config.maxMemoryBytes {
            let plan = try MemoryPlan.fitting(maxMemory: maxMemory, models: models.map { ($0.name, $0.model) },
                                              workersPerModel: config.workers, maxBodyBytes: config.maxBodyBytes,
                                              maxPixels: config.maxPixels, maxNetworkPixels: config.maxNetworkPixels,
                                              lowerMaxPixels: config.maxPixelsIsDefault)
            if plan.maxPixels < config.maxPixels {
                logger.warning("max pixels lowered to fit the memory budget", metadata: [
                    "max_pixels": .stringConvertible(plan.maxPixels), "max_memory_mib": .stringConvertible(maxMemory >> 20)])
            }
            config.maxPixels = plan.maxPixels
            config.connectionMemoryBytes = plan.connectionBytes
            limits = plan.models.mapValues(\.limits)
            logger.info("memory plan", metadata: plan.summary.mapValues { .stringConvertible($0) })
        }
        self.config = config
        self.logger = logger
        if let why = web.missing { logger.warning("no web page at /", metadata: ["reason": "\(why)"]) }
        let metrics = ServerMetrics(precision: config.precision)
        self.metrics = metrics
        server = HTTPServer(config: config, metrics: metrics, logger: logger)
        server.handler = self
        let makePool = { [server, metrics, config] (name: String, model: Model, limits: WorkerLimits, precision: Precision) throws
            -> WorkerPool in
            try WorkerPool(name: name, model: model, workers: config.workers, threadsPerWorker: config.threadsPerWorker,
                           capacity: config.queueSize, limits: limits, precision: precision) { job in
                metrics.record(job, model: name)
                server.complete(job)
            }
        }
        var loaded: [(name: String, source: ModelSource?, limits: WorkerLimits, pool: WorkerPool)] = []
        for m in models {
            let share = limits[m.name] ?? WorkerLimits(maxPixels: config.maxPixels, maxNetworkPixels: config.maxNetworkPixels ?? .max)
            loaded.append((m.name, m.source, share, try makePool(m.name, m.model, share, m.precision)))
        }
        repository = ModelRepository(loaded, makePool: makePool, complete: { [server] in server.complete($0) })
        for m in loaded { announce(m.name) }
    }

    /// The model's metrics series and `hydra_model_info`, for what is served under `name` now.
    private func announce(_ name: String) {
        guard let entry = repository[name], let pool = entry.pool else { return metrics.withdrawn(model: name) }
        metrics.served(model: name, version: ModelRepository.version, precision: pool.precision.rawValue,
                       source: entry.source?.description ?? "memory", workers: pool.workers)
    }

    /// Binds, serves until SIGTERM/SIGINT has drained the work, and returns the exit status.
    public func run() throws -> Int32 {
        try server.listen()
        logger.info("ready", metadata: [
            "address": "\(config.host):\(server.boundPort)", "models": "\(modelOrder.joined(separator: ","))",
            "workers": .stringConvertible(config.workers), "threads_per_worker": .stringConvertible(config.threadsPerWorker),
            "queue_size": .stringConvertible(config.queueSize), "startup_ms": .stringConvertible(Int((MonotonicClock.now() - started) * 1000)),
        ])
        let status = server.run()
        for p in repository.pools { p.stop() }
        return status
    }

    // MARK: routing

    enum Route {
        case health, ready, models, metrics, index
        // The open inference protocol (v2); a version, when given, must be one the model has.
        case v2Server, v2Live, v2Ready, v2Model(String, version: String?), v2ModelReady(String, version: String?)
        case v2Infer(String, version: String?)
        /// The model repository extension.
        case repositoryIndex, repositoryLoad(String), repositoryUnload(String)
        case asset(String)
        /// `named`: /v1/models/{name}/predict rather than /v1/predict (the default model).
        case predict(String, named: Bool)

        /// Label for metrics (no unbounded values).
        var label: String {
            switch self {
            case .health: return "/healthz"
            case .ready: return "/readyz"
            case .v2Server: return "/v2"
            case .v2Live: return "/v2/health/live"
            case .v2Ready: return "/v2/health/ready"
            case .v2Model: return "/v2/models/{name}"
            case .v2ModelReady: return "/v2/models/{name}/ready"
            case .v2Infer: return "/v2/models/{name}/infer"
            case .repositoryIndex: return "/v2/repository/index"
            case .repositoryLoad: return "/v2/repository/models/{name}/load"
            case .repositoryUnload: return "/v2/repository/models/{name}/unload"
            case .models: return "/v1/models"
            case .metrics: return "/metrics"
            case .index: return "/"
            case .asset: return "/static"
            case let .predict(_, named): return named ? "/v1/models/{name}/predict" : "/v1/predict"
            }
        }

        var methods: [String] {
            switch self {
            case .predict, .v2Infer, .repositoryIndex, .repositoryLoad, .repositoryUnload: return ["POST"]
            default: break
            }
            return ["GET", "HEAD"]
        }
    }

    /// The route of a request by its raw path segments (an encoded "/" never separates two).
    func route(_ request: HTTPRequest) -> Route? {
        guard request.target.hasPrefix("/"), let parts = request.pathSegments else { return nil }
        switch parts {
        case [""]: return .index
        case ["healthz"]: return .health
        case ["readyz"]: return .ready
        case ["metrics"]: return .metrics
        case ["favicon.ico"]: return .asset("favicon.ico")
        case let p where p.count == 2 && p[0] == "static" && web.files[p[1]] != nil && p[1] != "index.html": return .asset(p[1])
        case ["v1", "models"]: return .models
        case ["v1", "predict"]: return .predict(modelOrder[0], named: false)
        case let p where p.count == 4 && p[0] == "v1" && p[1] == "models" && p[3] == "predict": return .predict(p[2], named: true)
        case ["v2"]: return .v2Server
        case ["v2", "health", "live"]: return .v2Live
        case ["v2", "health", "ready"]: return .v2Ready
        case ["v2", "repository", "index"]: return .repositoryIndex
        case let p where p.count == 5 && p[0] == "v2" && p[1] == "repository" && p[2] == "models" && p[4] == "load":
            return .repositoryLoad(p[3])
        case let p where p.count == 5 && p[0] == "v2" && p[1] == "repository" && p[2] == "models" && p[4] == "unload":
            return .repositoryUnload(p[3])
        case let p where p.count >= 3 && p[0] == "v2" && p[1] == "models":
            // /v2/models/{name}[/versions/{version}][/ready]
            var rest = p[3...]
            var version: String?
            if rest.first == "versions", rest.count >= 2 {
                version = rest[rest.startIndex + 1]
                rest = rest.dropFirst(2)
            }
            switch Array(rest) {
            case []: return .v2Model(p[2], version: version)
            case ["ready"]: return .v2ModelReady(p[2], version: version)
            case ["infer"]: return .v2Infer(p[2], version: version)
            default: return nil
            }
        default: return nil
        }
    }

    private func routed(_ r: HTTPRequest) throws -> Route {
        guard r.target.hasPrefix("/") else { throw Problem(400, "request target must be an absolute path") }
        guard r.pathSegments != nil else { throw Problem(400, "the path is not valid percent-encoding") }
        guard let route = route(r) else { throw Problem(404, "no such endpoint: \(r.path.prefix(100))") }
        guard route.methods.contains(r.method) else {
            throw Problem(405, "\(r.method) is not allowed on \(route.label); use \(route.methods.joined(separator: ", "))",
                          headers: [("Allow", route.methods.joined(separator: ", "))])
        }
        return route
    }

    private func pool(_ name: String, version: String? = nil) throws -> WorkerPool {
        try repository.pool(name, version: version)
    }

    private func overloaded(_ pool: WorkerPool) -> Problem {
        metrics.rejection(model: pool.modelName, "queue_full")
        return Problem(503, "model \(pool.modelName) is at capacity (\(pool.capacity) queued, \(pool.workers) busy); retry later",
                       headers: [("Retry-After", "\(config.retryAfter)")], reason: "queue_full")
    }

    private func shuttingDown(_ pool: WorkerPool) -> Problem {
        metrics.rejection(model: pool.modelName, "draining")
        return Problem(503, "the server is shutting down", headers: [("Retry-After", "\(config.retryAfter)")], reason: "draining")
    }

    static let imageTypes: Set<String> = ["image/png", "image/jpeg", "image/jpg", "multipart/form-data"]

    // MARK: RequestHandler

    func admit(_ head: HTTPRequest, contentLength: UInt64?, chunked: Bool) -> Problem? {
        // Only predict bodies are worth refusing before they are read; every other request,
        // unknown ones included, is answered by `handle` and keeps its connection.
        guard head.method == "POST", let route = route(head) else { return nil }
        if case let .v2Infer(name, version) = route {
            return admitInference(head, model: name, version: version, contentLength: contentLength, chunked: chunked)
        }
        switch route {
        case .repositoryIndex, .repositoryLoad, .repositoryUnload:
            if let n = contentLength, n > Self.maxControlBody {
                return Problem(413, "a repository request body of \(n) bytes exceeds the limit of \(Self.maxControlBody) bytes")
            }
            return nil
        default: break
        }
        guard case let .predict(name, _) = route else { return nil }
        do {
            let pool = try pool(name)
            if server.draining { return shuttingDown(pool) }
            if !chunked && contentLength == nil { return Problem(411, "a predict request needs Content-Length or chunked encoding") }
            if let n = contentLength, n > UInt64(config.maxBodyBytes) {
                return Problem(413, "request body of \(n) bytes exceeds the limit of \(config.maxBodyBytes) bytes")
            }
            if contentLength == 0 { return Problem(400, "the request body is empty; send a PNG or JPEG image") }
            _ = try ContentCoding.of(contentEncoding: head.header("Content-Encoding"))
            let type = mediaType(head.header("Content-Type") ?? "")
            guard Self.imageTypes.contains(type) else {
                return Problem(415, type.isEmpty ? "missing Content-Type; send image/png, image/jpeg or multipart/form-data"
                    : "unsupported Content-Type \(type.prefix(60)); send image/png, image/jpeg or multipart/form-data")
            }
            _ = try PredictParameters(query: head.queryParameters(), model: pool.model, defaultTimeoutMs: config.defaultTimeoutMs)
            if pool.queued >= pool.capacity { return overloaded(pool) }
            return nil
        } catch let p as Problem {
            return p
        } catch {
            return Problem(400, "\(error)")
        }
    }

    /// What `admit` does for /v2 infer: the body's JSON header (and binary tensors) has no required
    /// Content-Type (tritonclient sends none); a gzip or deflate body is inflated by the worker.
    private func admitInference(_ head: HTTPRequest, model: String, version: String?, contentLength: UInt64?, chunked: Bool) -> Problem? {
        do {
            let pool = try pool(model, version: version)
            if server.draining { return shuttingDown(pool) }
            if !chunked && contentLength == nil { return Problem(411, "an infer request needs Content-Length or chunked encoding") }
            if let n = contentLength, n > UInt64(config.maxBodyBytes) {
                return Problem(413, "request body of \(n) bytes exceeds the limit of \(config.maxBodyBytes) bytes")
            }
            if contentLength == 0 { return Problem(400, "the request body is empty; send an inference request") }
            _ = try ContentCoding.of(contentEncoding: head.header("Content-Encoding"))
            _ = try inferenceHeaderLength(head)
            if pool.queued >= pool.capacity { return overloaded(pool) }
            return nil
        } catch let p as Problem {
            return p
        } catch {
            return Problem(400, "\(error)")
        }
    }

    /// Repository request bodies: small JSON objects, or empty.
    static let maxControlBody: UInt64 = 64 << 10

    private func controlBody(_ r: HTTPRequest, allowed: Set<String>) throws -> [String: Any] {
        guard !r.body.isEmpty else { return [:] }
        guard r.body.count <= Int(Self.maxControlBody) else {
            throw Problem(413, "a repository request body may hold at most \(Self.maxControlBody) bytes")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any] else {
            throw Problem(400, "the request body is not a JSON object")
        }
        if let key = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw Problem(400, "unknown field '\(key.prefix(40))'; this request takes \(allowed.sorted().joined(separator: ", "))")
        }
        if let p = object["parameters"], !(p is [String: Any]) { throw Problem(400, "parameters must be an object") }
        return object
    }

    /// A compressed body is inflated by the worker, at most to the body limit.
    private func takeCoding(of r: HTTPRequest, into job: Job) throws {
        job.contentCoding = try ContentCoding.of(contentEncoding: r.header("Content-Encoding"))
        job.maxBodyBytes = config.maxBodyBytes
    }

    private func controlJob(connectionID: UInt64, requestID: String) -> Job {
        Job(connectionID: connectionID, requestID: requestID, body: [], contentType: "", accept: nil,
            parameters: PredictParameters(timeoutMs: config.defaultTimeoutMs), kind: .control)
    }

    private func inferenceHeaderLength(_ r: HTTPRequest) throws -> Int? {
        guard let text = r.header("Inference-Header-Content-Length") else { return nil }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)), n > 0 else {
            throw Problem(400, "Inference-Header-Content-Length must be a positive integer, got '\(text.prefix(20))'")
        }
        return n
    }

    func problemResponse(_ problem: Problem, for request: HTTPRequest, requestID: String) -> HTTPResponse {
        if request.pathSegments?.first == "v2" { return problem.inferenceError() }
        return problem.response(requestID: requestID)
    }

    func handle(_ r: HTTPRequest, connectionID: UInt64, requestID: String) -> HandlerResult {
        do {
            switch try routed(r) {
            case .health:
                return .respond(.json(200, ["status": "ok"]))
            case .ready:
                if server.draining { return .respond(.json(503, ["status": "draining"])) }
                return .respond(.json(200, ["status": "ready", "models": modelOrder]))
            case .v2Server:
                return .respond(.json(200, ["name": "hydra", "version": Self.version, "extensions": ["binary_tensor_data", "model_repository"]]))
            case .v2Live:
                return .respond(.json(200, ["live": true]))
            case .v2Ready:
                return .respond(.json(server.draining ? 503 : 200, ["ready": !server.draining]))
            case let .v2ModelReady(name, version):
                // A known model that is not loaded is not ready (503); an unknown one is 404.
                if let entry = repository[name], entry.pool == nil, version == nil || version == ModelRepository.version {
                    return .respond(.json(503, ["name": name, "ready": false]))
                }
                _ = try pool(name, version: version)
                return .respond(.json(server.draining ? 503 : 200, ["name": name, "ready": !server.draining]))
            case .repositoryIndex:
                var readyOnly = false
                if let value = try controlBody(r, allowed: ["ready"])["ready"] {
                    guard let b = InferRequest.boolean(value) else { throw Problem(400, "ready must be true or false") }
                    readyOnly = b
                }
                return .respond(.json(200, repository.index(readyOnly: readyOnly)))
            case let .repositoryLoad(name):
                let parameters = try controlBody(r, allowed: ["parameters"])["parameters"] as? [String: Any] ?? [:]
                if let key = parameters.keys.sorted().first {
                    throw Problem(400, key == "config" || key.hasPrefix("file:")
                        ? "Hydra reads model '\(name.prefix(64))' again from where it came from; a config or files cannot be given"
                        : "unknown load parameter '\(key.prefix(40))'")
                }
                if server.draining { throw Problem(503, "the server is shutting down", headers: [("Retry-After", "\(config.retryAfter)")]) }
                let job = controlJob(connectionID: connectionID, requestID: requestID)
                job.modelName = name
                try repository.load(name, job: job)
                logger.info("loading model", metadata: ["model": "\(name)", "request_id": "\(requestID)"])
                inFlight += 1
                refreshGauges()
                return .pending(job)
            case let .repositoryUnload(name):
                let parameters = try controlBody(r, allowed: ["parameters"])["parameters"] as? [String: Any] ?? [:]
                if let key = parameters.keys.sorted().first(where: { $0 != "unload_dependents" }) {
                    throw Problem(400, "unknown unload parameter '\(key.prefix(40))'")
                }
                let job = controlJob(connectionID: connectionID, requestID: requestID)
                job.modelName = name
                guard try repository.unload(name, job: job) else { return .respond(.json(200, [String: Any]())) }
                logger.info("unloading model", metadata: ["model": "\(name)", "request_id": "\(requestID)"])
                inFlight += 1
                refreshGauges()
                return .pending(job)
            case let .v2Model(name, version):
                return .respond(.json(200, v2Metadata(try pool(name, version: version))))
            case .models:
                return .respond(.json(200, ["models": repository.pools.map(describe)]))
            case .metrics:
                refreshGauges()
                metrics.connectionMemory.set(Int64(server.connectionMemory.inUse))
                metrics.connectionMemoryLimit.set(Int64(server.connectionMemory.limit))
                return .respond(HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                             body: metrics.exposition()))
            case .index:
                guard let file = web.files["index.html"] else { throw Problem(404, web.missing ?? "no web page") }
                return .respond(Self.page(file))
            case let .asset(name):
                guard let file = web.files[name] else { throw Problem(404, web.missing ?? "no such file") }
                return .respond(Self.page(file))
            case let .v2Infer(name, version):
                let pool = try pool(name, version: version)
                if server.draining { throw shuttingDown(pool) }
                let params = try PredictParameters(query: [], model: pool.model, defaultTimeoutMs: config.defaultTimeoutMs)
                // The JSON is read by the worker: a large one must not hold the loop.
                let job = Job(connectionID: connectionID, requestID: requestID, body: r.body, contentType: "", accept: nil,
                              parameters: params, kind: .infer(headerLength: try inferenceHeaderLength(r)))
                job.modelName = name
                try takeCoding(of: r, into: job)
                job.responseCoding = ContentCoding.preferred(acceptEncoding: r.header("Accept-Encoding"))
                guard pool.submit(job) else { throw overloaded(pool) }
                inFlight += 1
                refreshGauges()
                return .pending(job)
            case let .predict(name, _):
                let pool = try pool(name)
                if server.draining { throw shuttingDown(pool) }
                let params = try PredictParameters(query: r.queryParameters(), model: pool.model, defaultTimeoutMs: config.defaultTimeoutMs)
                let job = Job(connectionID: connectionID, requestID: requestID, body: r.body,
                              contentType: r.header("Content-Type") ?? "", accept: r.header("Accept"), parameters: params)
                job.modelName = name
                try takeCoding(of: r, into: job)
                guard pool.submit(job) else { throw overloaded(pool) }
                inFlight += 1
                refreshGauges()
                return .pending(job)
            }
        } catch let p as Problem {
            if r.pathSegments?.first == "v2" { return .respond(p.inferenceError()) }
            return .respond(p.response(instance: String(r.path.prefix(200)), requestID: requestID))
        } catch {
            return .respond(Problem(500, "\(error)").response(requestID: requestID))
        }
    }

    func cancel(_ job: Job) {
        job.cancel()
    }

    func completed(_ job: Job) {
        inFlight -= 1
        if let commit = job.commit {
            // A repository operation's change, made here on the loop before its answer goes out.
            job.commit = nil
            commit()
            guard !job.modelName.isEmpty else { return refreshGauges() } // a reload, which logs itself
            announce(job.modelName)
            let ok = job.response?.status == 200
            logger.log(level: ok ? .info : .error, ok ? "model repository changed" : "model repository operation failed", metadata: [
                "request_id": "\(job.requestID)", "model": "\(job.modelName)", "status": .stringConvertible(job.response?.status ?? 0),
                "models": "\(repository.index(readyOnly: true).compactMap { $0["name"] as? String }.joined(separator: ","))",
            ])
        }
        refreshGauges()
        if job.outcome == "dropped" || job.outcome == "discarded" {
            metrics.rejection(model: job.modelName, "client_gone")
            logger.info("client went away", metadata: ["request_id": "\(job.requestID)", "model": "\(job.modelName)",
                                                       "outcome": "\(job.outcome)"])
        }
        if job.outcome == "deadline" { metrics.rejection(model: job.modelName, "deadline") }
    }

    /// SIGHUP: serve what the catalog says now. New and changed models get new pools before the
    /// swap; requests in flight finish on the pools they are in; a failure keeps what was served.
    func reload() {
        guard let catalog else {
            return logger.notice("SIGHUP received: no model folder or list was given (the built-in model, or models given in memory); nothing to read again")
        }
        guard !repository.reloading else { return logger.warning("SIGHUP received while a reload is running; ignored") }
        let wanted: [ModelSpec]
        do {
            wanted = try catalog()
            guard !wanted.isEmpty else { throw Problem(400, "the model folder holds no model") }
        } catch {
            metrics.reload(ok: false)
            return logger.error("model reload failed; serving the models as they were", metadata: [
                "error": "\((error as? Problem)?.detail ?? "\(error)")", "models": "\(modelOrder.joined(separator: ","))"])
        }
        logger.info("reloading models", metadata: ["signal": "SIGHUP", "wanted": "\(wanted.map(\.name).joined(separator: ","))"])
        let job = controlJob(connectionID: 0, requestID: "reload")
        inFlight += 1
        let config = self.config
        repository.reload(wanted, job: job, plan: { models in
            guard let maxMemory = config.maxMemoryBytes else { return [:] }
            let plan = try MemoryPlan.fitting(maxMemory: maxMemory, models: models, workersPerModel: config.workers,
                                              maxBodyBytes: config.maxBodyBytes, maxPixels: config.maxPixels,
                                              maxNetworkPixels: config.maxNetworkPixels, lowerMaxPixels: false)
            return plan.models.mapValues(\.limits)
        }, done: { [weak self] report, error in
            guard let self else { return }
            let ok = error == nil && report.failed.isEmpty
            self.metrics.reload(ok: ok)
            for name in report.added + report.replaced + report.resized + report.removed { self.announce(name) }
            var fields: Logger.Metadata = [
                "added": "\(report.added.joined(separator: ","))", "replaced": "\(report.replaced.joined(separator: ","))",
                "removed": "\(report.removed.joined(separator: ","))", "unchanged": "\(report.unchanged.joined(separator: ","))",
                "models": "\(self.modelOrder.joined(separator: ","))",
            ]
            if !report.resized.isEmpty { fields["resized"] = "\(report.resized.joined(separator: ","))" }
            if let error {
                fields["error"] = "\((error as? MemoryPlan.Refusal)?.description ?? "\(error)")"
                return self.logger.error("model reload failed; serving the models as they were", metadata: fields)
            }
            if !report.failed.isEmpty {
                fields["failed"] = .array(report.failed.map { .string("\($0.name): \($0.why)") })
                return self.logger.error("model reload: some models failed to load and keep their old version", metadata: fields)
            }
            self.logger.info("models reloaded", metadata: fields)
        })
    }

    /// The model a route is for, when it names one the repository knows ("" otherwise: a label
    /// must not take any value a client puts in a URL).
    private func model(of route: Route?) -> String {
        let name: String
        switch route {
        case let .predict(n, _), let .v2Infer(n, _), let .v2Model(n, _), let .v2ModelReady(n, _), let .repositoryLoad(n),
             let .repositoryUnload(n):
            name = n
        default: return ""
        }
        return repository[name] != nil ? name : ""
    }

    func responded(_ record: RequestRecord) {
        let (r, response) = (record.request, record.response)
        let route = route(r)
        let label = route?.label ?? "other"
        let model = model(of: route)
        metrics.request(model: model, route: label, code: response.status, seconds: record.seconds)
        let probe = ["/metrics", "/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"].contains(label)
        let level: Logger.Level = probe ? .debug
            : response.status == 503 || response.status == 504 ? .warning : response.status >= 500 ? .error : .info
        var fields: Logger.Metadata = [
            "request_id": "\(record.requestID)", "trace_id": "\(record.trace.traceID)", "span_id": "\(record.trace.spanID)",
            "method": "\(r.method)", "path": "\(r.path.prefix(200))", "route": "\(label)", "status": .stringConvertible(response.status),
            "duration_ms": .stringConvertible((record.seconds * 1e6).rounded() / 1e3), "bytes_in": .stringConvertible(record.bytesIn),
            "bytes_out": .stringConvertible(response.body.count), "client": "\(record.client)",
        ]
        if !model.isEmpty { fields["model"] = "\(model)" }
        if let parent = record.trace.parentID { fields["parent_span_id"] = "\(parent)" }
        for (k, v) in response.logFields { fields[k] = "\(v)" }
        logger.log(level: level, "request", metadata: fields)
    }

    var idle: Bool { inFlight == 0 && repository.pools.allSatisfy { $0.queued == 0 && $0.busy == 0 } }

    private func refreshGauges() {
        for pool in repository.pools {
            let m = metrics.model(pool.modelName)
            let (queued, busy) = (pool.queued, pool.busy)
            m.queueDepth.set(Int64(queued))
            m.busy.set(Int64(busy))
            m.inFlight.set(Int64(queued + busy))
        }
    }

    /// The page and its assets, with headers that keep it self-contained and unframed.
    static func page(_ file: WebAssets.File) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [
            ("Content-Type", file.contentType),
            ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-cache"),
        ], body: file.bytes)
    }

    // MARK: model descriptions

    private func describe(_ pool: WorkerPool) -> [String: Any] {
        let info = pool.model.info
        let k = info.intrinsics
        return [
            "name": pool.modelName, "default": pool.modelName == modelOrder[0], "preset": info.preset.rawValue,
            "trained": info.trained, "description": info.description,
            "heads": pool.model.architecture.hasNormals ? ["segmentation", "depth", "normals"] : ["segmentation", "depth"],
            "classes": info.classNames.enumerated().map { ["id": $0.offset, "name": $0.element, "colour": info.colours[$0.offset].map(Int.init)] },
            "intrinsics": ["fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy, "width": k.width, "height": k.height],
            "workers": pool.workers, "queue_size": pool.capacity, "precision": pool.precision.rawValue,
        ]
    }

    /// The open inference protocol's model metadata: one of the inputs, any of the outputs
    /// (`InferRequest` documents them; BYTES outputs carry what /v1 returns for the same name).
    private func v2Metadata(_ pool: WorkerPool) -> [String: Any] {
        let a = pool.model.architecture
        var outputs: [[String: Any]] = [
            ["name": "segmentation", "datatype": "UINT8", "shape": [-1, -1]],
            ["name": "depth", "datatype": "FP32", "shape": [-1, -1]],
            ["name": "logits", "datatype": "FP32", "shape": [a.numClasses, -1, -1]],
        ]
        if a.hasNormals { outputs.append(["name": "normals", "datatype": "FP32", "shape": [3, -1, -1]]) }
        for name in InferRequest.fileOutputs.keys.sorted() { outputs.append(["name": name, "datatype": "BYTES", "shape": [1]]) }
        return [
            "name": pool.modelName, "versions": [ModelRepository.version], "platform": "hydra",
            "inputs": [["name": "image", "datatype": "BYTES", "shape": [1]], ["name": "pixels", "datatype": "UINT8", "shape": [-1, -1, 3]]],
            "outputs": outputs,
        ]
    }
}
