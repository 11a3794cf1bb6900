import Foundation
import HydraEngine
import HydraImage
import HydraServer
import HydraWeights

/// The code paths that read untrusted bytes, each as one function of a byte string: what libFuzzer
/// drives (`hydra-fuzz`, built with `-sanitize=fuzzer`) and what the regression tests replay.
/// Every function must return normally for every input: errors are expected, crashes are bugs.
package enum FuzzTarget: String, CaseIterable, Sendable {
    /// HTTP/1.1 requests as a client sends them, pipelined, through to the predict parameters,
    /// the multipart/form-data body and the image header.
    case http
    /// A chunked body (size lines, extensions, data, trailers, then perhaps a pipelined request)
    /// behind a fixed head, fed whole, a byte at a time and in two pieces: the three must read the
    /// same requests and bodies, or fail with the same status. A difference is a framing bug that a
    /// slow or fragmenting client (or a proxy) could exploit, so it traps.
    case chunked
    /// An open inference protocol request body: the first byte picks the content coding (identity,
    /// gzip, deflate) and whether the JSON header ends at the first NUL byte (the binary tensor
    /// extension) or spans the body; the rest is inflated (1 MiB at most) and read as an infer request.
    case infer
    /// A PNG file through libpng (the setjmp shim) to RGB.
    case png
    /// A JPEG file through libjpeg-turbo to RGB.
    case jpeg
    /// A safetensors file: header, offsets, dtypes, every tensor read, then the model built from it.
    case safetensors
    /// A PyTorch checkpoint (zip or legacy pickle) through the restricted unpickler.
    case checkpoint
    /// A multipart/form-data body (boundary `XyZ`) through `FormData` to the image field.
    case formdata

    /// Runs one input.
    package func run(_ data: [UInt8]) {
        switch self {
        case .http: Self.http(data)
        case .chunked: Self.chunked(data)
        case .infer: Self.infer(data)
        case .png: _ = try? PNGCodec.decode(data, limits: Self.imageLimits)
        case .jpeg: _ = try? JPEGCodec.decode(data, limits: Self.imageLimits)
        case .safetensors: Self.withFile(data) { path in
            guard let file = try? SafeTensorsFile(path: path) else { return }
            for name in file.names { _ = try? file.floats(name) }
            _ = try? Model(safetensors: file)
        }
        case .checkpoint: Self.withFile(data) { path in _ = try? TorchCheckpoint.read(path: path) }
        case .formdata: _ = try? RequestImage.bytes(body: data, contentType: "multipart/form-data; boundary=XyZ")
        }
    }

    /// Small enough that a decoded fuzz image costs little, large enough for real headers.
    static let imageLimits = ImageLimits(maxPixels: 1 << 20)

    /// The predict parameters are validated against a model (class names for drop_classes).
    static let model: Model = {
        guard let m = try? DefaultModel.untrained() else { fatalError("the untrained model could not be built") }
        return m
    }()

    static func http(_ data: [UInt8]) {
        let reader = RequestReader(maxHeaderBytes: 16 << 10, maxBodyBytes: 1 << 20)
        // The last byte picks where the stream is cut in two, so requests also arrive split.
        let cut = data.isEmpty ? 0 : Int(data[data.count - 1]) % (data.count + 1)
        var feeds = [Array(data[..<cut]), Array(data[cut...])]
        var served = 0
        while !feeds.isEmpty, served < 16 {
            switch reader.feed(feeds.removeFirst()) {
            case .incomplete:
                continue
            case let .failed(problem):
                _ = problem.response(instance: "/", requestID: reader.requestID)
                return
            case let .request(request, rest):
                served += 1
                serve(request)
                if !rest.isEmpty { feeds.insert(rest, at: 0) }
            }
        }
    }

    static let chunkedHead = Array(("POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
        + "Transfer-Encoding: chunked\r\n\r\n").utf8)

    static func chunked(_ data: [UInt8]) {
        let stream = chunkedHead + data
        let whole = readAll([stream])
        let bytewise = readAll(stream.map { [$0] })
        let cut = chunkedHead.count + (data.isEmpty ? 0 : Int(data[0]) % (data.count + 1))
        let split = readAll([Array(stream[..<cut]), Array(stream[cut...])])
        guard whole == bytewise, whole == split else {
            fatalError("chunked framing depends on how the bytes arrive: whole \(whole), bytewise \(bytewise), split \(split)")
        }
    }

    /// What a reader makes of a stream arriving in `pieces`: each request (method, target, body) or
    /// the status it failed with, in order.
    static func readAll(_ pieces: [[UInt8]]) -> [String] {
        let reader = RequestReader(maxHeaderBytes: 16 << 10, maxBodyBytes: 1 << 20)
        var seen: [String] = []
        var pending = pieces[...]
        var carry: [UInt8] = []
        while seen.count < 8 {
            let next: [UInt8]
            if !carry.isEmpty {
                next = carry
                carry = []
            } else if let piece = pending.popFirst() {
                next = piece
            } else {
                break
            }
            switch reader.feed(next) {
            case .incomplete:
                continue
            case let .failed(problem):
                seen.append("failed \(problem.status)")
                return seen
            case let .request(request, rest):
                seen.append("\(request.method) \(request.target) \(request.body.count) \(request.body.hashValue)")
                // A piece cut short by the end of a request: its rest comes before later pieces.
                carry = rest
            }
        }
        return seen
    }

    static func infer(_ data: [UInt8]) {
        guard let first = data.first else { return }
        let coding = [ContentCoding.identity, .gzip, .deflate][Int(first) % 3]
        do {
            var body = try coding.decode(Array(data.dropFirst()), limit: 1 << 20)
            var headerLength: Int?
            if first & 0x80 != 0, let nul = body.firstIndex(of: 0) {
                body.remove(at: nul)
                headerLength = nul
            }
            _ = try InferRequest(body: body, headerLength: headerLength, maxPixels: 1 << 16)
        } catch let problem as Problem {
            _ = problem.inferenceError()
        } catch {
            _ = "\(error)"
        }
    }

    /// What the service does with a request before the engine: path, query, parameters, body.
    static func serve(_ request: HTTPRequest) {
        do {
            _ = request.path
            _ = request.pathSegments
            _ = try PredictParameters(query: request.queryParameters(), model: model, defaultTimeoutMs: 30_000)
            let image = try RequestImage.bytes(body: request.body, contentType: request.header("Content-Type") ?? "")
            _ = try ImageDecoder.decode(image, limits: imageLimits)
        } catch let problem as Problem {
            _ = problem.response(instance: String(request.path.prefix(200)), requestID: "fuzz")
        } catch {
            _ = "\(error)"
        }
    }

    /// The file readers take paths (they memory-map or open archives), so the input goes to a file.
    static func withFile(_ data: [UInt8], _ body: (String) -> Void) {
        let path = NSTemporaryDirectory() + "hydra-fuzz-\(getpid()).bin"
        guard FileManager.default.createFile(atPath: path, contents: Data(data)) else { fatalError("cannot write \(path)") }
        defer { unlink(path) }
        body(path)
    }
}
