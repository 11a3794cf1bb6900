import CXNNPACK
import HydraKernels
#if canImport(Glibc)
import Glibc
#endif

/// The network's outputs at the resolution it computes them (a quarter of the input), planar.
public struct Prediction: Sendable {
    /// Output grid: height, width (PyTorch's size arithmetic on the input).
    public let height: Int, width: Int
    public let numClasses: Int
    /// Segmentation logits, [numClasses][height][width].
    public var logits: [Float]
    /// Depth as the network outputs it (metres, sign not yet removed), [height][width].
    public var depth: [Float]
    /// Surface normals, [3][height][width], for three-task weights.
    public var normals: [Float]?
    /// Seconds spent in preprocessing (0 when the first layer does it) and in the network.
    public var preprocessSeconds: Double = 0, networkSeconds: Double = 0

    public init(height: Int, width: Int, numClasses: Int, logits: [Float], depth: [Float], normals: [Float]? = nil) {
        precondition(logits.count == numClasses * height * width && depth.count == height * width)
        self.height = height
        self.width = width
        self.numClasses = numClasses
        self.logits = logits
        self.depth = depth
        self.normals = normals
    }
}

enum XNNPACKRuntime {
    /// `xnn_initialize` once per process, before any operator is created, with Hydra's allocator.
    static let status: xnn_status = xnn_initialize(hydra_xnn_allocator())

    /// Whether XNNPACK allocates through Hydra's allocator: only the process's first `xnn_initialize`
    /// sets it, so code that initialised XNNPACK earlier leaves replicas with private weights (safe:
    /// nothing is recorded, so nothing is shared). Probed with a throw-away operator.
    static let usesHydraAllocator: Bool = {
        guard status == xnn_status_success else { return false }
        var op: xnn_operator_t?
        var sizes = [Int](repeating: 0, count: 16)
        var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: 16)
        hydra_xnn_record_begin()
        let created = xnn_create_add_nd_f32(-.infinity, .infinity, 0, &op)
        let count = hydra_xnn_record_end(&pointers, &sizes, 16)
        if let op { xnn_delete_operator(op) }
        return created == xnn_status_success && count > 0 && pointers.contains { $0 != nil && $0 == op.map(UnsafeMutableRawPointer.init) }
    }()
}

/// One runnable copy of a `Model`: its own thread pool, packed operators and activation arena.
/// Everything mutable lives here, so N replicas run concurrently on N threads; a replica itself
/// must be used by one thread at a time.
public final class ModelReplica: @unchecked Sendable {
    public let model: Model
    public let threads: Int
    public let precision: Precision
    let graph: Graph
    /// What runs in bf16 (nil for f32), and in int8 (nil unless int8).
    private let bf16: BF16Plan?
    private let int8: Int8Plan?
    private var bf16Weights: [Int: [UInt16]] { bf16?.weights ?? [:] }
    private var bf16Tensors: Set<Int> { bf16?.tensors ?? [] }

    /// How a tensor is stored: HYDRA_F32, HYDRA_BF16 or HYDRA_U8.
    private func format(_ t: Int) -> Int {
        int8?.u8Tensors[t] != nil ? Int(HYDRA_U8) : bf16Tensors.contains(t) ? Int(HYDRA_BF16) : Int(HYDRA_F32)
    }
    private let pool: pthreadpool_t
    /// XNNPACK operator for each step that has one (convolutions, adds, resizes).
    private var operators: [xnn_operator_t?]
    /// Activations, mapped anonymously: pages above what frames need are given back (`trimArena`).
    private var arena: UnsafeMutableRawPointer?
    private var arenaBytes = 0
    /// Arena bytes that may hold pages (touched since the last trim).
    private var arenaTouched = 0
    private var plan: Plan?
    /// Arena bytes kept resident between frames; pages above it (or above the frame's need) are given
    /// back after a run, so that one large frame does not leave its activations behind.
    public let arenaRetainBytes: Int

    struct Plan {
        let height: Int, width: Int
        let shapes: [(h: Int, w: Int)]
        let offsets: [Int]
        let bytes: Int
    }

