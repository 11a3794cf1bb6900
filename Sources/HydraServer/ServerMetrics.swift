import Foundation
import HydraKernels
import Prometheus

/// The service's metrics in Prometheus conventions, exported at GET /metrics: HELP and TYPE for
/// every family, `_total` families are counters, units in the names, per-model series labelled
/// `model` (and `version`), routes as templates, status as `code`. Every series a dashboard or an
/// alert reads exists from the start (counters at 0), so a rate over it is never "no data".
///
/// The families are made on swift-prometheus's registry itself: swift-metrics' facade carries no
/// help text, and the registry refuses one family made both with and without it. The registry's
/// metrics are thread-safe; updates come from the loop and from workers.
final class ServerMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    static let buckets: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30].map { .nanoseconds(Int64($0 * 1e9)) }

    /// Why a request was refused without an answer from the model: per model (503 queue full or
    /// draining, 504 deadline, the client gone before its answer) or per connection (model "").
    static let modelRejections = ["queue_full", "draining", "deadline", "client_gone"]
    static let connectionRejections = ["timeout", "too_large", "headers", "connections"]
    /// Stages of a request in a worker (`hydra_stage_seconds`).
    static let stages = ["decode", "network", "upsample", "encode"]

    enum Help {
        static let requests = "Requests answered, by model (empty for other routes), route template and status code."
        static let duration = "Time from the first byte of a request to its answer, successful (2xx) requests, by model and route."
        static let queueWait = "Time a request waited for a worker, by model."
        static let network = "Time in the network (the engine's forward pass), by model."
        static let stage = "Time per stage in a worker (decode, network, upsample, encode), by model."
        static let queueDepth = "Requests waiting for a worker, by model."
        static let inFlight = "Requests queued or running, by model."
        static let busy = "Workers running a request, by model."
        static let workers = "Workers (model replicas), by model."
        static let rejections = "Requests refused before or instead of an answer from the model, by model and reason."
        static let modelInfo = "1 for each model served, with its version, precision and where it was read from."
        static let reloads = "Model reloads on SIGHUP, by result."
    }

    final class ModelSeries: @unchecked Sendable {
        let queueWait, network: DurationHistogram
        let stages: [String: DurationHistogram]
        let queueDepth, inFlight, busy, workers: Gauge
        let rejections: [String: Counter]
        var info: Gauge?

        init(_ r: PrometheusCollectorRegistry, model: String) {
            let labels = [("model", model)]
            func histogram(_ name: String, _ help: String, _ extra: [(String, String)] = []) -> DurationHistogram {
                r.makeDurationHistogram(descriptor: MetricNameDescriptor(namespace: "hydra", metricName: name, unitName: "seconds", helpText: help),
                                        labels: labels + extra, buckets: ServerMetrics.buckets)
            }
            queueWait = histogram("queue_wait", Help.queueWait)
            network = histogram("network", Help.network)
            stages = Dictionary(uniqueKeysWithValues: ServerMetrics.stages.map { ($0, histogram("stage", Help.stage, [("stage", $0)])) })
            queueDepth = r.gauge("hydra_queue_depth", labels, help: Help.queueDepth)
            inFlight = r.gauge("hydra_inflight_requests", labels, help: Help.inFlight)
            busy = r.gauge("hydra_busy_workers", labels, help: Help.busy)
            workers = r.gauge("hydra_workers", labels, help: Help.workers)
            rejections = Dictionary(uniqueKeysWithValues: ServerMetrics.modelRejections.map {
                ($0, r.counter("hydra_rejections_total", labels + [("reason", $0)], help: Help.rejections))
            })
        }
    }

    private let lock = NSLock()
    private var models: [String: ModelSeries] = [:]
    private var connectionRejections: [String: Counter] = [:]
    let bytesIn: Counter, bytesOut: Counter
    let connections: Gauge, connectionMemory: Gauge, connectionMemoryLimit: Gauge
    private let rss: Gauge, fds: Gauge, cpu: Counter
    private var cpuSeen = 0.0
    private let logLinesDropped: Counter
    private var logLinesDroppedSeen = 0
    private let reloads: [String: Counter]

    init(build: BuildInfo = .current, precision: String = "f32") {
        let r = registry
        bytesIn = r.counter("hydra_received_bytes_total", help: "Bytes received from clients.")
        bytesOut = r.counter("hydra_sent_bytes_total", help: "Bytes sent to clients.")
        connections = r.gauge("hydra_open_connections", help: "Client connections open now.")
        connectionMemory = r.gauge("hydra_connection_memory_bytes", help: "Bytes held by request bodies and unsent answers.")
        connectionMemoryLimit = r.gauge("hydra_connection_memory_limit_bytes",
                                            help: "Bytes request bodies and unsent answers may hold together (from --max-memory).")
        rss = r.gauge("process_resident_memory_bytes", help: "Resident memory size in bytes.")
        cpu = r.counter("process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.")
        fds = r.gauge("process_open_fds", help: "Number of open file descriptors.")
        r.gauge("process_start_time_seconds", help: "Start time of the process since the Unix epoch in seconds.")
            .set(Date().timeIntervalSince1970)
        logLinesDropped = r.counter("hydra_log_lines_dropped_total",
                                        help: "Log lines dropped because standard error was not read fast enough.")
        r.gauge("hydra_build_info", [("version", build.version), ("commit", build.commit), ("isa", build.isa),
                                                        ("precision", precision)],
                    help: "1, labelled with the build: version, commit, the kernels' instruction set, the default precision.").set(Int64(1))
        reloads = Dictionary(uniqueKeysWithValues: ["ok", "failed"].map {
            ($0, r.counter("hydra_model_reloads_total", [("result", $0)], help: Help.reloads))
        })
        for reason in Self.connectionRejections {
            connectionRejections[reason] = r.counter("hydra_rejections_total", [("model", ""), ("reason", reason)],
                                                         help: Help.rejections)
        }
    }

    /// The series of one model, made when it is first served (and kept: counters never go back).
    func model(_ name: String) -> ModelSeries {
        lock.lock()
        defer { lock.unlock() }
        if let m = models[name] { return m }
        let m = ModelSeries(registry, model: name)
        models[name] = m
        return m
    }

    /// `hydra_model_info` for a model now served with this precision and source (replacing the last).
    func served(model name: String, version: String, precision: String, source: String, workers: Int) {
        let m = model(name)
        lock.lock()
        defer { lock.unlock() }
        if let old = m.info { registry.unregisterGauge(old) }
        let g = registry.gauge("hydra_model_info", [("model", name), ("version", version), ("precision", precision),
                                                                        ("source", source)], help: Help.modelInfo)
        g.set(Int64(1))
        m.info = g
        m.workers.set(Int64(workers))
    }

    /// A model no longer served: its info series goes, its gauges read 0.
    func withdrawn(model name: String) {
        let m = model(name)
        lock.lock()
        defer { lock.unlock() }
        if let old = m.info { registry.unregisterGauge(old) }
        m.info = nil
        for g in [m.workers, m.queueDepth, m.inFlight, m.busy] { g.set(Int64(0)) }
    }

    func request(model: String, route: String, code: Int, seconds: Double) {
        registry.counter("hydra_requests_total", [("model", model), ("route", route), ("code", "\(code)")],
                             help: Help.requests).increment()
        guard !model.isEmpty, (200..<300).contains(code) else { return }
        registry.makeDurationHistogram(descriptor: MetricNameDescriptor(namespace: "hydra", metricName: "request_duration", unitName: "seconds",
                                                                        helpText: Help.duration),
                                       labels: [("model", model), ("route", route)], buckets: Self.buckets)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func rejection(model name: String, _ reason: String) {
        model(name).rejections[reason]?.increment()
    }

    func rejection(connection reason: String) {
        connectionRejections[reason]?.increment()
    }

    func reload(ok: Bool) { reloads[ok ? "ok" : "failed"]?.increment() }

    /// A finished job's times (worker thread).
    func record(_ job: Job, model name: String) {
        let m = model(name)
        m.queueWait.recordNanoseconds(Int64(job.queueWaitSeconds * 1e9))
        guard job.outcome == "ok" else { return }
        m.network.recordNanoseconds(Int64(job.inferenceSeconds * 1e9))
        for (stage, seconds) in [("decode", job.decodeSeconds), ("network", job.inferenceSeconds), ("upsample", job.upsampleSeconds),
                                 ("encode", job.encodeSeconds)] {
            m.stages[stage]?.recordNanoseconds(Int64(seconds * 1e9))
        }
    }

    /// Prometheus text format, with process figures read now.
    func exposition() -> [UInt8] {
        let p = ProcessStats.read()
        rss.set(p.rssBytes)
        fds.set(p.openFDs)
        lock.lock()
        if p.cpuSeconds > cpuSeen {
            cpu.increment(by: p.cpuSeconds - cpuSeen)
            cpuSeen = p.cpuSeconds
        }
        let dropped = LogWriter.standardError.dropped
        if dropped > logLinesDroppedSeen {
            logLinesDropped.increment(by: Int64(dropped - logLinesDroppedSeen))
            logLinesDroppedSeen = dropped
        }
        lock.unlock()
        var out: [UInt8] = []
        registry.emit(into: &out)
        return out
    }
}

