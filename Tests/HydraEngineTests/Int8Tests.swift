import Foundation
@testable import HydraEngine
import HydraKernels
import HydraWeights
import XCTest

final class Int8Tests: XCTestCase {
    /// Frames with structure (gradients, a block, noise), so that the ranges are those of images.
    static func frame(_ w: Int, _ h: Int, seed: UInt64) -> Calibration.Frame {
        var rng = SplitMix64(seed: seed)
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var v = 127 + 100 * sin(Double(x) / 37 + Double(c)) * cos(Double(y) / 23 - Double(c)) + Double(rng.next() >> 59) * 3
                    if y > h / 3, y < h / 2, x > w / 4, x < w / 2 { v = [30, 200, 90][c] }
                    px[(y * w + x) * 3 + c] = UInt8(max(0, min(255, v)))
                }
            }
        }
        return Calibration.Frame(pixels: px, width: w, height: h)
    }

    func testUncalibratedModelAskedForInt8NamesHydraCalibrate() throws {
        try XCTSkipUnless(Precision.int8.unsupportedReason == nil, "this CPU cannot run int8")
        let model = try DefaultModel.untrained()
        XCTAssertNil(model.info.int8)
        XCTAssertThrowsError(try ModelReplica(model: model, precision: .int8)) { e in
            XCTAssertTrue("\(e)".contains("hydra calibrate"), "\(e)")
        }
    }

    func testUnsupportedCPUIsRefusedNotRunInF32() throws {
        XCTAssertEqual(Precision.int8.unsupportedReason == nil, hydra_int8_supported() != 0)
        if hydra_int8_supported() != 0 { XCTAssertNotEqual(hydra_bf16_supported(), 0, "int8 runs its other layers in bf16") }
    }

    func testCalibrationSurvivesTheMetadataAndBadRangesAreRefused() throws {
        var info = ModelInfo(preset: .kitti, description: "t", trained: true)
        info.int8 = Int8Calibration(images: 3, inputRanges: ["conv3": [-1.5, 4], "layer2.0.output.0": [0, 6]], keep: ["conv3"])
        XCTAssertEqual(try ModelInfo(metadata: info.metadata, fallbackPreset: .kitti), info)
        for bad in [#"{"images":3,"method":"min-max","inputRanges":{"conv3":[2,1]},"keep":[]}"#,
                    #"{"images":0,"method":"min-max","inputRanges":{},"keep":[]}"#,
                    #"{"images":1,"method":"min-max","inputRanges":{"conv3":[1]},"keep":[]}"#, "[]"] {
            var m = info.metadata
            m["int8"] = bad
            XCTAssertThrowsError(try ModelInfo(metadata: m, fallbackPreset: .kitti), bad)
        }
        // A range widened to hold 0: ReLU outputs get zero point 0; a signed range its own.
        let q = info.int8!
        XCTAssertEqual(q.quantization(of: "layer2.0.output.0")!.zero, 0)
        XCTAssertEqual(q.quantization(of: "layer2.0.output.0")!.scale, Float(6.0 / 255))
        XCTAssertEqual(q.quantization(of: "conv3")!.zero, 70)  // 1.5 / (5.5 / 255) = 69.5 -> 70
        XCTAssertNil(q.quantization(of: "conv4"))
    }

    /// Calibration measures every 1x1 layer's input; the int8 network then stays within the error
    /// its quantization allows. Each int8 layer rounds its input to 1/255 of its range and its weights
    /// to 1/254 of their largest magnitude: a relative error near 2^-8 per layer, which the ~50 layers
    /// compound and average; 8 x 2^-8 (3 %) bounds the network's mean relative error, and the labels
    /// must agree where f32's are not a near tie.
    func testCalibratedInt8StaysWithinItsQuantizationOfF32() throws {
        try XCTSkipUnless(Precision.int8.unsupportedReason == nil, "this CPU cannot run int8")
        let model = try DefaultModel.load()
        let frames = (0..<3).map { Self.frame(320, 96, seed: UInt64($0)) }
        let result = try Calibration.calibrate(model: model, frames: frames, threads: 2)
        let c = result.calibration
        XCTAssertEqual(c.images, 3)
        XCTAssertEqual(Set(c.inputRanges.keys), Set(result.layers.map(\.layer)))
        XCTAssertGreaterThan(c.inputRanges.count, 40)
        XCTAssertEqual(c.inputRanges["layer2.0.output.2"]![0], 0, "a depthwise ReLU6 output never goes below 0")
        XCTAssertLessThanOrEqual(c.inputRanges["layer2.0.output.2"]![1], 6)
        XCTAssertLessThan(c.inputRanges["layer3.0.output.0"]![0], 0, "a projection (linear) output is signed")

        var info = model.info
        info.int8 = c
        let calibrated = try Model(model, info: info)
        let test = Self.frame(320, 96, seed: 9)
        func run(_ p: Precision) throws -> Prediction {
            try test.pixels.withUnsafeBufferPointer { try ModelReplica(model: calibrated, threads: 2, precision: p).run(rgb: $0, width: 320, height: 96) }
        }
        let f32 = try run(.f32), int8 = try run(.int8), bf16 = try run(.bf16)
        func relative(_ a: [Float], _ b: [Float]) -> Double {
            zip(a, b).reduce(0) { $0 + Double(abs($1.0 - $1.1)) } / max(1e-12, a.reduce(0) { $0 + Double(abs($1)) })
        }
        let logitError = relative(f32.logits, int8.logits), depthError = relative(f32.depth, int8.depth)
        print("int8 against f32: logits \(logitError), depth \(depthError); bf16: \(relative(f32.logits, bf16.logits)) (mean relative); "
            + "\(c.keep.count) of \(c.inputRanges.count) layers kept in bf16")
        XCTAssertLessThan(c.keep.count, c.inputRanges.count / 2)
        XCTAssertGreaterThan(relative(bf16.logits, int8.logits), 1e-3, "int8 really ran (it is not the bf16 network)")
        XCTAssertLessThan(logitError, 8 * 0x1p-8)
        XCTAssertLessThan(depthError, 8 * 0x1p-8)
        XCTAssertGreaterThan(Calibration.compare(int8, f32).labels, 0.97)
    }
}

