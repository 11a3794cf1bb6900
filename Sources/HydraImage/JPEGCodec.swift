import CTurboJPEG

/// JPEG through libjpeg-turbo's TurboJPEG API (baseline, progressive, grey, CMYK).
public enum JPEGCodec {
    /// Width and height from the frame header, without decoding.
    public static func size(_ data: [UInt8]) throws -> (width: Int, height: Int) {
        guard let handle = tjInitDecompress() else { throw ImageError.corrupt(format: "JPEG", reason: "cannot create decoder") }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        let rc = data.withUnsafeBufferPointer { buf in
            tjDecompressHeader3(handle, buf.baseAddress, UInt(buf.count), &width, &height, &subsamp, &colorspace)
        }
        guard rc == 0 else { throw ImageError.corrupt(format: "JPEG", reason: lastError(handle)) }
        return (Int(width), Int(height))
    }

    public static func decode(_ data: [UInt8], limits: ImageLimits = ImageLimits()) throws -> RGBImage {
        guard let handle = tjInitDecompress() else {
            throw ImageError.corrupt(format: "JPEG", reason: "cannot create decoder")
        }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        let rc = data.withUnsafeBufferPointer { buf in
            tjDecompressHeader3(handle, buf.baseAddress, UInt(buf.count), &width, &height, &subsamp, &colorspace)
        }
        guard rc == 0 else { throw ImageError.corrupt(format: "JPEG", reason: lastError(handle)) }
        try limits.check(width: Int(width), height: Int(height))
        // libjpeg cannot turn CMYK/YCCK into RGB; take CMYK and convert it here.
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let channels = cmyk ? 4 : 3
        let format = cmyk ? TJPF_CMYK : TJPF_RGB
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
        // LIMITSCANS: a progressive file may have at most 500 scans (each one re-reads the whole coefficient
        // buffer, so thousands of tiny scans cost minutes for a small file).
        let flags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS
        let drc = data.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(src.count), dst.baseAddress,
                              width, 0, height, Int32(format.rawValue), flags)
            }
        }
        guard drc == 0 else { throw ImageError.corrupt(format: "JPEG", reason: lastError(handle)) }
        if cmyk { pixels = cmykToRGB(pixels) }
        return RGBImage(width: Int(width), height: Int(height), pixels: pixels)
    }

    /// Encodes RGB to baseline JPEG at `quality` (1...100).
    public static func encode(_ image: RGBImage, quality: Int = 90) throws -> [UInt8] {
        guard let handle = tjInitCompress() else {
            throw ImageError.corrupt(format: "JPEG", reason: "cannot create encoder")
        }
        defer { tjDestroy(handle) }
        var out: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let rc = image.pixels.withUnsafeBufferPointer { px in
            tjCompress2(handle, px.baseAddress, Int32(image.width), 0, Int32(image.height),
                        Int32(TJPF_RGB.rawValue), &out, &size, Int32(TJSAMP_420.rawValue),
                        Int32(max(1, min(100, quality))), TJFLAG_ACCURATEDCT)
        }
        guard rc == 0, let out else { throw ImageError.corrupt(format: "JPEG", reason: lastError(handle)) }
        defer { tjFree(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(size)))
    }

    /// Adobe writes CMYK JPEGs inverted (255 = no ink), so R = C * K / 255.
    static func cmykToRGB(_ cmyk: [UInt8]) -> [UInt8] {
        let n = cmyk.count / 4
        var rgb = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            let k = UInt32(cmyk[4 * i + 3])
            for j in 0..<3 { rgb[3 * i + j] = UInt8((UInt32(cmyk[4 * i + j]) * k + 127) / 255) }
        }
        return rgb
    }

    private static func lastError(_ handle: tjhandle) -> String {
        guard let p = tjGetErrorStr2(handle) else { return "unknown libjpeg-turbo error" }
        return String(cString: p)
    }
}
