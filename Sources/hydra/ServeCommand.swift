import ArgumentParser
import Foundation
import HydraEngine
import HydraKernels
import HydraServer
import HydraWeights
import Logging

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTP inference service.",
        discussion: """
        Every option can also be set by an environment variable: HYDRA_ and the option's name in \
        capitals with underscores (HYDRA_PORT, HYDRA_WORKERS, HYDRA_THREADS_PER_WORKER, ...); \
        HYDRA_MODELS takes a comma-separated list of NAME=PATH. A command-line option wins over \
        the environment. Without --model or --model-dir, the built-in model is served as 'default'; \
        --model default=default names it explicitly (beside other models, or instead of a model folder). \
        SIGHUP reads the models again: the folder's new files are loaded, changed ones replaced, \
        removed ones drained (docs/OPERATIONS.md). --print-config shows what a start would use.
        """
    )

    @Option(help: "Address to listen on (HYDRA_HOST; default \(ServeCommand.defaults.host)).") var host: String?
    @Option(help: "Port (HYDRA_PORT; default \(ServeCommand.defaults.port)).") var port: Int?
    @Option(name: .customLong("model"), help: "NAME=PATH of a safetensors model, repeatable; the first is the default (HYDRA_MODELS).")
    var models: [String] = []
    @Option(help: "Serve every NAME.safetensors in this folder when no --model is given (HYDRA_MODEL_DIR, e.g. a mounted /models). A folder that is missing or holds no model is an error.")
    var modelDir: String?
    @Option(help: "Worker threads per model, each with a model replica (HYDRA_WORKERS; default \(ServeCommand.defaults.workers)).") var workers: Int?
    @Option(help: "Engine threads per worker (HYDRA_THREADS_PER_WORKER; default \(ServeCommand.defaults.threadsPerWorker)).") var threadsPerWorker: Int?
    @Option(help: "Requests that may wait per model before 503 (HYDRA_QUEUE_SIZE; default: one per worker).") var queueSize: Int?
    @Option(help: "Largest request body in MiB (HYDRA_MAX_BODY_MB; default \(ServeCommand.defaults.maxBodyBytes >> 20)).") var maxBodyMb: Int?
    @Option(help: "Largest image in pixels (HYDRA_MAX_PIXELS; default \(ServeCommand.defaults.maxPixels), lowered with a warning when --max-memory cannot hold it).") var maxPixels: Int?
    @Option(help: "Largest request line + headers in bytes (HYDRA_MAX_HEADER_BYTES; default \(ServeCommand.defaults.maxHeaderBytes)).") var maxHeaderBytes: Int?
    @Option(help: "Most open connections (HYDRA_MAX_CONNECTIONS; default \(ServeCommand.defaults.maxConnections)).") var maxConnections: Int?
    @Option(help: "Seconds to receive a whole request, else 408 (HYDRA_REQUEST_TIMEOUT; default \(ServeCommand.defaults.requestTimeout)).") var requestTimeout: Double?
    @Option(help: "Seconds an idle keep-alive connection stays open (HYDRA_IDLE_TIMEOUT; default \(ServeCommand.defaults.idleTimeout)).") var idleTimeout: Double?
    @Option(help: "Seconds a client may take to read a response (HYDRA_WRITE_TIMEOUT; default \(ServeCommand.defaults.writeTimeout)).") var writeTimeout: Double?
    @Option(help: "Default request deadline in ms; a request past it in the queue gets 504 (HYDRA_TIMEOUT_MS; default \(ServeCommand.defaults.defaultTimeoutMs)).") var timeoutMs: Int?
    @Option(help: "Seconds to finish work after SIGTERM before exiting (HYDRA_DRAIN_TIMEOUT; default \(ServeCommand.defaults.drainTimeout)).") var drainTimeout: Double?
    @Option(help: ArgumentHelp("Memory the whole process may use, e.g. 1Gi or 900Mi; shared out as docs/MEMORY.md says (HYDRA_MAX_MEMORY). Default: the cgroup limit, else the smaller of 2 GiB and half the RAM.", valueName: "quantity"))
    var maxMemory: String?
    @Option(help: "Largest network input in pixels; larger frames are shrunk for the network and the outputs brought back to their size. Default: what --max-memory leaves a worker, at most 2.1 MP (HYDRA_MAX_NETWORK_PIXELS).")
    var maxNetworkPixels: Int?
    @Option(help: "Arithmetic of every model: f32 (exact), bf16 (AVX512-BF16) or int8 (AVX512-VNNI and a calibrated model); refused where the CPU or model cannot (HYDRA_PRECISION; default f32).")
    var precision: Precision?
    @Option(name: .customLong("model-precision"), help: ArgumentHelp(
        "NAME=PRECISION for one model, repeatable; wins over --precision (HYDRA_MODEL_PRECISION: comma-separated).", valueName: "name=precision"))
    var modelPrecisions: [String] = []
    @Option(help: "trace, debug, info, notice, warning, error or critical (HYDRA_LOG_LEVEL; default info; probes and /metrics log at debug).") var logLevel: String?
    @Option(help: "json (one object per line, for log collectors) or text (for a terminal) (HYDRA_LOG_FORMAT; default json).")
    var logFormat: String?
    @Flag(help: "Print the configuration a start would use (options, environment and defaults) as JSON, and exit.")
    var printConfig = false

    private static let defaults = ServerConfiguration()

    /// Every line is JSON (or text with --log-format text), start-up errors included.
    func run() throws {
        let env = ProcessInfo.processInfo.environment
        let format = logFormat ?? env["HYDRA_LOG_FORMAT"].flatMap { $0.isEmpty ? nil : $0 } ?? "json"
        let text = format == "text"
        let level = Logger.Level(rawValue: logLevel ?? env["HYDRA_LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "info")
        LoggingSystem.bootstrap { label in
            var h = JSONLogHandler(label: label, text: text)
            h.logLevel = level ?? .info
            return h
        }
        let logger = Logger(label: "hydra")
        // Lines are written by a thread of their own: let them out before the process ends.
        defer { LogWriter.standardError.flush(timeout: 2) }
        do {
            guard ["json", "text"].contains(format) else { throw CLIError("--log-format must be json or text, not \(format)") }
            guard level != nil else { throw CLIError("unknown log level \(logLevel ?? env["HYDRA_LOG_LEVEL"] ?? "")") }
            try serve(logger)
        } catch let e as ExitCode {
            throw e
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
    }

    private func serve(_ logger: Logger) throws {
        let started = MonotonicClock.now()
        let env = ProcessInfo.processInfo.environment
        func pick<T: LosslessStringConvertible>(_ flag: T?, _ name: String, _ fallback: T) throws -> T {
            if let flag { return flag }
            if let raw = env["HYDRA_" + name], !raw.isEmpty {
                guard let v = T(raw) else { throw CLIError("HYDRA_\(name)=\(raw) is not a valid value") }
                return v
            }
            return fallback
        }
        var c = ServerConfiguration()
        c.host = try pick(host, "HOST", c.host)
        c.port = try pick(port, "PORT", c.port)
        c.workers = try pick(workers, "WORKERS", c.workers)
        c.threadsPerWorker = try pick(threadsPerWorker, "THREADS_PER_WORKER", c.threadsPerWorker)
        // One waiting request per worker by default: an admitted request then waits at most about one
        // service time, so latency stays bounded under overload and the excess gets 503 at once.
        c.queueSize = try pick(queueSize, "QUEUE_SIZE", c.workers)
        c.maxBodyBytes = try pick(maxBodyMb, "MAX_BODY_MB", c.maxBodyBytes >> 20) << 20
        c.maxPixels = try pick(maxPixels, "MAX_PIXELS", c.maxPixels)
        c.maxPixelsIsDefault = maxPixels == nil && (env["HYDRA_MAX_PIXELS"] ?? "").isEmpty
        c.maxHeaderBytes = try pick(maxHeaderBytes, "MAX_HEADER_BYTES", c.maxHeaderBytes)
        c.maxConnections = try pick(maxConnections, "MAX_CONNECTIONS", c.maxConnections)
        c.requestTimeout = try pick(requestTimeout, "REQUEST_TIMEOUT", c.requestTimeout)
        c.idleTimeout = try pick(idleTimeout, "IDLE_TIMEOUT", c.idleTimeout)
        c.writeTimeout = try pick(writeTimeout, "WRITE_TIMEOUT", c.writeTimeout)
        c.defaultTimeoutMs = try pick(timeoutMs, "TIMEOUT_MS", c.defaultTimeoutMs)
        c.drainTimeout = try pick(drainTimeout, "DRAIN_TIMEOUT", c.drainTimeout)
        let memory = try pick(maxMemory, "MAX_MEMORY", "")
        if memory.isEmpty {
            c.maxMemoryBytes = MemoryPlan.defaultMaxMemory()
        } else {
            guard let bytes = MemoryPlan.parseQuantity(memory) else {
                throw CLIError("--max-memory \(memory) is not a quantity such as 1Gi, 900Mi or 1073741824")
            }
            c.maxMemoryBytes = bytes
        }
        let n = try pick(maxNetworkPixels, "MAX_NETWORK_PIXELS", 0)
        if n != 0 {
            guard n >= MemoryPlan.minimumNetworkPixels else {
                throw CLIError("--max-network-pixels must be at least \(MemoryPlan.minimumNetworkPixels) (384x288)")
            }
            c.maxNetworkPixels = n
        }
        guard (1...65535).contains(c.port) || c.port == 0 else { throw CLIError("port must be 0...65535") }
        guard c.workers >= 1, c.threadsPerWorker >= 1, c.queueSize >= 1, c.maxConnections >= 1 else {
            throw CLIError("workers, threads per worker, queue size and max connections must be at least 1")
        }
        guard c.maxBodyBytes > 0, c.maxPixels >= 1024, c.maxHeaderBytes >= 1024, c.defaultTimeoutMs >= 1 else {
            throw CLIError("limits must be positive (max pixels and header bytes at least 1024)")
        }
        guard c.requestTimeout > 0, c.idleTimeout > 0, c.writeTimeout > 0, c.drainTimeout >= 0 else {
            throw CLIError("timeouts must be positive")
        }

        let defaultPrecision = try pick(precision, "PRECISION", Precision.f32)
        var perModel: [String: Precision] = [:]
        var precisionSpecs = modelPrecisions
        if precisionSpecs.isEmpty, let list = env["HYDRA_MODEL_PRECISION"], !list.isEmpty {
            precisionSpecs = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        for spec in precisionSpecs {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let p = Precision(rawValue: parts[1]) else {
                throw CLIError("--model-precision \(spec): give NAME=PRECISION with one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            perModel[parts[0]] = p
        }
        for p in Set([defaultPrecision] + perModel.values) {
            if let reason = p.unsupportedReason { throw CLIError("--precision \(p): \(reason)") }
        }

        c.precision = defaultPrecision.rawValue
        let dir = modelDir ?? env["HYDRA_MODEL_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        var specs = models
        if specs.isEmpty, let list = env["HYDRA_MODELS"], !list.isEmpty {
            specs = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let fixed = specs
        /// The models to serve, read again on SIGHUP: the list given, else the folder as it is now.
        let catalog = { () throws -> [HydraService.ModelSpec] in
            let listed = fixed.isEmpty && dir != nil ? try Self.folder(dir!) : fixed
            return try Self.specs(listed, precision: { perModel[$0] ?? defaultPrecision })
        }
        let wanted = try catalog()
        if printConfig {
            return try Self.printConfiguration(c, models: wanted, modelDir: fixed.isEmpty ? dir : nil, logLevel: logger.logLevel)
        }
        var loaded: [HydraService.NamedModel] = []
        for spec in wanted {
            loaded.append(.init(name: spec.name, model: try ModelLoading.load(spec.source), source: spec.source, precision: spec.precision))
            logger.info("model loaded", metadata: ["model": "\(spec.name)", "source": "\(spec.source)", "precision": "\(spec.precision)"])
        }
        if loaded.isEmpty {
            let model = try DefaultModel.load()
            loaded.append(.init(name: "default", model: model, source: .builtIn, precision: perModel["default"] ?? defaultPrecision))
            if model.info.trained {
                logger.info("serving the built-in default model", metadata: ["model": "default", "note": "\(model.info.description)"])
            } else {
                logger.warning("serving the built-in default model, UNTRAINED", metadata: ["model": "default", "note": "\(model.info.description)"])
            }
        }
        // Frames, outputs and bodies go back to the system when freed (hydra_heap.h says why).
        _ = hydra_heap_map_large(1 << 20)
        if let unknown = perModel.keys.sorted().first(where: { name in !loaded.contains { $0.name == name } }) {
            throw CLIError("--model-precision names model '\(unknown)', which is not served; models: \(loaded.map(\.name).joined(separator: ", "))")
        }
        let service: HydraService
        do {
            service = try HydraService(config: c, models: loaded, logger: logger, startedAt: started)
        } catch let refusal as MemoryPlan.Refusal { throw CLIError(refusal.description) }
        if !wanted.isEmpty { service.catalog = catalog }
        let status: Int32
        do { status = try service.run() } catch let p as Problem { throw CLIError(p.detail) }
        if status != 0 { throw ExitCode(status) }
    }

    /// NAME=PATH specs of every NAME.safetensors in `dir`; a folder that is missing or holds none is an error.
    static func folder(_ dir: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw CLIError("--model-dir \(dir) does not exist or is not a folder; mount the models there, or pass --model default to serve the built-in model")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }.sorted()
        guard !files.isEmpty else {
            throw CLIError("--model-dir \(dir) holds no NAME.safetensors; put models there, or pass --model default to serve the built-in model")
        }
        return files.map { "\(($0 as NSString).deletingPathExtension)=\((dir as NSString).appendingPathComponent($0))" }
    }

    /// Checked names and sources of NAME=PATH (or PATH) specs.
    static func specs(_ list: [String], precision: (String) -> Precision) throws -> [HydraService.ModelSpec] {
        var out: [HydraService.ModelSpec] = []
        for spec in list {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            let path = parts.count == 2 ? parts[1] : parts[0]
            let name = parts.count == 2 ? parts[0] : (path == "default" ? "default" : URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)
            guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                throw CLIError("model name '\(name)' must be 1-64 letters, digits, '-', '_' or '.'")
            }
            guard !out.contains(where: { $0.name == name }) else { throw CLIError("model name '\(name)' is given twice") }
            out.append(.init(name: name, source: ModelSource(path: path), precision: precision(name)))
        }
        return out
    }

    /// `--print-config`: the effective configuration as one JSON object on standard output.
    static func printConfiguration(_ c: ServerConfiguration, models: [HydraService.ModelSpec], modelDir: String?,
                                   logLevel: Logger.Level) throws {
        let build = BuildInfo.current
        var object: [String: Any] = [
            "host": c.host, "port": c.port, "workers": c.workers, "threads_per_worker": c.threadsPerWorker, "queue_size": c.queueSize,
            "max_body_mb": c.maxBodyBytes >> 20, "max_pixels": c.maxPixels, "max_header_bytes": c.maxHeaderBytes,
            "max_connections": c.maxConnections, "request_timeout_s": c.requestTimeout, "idle_timeout_s": c.idleTimeout,
            "write_timeout_s": c.writeTimeout, "timeout_ms": c.defaultTimeoutMs, "drain_timeout_s": c.drainTimeout,
            "precision": c.precision, "log_level": logLevel.rawValue,
            "models": models.isEmpty ? [["name": "default", "source": "built-in"]]
                : models.map { ["name": $0.name, "source": $0.source.description, "precision": $0.precision.rawValue] },
            "build": ["version": build.version, "commit": build.commit, "isa": build.isa],
        ]
        if let m = c.maxMemoryBytes { object["max_memory_bytes"] = m }
        if let n = c.maxNetworkPixels { object["max_network_pixels"] = n }
        if let modelDir { object["model_dir"] = modelDir }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}
