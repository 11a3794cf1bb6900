import Foundation
import HydraKernels

/// The network as a straight-line list of steps over numbered tensors (NHWC, batch 1).
/// Built once per model; shapes are fixed per input size by `Graph.shapes`. A step names its layer
/// by index: into the model's `convs` (conv, depthwise, head, convAdd) or `scales` (scale, crpScale,
/// the crp chain's outputs), both indexed as `Architecture.LayerTable`.
struct Graph: Sendable {
    enum Step: Sendable {
        case conv(Int, input: Int, output: Int)
        /// The first layer (`layer1`, 3x3 stride 2, ReLU6) by our own kernel, reading the 8-bit RGB image
        /// directly: preprocessing is fused into it. `weights`: [ky][kx][in][out].
        case stem(weights: [Float], output: Int)
        /// A depthwise 3x3 convolution by our own kernel (no per-replica indirection buffer).
        /// `weights`: [ky][kx][channel].
        case depthwise(Int, weights: [Float], input: Int, output: Int)
        case add(Int, Int, output: Int, relu6: Bool)
        case maxPool5(input: Int, output: Int)
        /// Depthwise 1x1 convolution: a per-channel scale.
        case scale(Int, input: Int, output: Int, relu6: Bool)
        /// A crp1 stage in one pass: top' = scale * maxpool5(top); x' = x + top'.
        case crpScale(Int, top: Int, x: Int, topOut: Int, xOut: Int)
        /// The add before crp1, its four stages and the pre_* channel scales behind it in one wavefront
        /// pass (channels a multiple of 16): x = relu6(input + addend); sum = x + t1 + ... + t4; each
        /// output relu6(sum * its scale) (`hydra_crp_chain`: bit-identical to the separate steps; the
        /// sum and x never reach memory). `scales`: the four stages' per-channel scales, then each
        /// output's, one after the other (gathered once, here). `scratch`: the kernel's row buffers, alive only during this step.
        case crpChain(scales: [Float], input: Int, addend: Int, outputs: [(scale: Int, tensor: Int)], scratch: Int)
        /// 3x3 convolution with few outputs (the heads), by our own kernel: see `usesHeadKernel`.
        case head(Int, input: Int, output: Int)
        /// Bilinear, half-pixel centres (PyTorch align_corners=False), to the size of `like`.
        case resize(input: Int, like: Int, output: Int)
        /// A dense 1x1 convolution with the add behind it fused into its epilogue (reduced-precision
        /// graphs only, `fusingResidualAdds`): output = clamp(conv(input) + residual) (ReLU6 or none);
        /// `raw` keeps the convolution's own output where another step reads it too.
        case convAdd(Int, input: Int, residual: Int, output: Int, relu6: Bool, raw: Int?)
    }

    var steps: [Step] = []
    var channels: [Int] = []
    /// The normalised float image; unused (never written) when the stem reads the 8-bit image itself.
    var input = 0
    /// True when the first step is `.stem`: the runner then skips preprocessing.
    var stemReadsRGB = false
    var segmentation = 0, depth = 0
    var normals: Int?

    /// Which layers run on Hydra's own kernels (A/B switches).
    let options: EngineOptions

