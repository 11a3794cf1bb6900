import Foundation
import HydraEngine
import HydraOutputs

/// One predict request on its way through a `WorkerPool`. Created on the loop thread; a worker
/// fills in `response`; the loop reads it back after the completion notice.
final class Job: @unchecked Sendable {
    enum Kind {
        /// /v1: an image body, answered with the rendered outputs.
        case predict
        /// /v2 infer: a JSON header (of `headerLength` bytes when binary tensors follow it).
        case infer(headerLength: Int?)
        /// A model repository operation: run by a thread of its own, never by a worker.
        case control

        /// Whether errors take the open inference protocol's shape.
        var isInfer: Bool { if case .predict = self { return false } else { return true } }
    }

    let kind: Kind
    let connectionID: UInt64
    let requestID: String
    let body: [UInt8]
    let contentType: String
    let accept: String?
    let parameters: PredictParameters
    /// The body's Content-Encoding, inflated by the worker up to `maxBodyBytes`.
    var contentCoding = ContentCoding.identity
    var maxBodyBytes = Int.max
    /// How the answer may be compressed (/v2 only).
    var responseCoding = ContentCoding.identity
    /// Set off the loop by a `.control` job's thread; run on the loop before the answer is sent.
    var commit: (() -> Void)?
    let enqueuedAt = MonotonicClock.now()
    let deadline: Double
    private let lock = NSLock()
    private var _cancelled = false
    /// Set by the worker.
    var response: HTTPResponse?
    var queueWaitSeconds = 0.0, decodeSeconds = 0.0, inferenceSeconds = 0.0, upsampleSeconds = 0.0, encodeSeconds = 0.0
    var outcome = "ok"
    /// The model it is for (metrics, logs).
    var modelName = ""

    init(connectionID: UInt64, requestID: String, body: [UInt8], contentType: String, accept: String?,
         parameters: PredictParameters, kind: Kind = .predict) {
        self.kind = kind
        self.connectionID = connectionID
        self.requestID = requestID
        self.body = body
        self.contentType = contentType
        self.accept = accept
        self.parameters = parameters
        deadline = enqueuedAt + Double(parameters.timeoutMs) / 1000
    }

    /// The client went away: a queued job is dropped, a running job's result discarded.
    func cancel() { lock.lock(); _cancelled = true; lock.unlock() }
    var cancelled: Bool { lock.lock(); defer { lock.unlock() }; return _cancelled }
}

/// A bounded queue feeding `workers` threads, each owning a replica of one model. A full queue
/// refuses at once; it never grows past its capacity.
final class WorkerPool: @unchecked Sendable {
    let modelName: String
    let model: Model
    let precision: Precision
    let capacity: Int
    private let condition = NSCondition()
    /// Taken slots (before `head`) are nil: a finished job, with its body and answer, must not stay alive here.
    private var queue: [Job?] = []
    private var head = 0
    private var stopping = false
    private var _busy = 0
    /// Worker threads that have not exited yet.
    private var running = 0
    private var threads: [Thread] = []
    private let done: (Job) -> Void

    /// Creates the replicas now (weights packed per worker), so the pool is ready when this returns.
    init(name: String, model: Model, workers: Int, threadsPerWorker: Int, capacity: Int, limits: WorkerLimits,
         precision: Precision = .f32, done: @escaping (Job) -> Void) throws {
        modelName = name
        self.model = model
        self.precision = precision
        self.capacity = capacity
        self.done = done
        for i in 0..<workers {
            let pipeline = try PredictPipeline(model: model, modelName: name, threads: threadsPerWorker, limits: limits,
                                               precision: precision)
            // Weak: the threads must not keep the pool alive forever (it holds them), but while a
            // worker loops it holds the pool, so `stop()` followed by the pool's release is safe.
            let t = Thread { [weak self] in self?.work(pipeline) }
            t.name = "hydra-\(name)-\(i)"
            t.stackSize = 8 << 20
            threads.append(t)
        }
        running = threads.count
        for t in threads { t.start() }
    }

    /// Queues a job; false when the queue is full or the pool is stopping.
    func submit(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping, queue.count - head < capacity else { return false }
        queue.append(job)
        condition.signal()
        return true
    }

    var queued: Int { condition.lock(); defer { condition.unlock() }; return queue.count - head }
    var busy: Int { condition.lock(); defer { condition.unlock() }; return _busy }
    var workers: Int { threads.count }

    /// Workers finish what is queued, then exit.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// `stop()`, then blocks until every worker has finished the queue and exited (not on the loop).
    func stopAndWait() {
        stop()
        condition.lock()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    private func work(_ pipeline: PredictPipeline) {
        while true {
            condition.lock()
            while head == queue.count && !stopping { condition.wait() }
            if head == queue.count && stopping {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let job = queue[head]!
            queue[head] = nil
            head += 1
            if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            _busy += 1
            condition.unlock()

            run(job, pipeline)

            condition.lock()
            _busy -= 1
            condition.unlock()
            done(job)
        }
    }

    private func run(_ job: Job, _ pipeline: PredictPipeline) {
        let start = MonotonicClock.now()
        job.queueWaitSeconds = start - job.enqueuedAt
        if job.cancelled {
            job.outcome = "dropped"
            return
        }
        if start > job.deadline {
            job.outcome = "deadline"
            let p = Problem(504, "the request waited \(Int(job.queueWaitSeconds * 1000)) ms in the queue, "
                + "past its deadline of \(job.parameters.timeoutMs) ms", reason: "deadline")
            job.response = job.kind.isInfer ? p.inferenceError() : p.response(requestID: job.requestID)
            return
        }
        job.response = pipeline.process(job)
        if job.cancelled { job.outcome = "discarded" }
    }
}
