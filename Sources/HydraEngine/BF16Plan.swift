import HydraKernels

/// Which steps of the graph run in bf16 and which tensors are stored as bf16, for a `.bf16` replica.
///
/// Tensors are bf16 wherever their writer can write bf16 and every reader can read it: the 1x1
/// convolutions read and write either, the depthwise layers read and write bf16 together, a channel
/// scale (alone or fused into the crp1 chain) writes bf16 for a head that reads it, the crp1 chain
/// reads either, the first layer writes either. A crp2-4 pool reads and writes either (rounding is
/// monotone: pooling bf16 values gives the bits of pooling in f32, then rounding); the running sums of
/// crp2-4 and the pools' inputs are bf16 like the encoder's residual streams (measured in int8 on 60
/// held-out scenes: agreement with f32 99.874 -> 99.875 %; GEMM time -6 %, the first pools 2.2 -> 0.9 ms).
/// Adds and resizes stay f32, so a tensor one of them touches does too. A 1x1 convolution then runs in bf16 when it touches a
/// bf16 tensor or has 64 or more inputs: measured at 1226x370, 1 thread (bf16 / f32 time), 0.56-0.93
/// from 64 inputs up with f32 on both sides, but 1.1-1.96 with 16-32 inputs and an f32 output, whose
/// writing outweighs the products; those stay on XNNPACK unless their output is bf16.
struct BF16Plan {
    private(set) var tensors: Set<Int> = []
    /// Steps run by a bf16 kernel, with the model's packed weights (shared by replicas).
    private(set) var weights: [Int: [UInt16]] = [:]

    /// `int8Steps`: 1x1 convolutions an int8 replica runs in int8 (they need no bf16 weights).
    /// `u8Tensors`: tensors an int8 replica stores as u8 (never bf16).
    init(graph: Graph, model: Model, int8Steps: Set<Int> = [], u8Tensors: Set<Int> = []) {
        let steps = graph.steps
        func dense1x1(_ layer: Int) -> FoldedConv? {
            let c = model.convs[layer]
            return c.isDense1x1 ? c : nil
        }
        func headTakingBF16(_ step: Graph.Step) -> Bool {
            guard case let .head(layer, x, _) = step, model.convs[layer].inputChannels % 32 == 0 else { return false }
            return steps.filter { $0.outputs.contains(x) }.allSatisfy {
                switch $0 {
                case .scale, .crpChain: return true
                default: return false
                }
            }
        }
        func canWrite(_ step: Graph.Step, _ t: Int) -> Bool {
            switch step {
            case let .conv(layer, _, _): return dense1x1(layer) != nil
            case .convAdd: return true
            case .depthwise, .stem: return true
            case .maxPool5: return graph.channels[t] % 16 == 0
            case .scale, .crpChain:
                // The channel scales (alone or in the crp chain) write bf16 for a head that reads it; never the chain's scratch.
                if case let .crpChain(_, _, _, _, scratch) = step, t == scratch { return false }
                return steps.contains { headTakingBF16($0) && $0.inputs == [t] }
            default: return false
            }
        }
        func canRead(_ step: Graph.Step, _ t: Int) -> Bool {
            switch step {
            case let .conv(layer, _, _): return dense1x1(layer) != nil
            case .convAdd: return true
            case .depthwise: return true
            case .maxPool5: return graph.channels[t] % 16 == 0
            case .head: return headTakingBF16(step)
            case let .crpChain(_, input, _, _, _): return t == input // the addend stays f32
            default: return false
            }
        }
        let outputs = Set([graph.segmentation, graph.depth] + (graph.normals.map { [$0] } ?? []))
        var bf16 = Set(graph.channels.indices.filter { t in
            let writers = steps.filter { $0.outputs.contains(t) }, readers = steps.filter { $0.inputs.contains(t) }
            return !outputs.contains(t) && !u8Tensors.contains(t) && !writers.isEmpty && writers.allSatisfy { canWrite($0, t) } && readers.allSatisfy { canRead($0, t) }
        })
        // A depthwise layer reads and writes bf16 together: drop pairs until none is split.
        var changed = true
        while changed {
            changed = false
            for step in steps {
                let pair: (Int, Int)
                switch step {
                case let .depthwise(_, _, x, out): pair = (x, out)
                default: continue
                }
                if bf16.contains(pair.0) != bf16.contains(pair.1) {
                    bf16.remove(pair.0)
                    bf16.remove(pair.1)
                    changed = true
                }
            }
        }
        tensors = bf16
        for (i, step) in steps.enumerated() {
            switch step {
            case let .conv(layer, x, out) where !int8Steps.contains(i):
                if let c = dense1x1(layer), bf16.contains(x) || bf16.contains(out) || c.inputChannels >= 64 {
                    weights[i] = model.reducedWeights.bf16(c)
                }
            case let .convAdd(layer, _, _, _, _, _) where !int8Steps.contains(i):
                weights[i] = model.reducedWeights.bf16(model.convs[layer]) // no XNNPACK operator does the fused add
            case let .head(layer, x, _) where bf16.contains(x):
                weights[i] = model.reducedWeights.bf16Head(model.convs[layer])
            default: break
            }
        }
    }

    /// Stores `t` as u8 instead (`Int8Plan.quantizeOutputs`).
    mutating func narrow(_ t: Int) { tensors.remove(t) }

    /// `hydra_conv1x1_bf16`'s layout flags for a step's input and output.
    func layout(input: Int, output: Int) -> Int32 {
        Int32((tensors.contains(input) ? HYDRA_BF16_INPUT : 0) | (tensors.contains(output) ? HYDRA_BF16_OUTPUT : 0))
    }
}
