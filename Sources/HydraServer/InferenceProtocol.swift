import Foundation
import HydraImage
import HydraOutputs

/// A `POST /v2/models/{name}/infer` request of KServe's open inference protocol, decoded: the JSON
/// header and, with the binary tensor extension (`Inference-Header-Content-Length`), the tensors'
/// bytes after it, as Triton and tritonclient lay them out.
package struct InferRequest {
    enum Input {
        /// An encoded PNG or JPEG (`image`, BYTES [1]).
        case image([UInt8])
        /// RGB pixels (`pixels`, UINT8 [H,W,3] or [1,H,W,3]).
        case pixels(RGBImage)
    }

    struct Output {
        let name: String
        /// The output's own `binary_data`; nil: the request's `binary_data_output`.
        let binary: Bool?
    }

    var id: String?
    var input: Input
    /// Requested outputs; empty: segmentation and depth.
    var outputs: [Output] = []
    var binaryOutput = false
    /// The /v1 query parameters given as request parameters, as strings.
    var query: [(String, String)] = []

    /// Tensor outputs, and BYTES outputs carrying what /v1 returns for its picture and file outputs.
    static let tensorOutputs: [String: String] = ["segmentation": "UINT8", "depth": "FP32", "normals": "FP32", "logits": "FP32"]
    static let fileOutputs: [String: OutputKind] = ["segmentation_png": .segmentation, "depth_file": .depth,
                                                    "pointcloud": .pointcloud, "overlay": .overlay, "summary": .summary]
    static let defaultOutputs = ["segmentation", "depth"]

    /// Throws 400 problems naming what is wrong; `maxPixels` bounds `pixels` tensors (413).
    package init(body: [UInt8], headerLength: Int?, maxPixels: Int) throws {
        let jsonEnd = headerLength ?? body.count
        guard jsonEnd > 0, jsonEnd <= body.count else {
            throw Problem(400, "Inference-Header-Content-Length \(headerLength ?? 0) does not fit the body of \(body.count) bytes")
        }
        guard let top = try? JSONSerialization.jsonObject(with: Data(body[..<jsonEnd])) as? [String: Any] else {
            throw Problem(400, "the inference request header is not a JSON object")
        }
        var binary = body[jsonEnd...]
        id = top["id"] as? String
        if let parameters = top["parameters"] {
            guard let p = parameters as? [String: Any] else { throw Problem(400, "parameters must be an object") }
            for (key, value) in p.sorted(by: { $0.key < $1.key }) {
                switch key {
                case "binary_data_output":
                    guard let b = Self.boolean(value) else { throw Problem(400, "binary_data_output must be true or false") }
                    binaryOutput = b
                case "timeout":
                    // Triton's request timeout, in microseconds.
                    guard let us = Self.integer(value), us > 0 else { throw Problem(400, "timeout must be a positive integer (microseconds)") }
                    query.append(("timeout_ms", "\(max(1, (us + 999) / 1000))"))
                case "outputs", "timeout_ms":
                    throw Problem(400, key == "outputs" ? "name outputs in the request's outputs list, not as a parameter"
                                                        : "give the deadline as timeout, in microseconds")
                default:
                    guard PredictParameters.names.contains(key) else {
                        let known = ["binary_data_output", "timeout"] + PredictParameters.names.subtracting(["outputs", "timeout_ms"]).sorted()
                        throw Problem(400, "unknown parameter '\(key.prefix(40))'; known: \(known.joined(separator: ", "))")
                    }
                    query.append((key, try Self.text(value, key)))
                }
            }
        }
        guard let inputs = top["inputs"] as? [[String: Any]], inputs.count == 1 else {
            throw Problem(400, "inputs must list one tensor: image (BYTES [1], an encoded PNG or JPEG) or pixels (UINT8 [H,W,3])")
        }
        input = try Self.input(inputs[0], binary: &binary, maxPixels: maxPixels)
        guard binary.isEmpty else { throw Problem(400, "\(binary.count) bytes after the inputs' binary data") }
        if let list = top["outputs"] {
            guard let list = list as? [[String: Any]] else { throw Problem(400, "outputs must be a list of objects") }
            for o in list {
                guard let name = o["name"] as? String else { throw Problem(400, "every output needs a name") }
                guard Self.tensorOutputs[name] != nil || Self.fileOutputs[name] != nil else {
                    throw Problem(400, "unknown output '\(name.prefix(40))'; outputs: "
                        + (Self.tensorOutputs.keys.sorted() + Self.fileOutputs.keys.sorted()).joined(separator: ", "))
                }
                guard !outputs.contains(where: { $0.name == name }) else { throw Problem(400, "output '\(name)' is requested twice") }
                let p = o["parameters"] as? [String: Any] ?? [:]
                let b = p["binary_data"].map { Self.boolean($0) }
                if let b, b == nil { throw Problem(400, "binary_data of output \(name) must be true or false") }
                outputs.append(Output(name: name, binary: b ?? nil))
            }
        }
    }

    private static func input(_ t: [String: Any], binary: inout ArraySlice<UInt8>, maxPixels: Int) throws -> Input {
        let name = t["name"] as? String ?? ""
        let datatype = t["datatype"] as? String ?? ""
        guard let shape = (t["shape"] as? [Any])?.map({ integer($0) }), !shape.contains(nil) else {
            throw Problem(400, "input \(name.prefix(40)) needs a shape of integers")
        }
        let dims = shape.map { $0! }
        var raw: [UInt8]?
        if let size = (t["parameters"] as? [String: Any])?["binary_data_size"] {
            guard let n = integer(size), n >= 0, n <= binary.count else {
                throw Problem(400, "binary_data_size of input \(name.prefix(40)) is more than the \(binary.count) bytes after the header")
            }
            raw = Array(binary.prefix(n))
            binary = binary.dropFirst(n)
        }
        switch (name, datatype) {
        case ("image", "BYTES"):
            guard dims == [1] || dims == [1, 1] else {
                throw Problem(400, "image must have shape [1] (one encoded frame); batches are not supported")
            }
            if let raw {
                // BYTES elements are a 4-byte little-endian length, then the bytes.
                guard raw.count >= 4 else { throw Problem(400, "image's binary data is shorter than its length prefix") }
                let n = Int(raw[0]) | Int(raw[1]) << 8 | Int(raw[2]) << 16 | Int(raw[3]) << 24
                guard n == raw.count - 4 else { throw Problem(400, "image's length prefix says \(n) bytes, its binary data holds \(raw.count - 4)") }
                return .image(Array(raw[4...]))
            }
            guard let data = t["data"] as? [Any], data.count == 1, let s = data[0] as? String else {
                throw Problem(400, "image needs binary data (binary_data_size) or data with one string")
            }
            return .image(Array(s.utf8))
        case ("pixels", "UINT8"):
            let hw: [Int]
            switch dims.count {
            case 3: hw = Array(dims[0...1])
            case 4 where dims[0] == 1: hw = Array(dims[1...2])
            default: throw Problem(400, "pixels must have shape [H,W,3] or [1,H,W,3]")
            }
            guard dims.last == 3, hw.allSatisfy({ $0 >= 32 && $0 <= 100_000 }) else {
                throw Problem(400, "pixels must have shape [H,W,3] with H and W of 32 or more, got \(dims)")
            }
            guard hw[0] * hw[1] <= maxPixels else {
                throw Problem(413, "pixels of \(hw[1])x\(hw[0]) exceed the limit of \(maxPixels) pixels")
            }
            let count = hw[0] * hw[1] * 3
            var pixels: [UInt8]
            if let raw {
                guard raw.count == count else { throw Problem(400, "pixels' binary data holds \(raw.count) bytes, its shape needs \(count)") }
                pixels = raw
            } else {
                guard let data = t["data"] as? [Any] else { throw Problem(400, "pixels need binary data (binary_data_size) or data") }
                pixels = []
                pixels.reserveCapacity(count)
                try flatten(data, into: &pixels, limit: count)
                guard pixels.count == count else { throw Problem(400, "pixels' data holds \(pixels.count) values, its shape needs \(count)") }
            }
            return .pixels(RGBImage(width: hw[1], height: hw[0], pixels: pixels))
        default:
            throw Problem(400, "unknown input \(name.prefix(40)) (\(datatype.prefix(16))); send image (BYTES [1]) or pixels (UINT8 [H,W,3])")
        }
    }

    /// Row-major or nested JSON data of UINT8 values.
    private static func flatten(_ data: [Any], into out: inout [UInt8], limit: Int) throws {
        for v in data {
            if let nested = v as? [Any] {
                try flatten(nested, into: &out, limit: limit)
            } else {
                guard let n = integer(v), (0...255).contains(n) else { throw Problem(400, "pixels' data must be integers 0-255") }
                guard out.count < limit else { throw Problem(400, "pixels' data holds more values than its shape") }
                out.append(UInt8(n))
            }
        }
    }

    /// JSON true/false (Foundation gives them as NSNumber of type "c"; `1 as? Bool` also succeeds).
    static func boolean(_ v: Any) -> Bool? {
        guard let n = v as? NSNumber, String(cString: n.objCType) == "c" else { return nil }
        return n.boolValue
    }

    static func integer(_ v: Any) -> Int? {
        guard let n = v as? NSNumber, boolean(n) == nil else { return nil }
        let d = n.doubleValue
        guard d.rounded() == d, abs(d) < 1e15 else { return nil }
        return Int(d)
    }

    private static func text(_ v: Any, _ key: String) throws -> String {
        switch v {
        case let s as String: return s
        case let n as NSNumber where boolean(n) != nil: return n.boolValue ? "true" : "false"
        case let n as NSNumber: return integer(n).map(String.init) ?? "\(n.doubleValue)"
        default: throw Problem(400, "parameter \(key.prefix(40)) must be a string, number or boolean")
        }
    }

    /// The /v1 outputs needed to render the requested BYTES outputs.
    var fileKinds: [OutputKind] { outputs.compactMap { Self.fileOutputs[$0.name] } }
    var outputNames: [String] { outputs.isEmpty ? Self.defaultOutputs : outputs.map(\.name) }
    func binary(_ name: String) -> Bool { outputs.first { $0.name == name }?.binary ?? binaryOutput }
}

