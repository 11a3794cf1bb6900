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
        /// Its share of the memory plan, kept across loads (a reload may give it a new one).
        fileprivate(set) var limits: WorkerLimits
        let precision: Precision
        /// The file as it was when last read (`ModelSource.fingerprint`): a reload reads it again when it differs.
        fileprivate(set) var fingerprint: String?
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
            fingerprint = source?.fingerprint
        }

        /// As Triton's repository index names states.
        var state: String {
            if operation == .unloading { return "UNLOADING" }
            if pool != nil { return "READY" }
            return operation == .loading ? "LOADING" : "UNAVAILABLE"
        }
    }

    /// Names in the order given at start (models a reload adds come last); the first is the default
    /// model of /v1/predict.
    private(set) var order: [String]
    private var entries: [String: Entry] = [:]
    /// A SIGHUP reload is running.
    private(set) var reloading = false
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
            let fingerprint = source.fingerprint
            let result = Result { try makePool(name, try source.load(), entry.limits, entry.precision) }
            job.commit = {
                entry.operation = nil
                switch result {
                case let .success(pool):
                    let old = entry.pool
                    entry.pool = pool
                    entry.fingerprint = fingerprint
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

    /// What a reload did, for its log line.
    struct ReloadReport {
        var added: [String] = [], replaced: [String] = [], removed: [String] = [], unchanged: [String] = []
        /// Unchanged models given new pools because their share of the memory budget shrank.
        var resized: [String] = []
        var failed: [(name: String, why: String)] = []
    }

    /// Makes the repository what `wanted` says (SIGHUP). Off the loop: each new model and each whose
    /// file changed is read and gets a new pool (replicas created, weights packed); `plan` then gives
    /// the new limits of every model (the memory plan for the new set), and a model whose share
    /// shrank gets a new pool too. On the loop (`job.commit`): new pools take new requests, replaced
    /// ones finish what they hold and exit, removed ones drain and go. A model that fails to load
    /// keeps its old pool; a plan that fails keeps everything. Models busy with a repository
    /// operation are left alone.
    func reload(_ wanted: [HydraService.ModelSpec], job: Job, plan: @escaping ([(name: String, model: Model)]) throws -> [String: WorkerLimits],
                done: @escaping (ReloadReport, Error?) -> Void) {
        reloading = true
        // Filled by the thread, then by the commit on the loop, one after the other.
        final class Box: @unchecked Sendable { var report = ReloadReport() }
        let box = Box()
        let current = order.compactMap { entries[$0] }.filter { $0.operation == nil }
        let busy = Set(order.filter { entries[$0]?.operation != nil })
        let (makePool, complete) = (self.makePool, self.complete)
        let thread = Thread {
            var fresh: [String: (model: Model, fingerprint: String?, precision: Precision, source: ModelSource)] = [:]
            for w in wanted where !busy.contains(w.name) {
                let entry = current.first { $0.name == w.name }
                let fingerprint = w.source.fingerprint
                if let entry, entry.pool != nil, entry.fingerprint == fingerprint, entry.precision == w.precision { continue }
                do { fresh[w.name] = (try w.source.load(), fingerprint, w.precision, w.source) } catch {
                    box.report.failed.append((w.name, (error as? ModelSource.LoadError)?.description ?? "\(error)"))
                }
            }
            let keptNames = Set(wanted.map(\.name))
            var models: [(name: String, model: Model)] = []
            for w in wanted {
                if let f = fresh[w.name] { models.append((w.name, f.model)) } else if let p = current.first(where: { $0.name == w.name })?.pool {
                    models.append((w.name, p.model))
                }
            }
            var pools: [String: (pool: WorkerPool, limits: WorkerLimits)] = [:]
            var failure: Error?
            do {
                let limits = try plan(models)
                for (name, model) in models {
                    let entry = current.first { $0.name == name }
                    let share = limits[name] ?? entry?.limits ?? WorkerLimits(maxPixels: 1 << 24)
                    let shrank = entry.map { share.workingBytes < $0.limits.workingBytes || share.maxNetworkPixels < $0.limits.maxNetworkPixels
                        || share.maxPixels < $0.limits.maxPixels } ?? false
                    guard fresh[name] != nil || shrank else { continue }
                    do {
                        pools[name] = (try makePool(name, model, share, fresh[name]?.precision ?? entry!.precision), share)
                    } catch { box.report.failed.append((name, "\(error)")) }
                }
                job.commit = { [weak self] in
                    guard let self else { return }
                    self.reloading = false
                    for (name, (pool, limits)) in pools {
                        if let entry = self.entries[name], entry.operation == nil {
                            let old = entry.pool
                            entry.pool = pool
                            entry.limits = limits
                            entry.reason = ""
                            if let f = fresh[name] { entry.fingerprint = f.fingerprint }
                            old?.stop()
                            if fresh[name] != nil { box.report.replaced.append(name) } else { box.report.resized.append(name) }
                        } else if self.entries[name] == nil, let f = fresh[name] {
                            let entry = Entry(name: name, source: f.source, limits: limits, pool: pool)
                            entry.fingerprint = f.fingerprint
                            self.entries[name] = entry
                            self.order.append(name)
                            box.report.added.append(name)
                        } else {
                            pool.stop()
                        }
                    }
                    for name in self.order where !keptNames.contains(name) && !busy.contains(name) {
                        self.entries[name]?.pool?.stop()
                        self.entries[name] = nil
                        box.report.removed.append(name)
                    }
                    self.order.removeAll { self.entries[$0] == nil }
                    box.report.unchanged = self.order.filter { n in !box.report.added.contains(n) && !box.report.replaced.contains(n) }
                    done(box.report, nil)
                }
            } catch {
                failure = error
                for p in pools.values { p.pool.stop() }
                job.commit = { [weak self] in
                    self?.reloading = false
                    done(box.report, failure)
                }
            }
            complete(job)
        }
        thread.name = "hydra-reload"
        thread.start()
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
