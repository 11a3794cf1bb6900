/// An 8-bit RGB image, rows top to bottom, pixels interleaved (R, G, B).
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` bytes.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3,
                     "RGBImage: pixel buffer does not match \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Why an image could not be decoded. Every case is the caller's input, never a crash.
public enum ImageError: Error, Equatable, CustomStringConvertible {
    case unknownFormat
    case corrupt(format: String, reason: String)
    case tooLarge(width: Int, height: Int, limit: Int)
    case empty

    public var description: String {
        switch self {
        case .unknownFormat: return "the data is neither PNG nor JPEG"
        case let .corrupt(format, reason): return "corrupt \(format) image: \(reason)"
        case let .tooLarge(w, h, limit):
            return "image is \(w)x\(h) = \(w * h) pixels, over the limit of \(limit)"
        case .empty: return "the image data is empty"
        }
    }
}

/// Limits applied before any pixel memory is allocated.
public struct ImageLimits: Sendable {
    /// Largest accepted width x height.
    public var maxPixels: Int
    public init(maxPixels: Int = 40_000_000) { self.maxPixels = maxPixels }

    public func check(width: Int, height: Int) throws {
        guard width > 0, height > 0 else {
            throw ImageError.corrupt(format: "image", reason: "zero width or height")
        }
        let (product, overflow) = width.multipliedReportingOverflow(by: height)
        if overflow || product > maxPixels {
            throw ImageError.tooLarge(width: width, height: height, limit: maxPixels)
        }
    }
}