    /// Packs the model's weights for this replica (a few milliseconds) with `threads` threads.
    /// Throws `EngineError.unsupported` when this CPU cannot run `precision`, or for int8 when the
    /// model has no calibration.
    public convenience init(model: Model, threads: Int = 1, precision: Precision = .f32) throws {
        try self.init(model: model, threads: threads, precision: precision, int8Layers: nil)
    }

    /// `int8Layers`: for int8, the 1x1 layers to run in int8 instead of the calibration's choice
    /// (per-layer sensitivity, `Calibration`).
    init(model: Model, threads: Int, precision: Precision, int8Layers: Set<String>?) throws {
        guard XNNPACKRuntime.status == xnn_status_success else {
            throw EngineError.xnnpack("xnn_initialize failed (status \(XNNPACKRuntime.status.rawValue)); the CPU may lack SSE4.1")
        }
        if let reason = precision.unsupportedReason { throw EngineError.unsupported("--precision \(precision): \(reason)") }
        self.model = model
        self.threads = max(1, threads)
        self.precision = precision
        graph = precision == .f32 ? model.graph : model.fusedGraph
        var int8Plan: Int8Plan?
        if precision == .int8 {
            guard let calibration = model.info.int8 else {
                throw EngineError.unsupported("--precision int8: this model has no int8 calibration; make one with "
                    + "`hydra calibrate --model IN.safetensors --images DIR --out OUT.safetensors` and serve OUT")
            }
            int8Plan = Int8Plan(graph: graph, model: model, calibration: calibration, layers: int8Layers)
        }
        var bf16Plan = precision == .f32 ? nil : BF16Plan(graph: graph, model: model, int8Steps: Set(int8Plan.map { Array($0.steps.keys) } ?? []),
                                                          u8Tensors: Set(int8Plan.map { Array($0.u8Tensors.keys) } ?? []))
        if var p = int8Plan, var b = bf16Plan {
            p.quantizeOutputs(graph, &b)
            (int8Plan, bf16Plan) = (p, b)
        }
        int8 = int8Plan
        bf16 = bf16Plan
        arenaRetainBytes = model.activationBytes(width: ModelReplica.retainReference.width, height: ModelReplica.retainReference.height)
        guard let p = pthreadpool_create(self.threads) else { throw EngineError.xnnpack("cannot create thread pool") }
        pool = p
        operators = Array(repeating: nil, count: graph.steps.count)
        do {
            for (i, step) in graph.steps.enumerated() where bf16Plan?.weights[i] == nil && int8Plan?.steps[i] == nil {
                operators[i] = try Self.makeOperator(step, index: i, model: model)
            }
        } catch {
            for op in operators { if let op { xnn_delete_operator(op) } }
            pthreadpool_destroy(p)
            throw error
        }
    }

    deinit {
        for op in operators { if let op { xnn_delete_operator(op) } }
        pthreadpool_destroy(pool)
        if let arena { munmap(arena, arenaBytes) }
    }

    /// Frames up to this size keep their activation pages between runs (a full KITTI frame, 1242x375).
    static let retainReference = (width: 1248, height: 384)

    /// Activation bytes resident now (the arena pages that may be touched).
    public var residentActivationBytes: Int { arenaTouched }

    /// Bytes of activation memory planned for the last input size.
    public var activationBytes: Int { plan?.bytes ?? 0 }

    /// Called with the f32 input of each layer int8 can run, before it runs (calibration; f32 replicas only).
    var observeConvInput: ((String, UnsafeBufferPointer<Float>) -> Void)?

    /// When true, `run` adds each step's wall time to `stepSeconds` (for `hydra bench --profile`).
    public var profiling = false
    /// Seconds per graph step summed over the profiled runs, with a label saying what the step is.
    public private(set) var stepSeconds: [(label: String, seconds: Double)] = []

