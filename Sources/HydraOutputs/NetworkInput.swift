import HydraImage
import HydraKernels

/// Frames larger than the network is allowed to run at are shrunk first (area averaging, aspect
/// ratio kept); the outputs are still brought to the frame's own size, so only the network's working
/// memory and time depend on the limit.
public enum NetworkInput {
    /// The size the network runs at for a `width` x `height` frame: its own when it has at most
    /// `maxPixels`, else the largest of the same aspect ratio that fits (each side at least 32).
    public static func size(width: Int, height: Int, maxPixels: Int) -> (width: Int, height: Int) {
        guard width * height > maxPixels else { return (width, height) }
        let scale = (Double(maxPixels) / Double(width * height)).squareRoot()
        var w = max(32, Int(Double(width) * scale)), h = max(32, Int(Double(height) * scale))
        while w * h > maxPixels, w > 32 || h > 32 {
            if w >= h, w > 32 { w -= 1 } else if h > 32 { h -= 1 } else { w -= 1 }
        }
        return (min(w, width), min(h, height))
    }
}

extension Upsampler {
    /// `image` shrunk to `width` x `height` by area averaging (OpenCV's INTER_AREA), on this
    /// upsampler's threads.
    public func downscale(_ image: RGBImage, toWidth width: Int, height: Int) -> RGBImage {
        precondition(width <= image.width && height <= image.height, "downscale only shrinks")
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let rc = image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                hydra_resize_area_rgb8(src.baseAddress, image.height, image.width, dst.baseAddress, height, width, pool)
            }
        }
        precondition(rc == 0, "area resize failed (out of memory)")
        return RGBImage(width: width, height: height, pixels: out)
    }
}