/// What `hydra_build_info` and `hydra serve --print-config` say about the binary.
public struct BuildInfo: Sendable {
    public var version: String
    /// The git commit it was built from: `hydra-build.txt` beside the executable (written by
    /// `make build` and the Dockerfile), else "unknown".
    public var commit: String
    /// The instruction set the kernels run with here.
    public var isa: String

    public static let current: BuildInfo = {
        let exe = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]).deletingLastPathComponent()
        let text = (try? String(contentsOf: exe.appendingPathComponent("hydra-build.txt"), encoding: .utf8)) ?? ""
        let commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let ok = !commit.isEmpty && commit.count <= 64 && commit.allSatisfy { $0.isHexDigit || $0 == "-" || $0.isLetter }
        return BuildInfo(version: HydraService.version, commit: ok ? commit : "unknown", isa: String(cString: hydra_kernels_isa()))
    }()
}

private extension PrometheusCollectorRegistry {
    /// A counter family by its full name (the registry's descriptor form, the name not split into parts).
    func counter(_ name: String, _ labels: [(String, String)] = [], help: String) -> Counter {
        makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    func gauge(_ name: String, _ labels: [(String, String)] = [], help: String) -> Gauge {
        makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }
}

/// Resident memory, CPU time and open descriptors of this process, from /proc.
public enum ProcessStats {
    public struct Figures: Sendable { public var rssBytes: Double, cpuSeconds: Double, openFDs: Double }

    public static func read() -> Figures {
        var f = Figures(rssBytes: 0, cpuSeconds: 0, openFDs: 0)
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Double(fields[1]) { f.rssBytes = pages * Double(sysconf(Int32(_SC_PAGESIZE))) }
        }
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            f.cpuSeconds = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        f.openFDs = Double((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0)
        return f
    }
}
