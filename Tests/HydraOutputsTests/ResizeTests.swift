import Foundation
import HydraEngine
import HydraKernels
import XCTest
@testable import HydraOutputs

/// Resizing against OpenCV's results (Fixtures/, written by make_fixtures.py).
final class ResizeTests: XCTestCase {
    let upsampler = Upsampler(threads: 2)

    func load(_ name: String) throws -> (shape: [Int], values: [Float]) {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "npy"), name)
        return try NPY.decode([UInt8](try Data(contentsOf: url)))
    }

    func forEachCase(_ body: (String, [Int], [Float], Int, Int) throws -> Void) throws {
        let urls = try FileManager.default.contentsOfDirectory(
            at: try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)), includingPropertiesForKeys: nil)
        var count = 0
        for url in urls where url.lastPathComponent.contains("_cubic_") {
            let base = url.deletingPathExtension().lastPathComponent
            let name = String(base.prefix { $0 != "_" })
            let size = base.split(separator: "_").last!.split(separator: "x").map { Int($0)! }
            let src = try load("\(name)_src")
            // Every clone set of the resize kernels this CPU can run (hydra_kernels_set_isa).
            for isa in ["avx512f", "avx2", "generic"] where hydra_kernels_set_isa(isa) == 0 {
                defer { _ = hydra_kernels_set_isa(nil) }
                try body("\(name) \(size.map(String.init).joined(separator: "x")) [\(isa)]", src.shape, src.values, size[0], size[1])
            }
            count += 1
        }
        XCTAssertGreaterThanOrEqual(count, 12)
    }

    func testBicubicMatchesOpenCV() throws {
        try forEachCase { name, shape, src, H, W in
            let want = try load("\(name.split(separator: " ")[0])_cubic_\(H)x\(W)").values
            let got = upsampler.resizeCubic(src, planes: shape[0], height: shape[1], width: shape[2], toHeight: H, width: W)
            let worst = zip(got, want).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 2e-5, name)
        }
    }

    func testFusedArgmaxMatchesArgmaxOfOpenCVBicubic() throws {
        try forEachCase { name, shape, src, H, W in
            let want = try load("\(name.split(separator: " ")[0])_argmax_\(H)x\(W)").values.map { UInt8($0) }
            let got = upsampler.argmaxCubic(src, planes: shape[0], height: shape[1], width: shape[2], toHeight: H, width: W)
            XCTAssertEqual(got, want, name)
        }
    }

    func testFastModeUsesBilinearDepthAndNearestLabels() throws {
        let src = try load("logits6_src")
        let (c, h, w) = (src.shape[0], src.shape[1], src.shape[2])
        let depthPlane = Array(src.values.prefix(h * w))
        let p = Prediction(height: h, width: w, numClasses: c, logits: src.values, depth: depthPlane, normals: nil)
        let fast = upsampler.upsample(p, width: 44, height: 36, fast: true)
        let linear = try load("logits6_linear_36x44").values.prefix(36 * 44)
        for (got, want) in zip(fast.depth, linear) { XCTAssertEqual(got, abs(want), accuracy: 2e-5) }
        for Y in 0..<36 {
            for X in 0..<44 {
                let x = min(w - 1, Int((Double(X) + 0.5) * Double(w) / 44))
                let y = min(h - 1, Int((Double(Y) + 0.5) * Double(h) / 36))
                var best = 0
                for k in 1..<c where src.values[k * h * w + y * w + x] > src.values[best * h * w + y * w + x] { best = k }
                XCTAssertEqual(Int(fast.labels[Y * 44 + X]), best, "(\(X), \(Y))")
            }
        }
    }

    func testDepthIsAbsoluteAndNormalsUnitLength() throws {
        let (h, w) = (4, 5)
        let depth = (0..<(h * w)).map { Float($0 % 2 == 0 ? -3 : 3) }
        let normals = (0..<(3 * h * w)).map { Float(($0 * 7) % 5) - 2 }
        let p = Prediction(height: h, width: w, numClasses: 2, logits: [Float](repeating: 0, count: 2 * h * w), depth: depth,
                           normals: normals)
        let d = upsampler.upsample(p, width: 20, height: 16)
        XCTAssertTrue(d.depth.allSatisfy { $0 >= 0 })
        let plane = 20 * 16
        for i in 0..<plane {
            let n = [d.normals![i], d.normals![plane + i], d.normals![2 * plane + i]]
            let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).squareRoot()
            XCTAssertTrue(abs(len - 1) < 1e-5 || len == 0)
        }
        XCTAssertTrue(d.labels.allSatisfy { $0 == 0 }, "ties go to the first class")
    }
}
