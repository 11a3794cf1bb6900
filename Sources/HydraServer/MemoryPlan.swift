import Foundation
import HydraEngine
import HydraOutputs

/// How `--max-memory` is shared out, so that an operator can reason about it (docs/MEMORY.md):
///
///     max memory x 0.9  =  base  +  connections  +  workers x (activations + working memory)
///
/// - base: the process and its models (48 MiB + 3 x each model's weights: mapped, folded, packed);
/// - connections: request bodies as they arrive and answers not yet sent, across all connections
///   (max(2 x --max-body-mb, 1/8 of the total)); a body that does not fit is refused with 503 before
///   it is read;
/// - per worker, the activations of the largest network input (`--max-network-pixels`; by default
///   what is left after the working memory of a `--max-pixels` frame with the default outputs, at
///   most 2.1 MP, about 1920x1080) and the working memory of one request (decoded frame, outputs,
///   encodings, the response): a request that needs more is refused with 413 before decoding.
///
/// The tenth held back covers allocator slack, thread stacks and XNNPACK's per-operator state.
package struct MemoryPlan: Sendable {
    package struct ModelShare: Sendable {
        package var limits: WorkerLimits
        /// Activations of one replica at the largest network input.
        package var activationBytes: Int
    }

    package let maxMemory: Int
    package let baseBytes: Int
    package let connectionBytes: Int
    package let perWorkerBytes: Int
    package let models: [String: ModelShare]
    /// The largest frame accepted: `--max-pixels`, or less when it was not given and did not fit.
    package let maxPixels: Int

    /// The default network input cap: more buys little for a network trained on 1242x375 frames.
    package static let defaultNetworkPixelCap = 2_100_000
    /// Below this a worker cannot run ordinary camera frames (384x288).
    package static let minimumNetworkPixels = 110_592

    package struct Refusal: Error, CustomStringConvertible {
        package let description: String
    }

    package init(maxMemory: Int, models: [(name: String, model: Model)], workersPerModel: Int, maxBodyBytes: Int,
                 maxPixels: Int, maxNetworkPixels: Int?, networkFloor: Int = MemoryPlan.minimumNetworkPixels) throws {
        self.maxMemory = maxMemory
        self.maxPixels = maxPixels
        let usable = maxMemory / 10 * 9
        baseBytes = (48 << 20) + models.reduce(0) { $0 + 3 * $1.model.weightBytes }
        connectionBytes = max(2 * maxBodyBytes, usable / 8)
        let workers = models.count * workersPerModel
        perWorkerBytes = (usable - baseBytes - connectionBytes) / max(1, workers)
        func mib(_ n: Int) -> String { "\(n >> 20) MiB" }
        var shares: [String: ModelShare] = [:]
        for (name, model) in models {
            let frame = Self.frame(pixels: maxPixels)
            let cap = maxNetworkPixels ?? Self.defaultNetworkPixelCap
            let defaultRequest = OutputRequest().workingBytes(
                width: frame.width, height: frame.height, network: NetworkInput.size(width: frame.width, height: frame.height, maxPixels: cap),
                numClasses: model.architecture.numClasses, hasNormals: model.architecture.hasNormals, format: .png)
            let networkPixels: Int
            if let maxNetworkPixels {
                networkPixels = maxNetworkPixels
            } else {
                let perPixel = Double(Self.activations(model, pixels: 1 << 20)) / Double(1 << 20)
                var n = min(cap, Int(Double(perWorkerBytes - defaultRequest) / perPixel))
                // Activations are not quite linear in pixels (rounding at every stride): step down to fit.
                while n > Self.minimumNetworkPixels, Self.activations(model, pixels: n) + defaultRequest > perWorkerBytes {
                    n = n / 100 * 97
                }
                networkPixels = n
            }
            let floor = maxNetworkPixels == nil ? max(networkFloor, Self.minimumNetworkPixels) : Self.minimumNetworkPixels
            guard networkPixels >= floor else {
                throw Refusal(description: "--max-memory \(mib(maxMemory)) is too small: each of \(workers) worker(s) gets "
                    + "\(mib(perWorkerBytes)) after \(mib(baseBytes)) for the process and models and \(mib(connectionBytes)) for "
                    + "connections, and model \(name) needs \(mib(defaultRequest)) for a --max-pixels \(maxPixels) frame plus "
                    + "\(mib(Self.activations(model, pixels: floor))) of activations for a network input of \(floor) pixels; "
                    + "raise --max-memory, or lower --workers or --max-pixels")
            }
            let activations = Self.activations(model, pixels: networkPixels)
            let working = perWorkerBytes - activations
            guard working >= defaultRequest || maxNetworkPixels != nil else {
                throw Refusal(description: "--max-memory \(mib(maxMemory)) leaves model \(name) \(mib(working)) per worker for a request; "
                    + "a --max-pixels \(maxPixels) frame with the default outputs needs \(mib(defaultRequest))")
            }
            guard working > 0 else {
                throw Refusal(description: "--max-network-pixels \(networkPixels) needs \(mib(activations)) of activations per worker of "
                    + "model \(name), more than the \(mib(perWorkerBytes)) a worker gets from --max-memory \(mib(maxMemory))")
            }
            shares[name] = ModelShare(limits: WorkerLimits(maxPixels: maxPixels, maxNetworkPixels: networkPixels, workingBytes: working),
                                      activationBytes: activations)
        }
        self.models = shares
    }

    /// The plan for `maxPixels`, or, when `lowerMaxPixels` (the operator left `--max-pixels` at its
    /// default) and that does not fit, for a smaller largest frame. Ordinary camera frames should
    /// reach the network whole, so the network input is kept at 1 MP or more while the largest
    /// frame comes down to 4 MP, and only then both come down (to 1 MP and 384x288).
    package static func fitting(maxMemory: Int, models: [(name: String, model: Model)], workersPerModel: Int,
                                maxBodyBytes: Int, maxPixels: Int, maxNetworkPixels: Int?, lowerMaxPixels: Bool) throws -> MemoryPlan {
        func plan(_ pixels: Int, floor: Int) throws -> MemoryPlan {
            try MemoryPlan(maxMemory: maxMemory, models: models, workersPerModel: workersPerModel, maxBodyBytes: maxBodyBytes,
                           maxPixels: pixels, maxNetworkPixels: maxNetworkPixels, networkFloor: floor)
        }
        guard lowerMaxPixels else { return try plan(maxPixels, floor: minimumNetworkPixels) }
        var stages: [(pixels: Int, floor: Int)] = []
        var pixels = maxPixels
        while true {
            stages.append((pixels, 1_000_000))
            if pixels <= 4_000_000 { break }
            pixels = max(4_000_000, pixels / 4 * 3)
        }
        while true {
            stages.append((pixels, minimumNetworkPixels))
            if pixels <= 1_000_000 { break }
            pixels = max(1_000_000, pixels / 4 * 3)
        }
        var refusal: Error?
        for stage in stages {
            do { return try plan(stage.pixels, floor: stage.floor) } catch let r as Refusal { refusal = r }
        }
        throw refusal!
    }

    /// Activations at a 4:3 input of `pixels`, with 5 % for XNNPACK's setup state and rounding.
    static func activations(_ model: Model, pixels: Int) -> Int {
        let f = frame(pixels: pixels)
        return model.activationBytes(width: f.width, height: f.height) / 20 * 21
    }

    /// A 4:3 frame of about `pixels` (the usual camera shape; wide frames need a little less).
    static func frame(pixels: Int) -> (width: Int, height: Int) {
        let h = max(32, Int((Double(pixels) * 3 / 4).squareRoot()))
        return (max(32, pixels / h), h)
    }

    /// The memory limit of this process's cgroup (v2, then v1), if it has one.
    package static func cgroupLimit() -> Int? {
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if value == "max" { return nil }
            // cgroup v1 writes a page-rounded 2^63 for "no limit".
            if let n = Int(value), n < 1 << 60 { return n }
            return nil
        }
        return nil
    }

    /// The default `--max-memory`: the cgroup limit when there is one (a container, a pod), else
    /// 2 GiB or half the physical memory, whichever is less.
    package static func defaultMaxMemory() -> Int {
        if let limit = cgroupLimit() { return limit }
        let physical = Int(ProcessInfo.processInfo.physicalMemory)
        return min(2 << 30, physical / 2)
    }

    /// Kubernetes-style quantity: "1Gi", "512Mi", "1G", "1500M", plain bytes.
    package static func parseQuantity(_ text: String) -> Int? {
        let units: [(String, Int)] = [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40),
                                      ("k", 1000), ("K", 1000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000)]
        let t = text.trimmingCharacters(in: .whitespaces)
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            guard let n = Double(t.dropLast(suffix.count)), n.isFinite, n > 0, n * Double(factor) < 1e15 else { return nil }
            return Int(n * Double(factor))
        }
        guard let n = Int(t), n > 0 else { return nil }
        return n
    }

    /// The plan as log metadata.
    package var summary: [String: Int] {
        var m = ["max_memory_mib": maxMemory >> 20, "max_pixels": maxPixels, "base_mib": baseBytes >> 20,
                 "connections_mib": connectionBytes >> 20, "per_worker_mib": perWorkerBytes >> 20]
        for (name, share) in models {
            m["\(name).max_network_pixels"] = share.limits.maxNetworkPixels
            m["\(name).activations_mib"] = share.activationBytes >> 20
            m["\(name).request_working_mib"] = share.limits.workingBytes >> 20
        }
        return m
    }
}