    /// What a step is, for profiles: kind, kernel, size and channels.
    private func label(_ i: Int, _ step: Graph.Step, _ plan: Plan) -> String {
        func at(_ t: Int) -> String { "\(plan.shapes[t].w)x\(plan.shapes[t].h)x\(graph.channels[t])" }
        func types(_ x: Int, _ out: Int) -> String {
            let names = [Int(HYDRA_F32): "f32", Int(HYDRA_BF16): "bf16", Int(HYDRA_U8): "u8"]
            return " (\(names[format(x)]!) -> \(names[format(out)]!))"
        }
        switch step {
        case let .conv(layer, x, out):
            let c = model.convs[layer]
            let kind = (c.groups > 1 ? "depthwise \(c.kernel)x\(c.kernel)" : "conv \(c.kernel)x\(c.kernel)")
                + (int8?.steps[i] != nil ? " int8" : bf16Weights[i] != nil ? " bf16" : "")
            return "\(kind)\(c.stride > 1 ? " s\(c.stride)" : "") \(at(x)) -> \(graph.channels[out])\(bf16 == nil ? "" : types(x, out))"
        case let .convAdd(layer, x, _, out, _, raw):
            let c = model.convs[layer]
            return "conv 1x1 \(int8?.steps[i] != nil ? "int8" : "bf16") + add\(raw != nil ? " (and raw)" : "") \(at(x)) -> \(c.outputChannels)"
                + types(x, out)
        case let .stem(_, out):
            return "stem conv 3x3 s2 on rgb8 \(plan.shapes[graph.input].w)x\(plan.shapes[graph.input].h)x3 -> \(graph.channels[out])"
                + (int8?.u8Tensors[out] != nil ? " (to u8)" : bf16Tensors.contains(out) ? " (to bf16)" : "")
        case let .depthwise(layer, _, x, out):
            return "depthwise 3x3\(model.convs[layer].stride > 1 ? " s2" : "") \(at(x)) -> \(graph.channels[out]) (own)"
                + (bf16 == nil ? "" : types(x, out))
        case let .add(a, _, _, _): return "add \(at(a))"
        case let .maxPool5(x, out): return "maxpool5 \(at(x))\(bf16 == nil ? "" : types(x, out))"
        case let .scale(_, x, out, _): return "channel scale \(at(x))\(bf16Tensors.contains(out) ? " to bf16" : "")"
        case let .crpScale(_, top, _, _, _): return "maxpool5+scale+add \(at(top))"
        case let .crpChain(_, x, addend, outs, _):
            return "add\(plan.shapes[addend] != plan.shapes[x] ? " (upsampling \(at(addend)))" : "") + crp chain (4 x maxpool5+scale+add) + \(outs.count) channel scales \(at(x))"
                + (bf16 == nil ? "" : types(x, outs[0].tensor))
        case let .head(layer, x, _):
            return "head 3x3 \(at(x)) -> \(model.convs[layer].outputChannels)\(int8?.steps[i] != nil ? " int8" : bf16Tensors.contains(x) ? " bf16" : "")"
        case let .resize(x, like, _): return "resize \(at(x)) -> \(plan.shapes[like].w)x\(plan.shapes[like].h)"
        }
    }

    private static func makeOperator(_ step: Graph.Step, index: Int, model: Model) throws -> xnn_operator_t? {
        let (status, op): (xnn_status, xnn_operator_t?)
        switch step {
        case let .conv(layer, _, _):
            let c = model.convs[layer]
            let pad = UInt32(c.kernel / 2), k = UInt32(c.kernel), s = UInt32(c.stride)
            (status, op) = model.packedWeights.create(step: index) {
                var op: xnn_operator_t?
                let status = c.withBias { bias in
                    xnn_create_convolution2d_nhwc_f32(
                        pad, pad, pad, pad, k, k, s, s, 1, 1, UInt32(c.groups),
                        c.inputChannels / c.groups, c.outputChannels / c.groups, c.inputChannels, c.outputChannels,
                        c.weights, bias, c.clamp.lo, c.clamp.hi, 0, &op)
                }
                return (status, op)
            }
        case let .add(_, _, _, relu6):
            var created: xnn_operator_t?
            let clamp = outputClamp(relu6: relu6)
            status = xnn_create_add_nd_f32(clamp.lo, clamp.hi, 0, &created)
            op = created
        case .resize:
            return nil // created at setup: channels are known from the graph, see `setUp`
        case .stem, .depthwise, .maxPool5, .scale, .head, .crpScale, .crpChain, .convAdd:
            return nil
        }
        guard status == xnn_status_success else { throw EngineError.xnnpack("cannot create operator for \(step) (status \(status.rawValue))") }
        return op
    }

