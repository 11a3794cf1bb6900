import CPNG

/// PNG through libpng. The setjmp error handling lives in the C shim.
public enum PNGCodec {
    /// Header facts, read without decoding pixels.
    public struct Header: Sendable, Equatable {
        public let width: Int, height: Int, bitDepth: Int, colorType: Int, interlaced: Bool
    }

    public static func header(_ data: [UInt8]) throws -> Header {
        var info = hydra_png_info()
        var err = [CChar](repeating: 0, count: 256)
        let rc = data.withUnsafeBufferPointer { buf in
            hydra_png_probe(buf.baseAddress, buf.count, &info, &err, err.count)
        }
        guard rc == 0 else { throw ImageError.corrupt(format: "PNG", reason: message(err)) }
        return Header(width: Int(info.width), height: Int(info.height), bitDepth: Int(info.bit_depth),
                      colorType: Int(info.color_type), interlaced: info.interlaced != 0)
    }

    public static func decode(_ data: [UInt8], limits: ImageLimits = ImageLimits()) throws -> RGBImage {
        let h = try header(data)
        try limits.check(width: h.width, height: h.height)
        var pixels = [UInt8](repeating: 0, count: h.width * h.height * 3)
        var err = [CChar](repeating: 0, count: 256)
        let rc = data.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                hydra_png_decode_rgb8(src.baseAddress, src.count, dst.baseAddress,
                                      UInt32(h.width), UInt32(h.height), &err, err.count)
            }
        }
        guard rc == 0 else { throw ImageError.corrupt(format: "PNG", reason: message(err)) }
        return RGBImage(width: h.width, height: h.height, pixels: pixels)
    }

    /// Samples as stored, without colour conversion (what label maps and depth maps need).
    public struct RawImage: Sendable {
        public let width: Int, height: Int
        /// Samples per pixel: 1 (grey or palette index), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
        public let channels: Int
        public let bitDepth: Int
        /// 8-bit samples, or for 16-bit images the values (big-endian pairs already combined).
        public let samples: [UInt16]
        /// PLTE entries for palette images.
        public let palette: [[UInt8]]
    }

    public static func decodeRaw(_ data: [UInt8], limits: ImageLimits = ImageLimits()) throws -> RawImage {
        let h = try header(data)
        try limits.check(width: h.width, height: h.height)
        let wide = h.bitDepth > 8
        let maxChannels = 4
        var buffer = [UInt8](repeating: 0, count: h.width * h.height * maxChannels * (wide ? 2 : 1))
        var palette = [UInt8](repeating: 0, count: 768)
        var channels: Int32 = 0, paletteLength: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = data.withUnsafeBufferPointer { src in
            buffer.withUnsafeMutableBufferPointer { dst in
                hydra_png_decode_raw(src.baseAddress, src.count, dst.baseAddress, dst.count, &channels, &palette,
                                     &paletteLength, &err, err.count)
            }
        }
        guard rc == 0 else { throw ImageError.corrupt(format: "PNG", reason: message(err)) }
        let count = h.width * h.height * Int(channels)
        let samples: [UInt16] = wide
            ? (0..<count).map { UInt16(buffer[2 * $0]) << 8 | UInt16(buffer[2 * $0 + 1]) }
            : buffer.prefix(count).map { UInt16($0) }
        let pal = (0..<Int(paletteLength)).map { Array(palette[(3 * $0)..<(3 * $0 + 3)]) }
        return RawImage(width: h.width, height: h.height, channels: Int(channels), bitDepth: wide ? 16 : 8,
                        samples: samples, palette: pal)
    }

    /// PNG colour layouts the encoder writes.
    public enum Layout: Sendable {
        case grey8, grey16, rgb8, rgba8
        /// One byte per pixel indexing `colours` (at most 256 RGB triples).
        case palette(colours: [(UInt8, UInt8, UInt8)])
    }

    /// The row filters libpng may choose from, per row (PNG_FILTER_* bits). Empty: libpng's default
    /// (no filter for palette images, adaptive over all five for the others).
    public struct Filters: OptionSet, Sendable, Hashable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let none = Filters(rawValue: 0x08), sub = Filters(rawValue: 0x10), up = Filters(rawValue: 0x20)
        public static let average = Filters(rawValue: 0x40), paeth = Filters(rawValue: 0x80)
        public static let all: Filters = [.none, .sub, .up, .average, .paeth]
        public static let libpngDefault: Filters = []
    }

    /// How hard to compress: zlib level 0...9 and the row filters.
    public struct Options: Sendable, Hashable {
        public var level: Int
        public var filters: Filters
        public init(level: Int = 6, filters: Filters = .libpngDefault) {
            self.level = level
            self.filters = filters
        }
    }

    /// Encodes `samples` (row-major; for `.grey16` big-endian byte pairs as PNG stores them).
    public static func encode(width: Int, height: Int, layout: Layout, samples: [UInt8],
                              options: Options = Options()) throws -> [UInt8] {
        let colorType: Int32, depth: Int32, bytesPerPixel: Int
        var palette: [UInt8] = []
        switch layout {
        case .grey8: (colorType, depth, bytesPerPixel) = (0, 8, 1)
        case .grey16: (colorType, depth, bytesPerPixel) = (0, 16, 2)
        case .rgb8: (colorType, depth, bytesPerPixel) = (2, 8, 3)
        case .rgba8: (colorType, depth, bytesPerPixel) = (6, 8, 4)
        case let .palette(colours):
            (colorType, depth, bytesPerPixel) = (3, 8, 1)
            palette = colours.flatMap { [$0.0, $0.1, $0.2] }
        }
        precondition(samples.count == width * height * bytesPerPixel, "PNG encode: sample count mismatch")
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = samples.withUnsafeBufferPointer { px in
            palette.withUnsafeBufferPointer { pal in
                hydra_png_encode(px.baseAddress, UInt32(width), UInt32(height), colorType, depth,
                                 pal.baseAddress, Int32(palette.count / 3), Int32(max(0, min(9, options.level))),
                                 options.filters.rawValue, &out, &size, &err, err.count)
            }
        }
        guard rc == 0, let out else { throw ImageError.corrupt(format: "PNG", reason: message(err)) }
        defer { hydra_png_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    static func message(_ err: [CChar]) -> String {
        let s = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.isEmpty ? "unknown libpng error" : s
    }
}
