import HydraImage

extension OutputRequest {
    /// An upper estimate of the bytes one request holds at its peak in a worker, beyond the model's
    /// activations: the decoded frame, the outputs at the frame's size, their encodings and the
    /// response body that frames them. The service refuses a request whose estimate exceeds what
    /// a worker may hold (`--max-memory`) before decoding it.
    ///
    /// - Parameters:
    ///   - width, height: the frame.
    ///   - network: the size the network runs at (the frame's, or smaller: `NetworkInput`).
    ///   - format: how the frame is encoded (a progressive JPEG keeps its coefficients while decoding).
    public func workingBytes(width: Int, height: Int, network: (width: Int, height: Int), numClasses: Int,
                             hasNormals: Bool, format: ImageDecoder.Format) -> Int {
        let P = width * height
        let image = 3 * P
        let decode = image + (format == .jpeg ? 7 * P : 0)
        let dense = P + 4 * P + (hasNormals ? 12 * P : 0)
        let networkOut = (network.height + 3) / 4
        let upsampleScratch = 4 * max(numClasses, 3) * networkOut * width
        let networkSide = 3 * network.width * network.height + 4 * (numClasses + 4) * networkOut * ((network.width + 3) / 4)
        var parts = 0, scratch = upsampleScratch
        for kind in outputs {
            switch kind {
            case .segmentation: parts += P + 4096
            case .depth:
                switch depthFormat {
                case .npy, .f32: parts += 4 * P
                case .png16: parts += 2 * P; scratch = max(scratch, 2 * P)
                case .colour: parts += 3 * P; scratch = max(scratch, 3 * P)
                }
            case .pointcloud:
                let points = ((width + stride - 1) / stride) * ((height + stride - 1) / stride)
                parts += points * (plyEncoding == .ascii ? 56 : 16)
                scratch = max(scratch, 16 * points)
            case .overlay:
                parts += overlayFormat == .jpeg ? P : 3 * P
                scratch = max(scratch, 3 * P)
            case .normals:
                parts += 12 * P + 3 * P
                scratch = max(scratch, 3 * P)
            case .summary:
                parts += 64 << 10
            }
        }
        let render = image + dense + parts + scratch
        let frame = image + 2 * parts
        return max(decode, render, frame) + networkSide + (1 << 20)
    }
}