    /// Plans buffers for an input size and binds every operator to them. Cheap; done when the size changes.
    private func setUp(height: Int, width: Int) throws {
        if let p = plan, p.height == height, p.width == width { return }
        let shapes = graph.shapes(height: height, width: width, model: model)
        let bytes = graph.channels.indices.map {
            [Int(HYDRA_F32): MemoryLayout<Float>.size, Int(HYDRA_BF16): 2, Int(HYDRA_U8): 1][format($0)]!
        }
        let sizes = graph.channels.indices.map { shapes[$0].h * shapes[$0].w * graph.channels[$0] * bytes[$0] }
        let (offsets, total) = graph.arena(sizes: sizes, elementBytes: bytes)
        let needed = Self.pageRounded(total + Int(XNN_EXTRA_BYTES))
        if needed > arenaBytes {
            if let arena { munmap(arena, arenaBytes) }
            arena = nil
            arenaBytes = 0
            arenaTouched = 0
            let p = mmap(nil, needed, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else { throw EngineError.xnnpack("cannot allocate \(needed) bytes of activations") }
            arena = p
            arenaBytes = needed
        }

        let newPlan = Plan(height: height, width: width, shapes: shapes, offsets: offsets, bytes: total)
        for (i, step) in graph.steps.enumerated() {
            let status: xnn_status
            switch step {
            case .conv where bf16Weights[i] != nil || int8?.steps[i] != nil:
                continue
            case let .conv(_, x, out):
                status = xnn_setup_convolution2d_nhwc_f32(operators[i], 1, shapes[x].h, shapes[x].w,
                                                          pointer(newPlan, x), pointer(newPlan, out), pool)
            case let .add(a, b, out, _):
                var dims = [1, shapes[a].h, shapes[a].w, graph.channels[a]]
                var dimsB = [1, shapes[b].h, shapes[b].w, graph.channels[b]]
                status = xnn_setup_add_nd_f32(operators[i], 4, &dims, 4, &dimsB, pointer(newPlan, a), pointer(newPlan, b),
                                              pointer(newPlan, out), pool)
            case let .resize(x, _, out):
                if operators[i] == nil {
                    var op: xnn_operator_t?
                    let c = graph.channels[x]
                    let s = xnn_create_resize_bilinear2d_nhwc_f32(c, c, c, 0, &op)
                    guard s == xnn_status_success else { throw EngineError.xnnpack("cannot create resize (status \(s.rawValue))") }
                    operators[i] = op
                }
                status = xnn_setup_resize_bilinear2d_nhwc_f32(operators[i], 1, shapes[x].h, shapes[x].w, shapes[out].h,
                                                               shapes[out].w, pointer(newPlan, x), pointer(newPlan, out), pool)
            case .stem, .depthwise, .maxPool5, .scale, .head, .crpScale, .crpChain, .convAdd:
                continue
            }
            guard status == xnn_status_success else {
                plan = nil
                throw EngineError.xnnpack("setup of step \(i) (\(step)) failed with status \(status.rawValue)")
            }
        }
        plan = newPlan
    }

    private static func pageRounded(_ n: Int) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return (n + page - 1) / page * page
    }

