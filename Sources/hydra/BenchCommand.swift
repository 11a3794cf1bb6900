import ArgumentParser
import Foundation
import HydraEngine
import HydraKernels
import HydraOutputs
import HydraServer

extension Precision: ExpressibleByArgument {}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the engine (preprocessing + network) on a synthetic frame."
    )

    @Option(help: "Model (safetensors), or 'default' (the built-in model, also when not given) or 'untrained' (generated untrained weights).") var model: String?
    @Option(help: "Input size WxH.") var size: String = "1226x370"
    @Option(help: "Arithmetic: f32 (exact), bf16 (AVX512-BF16) or int8 (AVX512-VNNI, a calibrated model: hydra calibrate).") var precision: Precision = .f32
    @Option(help: "Engine threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Timed runs.") var runs: Int = 30
    @Option(help: "Untimed warm-up runs.") var warmup: Int = 3
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Also time upsampling to the input size: bicubic (the authors') and --fast.") var postprocess = false
    @Flag(help: "Also print where the network's time goes: the slowest steps and the time per kind of step.") var profile = false
    @Flag(help: "With --profile: every step's time, one tab-separated line each (index, ms, what it is).") var steps = false
    @Option(help: "Time what a service worker does with this PNG/JPEG instead (decode, engine, outputs, multipart framing).")
    var frame: String?
    @Option(help: "With --frame: the predict query, as in the URL.") var query = "outputs=segmentation,depth"
    @Flag(help: "With --frame: time PNG encoding of each picture output at zlib levels 1, 3, 6, 9 and each choice of row filters.")
    var png = false
    @Option(help: ArgumentHelp("For A/B measurements: layers to run on XNNPACK instead of Hydra's own kernels, comma-separated: depthwise, stem, heads.",
                               valueName: "layers"))
    var xnnpack: String?
    @Flag(help: "For A/B measurements: every replica packs its own weights (no sharing between replicas).")
    var privateWeights = false
    @Option(help: "Instead of timing: the memory each of this many replicas adds (packed at creation, then after one run).")
    var replicas: Int?

    func run() throws {
        guard runs >= 1, threads >= 1, warmup >= 0 else { throw CLIError("--runs and --threads must be positive") }
        if let frame { return png ? try runPNGSweep(frame) : try runPipeline(frame) }
        let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 32, parts[1] >= 32 else { throw CLIError("--size must be WxH with both sides >= 32") }
        let (w, h) = (parts[0], parts[1])
        // predict's --max-pixels default: beyond it the input and activations alone need tens of GB.
        guard w.multipliedReportingOverflow(by: h).partialValue <= 40_000_000, w <= 100_000, h <= 100_000 else {
            throw CLIError("--size \(w)x\(h) is over 40 megapixels, the largest frame hydra runs")
        }
        let model = try Model(try ModelLoading.load(self.model), options: try engineOptions())
        if let replicas { return try measureReplicas(replicas, model: model, width: w, height: h) }
        let loadStart = Date()
        let replica = try ModelLoading.replica(model, threads: threads, precision: precision)
        let packSeconds = Date().timeIntervalSince(loadStart)
        var rng: UInt64 = 12345
        let pixels = (0..<(w * h * 3)).map { _ -> UInt8 in
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: rng >> 56)
        }
        var times: [Double] = []
        var last: Prediction?
        try pixels.withUnsafeBufferPointer { px in
            for i in 0..<(warmup + runs) {
                let t0 = Date()
                last = try replica.run(rgb: px, width: w, height: h)
                if i >= warmup { times.append(Date().timeIntervalSince(t0) * 1e3) }
            }
        }
        let rawTimes = times
        if profile { try printProfile(replica, pixels: pixels, width: w, height: h) }
        let (median, p90) = Self.percentiles(&times)
        var post: [String: Double] = [:]
        if postprocess, let p = last {
            let upsampler = Upsampler(threads: threads)
            for (name, fast) in [("upsample_bicubic", false), ("upsample_fast", true)] {
                var t: [Double] = []
                for i in 0..<(warmup + runs) {
                    let t0 = Date()
                    _ = upsampler.upsample(p, width: w, height: h, fast: fast)
                    if i >= warmup { t.append(Date().timeIntervalSince(t0) * 1e3) }
                }
                post[name + "_median_ms"] = Self.percentiles(&t).median
            }
        }
        let isa = String(cString: hydra_kernels_isa())
        if json {
            let obj: [String: Any] = [
                "width": w, "height": h, "threads": threads, "runs": runs, "median_ms": median, "p90_ms": p90,
                "min_ms": times.first!, "max_ms": times.last!, "times_ms": rawTimes, "activation_bytes": replica.activationBytes,
                "pack_seconds": packSeconds, "classes": model.architecture.numClasses, "kernels_isa": isa,
                "precision": precision.rawValue,
            ].merging(post) { a, _ in a }
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "hydra bench %dx%d %@, %d thread(s), %d runs: median %.1f ms, p90 %.1f ms, min %.1f ms "
                + "(activations %.1f MiB, weights packed in %.0f ms, kernels %@)",
                w, h, precision.rawValue, threads, runs, median, p90, times.first!, Double(replica.activationBytes) / 1048576, packSeconds * 1e3, isa))
            if !post.isEmpty {
                print(String(format: "upsampling to %dx%d: bicubic median %.2f ms, fast median %.2f ms", w, h,
                             post["upsample_bicubic_median_ms"]!, post["upsample_fast_median_ms"]!))
            }
        }
    }

    /// Sorts `t` and returns its median and 90th percentile.
    static func percentiles(_ t: inout [Double]) -> (median: Double, p90: Double) {
        t.sort()
        func pct(_ q: Double) -> Double { t[min(t.count - 1, Int((Double(t.count - 1) * q).rounded()))] }
        return (pct(0.5), pct(0.9))
    }

    /// Times `InProcessPredictor` on a real frame: the in-process baseline of the service's latency.
    private func runPipeline(_ path: String) throws {
        let body = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let type = path.lowercased().hasSuffix(".png") ? "image/png" : "image/jpeg"
        if let reason = precision.unsupportedReason { throw CLIError("--precision \(precision): \(reason)") }
        let predictor = try InProcessPredictor(model: try ModelLoading.load(model), threads: threads, precision: precision)
        var times: [Double] = []
        var bytes = 0
        for i in 0..<(warmup + runs) {
            let t0 = MonotonicClock.now()
            let response = try predictor.predict(body: body, contentType: type, query: query)
            guard response.status == 200 else { throw CLIError("the pipeline answered \(response.status): \(String(decoding: response.body, as: UTF8.self))") }
            if i >= warmup { times.append((MonotonicClock.now() - t0) * 1e3) }
            bytes = response.body.count
        }
        let raw = times
        let (median, p90) = Self.percentiles(&times)
        if json {
            let out: [String: Any] = ["frame": path, "query": query, "threads": threads, "runs": runs, "median_ms": median,
                                      "p90_ms": p90, "times_ms": raw, "response_bytes": bytes]
            print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "pipeline %@ ?%@: median %.1f ms, p90 %.1f ms (%d runs, %d threads, %d response bytes)",
                         path, query, median, p90, runs, threads, bytes))
        }
    }

    /// Profiled runs (timing each step adds a little): the totals per kind and the twelve slowest steps.
    private func printProfile(_ replica: ModelReplica, pixels: [UInt8], width: Int, height: Int) throws {
        replica.profiling = true
        try pixels.withUnsafeBufferPointer { px in
            for _ in 0..<runs { _ = try replica.run(rgb: px, width: width, height: height) }
        }
        replica.profiling = false
        let steps = replica.stepSeconds.map { ($0.label, $0.seconds / Double(runs) * 1e3) }
        let total = steps.reduce(0) { $0 + $1.1 }
        print(String(format: "profile (%d runs, %d threads): %.1f ms in %d steps", runs, threads, total, steps.count))
        var kinds: [String: (ms: Double, n: Int)] = [:]
        for (label, ms) in steps {
            // The kind is the label up to its first size (WxHxC: two x's).
            let kind = label.split(separator: " ").prefix(while: { $0.filter { $0 == "x" }.count < 2 }).joined(separator: " ")
            kinds[kind, default: (0, 0)].ms += ms
            kinds[kind, default: (0, 0)].n += 1
        }
        for (kind, v) in kinds.sorted(by: { $0.value.ms > $1.value.ms }) {
            print(String(format: "  %6.2f ms %5.1f %%  %3d x %@", v.ms, v.ms / total * 100, v.n, kind))
        }
        print("  slowest steps:")
        for (label, ms) in steps.sorted(by: { $0.1 > $1.1 }).prefix(12) {
            print(String(format: "  %6.2f ms  %@", ms, label))
        }
        if self.steps {
            for (i, (label, ms)) in steps.enumerated() { print(String(format: "step\t%d\t%.3f\t%@", i, ms, label)) }
        }
    }

    /// Resident memory of this process in MiB (/proc/self/statm; 0 where there is none).
    private static func rssMiB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }

    /// What one more replica costs: RSS after creating it (packed weights) and after its first run
    /// (activations, XNNPACK's indirection buffers and per-operator state), next to its activation arena.
    /// The service's target: every replica after the first adds at most its activations + 10 MiB.
    private func measureReplicas(_ n: Int, model: Model, width: Int, height: Int) throws {
        guard n >= 2 else { throw CLIError("--replicas needs at least 2 (the first replica is the baseline)") }
        let pixels = [UInt8](repeating: 128, count: width * height * 3)
        var kept: [ModelReplica] = []
        var rows: [[String: Any]] = []
        var last = Self.rssMiB()
        let loaded = last
        let mib = { (bytes: Int) in Double(bytes) / 1_048_576 }
        if !json { print(String(format: "RSS with the model loaded: %.1f MiB", last)) }
        for i in 1...n {
            let (aligned0, plain0) = (hydra_xnn_aligned_bytes(), hydra_xnn_plain_bytes())
            let replica = try ModelLoading.replica(model, threads: threads, precision: precision)
            let packed = Self.rssMiB()
            let aligned1 = hydra_xnn_aligned_bytes()
            _ = try pixels.withUnsafeBufferPointer { try replica.run(rgb: $0, width: width, height: height) }
            let ran = Self.rssMiB()
            let arena = mib(replica.activationBytes)
            let row: [String: Any] = [
                "replica": i, "created_mib": packed - last, "after_run_mib": ran - packed, "total_mib": ran - last,
                "activations_mib": arena, "other_mib": ran - packed - arena,
                "xnnpack_packed_mib": mib(aligned1 - aligned0), "xnnpack_setup_mib": mib(hydra_xnn_plain_bytes() - plain0),
            ]
            rows.append(row)
            if !json {
                print(String(format: "replica %d: +%.1f MiB created (packed weights), +%.1f MiB after one %dx%d run "
                    + "(activations %.1f MiB, other %.1f MiB); total +%.1f MiB", i, packed - last, ran - packed, width, height,
                    arena, ran - packed - arena, ran - last))
                print(String(format: "  held by XNNPACK: operators and packed weights %.2f MiB, setup state (indirection) %.2f MiB",
                             mib(aligned1 - aligned0), mib(hydra_xnn_plain_bytes() - plain0)))
            }
            last = ran
            kept.append(replica)
        }
        let later = rows.dropFirst().map { $0["total_mib"] as! Double }
        let worst = later.max()!, arena = rows.last!["activations_mib"] as! Double
        let verdict = worst <= arena + 10 ? "met" : "MISSED"
        if json {
            let obj: [String: Any] = [
                "width": width, "height": height, "threads": threads, "loaded_mib": loaded, "replicas": rows,
                "worst_additional_mib": worst, "activations_mib": arena, "target_mib": arena + 10,
                "shared_weights": model.sharesPackedWeights,
            ]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "each replica after the first: at most +%.1f MiB; target: activations + 10 MiB = %.1f MiB: %@",
                         worst, arena + 10, verdict))
        }
    }

    /// `--xnnpack` and `--private-weights` as the engine's options.
    private func engineOptions() throws -> EngineOptions {
        var o = EngineOptions(sharePackedWeights: !privateWeights)
        for name in (xnnpack ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            switch name {
            case "depthwise": o.ownDepthwise = false
            case "stem": o.ownStem = false
            case "heads": o.ownHeads = false
            default: throw CLIError("--xnnpack takes depthwise, stem and heads, not '\(name)'")
            }
        }
        return o
    }
}
