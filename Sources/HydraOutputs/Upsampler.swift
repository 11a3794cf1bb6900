import CXNNPACK
import HydraEngine
import HydraKernels

/// The network's outputs at the input's own size.
public struct DenseOutputs: Sendable {
    public let width: Int, height: Int
    /// Class id per pixel, row-major.
    public var labels: [UInt8]
    /// Metres (|network output|), row-major.
    public var depth: [Float]
    /// Unit surface normals, planar [3][height][width], for three-task weights.
    public var normals: [Float]?
}

/// Brings predictions from a quarter of the input size to the input size: bicubic as the
/// authors did (OpenCV INTER_CUBIC, a = -0.75) or, with `fast`, argmax at low resolution plus
/// nearest-neighbour labels and bilinear depth. Owns a thread pool; use from one thread at a time.
public final class Upsampler: @unchecked Sendable {
    let pool: pthreadpool_t?

    public init(threads: Int = 1) {
        pool = threads > 1 ? pthreadpool_create(threads) : nil
    }

    deinit { if let pool { pthreadpool_destroy(pool) } }

    public func upsample(_ p: Prediction, width: Int, height: Int, fast: Bool = false) -> DenseOutputs {
        precondition(p.numClasses <= 256, "labels are 8-bit")
        let (h, w) = (p.height, p.width)
        var tmp = [Float](repeating: 0, count: max(p.numClasses, 3) * h * width)
        var labels = [UInt8](repeating: 0, count: width * height)
        if fast {
            var low = [UInt8](repeating: 0, count: h * w)
            hydra_argmax(p.logits, p.numClasses, h * w, &low)
            hydra_resize_nearest_u8(low, h, w, &labels, height, width)
        } else {
            hydra_argmax_cubic(p.logits, p.numClasses, h, w, &labels, height, width, &tmp, pool)
        }
        var depth = [Float](repeating: 0, count: width * height)
        if fast {
            hydra_resize_bilinear(p.depth, 1, h, w, &depth, height, width, &tmp, pool)
        } else {
            hydra_resize_cubic(p.depth, 1, h, w, &depth, height, width, &tmp, pool)
        }
        for i in depth.indices { depth[i] = abs(depth[i]) }
        var normals: [Float]?
        if let n = p.normals {
            var up = [Float](repeating: 0, count: 3 * width * height)
            if fast {
                hydra_resize_bilinear(n, 3, h, w, &up, height, width, &tmp, pool)
            } else {
                hydra_resize_cubic(n, 3, h, w, &up, height, width, &tmp, pool)
            }
            let plane = width * height
            for i in 0..<plane {
                let (x, y, z) = (up[i], up[plane + i], up[2 * plane + i])
                let len = (x * x + y * y + z * z).squareRoot()
                let inv: Float = len > 0 ? 1 / len : 0
                up[i] = x * inv; up[plane + i] = y * inv; up[2 * plane + i] = z * inv
            }
            normals = up
        }
        return DenseOutputs(width: width, height: height, labels: labels, depth: depth, normals: normals)
    }

    /// Bicubic resize of planar maps, exposed for tests and tools.
    public func resizeCubic(_ src: [Float], planes: Int, height h: Int, width w: Int, toHeight H: Int, width W: Int) -> [Float] {
        var tmp = [Float](repeating: 0, count: planes * h * W)
        var dst = [Float](repeating: 0, count: planes * H * W)
        hydra_resize_cubic(src, planes, h, w, &dst, H, W, &tmp, pool)
        return dst
    }

    /// Bicubic upsampling fused with the argmax over planes.
    public func argmaxCubic(_ src: [Float], planes: Int, height h: Int, width w: Int, toHeight H: Int, width W: Int) -> [UInt8] {
        var tmp = [Float](repeating: 0, count: planes * h * W)
        var labels = [UInt8](repeating: 0, count: H * W)
        hydra_argmax_cubic(src, planes, h, w, &labels, H, W, &tmp, pool)
        return labels
    }
}
