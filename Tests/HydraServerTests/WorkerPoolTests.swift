import Foundation
import HydraEngine
import XCTest
@testable import HydraServer

final class WorkerPoolTests: XCTestCase {
    /// A finished job holds the request body and the whole answer; once the loop has it, the pool
    /// must not keep it (it once did, for up to 64 jobs per model: hundreds of MiB with point clouds).
    func testFinishedJobsAreNotKeptByThePool() throws {
        let model = try DefaultModel.untrained()
        let finished = DispatchSemaphore(value: 0)
        let lock = NSLock()
        var statuses: [Int?] = []
        // Runs on the worker thread: record only; the assertions stay on the test's thread.
        let pool = try WorkerPool(name: "m", model: model, workers: 1, threadsPerWorker: 1, capacity: 4,
                                  limits: WorkerLimits(maxPixels: 1 << 20)) { job in
            lock.lock()
            statuses.append(job.response?.status)
            lock.unlock()
            finished.signal()
        }
        defer { pool.stop() }
        weak var weakJob: Job?
        for i in 0..<3 {
            do {
                let parameters = try PredictParameters(query: [], model: model, defaultTimeoutMs: 10_000)
                let job = Job(connectionID: UInt64(i), requestID: "r\(i)", body: Array(repeating: 7, count: 1 << 20),
                              contentType: "application/octet-stream", accept: nil, parameters: parameters)
                weakJob = job
                XCTAssertTrue(pool.submit(job))
            }
            XCTAssertEqual(finished.wait(timeout: .now() + 30), .success)
            lock.lock()
            XCTAssertEqual(statuses.last, 415, "a body that is no image")
            lock.unlock()
            // The worker drops its own reference right after handing the job over.
            let until = Date().addingTimeInterval(5)
            while weakJob != nil, Date() < until { usleep(1000) }
            XCTAssertNil(weakJob, "job \(i) is still alive after it was answered")
        }
    }
}
