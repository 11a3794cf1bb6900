import CoreMetrics
import Foundation
import Prometheus

/// The service's metrics through swift-metrics, exported by swift-prometheus at GET /metrics.
/// All updates happen on the event loop thread.
final class ServerMetrics {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private var requests: [String: CoreMetrics.Counter] = [:]
    private var rejections: [String: CoreMetrics.Counter] = [:]
    let queueWait: CoreMetrics.Timer
    let inference: CoreMetrics.Timer
    let encode: CoreMetrics.Timer
    let total: CoreMetrics.Timer
    let queueDepth: Meter
    let inFlight: Meter
    let busyWorkers: Meter
    let connections: Meter
    let bytesIn: CoreMetrics.Counter
    let bytesOut: CoreMetrics.Counter
    private let rss: Meter, cpu: Meter, fds: Meter, startTime: Meter
    private let logLinesDropped: CoreMetrics.Counter
    private var logLinesDroppedSeen = 0
    let connectionMemory: Meter, connectionMemoryLimit: Meter

    init() {
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30].map {
            .nanoseconds(Int64($0 * 1e9))
        }
        factory = f
        queueWait = Timer(label: "hydra_queue_wait_seconds", factory: f)
        inference = Timer(label: "hydra_inference_seconds", factory: f)
        encode = Timer(label: "hydra_encode_seconds", factory: f)
        total = Timer(label: "hydra_request_duration_seconds", factory: f)
        queueDepth = Meter(label: "hydra_queue_depth", factory: f)
        inFlight = Meter(label: "hydra_inflight_requests", factory: f)
        busyWorkers = Meter(label: "hydra_busy_workers", factory: f)
        connections = Meter(label: "hydra_open_connections", factory: f)
        bytesIn = Counter(label: "hydra_received_bytes_total", factory: f)
        bytesOut = Counter(label: "hydra_sent_bytes_total", factory: f)
        rss = Meter(label: "process_resident_memory_bytes", factory: f)
        cpu = Meter(label: "process_cpu_seconds_total", factory: f)
        fds = Meter(label: "process_open_fds", factory: f)
        startTime = Meter(label: "process_start_time_seconds", factory: f)
        startTime.set(Date().timeIntervalSince1970)
        logLinesDropped = Counter(label: "hydra_log_lines_dropped_total", factory: f)
        logLinesDropped.increment(by: 0)
        connectionMemory = Meter(label: "hydra_connection_memory_bytes", factory: f)
        connectionMemoryLimit = Meter(label: "hydra_connection_memory_limit_bytes", factory: f)
    }

    func request(route: String, status: Int) {
        let key = "\(route) \(status)"
        if requests[key] == nil {
            requests[key] = Counter(label: "hydra_requests_total", dimensions: [("route", route), ("status", "\(status)")], factory: factory)
        }
        requests[key]!.increment()
    }

    func rejection(_ reason: String) {
        if rejections[reason] == nil {
            rejections[reason] = Counter(label: "hydra_rejections_total", dimensions: [("reason", reason)], factory: factory)
        }
        rejections[reason]!.increment()
    }

    /// Prometheus text format, with process figures read now.
    func exposition() -> [UInt8] {
        let p = ProcessStats.read()
        rss.set(p.rssBytes)
        cpu.set(p.cpuSeconds)
        fds.set(p.openFDs)
        let dropped = LogWriter.standardError.dropped
        if dropped > logLinesDroppedSeen {
            logLinesDropped.increment(by: dropped - logLinesDroppedSeen)
            logLinesDroppedSeen = dropped
        }
        var out: [UInt8] = []
        registry.emit(into: &out)
        return out
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
