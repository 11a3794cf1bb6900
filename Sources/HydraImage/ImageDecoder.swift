/// Decodes PNG and JPEG bytes to `RGBImage`, choosing the codec by signature.
public enum ImageDecoder {
    public enum Format: String, Sendable { case png, jpeg }

    /// The format named by the data's first bytes, or nil.
    public static func sniff(_ data: some Collection<UInt8>) -> Format? {
        let head = Array(data.prefix(8))
        if head.count >= 8, head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        return nil
    }

    /// Format, width and height from the header, before any pixel memory is allocated.
    public static func size(_ data: [UInt8]) throws -> (format: Format, width: Int, height: Int) {
        guard !data.isEmpty else { throw ImageError.empty }
        switch sniff(data) {
        case .png:
            let h = try PNGCodec.header(data)
            return (.png, h.width, h.height)
        case .jpeg:
            let (w, h) = try JPEGCodec.size(data)
            return (.jpeg, w, h)
        case nil: throw ImageError.unknownFormat
        }
    }

    public static func decode(_ data: [UInt8], limits: ImageLimits = ImageLimits()) throws -> RGBImage {
        guard !data.isEmpty else { throw ImageError.empty }
        switch sniff(data) {
        case .png: return try PNGCodec.decode(data, limits: limits)
        case .jpeg: return try JPEGCodec.decode(data, limits: limits)
        case nil: throw ImageError.unknownFormat
        }
    }
}
