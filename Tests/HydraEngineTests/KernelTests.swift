import CXNNPACK
import HydraKernels
import XCTest

final class KernelTests: XCTestCase {
    /// PyTorch's MaxPool2d(5, stride 1, padding 2), written the obvious way.
    func naiveMaxPool(_ x: [Float], h: Int, w: Int, c: Int) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for y in 0..<h { for xx in 0..<w { for k in 0..<c {
            var m = -Float.infinity
            for dy in -2...2 { for dx in -2...2 {
                let yy = y + dy, xs = xx + dx
                if yy >= 0, yy < h, xs >= 0, xs < w { m = max(m, x[(yy * w + xs) * c + k]) }
            } }
            out[(y * w + xx) * c + k] = m
        } } }
        return out
    }

    func testMaxPoolMatchesDefinitionAtOddSizesAndBorders() throws {
        let pool = pthreadpool_create(2)
        defer { pthreadpool_destroy(pool) }
        var rng = SystemRandomNumberGenerator()
        for (h, w, c) in [(1, 1, 1), (2, 3, 5), (5, 5, 16), (7, 11, 3), (13, 4, 256), (9, 17, 33)] {
            let x = (0..<(h * w * c)).map { _ in Float.random(in: -5...5, using: &rng) }
            var out = [Float](repeating: .nan, count: x.count + 4)
            hydra_maxpool5(x, &out, h, w, c, pool)
            XCTAssertEqual(Array(out.prefix(x.count)), naiveMaxPool(x, h: h, w: w, c: c), "\(h)x\(w)x\(c)")
            XCTAssertTrue(out.suffix(4).allSatisfy(\.isNaN), "wrote past the end")
        }
    }

    func testChannelScaleClamps() {
        let x: [Float] = [1, -2, 3, 10, -4, 0.5]
        let s: [Float] = [2, 3, -1]
        var out = [Float](repeating: 0, count: 6)
        hydra_channel_scale(x, s, &out, 2, 3, 0, 6, nil)
        XCTAssertEqual(out, [2, 0, 0, 6, 0, 0])
        hydra_channel_scale(x, s, &out, 2, 3, -.infinity, .infinity, nil)
        XCTAssertEqual(out, [2, -6, -3, 20, -12, -0.5])
    }

    func testPreprocessNormalises() {
        let rgb: [UInt8] = [0, 128, 255, 255, 0, 7]
        var out = [Float](repeating: 0, count: 6)
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        hydra_preprocess_rgb8(rgb, 2, mean, std, &out, nil)
        for i in 0..<6 {
            let want = (Float(rgb[i]) / 255 - mean[i % 3]) / std[i % 3]
            XCTAssertEqual(out[i], want, accuracy: 1e-6)
        }
    }

    func testDispatchNamesAnInstructionSet() {
        XCTAssertTrue(["avx512f", "avx2", "generic"].contains(String(cString: hydra_kernels_isa())))
    }
}
