import Foundation
import HydraEngine

/// The models a server knows, by name, with where each came from and its worker pool while it is
/// loaded. Models are loaded at start; at run time they can be unloaded, loaded again or replaced
/// (the open inference protocol's model repository extension). Loop thread only: the slow part of
/// an operation (reading weights and creating replicas, or draining a pool) runs on a thread of its
/// own and comes back as a finished `.control` job whose `commit` makes the change on the loop.
final class ModelRepository {
    enum Operation { case loading, unloading }

    final class Entry {
        let name: String
        /// Nil: the weights were handed over in memory and cannot be read again.
        let source: ModelSource?
        /// Its share of the memory plan, kept across loads.
        let limits: WorkerLimits
        let precision: Precision
        /// The pool serving requests; nil while unloaded (or unloading).
        fileprivate(set) var pool: WorkerPool?
        fileprivate(set) var operation: Operation?
        /// Why it is unavailable.
        fileprivate(set) var reason = ""

        init(name: String, source: ModelSource?, limits: WorkerLimits, pool: WorkerPool) {
            self.name = name
            self.source = source
            self.limits = limits
            self.precision = pool.precision
            self.pool = pool
        }

        /// As Triton's repository index names states.
        var state: String {
            if operation == .unloading { return "UNLOADING" }
            if pool != nil { return "READY" }
            return operation == .loading ? "LOADING" : "UNAVAILABLE"
        }
    }

    /// Names in the order given at start; the first is the default model of /v1/predict.
    let order: [String]
    private var entries: [String: Entry] = [:]
    private let makePool: (String, Model, WorkerLimits, Precision) throws -> WorkerPool
    /// Hands a finished operation back to the loop (`HTTPServer.complete`).
    private let complete: (Job) -> Void

    init(_ loaded: [(name: String, source: ModelSource?, limits: WorkerLimits, pool: WorkerPool)],
         makePool: @escaping (String, Model, WorkerLimits, Precision) throws -> WorkerPool, complete: @escaping (Job) -> Void) {
        order = loaded.map(\.name)
        for m in loaded { entries[m.name] = Entry(name: m.name, source: m.source, limits: m.limits, pool: m.pool) }
        self.makePool = makePool
        self.complete = complete
    }

    subscript(name: String) -> Entry? { entries[name] }

    /// Pools serving now, in order.
    var pools: [WorkerPool] { order.compactMap { entries[$0]?.pool } }

    /// The pool serving `name`, or a 404 problem saying why there is none.
    func pool(_ name: String, version: String? = nil) throws -> WorkerPool {
        guard let entry = entries[name] else {
            throw Problem(404, "no model named '\(name.prefix(64))'; models: \(order.joined(separator: ", "))")
        }
        if let version, version != Self.version {
            throw Problem(404, "model '\(name)' has no version '\(version.prefix(32))'; its only version is \(Self.version)")
        }
        guard let pool = entry.pool else {
            throw Problem(404, "model '\(name)' is not loaded (\(entry.reason.isEmpty ? entry.state.lowercased() : entry.reason)); "
                + "POST /v2/repository/models/\(name)/load loads it")
        }
        return pool
    }

    /// Each model is served in one version: the file it was loaded from.
    static let version = "1"

    /// `POST /v2/repository/index`: every model with its state (only ready ones when `readyOnly`).
    func index(readyOnly: Bool) -> [[String: Any]] {
        order.compactMap { entries[$0] }.filter { !readyOnly || $0.pool != nil }.map { e in
            var item: [String: Any] = ["name": e.name, "version": Self.version, "state": e.state]
            if !e.reason.isEmpty { item["reason"] = e.reason }
            return item
        }
    }

    /// Reads the model again from its source and creates new replicas off the loop; then, on the loop,
    /// the new pool takes new requests and the old one (if any) finishes what it holds and exits.
    /// A load that fails keeps the model as it was. Throws 404/409/400 problems before anything starts.
    func load(_ name: String, job: Job) throws {
        let entry = try idle(name)
        guard let source = entry.source else {
            throw Problem(400, "model '\(name)' was given in memory, not from a file; it cannot be read again")
        }
        entry.operation = .loading
        let (makePool, complete) = (self.makePool, self.complete)
        let thread = Thread {
            let result = Result { try makePool(name, try source.load(), entry.limits, entry.precision) }
            job.commit = {
                entry.operation = nil
                switch result {
                case let .success(pool):
                    let old = entry.pool
                    entry.pool = pool
                    entry.reason = ""
                    old?.stop()
                    job.response = .json(200, [String: Any]())
                case let .failure(error):
                    let detail = (error as? ModelSource.LoadError)?.description ?? "\(error)"
                    if entry.pool == nil { entry.reason = "load failed: \(detail)" }
                    job.response = Problem(400, "failed to load model '\(name)': \(detail)").inferenceError()
                }
            }
            complete(job)
        }
        thread.name = "hydra-load-\(name)"
        thread.start()
    }

    /// Takes the model out of routing at once; its pool finishes the requests it holds off the loop,
    /// and the answer is sent when its replicas are gone. Unloading an unloaded model succeeds.
    /// Returns false when nothing was loaded (answer at once).
    func unload(_ name: String, job: Job) throws -> Bool {
        let entry = try idle(name)
        guard let pool = entry.pool else { return false }
        entry.pool = nil
        entry.operation = .unloading
        let complete = self.complete
        let draining = Held(pool)
        let thread = Thread {
            draining.take()?.stopAndWait()
            job.commit = {
                entry.operation = nil
                entry.reason = "unloaded"
                job.response = .json(200, [String: Any]())
            }
            complete(job)
        }
        thread.name = "hydra-unload-\(name)"
        thread.start()
        return true
    }

    /// A pool handed to the thread that drains it, which drops the last reference when it is done,
    /// so the replicas are freed before the answer is sent.
    private final class Held: @unchecked Sendable {
        private var pool: WorkerPool?
        init(_ pool: WorkerPool) { self.pool = pool }
        func take() -> WorkerPool? { defer { pool = nil }; return pool }
    }

    private func idle(_ name: String) throws -> Entry {
        guard let entry = entries[name] else {
            throw Problem(404, "no model named '\(name.prefix(64))' in the repository; models: \(order.joined(separator: ", "))")
        }
        if let op = entry.operation {
            throw Problem(409, "model '\(name)' is \(op == .loading ? "loading" : "unloading"); try again when that has finished")
        }
        return entry
    }
}