    /// Built once per model (see `Model.graph`); replicas share it.
    init(layers: ModelLayers, options: EngineOptions = EngineOptions()) {
        self.options = options
        input = tensor(3)
        let t = layers.table
        var x = stem(layers)
        var cin = 32
        var skips: [Int: Int] = [:]
        for (i, b) in Architecture.blocks.enumerated() {
            for (r, block) in t.blocks[i].enumerated() {
                var y = conv(block.expand, x, layers)
                y = conv(block.depthwise, y, layers)
                y = conv(block.project, y, layers)
                if cin == b.c, r > 0 || b.s == 1 { y = add(y, x, relu6: false) }
                x = y
                cin = b.c
            }
            skips[i + 2] = x
        }
        let l = skips
        func skip(_ layer: Int) -> Int { conv(t.skips[layer]!, l[layer]!, layers) }
        var a = add(skip(8), skip(7), relu6: true)
        a = crp(a, 4, layers)
        a = resize(conv(t.adapts[4]!, a, layers), like: l[6]!)
        var b = add(skip(5), skip(6), relu6: false)
        b = add(b, a, relu6: true)
        b = crp(b, 3, layers)
        b = resize(conv(t.adapts[3]!, b, layers), like: l[4]!)
        var c = add(skip(4), b, relu6: true)
        c = crp(c, 2, layers)
        c = resize(conv(t.adapts[2]!, c, layers), like: l[3]!)
        let d = skip(3)
        let pre = tail(d, c, heads: t.heads.map(\.pre), layers)
        let outs = zip(t.heads, pre).map { head($0.conv, $1, layers) }
        segmentation = outs[0]
        depth = outs[1]
        if t.heads.count > 2 { normals = outs[2] }
    }

    /// relu6(a + b), crp1, then a ReLU6 channel scale per head: one fused step where the channels
    /// allow (a multiple of 16), else the separate steps.
    private mutating func tail(_ a: Int, _ b: Int, heads: [Int], _ layers: ModelLayers) -> [Int] {
        let c = channels[a]
        guard c % 16 == 0 else {
            let d = crp(add(a, b, relu6: true), 1, layers)
            return heads.map { scale($0, d, relu6: true) }
        }
        let outputs = heads.map { (scale: $0, tensor: tensor(c)) }
        let scratch = tensor(c)
        let scales = (layers.table.crp1Scales + heads).flatMap { layers.scales[$0] }
        steps.append(.crpChain(scales: scales, input: a, addend: b, outputs: outputs, scratch: scratch))
        return outputs.map(\.tensor)
    }

    private mutating func tensor(_ c: Int) -> Int {
        channels.append(c)
        return channels.count - 1
    }

    private mutating func conv(_ layer: Int, _ x: Int, _ layers: ModelLayers) -> Int {
        let c = layers.convs[layer]
        if c.kernel == 3, c.groups == c.inputChannels, c.groups == c.outputChannels, c.inputChannels % 16 == 0,
           c.stride == 1 || c.stride == 2, options.ownDepthwise {
            // [channel][ky][kx] to [ky][kx][channel].
            var w = [Float](repeating: 0, count: 9 * c.outputChannels)
            for ch in 0..<c.outputChannels { for t in 0..<9 { w[t * c.outputChannels + ch] = c.weights[ch * 9 + t] } }
            let out = tensor(c.outputChannels)
            steps.append(.depthwise(layer, weights: w, input: x, output: out))
            return out
        }
        let out = tensor(c.outputChannels)
        steps.append(.conv(layer, input: x, output: out))
        return out
    }

    private mutating func stem(_ layers: ModelLayers) -> Int {
        let c = layers.convs[layers.table.stem]
        guard c.kernel == 3, c.stride == 2, c.groups == 1, c.inputChannels == 3, c.outputChannels % 16 == 0,
              options.ownStem
        else { return conv(layers.table.stem, input, layers) }
        // [out][ky][kx][in] (XNNPACK's order) to [ky][kx][in][out].
        let taps = 27, outs = c.outputChannels
        var w = [Float](repeating: 0, count: taps * outs)
        for o in 0..<outs { for t in 0..<taps { w[t * outs + o] = c.weights[o * taps + t] } }
        let out = tensor(outs)
        steps.append(.stem(weights: w, output: out))
        stemReadsRGB = true
        return out
    }

    /// XNNPACK pads output channels to 16; for a head with fewer outputs than that the direct kernel
    /// does the real work only.
    func usesHeadKernel(_ c: FoldedConv) -> Bool {
        c.kernel == 3 && c.stride == 1 && c.groups == 1 && c.inputChannels % 16 == 0 && c.outputChannels < 16 && options.ownHeads
    }