    /// After a run: a frame larger than `arenaRetainBytes` gives back its pages above that; a smaller
    /// one gives back what lies above its own need when that is more than 16 MiB. Streams of frames up
    /// to a KITTI frame keep their pages; a larger frame's go when its run ends (the next one faults
    /// them in again).
    private func trimArena(needed: Int) {
        guard let arena else { return }
        let keep = needed > arenaRetainBytes ? Self.pageRounded(arenaRetainBytes)
            : (arenaTouched - needed > 16 << 20 ? needed : arenaTouched)
        guard arenaTouched > keep else { return }
        madvise(arena + keep, arenaTouched - keep, MADV_DONTNEED)
        arenaTouched = keep
    }

    private func pointer(_ plan: Plan, _ t: Int) -> UnsafeMutablePointer<Float> {
        precondition(!bf16Tensors.contains(t), "tensor \(t) is stored as bf16")
        return rawPointer(plan, t).assumingMemoryBound(to: Float.self)
    }

    /// Where a tensor lies, whichever type it is stored in.
    private func rawPointer(_ plan: Plan, _ t: Int) -> UnsafeMutableRawPointer { arena! + plan.offsets[t] }

    private func bf16Pointer(_ plan: Plan, _ t: Int) -> UnsafeMutablePointer<UInt16> {
        precondition(bf16Tensors.contains(t), "tensor \(t) is stored as f32")
        return rawPointer(plan, t).assumingMemoryBound(to: UInt16.self)
    }