final class FusedGraphTests: XCTestCase {
    /// Reduced-precision replicas run the graph with the adds fused into the 1x1 convolutions before
    /// them: 25 of the 26 (the 10 residuals of the encoder, 12 in crp2-4, 3 in the decoder; the add of
    /// two non-convolution outputs stays), and the resize before the crp1 chain done by the chain;
    /// every step reading only tensors already written.
    func testResidualAddsAreFusedIntoTheConvolutionsBeforeThem() throws {
        let model = try DefaultModel.untrained()
        func adds(_ g: Graph) -> Int { g.steps.filter { if case .add = $0 { return true } else { return false } }.count }
        let fused = model.fusedGraph
        XCTAssertEqual(adds(model.graph), 26)
        XCTAssertEqual(adds(fused), 1)
        XCTAssertEqual(fused.steps.count, model.graph.steps.count - 25 - 1)
        func resizes(_ g: Graph) -> Int { g.steps.filter { if case .resize = $0 { return true } else { return false } }.count }
        XCTAssertEqual(resizes(fused), resizes(model.graph) - 1)
        guard case let .crpChain(_, x, addend, _, _) = fused.steps.first(where: { if case .crpChain = $0 { true } else { false } })!
        else { return XCTFail() }
        let shapes = fused.shapes(height: 370, width: 1226, model: model)
        XCTAssertEqual(shapes[addend].w * 2 - 1, shapes[x].w, "the chain reads the addend at half size and upsamples it")
        var written: Set<Int> = [fused.input]
        for step in fused.steps {
            for t in step.inputs { XCTAssertTrue(written.contains(t), "\(step) reads tensor \(t) before it is written") }
            written.formUnion(step.outputs)
        }
        let raws = fused.steps.compactMap { if case let .convAdd(_, _, _, _, _, raw) = $0 { return raw } else { return nil } }
        XCTAssertEqual(raws.count, 9, "crp2-4's first three stages keep the convolution's output for the next pool")
    }
}