    private mutating func head(_ layer: Int, _ x: Int, _ layers: ModelLayers) -> Int {
        let c = layers.convs[layer]
        guard usesHeadKernel(c) else { return conv(layer, x, layers) }
        let out = tensor(c.outputChannels)
        steps.append(.head(layer, input: x, output: out))
        return out
    }

    private mutating func add(_ a: Int, _ b: Int, relu6: Bool) -> Int {
        let out = tensor(channels[a])
        steps.append(.add(a, b, output: out, relu6: relu6))
        return out
    }

    private mutating func scale(_ layer: Int, _ x: Int, relu6: Bool) -> Int {
        let out = tensor(channels[x])
        steps.append(.scale(layer, input: x, output: out, relu6: relu6))
        return out
    }

    private mutating func resize(_ x: Int, like: Int) -> Int {
        let out = tensor(channels[x])
        steps.append(.resize(input: x, like: like, output: out))
        return out
    }

    /// Chained residual pooling: top = x; 4 times: top = conv(pool(top)); x += top.
    private mutating func crp(_ x0: Int, _ n: Int, _ layers: ModelLayers) -> Int {
        var x = x0, top = x0
        if n == 1 {
            for stage in layers.table.crp1Scales {
                let t = tensor(channels[top]), y = tensor(channels[x])
                steps.append(.crpScale(stage, top: top, x: x, topOut: t, xOut: y))
                (top, x) = (t, y)
            }
            return x
        }
        for stage in layers.table.crpConvs[n]! {
            let pooled = tensor(channels[top])
            steps.append(.maxPool5(input: top, output: pooled))
            top = conv(stage, pooled, layers)
            x = add(x, top, relu6: false)
        }
        return x
    }

    /// This graph with each add that has a dense 1x1 convolution's output as an operand fused into
    /// that convolution (`.convAdd`), where the other operand is ready when the convolution runs.
    /// For reduced-precision replicas, whose GEMMs add the residual in their epilogue; f32 replicas
    /// keep XNNPACK's convolution and add (exact against the reference).
    func fusingResidualAdds(_ convs: [FoldedConv]) -> Graph {
        var steps = self.steps
        var fused = Set<Int>()
        func writer(_ t: Int) -> Int? { steps.firstIndex { $0.outputs.contains(t) } }
        for (i, step) in steps.enumerated() {
            guard case let .add(a, b, out, relu6) = step else { continue }
            for (t, other) in [(a, b), (b, a)] {
                guard let j = writer(t), case let .conv(layer, x, _) = steps[j], convs[layer].isDense1x1,
                      (writer(other) ?? -1) < j else { continue }
                let readers = steps.indices.filter { steps[$0].inputs.contains(t) }
                steps[j] = .convAdd(layer, input: x, residual: other, output: out, relu6: relu6, raw: readers == [i] ? nil : t)
                fused.insert(i)
                break
            }
        }
        var g = self
        g.steps = steps.indices.filter { !fused.contains($0) }.map { steps[$0] }
        return g
    }

    /// This graph with the resize before the crp1 chain done by the chain itself (reduced-precision
    /// graphs): the chain reads the addend at its own size and upsamples it as it forms each row, so
    /// the full-size resized tensor is never written or read (at 1226x370, 29 MB of f32 each way).
    func fusingResizeIntoChain(_ convs: [FoldedConv]) -> Graph {
        var steps = self.steps
        for (i, step) in steps.enumerated() {
            // The resize must be to x's size: x is a 1x1 convolution of the tensor it takes its size from.
            guard case let .crpChain(scales, x, addend, outs, scratch) = step,
                  let j = steps.firstIndex(where: { $0.outputs.contains(addend) }), case let .resize(small, like, _) = steps[j],
                  steps.indices.filter({ steps[$0].inputs.contains(addend) }) == [i],
                  let w = steps.first(where: { $0.outputs.contains(x) }), let layer = w.convolution, w.inputs.first == like,
                  convs[layer].kernel == 1, convs[layer].stride == 1 else { continue }
            steps[i] = .crpChain(scales: scales, input: x, addend: small, outputs: outs, scratch: scratch)
            steps.remove(at: j)
            break
        }
        var g = self
        g.steps = steps
        return g
    }