    /// ImageNet normalisation, as the reference applies it.
    private static let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]

    /// Runs the network on 8-bit RGB pixels (row-major, interleaved), any size with both sides >= 32.
    public func run(rgb: UnsafeBufferPointer<UInt8>, width: Int, height: Int) throws -> Prediction {
        guard width >= 32, height >= 32 else { throw EngineError.inputTooSmall(width: width, height: height) }
        precondition(rgb.count >= width * height * 3, "run: pixel buffer smaller than width x height x 3")
        try setUp(height: height, width: width)
        let plan = plan!
        let needed = Self.pageRounded(plan.bytes + Int(XNN_EXTRA_BYTES))
        arenaTouched = max(arenaTouched, needed)
        let t0 = MonotonicClock.now()
        if !graph.stemReadsRGB {
            hydra_preprocess_rgb8(rgb.baseAddress, width * height, Self.mean, Self.std, pointer(plan, graph.input), pool)
        }
        let t1 = MonotonicClock.now()
        if profiling, stepSeconds.count != graph.steps.count {
            stepSeconds = graph.steps.enumerated().map { (label($0.offset, $0.element, plan), 0) }
        }
        for (i, step) in graph.steps.enumerated() {
            let stepStart = profiling ? MonotonicClock.now() : 0
            defer { if profiling { stepSeconds[i].seconds += MonotonicClock.now() - stepStart } }
            if let observeConvInput, let name = Int8Plan.layer(step, graph, model), let x = step.inputs.first {
                observeConvInput(name, UnsafeBufferPointer(start: pointer(plan, x), count: plan.shapes[x].h * plan.shapes[x].w * graph.channels[x]))
            }
            switch step {
            case let .conv(layer, x, out) where int8?.steps[i] != nil || bf16Weights[i] != nil:
                runGEMM(i, model.convs[layer], x, out, residual: nil, plan)
            case let .convAdd(layer, x, r, out, relu6, raw):
                let clamp = outputClamp(relu6: relu6)
                let q = raw.flatMap { int8?.u8Tensors[$0] }
                let rawFormat = q != nil ? HYDRA_RAW_U8 : raw.map { bf16Tensors.contains($0) } == true ? HYDRA_RAW_BF16 : HYDRA_RAW_F32
                var residual = hydra_residual(input: rawPointer(plan, r), bf16: bf16Tensors.contains(r) ? 1 : 0, lo: clamp.lo, hi: clamp.hi,
                                              raw: raw.map { rawPointer(plan, $0) }, raw_format: Int32(rawFormat),
                                              raw_scale: q?.scale ?? 0, raw_zero: q?.zero ?? 0)
                runGEMM(i, model.convs[layer], x, out, residual: &residual, plan)
            case .conv, .add, .resize:
                let s = xnn_run_operator(operators[i], pool)
                guard s == xnn_status_success else { throw EngineError.xnnpack("step \(i) (\(step)) failed with status \(s.rawValue)") }
            case let .stem(weights, out):
                let c = model.convs[model.layers.stem]
                let status = c.withBias { bias in
                    if let q = int8?.u8Tensors[out] {
                        return hydra_stem_conv3x3s2_rgb8_u8(rgb.baseAddress, height, width, Self.mean, Self.std, weights, bias, c.outputChannels,
                                                            c.clamp.lo, c.clamp.hi, q.scale, q.zero,
                                                            rawPointer(plan, out).assumingMemoryBound(to: UInt8.self), pool)
                    }
                    return bf16Tensors.contains(out)
                        ? hydra_stem_conv3x3s2_rgb8_bf16(rgb.baseAddress, height, width, Self.mean, Self.std, weights, bias,
                                                         c.outputChannels, c.clamp.lo, c.clamp.hi, bf16Pointer(plan, out), pool)
                        : hydra_stem_conv3x3s2_rgb8(rgb.baseAddress, height, width, Self.mean, Self.std, weights, bias,
                                                    c.outputChannels, c.clamp.lo, c.clamp.hi, pointer(plan, out), pool)
                }
                precondition(status == 0, "the stem kernel needs output channels that are a multiple of 16")
            case let .depthwise(layer, weights, x, out) where bf16Tensors.contains(x):
                let c = model.convs[layer]
                let status = c.withBias { bias in
                    if let q = int8?.u8Tensors[out] {
                        return hydra_depthwise3x3_bf16_u8(bf16Pointer(plan, x), plan.shapes[x].h, plan.shapes[x].w, c.outputChannels, c.stride,
                                                          weights, bias, c.clamp.lo, c.clamp.hi, q.scale, q.zero,
                                                          rawPointer(plan, out).assumingMemoryBound(to: UInt8.self), pool)
                    }
                    return hydra_depthwise3x3_bf16(bf16Pointer(plan, x), plan.shapes[x].h, plan.shapes[x].w, c.outputChannels, c.stride,
                                                   weights, bias, c.clamp.lo, c.clamp.hi, bf16Pointer(plan, out), pool)
                }
                precondition(status == 0, "the bf16 depthwise kernel refused step \(i)")
            case let .depthwise(layer, weights, x, out):
                let c = model.convs[layer]
                let status = c.withBias { bias in
                    hydra_depthwise3x3(pointer(plan, x), plan.shapes[x].h, plan.shapes[x].w, c.outputChannels, c.stride,
                                       weights, bias, c.clamp.lo, c.clamp.hi, pointer(plan, out), pool)
                }
                precondition(status == 0, "the depthwise kernel needs channels that are a multiple of 16 and stride 1 or 2")
            case let .maxPool5(x, out) where format(x) != HYDRA_F32 || format(out) != HYDRA_F32:
                let q = int8?.u8Tensors[out]
                precondition(format(x) != HYDRA_U8 || int8?.u8Tensors[x] == q, "a u8 pool keeps its quantization")
                let status = hydra_maxpool5_typed(rawPointer(plan, x), Int32(format(x)), rawPointer(plan, out), Int32(format(out)),
                                                  q?.scale ?? 0, q?.zero ?? 0, plan.shapes[x].h, plan.shapes[x].w, graph.channels[x], pool)
                precondition(status == 0, "the pool kernel refused step \(i)")
            case let .maxPool5(x, out):
                hydra_maxpool5(pointer(plan, x), pointer(plan, out), plan.shapes[x].h, plan.shapes[x].w, graph.channels[x], pool)
            case let .head(layer, x, out) where int8?.steps[i] != nil:
                let c = model.convs[layer], q = int8!.steps[i]!
                let status = q.weights.packed.withUnsafeBufferPointer { w in
                    c.withBias { bias in
                        hydra_head3x3_int8(rawPointer(plan, x).assumingMemoryBound(to: UInt8.self), plan.shapes[x].h, plan.shapes[x].w,
                                           c.inputChannels, q.input.scale, w.baseAddress, q.weights.scales, bias, c.outputChannels,
                                           pointer(plan, out), pool)
                    }
                }
                precondition(status == 0, "the int8 head kernel refused step \(i)")
            case let .head(layer, x, out) where bf16Weights[i] != nil:
                let c = model.convs[layer]
                let status = bf16Weights[i]!.withUnsafeBufferPointer { w in
                    c.withBias { bias in
                        hydra_head3x3_bf16(bf16Pointer(plan, x), plan.shapes[x].h, plan.shapes[x].w, c.inputChannels, w.baseAddress,
                                           bias, c.outputChannels, pointer(plan, out), pool)
                    }
                }
                precondition(status == 0, "the bf16 head kernel refused step \(i)")
            case let .head(layer, x, out):
                let c = model.convs[layer]
                c.withBias { bias in
                    hydra_conv3x3_small(pointer(plan, x), plan.shapes[x].h, plan.shapes[x].w, c.inputChannels, c.weights,
                                        bias, c.outputChannels, pointer(plan, out), pool)
                }
            case let .crpScale(layer, top, x, topOut, xOut):
                model.scales[layer].withUnsafeBufferPointer { s in
                    hydra_crp_scale_stage(pointer(plan, top), pointer(plan, x), s.baseAddress, pointer(plan, topOut),
                                          pointer(plan, xOut), plan.shapes[top].h, plan.shapes[top].w, graph.channels[top], pool)
                }
            case let .crpChain(scales, x, addend, outs, scratch):
                let c = graph.channels[x]
                let status = scales.withUnsafeBufferPointer { sc in
                    var args = hydra_crp_chain_args()
                    args.input = UnsafeRawPointer(rawPointer(plan, x))
                    args.input_bf16 = bf16Tensors.contains(x) ? 1 : 0
                    args.addend = UnsafePointer(pointer(plan, addend))
                    if plan.shapes[addend] != plan.shapes[x] { // upsampled by the chain (`fusingResizeIntoChain`)
                        (args.addend_height, args.addend_width) = (plan.shapes[addend].h, plan.shapes[addend].w)
                    }
                    (args.lo, args.hi) = outputClamp(relu6: true)
                    args.scales = sc.baseAddress
                    args.outputs = outs.count
                    (args.output_lo, args.output_hi) = outputClamp(relu6: true)
                    func scale(_ j: Int) -> UnsafePointer<Float>? { j < outs.count ? sc.baseAddress! + (4 + j) * c : nil }
                    func out(_ j: Int) -> UnsafeMutableRawPointer? { j < outs.count ? rawPointer(plan, outs[j].tensor) : nil }
                    func isBF16(_ j: Int) -> Int32 { j < outs.count && bf16Tensors.contains(outs[j].tensor) ? 1 : 0 }
                    func u8(_ j: Int) -> Float? { j < outs.count ? int8?.u8Tensors[outs[j].tensor]?.scale : nil }
                    args.output_scale = (scale(0), scale(1), scale(2))
                    args.output = (out(0), out(1), out(2))
                    args.output_bf16 = (isBF16(0), isBF16(1), isBF16(2))
                    args.output_u8 = (u8(0) != nil ? 1 : 0, u8(1) != nil ? 1 : 0, u8(2) != nil ? 1 : 0)
                    args.output_qscale = (u8(0) ?? 0, u8(1) ?? 0, u8(2) ?? 0)
                    return hydra_crp_chain(&args, pointer(plan, scratch), plan.shapes[x].h, plan.shapes[x].w, c, pool)
                }
                precondition(status == 0, "the crp chain refused step \(i)")
            case let .scale(layer, x, out, relu6) where bf16Tensors.contains(out):
                let clamp = outputClamp(relu6: relu6)
                let status = hydra_channel_scale_bf16(pointer(plan, x), model.scales[layer], bf16Pointer(plan, out),
                                                      plan.shapes[x].h * plan.shapes[x].w, graph.channels[x], clamp.lo, clamp.hi, pool)
                precondition(status == 0, "the bf16 channel scale refused step \(i)")
            case let .scale(layer, x, out, relu6):
                let clamp = outputClamp(relu6: relu6)
                hydra_channel_scale(pointer(plan, x), model.scales[layer], pointer(plan, out), plan.shapes[x].h * plan.shapes[x].w,
                                    graph.channels[x], clamp.lo, clamp.hi, pool)
            }
        }
        let t2 = MonotonicClock.now()
        let (h, w) = plan.shapes[graph.segmentation]
        var p = Prediction(height: h, width: w, numClasses: model.architecture.numClasses,
                           logits: planar(graph.segmentation, plan), depth: planar(graph.depth, plan),
                           normals: graph.normals.map { planar($0, plan) })
        p.preprocessSeconds = graph.stemReadsRGB ? 0 : t1 - t0
        p.networkSeconds = t2 - t1
        trimArena(needed: needed)
        return p
    }

    /// A 1x1 convolution by the int8 or bf16 GEMM, with the residual add when fused.
    private func runGEMM(_ i: Int, _ c: FoldedConv, _ x: Int, _ out: Int, residual: UnsafePointer<hydra_residual>?, _ plan: Plan) {
        let pixels = plan.shapes[x].h * plan.shapes[x].w
        let u8Input = int8?.u8Tensors[x] != nil
        let layout = bf16!.layout(input: x, output: out) | (u8Input ? Int32(HYDRA_U8_INPUT) : 0)
        let status: Int32
        if let q = int8?.steps[i] {
            precondition(!u8Input || int8?.u8Tensors[x] == q.input, "a u8 input is in its convolution's quantization")
            status = q.weights.packed.withUnsafeBufferPointer { w in
                c.withBias { bias in
                    hydra_conv1x1_int8(rawPointer(plan, x), pixels, c.inputChannels, q.input.scale, q.input.zero, w.baseAddress, q.weights.scales,
                                       q.weights.columnSums, bias, c.outputChannels, c.clamp.lo, c.clamp.hi, rawPointer(plan, out), layout,
                                       residual, pool)
                }
            }
        } else {
            status = bf16Weights[i]!.withUnsafeBufferPointer { w in
                c.withBias { bias in
                    hydra_conv1x1_bf16(rawPointer(plan, x), pixels, c.inputChannels, w.baseAddress, bias, c.outputChannels, c.clamp.lo,
                                       c.clamp.hi, rawPointer(plan, out), layout, residual, pool)
                }
            }
        }
        precondition(status == 0, "the \(int8?.steps[i] != nil ? "int8" : "bf16") kernel refused step \(i)")
    }

    /// NHWC [h][w][c] in the arena to planar [c][h][w].
    private func planar(_ t: Int, _ plan: Plan) -> [Float] {
        let (h, w) = plan.shapes[t]
        let c = graph.channels[t]
        let src = UnsafePointer(pointer(plan, t))
        if c == 1 { return Array(UnsafeBufferPointer(start: src, count: h * w)) }
        var out = [Float](repeating: 0, count: c * h * w)
        out.withUnsafeMutableBufferPointer { dst in
            for p in 0..<(h * w) {
                for k in 0..<c { dst[k * h * w + p] = src[p * c + k] }
            }
        }
        return out
    }
}

extension Model {
    /// Bytes of activations a replica plans for a `width` x `height` input: what one run holds in its
    /// arena (computed from the graph, nothing is allocated).
    public func activationBytes(width: Int, height: Int) -> Int {
        let shapes = graph.shapes(height: height, width: width, model: self)
        let bytes = [Int](repeating: MemoryLayout<Float>.size, count: graph.channels.count)
        let sizes = graph.channels.indices.map { shapes[$0].h * shapes[$0].w * graph.channels[$0] * bytes[$0] }
        return graph.arena(sizes: sizes, elementBytes: bytes).total + Int(XNN_EXTRA_BYTES)
    }
}

/// Monotonic seconds, for stage timings.
public enum MonotonicClock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