/// One output tensor of an infer response.
struct InferTensor {
    enum Elements {
        case uint8([UInt8])
        case float([Float])
        /// One BYTES element: a file's bytes (sent length-prefixed).
        case file([UInt8])
    }

    let name: String
    let shape: [Int]
    let elements: Elements

    var datatype: String {
        switch elements {
        case .uint8: return "UINT8"
        case .float: return "FP32"
        case .file: return "BYTES"
        }
    }

    /// Little-endian element bytes; for BYTES, each element length-prefixed.
    var binary: [UInt8] {
        switch elements {
        case let .uint8(v): return v
        case let .float(v): return v.withUnsafeBytes { Array($0) }
        case let .file(b):
            let n = UInt32(b.count)
            return [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)] + b
        }
    }

    /// The JSON `data` array, written directly: Foundation's serializer takes seconds for a KITTI
    /// frame's 453,620 depth values (boxing each one), this about a tenth of that.
    var jsonData: [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        switch elements {
        case let .uint8(v):
            out.reserveCapacity(v.count * 4 + 2)
            for (i, x) in v.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                if x >= 100 { out.append(48 + x / 100) }
                if x >= 10 { out.append(48 + x / 10 % 10) }
                out.append(48 + x % 10)
            }
        case let .float(v):
            out.reserveCapacity(v.count * 10 + 2)
            for (i, x) in v.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                // The shortest text that reads back as the same float; JSON has no NaN or infinity.
                if x.isFinite { out += x.description.utf8 } else { out += "null".utf8 }
            }
        case .file:
            break
        }
        out.append(UInt8(ascii: "]"))
        return out
    }
}