    /// Spatial size of every tensor for an input of `height` x `width`, by PyTorch's arithmetic.
    func shapes(height: Int, width: Int, model: Model) -> [(h: Int, w: Int)] {
        var s = [(h: Int, w: Int)](repeating: (0, 0), count: channels.count)
        s[input] = (height, width)
        for step in steps {
            switch step {
            case let .conv(layer, x, out):
                let c = model.convs[layer]
                let pad = c.kernel / 2
                s[out] = ((s[x].h + 2 * pad - c.kernel) / c.stride + 1, (s[x].w + 2 * pad - c.kernel) / c.stride + 1)
            case let .convAdd(_, x, _, out, _, raw):
                s[out] = s[x] // 1x1, stride 1
                if let raw { s[raw] = s[x] }
            case let .stem(_, out): s[out] = ((s[input].h + 1) / 2, (s[input].w + 1) / 2)
            case let .depthwise(layer, _, x, out):
                let st = model.convs[layer].stride
                s[out] = ((s[x].h - 1) / st + 1, (s[x].w - 1) / st + 1)
            case let .add(a, _, out, _): s[out] = s[a]
            case let .head(_, x, out): s[out] = s[x]
            case let .crpScale(_, top, _, topOut, xOut): s[topOut] = s[top]; s[xOut] = s[top]
            case let .crpChain(_, x, _, outs, scratch):
                for o in outs { s[o.tensor] = s[x] }
                // hydra_crp_chain_scratch_floats is rows x width x channels.
                s[scratch] = (hydra_crp_chain_scratch_floats(1, 1), s[x].w)
            case let .maxPool5(x, out): s[out] = s[x]
            case let .scale(_, x, out, _): s[out] = s[x]
            case let .resize(_, like, out): s[out] = s[like]
            }
        }
        return s
    }

    /// For each tensor, the index of the step that writes it and of the last step that reads it.
    func lifetimes() -> [(first: Int, last: Int)] {
        var life = [(first: Int, last: Int)](repeating: (Int.max, -1), count: channels.count)
        life[input].first = -1
        for (i, step) in steps.enumerated() {
            for t in step.inputs { life[t].last = max(life[t].last, i) }
            for t in step.outputs { life[t].first = i }
            if case let .crpChain(_, _, _, _, scratch) = step { life[scratch].last = i }
        }
        for t in [segmentation, depth] + (normals.map { [$0] } ?? []) { life[t].last = steps.count }
        for t in life.indices where life[t].last < 0 { life[t].last = life[t].first }
        return life
    }

    /// Outputs that may take over the memory of a tensor that dies in the step writing them, keyed by
    /// output, with `elementBytes` per tensor. Only the crp chain's: it handles each block of channels
    /// on one thread and reads a row of its input and addend before writing the rows at or above it, so
    /// an output with the same element size can overwrite either (a smaller element would land on
    /// other blocks' bytes, which other threads may not have read yet).
    func inPlaceOutputs(elementBytes: [Int], sizes: [Int]) -> [Int: Int] {
        let life = lifetimes()
        var hosts: [Int: Int] = [:]
        for (i, step) in steps.enumerated() {
            guard case let .crpChain(_, x, addend, outs, _) = step else { continue }
            // Same size too: an addend the chain upsamples is read again after rows above it are written.
            var free = [x, addend].filter {
                life[$0].last == i && $0 != input && sizes[$0] / elementBytes[$0] == sizes[x] / elementBytes[x]
            }
            for o in outs {
                guard let k = free.firstIndex(where: { elementBytes[$0] == elementBytes[o.tensor] }) else { continue }
                hosts[o.tensor] = free.remove(at: k)
            }
        }
        return hosts
    }

