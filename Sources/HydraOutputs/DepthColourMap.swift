import Foundation

/// Colours for depth that people can read. Position on the map is inverse depth between the near
/// and far ends, because a street frame's depth is heavy-tailed: on a linear ramp over 6-102 m most
/// of a KITTI frame fell in the first 15 % and near cars looked like mid-distance houses. The map
/// itself runs in OKLab with lightness rising steadily from far (dark violet) to near (light
/// yellow), so equal steps of inverse depth look like equal steps; no depth stays black.
public enum DepthColourMap {
    /// 256 RGB entries, far (index 0) to near (255).
    public static let table: [[UInt8]] = (0..<256).map { entry(Double($0) / 255) }

    /// Position of `d` metres on the map (0 far, 1 near), clamped to the range.
    public static func position(_ d: Float, range: ClosedRange<Float>) -> Float {
        let near = max(range.lowerBound, 1e-3), far = max(range.upperBound, near * 1.001)
        let t = (1 / max(d, 1e-3) - 1 / far) / (1 / near - 1 / far)
        return max(0, min(1, t))
    }

    /// Round distances to mark on a legend, with their positions on the map: the ends and 1-2-5
    /// steps between them, at most `count`.
    public static func ticks(range: ClosedRange<Float>, count: Int = 6) -> [(metres: Float, position: Float)] {
        var values: [Float] = []
        var decade: Float = pow(10, floor(log10(max(range.lowerBound, 1e-3))))
        while decade <= range.upperBound * 10 {
            for m: Float in [1, 2, 5] where decade * m > range.lowerBound * 1.15 && decade * m < range.upperBound / 1.15 {
                values.append(decade * m)
            }
            decade *= 10
        }
        // Keep them evenly spread over the map when there are too many.
        while values.count > max(0, count - 2) { values = stride(from: 0, to: values.count, by: 2).map { values[$0] } }
        return ([range.lowerBound] + values + [range.upperBound]).map { ($0, position($0, range: range)) }
    }

    static func entry(_ t: Double) -> [UInt8] {
        let lightness = 0.32 + 0.62 * t
        let hue = (300 - 195 * t) * .pi / 180 // violet, blue, teal, green, yellow
        var chroma = 0.07 + 0.08 * sin(.pi * t) // stronger in the middle, where the ends' gamut is small
        // Bring the colour into sRGB by giving up chroma, never lightness (the ordering people read).
        var rgb = srgb(lightness, chroma * cos(hue), chroma * sin(hue))
        while rgb.contains(where: { $0 < 0 || $0 > 1 }) && chroma > 0 {
            chroma -= 0.002
            rgb = srgb(lightness, chroma * cos(hue), chroma * sin(hue))
        }
        return rgb.map { UInt8((max(0, min(1, $0)) * 255).rounded()) }
    }

    /// OKLab to gamma-encoded sRGB (Ottosson's published matrices), unclamped.
    static func srgb(_ L: Double, _ a: Double, _ b: Double) -> [Double] {
        let l = pow(L + 0.3963377774 * a + 0.2158037573 * b, 3)
        let m = pow(L - 0.1055613458 * a - 0.0638541728 * b, 3)
        let s = pow(L - 0.0894841775 * a - 1.2914855480 * b, 3)
        let linear = [4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
                      -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
                      -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s]
        return linear.map { $0 <= 0.0031308 ? 12.92 * $0 : 1.055 * pow($0, 1 / 2.4) - 0.055 }
    }
}