enum InferResponse {
    /// Frames the response: the JSON header, then the binary outputs in order
    /// (`Inference-Header-Content-Length` says where the header ends).
    static func encode(_ tensors: [InferTensor], binary: (String) -> Bool, modelName: String, id: String?) throws -> HTTPResponse {
        var outputs: [[UInt8]] = []
        var tail: [UInt8] = []
        for t in tensors {
            var o: [String: Any] = ["name": t.name, "datatype": t.datatype, "shape": t.shape]
            // BYTES outputs carry files (PLY, PNG) that JSON strings cannot hold: always binary.
            let asBinary = binary(t.name) || t.datatype == "BYTES"
            if asBinary {
                let bytes = t.binary
                o["parameters"] = ["binary_data_size": bytes.count]
                tail += bytes
            }
            var json = Array(try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]))
            if !asBinary {
                json.removeLast()  // "}"
                json += #","data":"#.utf8
                json += t.jsonData
                json.append(UInt8(ascii: "}"))
            }
            outputs.append(json)
        }
        var top: [String: Any] = ["model_name": modelName, "model_version": "1"]
        if let id { top["id"] = id }
        var header = Array(try JSONSerialization.data(withJSONObject: top, options: [.sortedKeys]))
        header.removeLast()
        header += #","outputs":["#.utf8
        for (i, o) in outputs.enumerated() {
            if i > 0 { header.append(UInt8(ascii: ",")) }
            header += o
        }
        header += "]}".utf8
        if tail.isEmpty { return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: header) }
        return HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream"),
                                                   ("Inference-Header-Content-Length", "\(header.count)")], body: header + tail)
    }
}