    /// The arena layout for these tensor sizes in bytes (`elementBytes` per tensor: 1, 2 or 4).
    func arena(sizes: [Int], elementBytes: [Int]) -> (offsets: [Int], total: Int) {
        ArenaPlanner.plan(sizes: sizes, lifetimes: lifetimes(), sharing: inPlaceOutputs(elementBytes: elementBytes, sizes: sizes))
    }
}

extension Graph.Step {
    /// Tensors the step reads (`resize` reads only the size of `like`).
    var inputs: [Int] {
        switch self {
        case let .conv(_, x, _), let .depthwise(_, _, x, _), let .head(_, x, _), let .maxPool5(x, _),
             let .scale(_, x, _, _), let .resize(x, _, _):
            return [x]
        case let .crpChain(_, x, b, _, _): return [x, b]
        case .stem: return []
        case let .add(a, b, _, _): return [a, b]
        case let .convAdd(_, x, r, _, _, _): return [x, r]
        case let .crpScale(_, top, x, _, _): return [top, x]
        }
    }

    /// Tensors the step writes (the crp chain's scratch among them).
    var outputs: [Int] {
        switch self {
        case let .conv(_, _, out), let .stem(_, out), let .depthwise(_, _, _, out), let .add(_, _, out, _), let .head(_, _, out),
             let .maxPool5(_, out), let .scale(_, _, out, _), let .resize(_, _, out):
            return [out]
        case let .crpScale(_, _, _, topOut, xOut): return [topOut, xOut]
        case let .convAdd(_, _, _, out, _, raw): return [out] + (raw.map { [$0] } ?? [])
        case let .crpChain(_, _, _, outs, scratch): return outs.map(\.tensor) + [scratch]
        }
    }
}

/// Places tensors in one arena so that tensors alive at the same time never overlap.
enum ArenaPlanner {
    static let alignment = 64

    /// Byte offsets of each tensor and the arena size. Greedy: largest first, lowest free offset.
    /// `sharing` maps a tensor to the one whose memory it reuses (never to one that is itself shared):
    /// the pair is placed once, over the union of their lifetimes.
    static func plan(sizes: [Int], lifetimes: [(first: Int, last: Int)],
                     sharing: [Int: Int] = [:]) -> (offsets: [Int], total: Int) {
        var sizes = sizes, lifetimes = lifetimes
        for (t, host) in sharing {
            precondition(sharing[host] == nil, "tensor \(host) both shares and is shared")
            sizes[host] = max(sizes[host], sizes[t])
            lifetimes[host] = (min(lifetimes[host].first, lifetimes[t].first), max(lifetimes[host].last, lifetimes[t].last))
            sizes[t] = 0
        }
        var (offsets, total) = place(sizes: sizes, lifetimes: lifetimes, skipping: Set(sharing.keys))
        for (t, host) in sharing { offsets[t] = offsets[host] }
        return (offsets, total)
    }

    private static func place(sizes: [Int], lifetimes: [(first: Int, last: Int)],
                              skipping: Set<Int>) -> (offsets: [Int], total: Int) {
        let order = sizes.indices.filter { !skipping.contains($0) }.sorted { sizes[$0] > sizes[$1] }
        var offsets = [Int](repeating: -1, count: sizes.count)
        var placed: [Int] = []
        var total = 0
        for t in order {
            let size = (sizes[t] + alignment - 1) / alignment * alignment
            // Ranges taken by tensors whose lifetimes intersect this one's.
            let busy = placed.filter {
                lifetimes[$0].first <= lifetimes[t].last && lifetimes[t].first <= lifetimes[$0].last
            }.map { (offsets[$0], offsets[$0] + (sizes[$0] + alignment - 1) / alignment * alignment) }
                .sorted { $0.0 < $1.0 }
            var candidate = 0
            for (lo, hi) in busy {
                if candidate + size <= lo { break }
                candidate = max(candidate, hi)
            }
            offsets[t] = candidate
            placed.append(t)
            total = max(total, candidate + size)
        }
        return (offsets, total)
    }
}
