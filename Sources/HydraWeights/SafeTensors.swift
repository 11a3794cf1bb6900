import Foundation

/// Shape, dtype and place of one tensor in a safetensors file.
public struct TensorInfo: Sendable, Equatable {
    public let dtype: DType
    public let shape: [Int]
    /// Byte range inside the data section (after the header).
    public let range: Range<Int>
    public var count: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file (https://huggingface.co/docs/safetensors): an 8-byte
/// little-endian header length, a JSON header, then the tensor bytes. Everything is
/// validated on open: a file that opens can be read without further checks.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Larger headers are refused before they are read (the format's own reader uses the same bound).
    public static let maxHeaderBytes = 100_000_000

    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    /// Names in file order.
    public let names: [String]
    private let file: MappedFile
    private let dataStart: Int

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let parsed = try file.withBytes { try Self.parse($0) }
        tensors = parsed.tensors
        metadata = parsed.metadata
        names = parsed.names
        dataStart = parsed.dataStart
    }

    /// The tensor's elements converted to Float.
    public func floats(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else { throw WeightsError.missingTensor(name) }
        return file.withBytes { raw in
            info.dtype.floats(UnsafeRawBufferPointer(rebasing: raw[(dataStart + info.range.lowerBound)..<(dataStart + info.range.upperBound)]),
                              count: info.count)
        }
    }

    /// The tensor's raw little-endian bytes.
    public func bytes(_ name: String) throws -> [UInt8] {
        guard let info = tensors[name] else { throw WeightsError.missingTensor(name) }
        return file.withBytes { raw in
            Array(raw[(dataStart + info.range.lowerBound)..<(dataStart + info.range.upperBound)])
        }
    }

    struct Parsed {
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        var names: [String] = []
        var dataStart = 0
    }

    static func parse(_ raw: UnsafeRawBufferPointer) throws -> Parsed {
        func fail(_ s: String) -> WeightsError { .invalidSafetensors(s) }
        guard raw.count >= 8 else { throw fail("file is \(raw.count) bytes, shorter than the 8-byte header length") }
        let n64 = raw.loadUnaligned(as: UInt64.self).littleEndian
        guard n64 <= UInt64(maxHeaderBytes) else { throw fail("header length \(n64) exceeds \(maxHeaderBytes) bytes") }
        let n = Int(n64)
        guard n <= raw.count - 8 else { throw fail("header length \(n) runs past the end of the \(raw.count)-byte file") }
        let headerBytes = Data(raw[8..<(8 + n)])
        guard headerBytes.first == UInt8(ascii: "{") else { throw fail("header is not a JSON object") }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerBytes) } catch { throw fail("header is not valid JSON") }
        guard let header = json as? [String: Any] else { throw fail("header is not a JSON object") }

        var p = Parsed()
        p.dataStart = 8 + n
        let dataSize = raw.count - p.dataStart
        var entries: [(String, TensorInfo)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in meta {
                    guard let s = v as? String else { throw fail("__metadata__ value for '\(k)' is not a string") }
                    p.metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw fail("entry '\(name)' is not an object") }
            guard let dtypeName = entry["dtype"] as? String else { throw fail("'\(name)' has no dtype") }
            guard let dtype = DType(rawValue: dtypeName) else { throw fail("'\(name)' has unsupported dtype \(dtypeName)") }
            guard let shapeAny = entry["shape"] as? [Any], let shape = integers(shapeAny), shape.allSatisfy({ $0 >= 0 })
            else { throw fail("'\(name)' has an invalid shape") }
            guard let offAny = entry["data_offsets"] as? [Any], let off = integers(offAny), off.count == 2
            else { throw fail("'\(name)' has invalid data_offsets") }
            guard off[0] >= 0, off[0] <= off[1] else { throw fail("'\(name)' has data_offsets \(off) that are reversed or negative") }
            guard off[1] <= dataSize else {
                throw fail("'\(name)' data_offsets \(off) lie outside the \(dataSize)-byte data section")
            }
            var elements = 1
            for d in shape {
                let (m, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw fail("'\(name)' shape \(shape) overflows") }
                elements = m
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !o, bytes == off[1] - off[0] else {
                throw fail("'\(name)' is \(dtypeName)\(shape) = \(bytes) bytes but data_offsets span \(off[1] - off[0])")
            }
            entries.append((name, TensorInfo(dtype: dtype, shape: shape, range: off[0]..<off[1])))
        }
        entries.sort { ($0.1.range.lowerBound, $0.1.range.upperBound) < ($1.1.range.lowerBound, $1.1.range.upperBound) }
        var cursor = 0
        for (name, info) in entries {
            if info.range.lowerBound < cursor { throw fail("'\(name)' overlaps the data of another tensor") }
            if info.range.lowerBound > cursor { throw fail("unused bytes before '\(name)' (offset \(cursor)..<\(info.range.lowerBound))") }
            cursor = info.range.upperBound
            p.tensors[name] = info
            p.names.append(name)
        }
        guard cursor == dataSize else { throw fail("data section is \(dataSize) bytes but tensors cover \(cursor)") }
        return p
    }

    private static func integers(_ a: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in a {
            guard let num = v as? NSNumber else { return nil }
            let d = num.doubleValue
            guard d >= 0, d < 9.0e15, d == d.rounded() else { return nil }
            out.append(Int(d))
        }
        return out
    }
}

/// Writes safetensors files.
public enum SafeTensorsWriter {
    public struct Entry: Sendable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var bytes: [UInt8]
        public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.bytes = bytes
        }

        /// An F32 or F16 entry from Float values.
        public init(name: String, shape: [Int], floats: [Float], dtype: DType = .f32) {
            precondition(dtype == .f32 || dtype == .f16 || dtype == .bf16)
            var b = [UInt8]()
            b.reserveCapacity(floats.count * dtype.size)
            for v in floats {
                switch dtype {
                case .f16: withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { b.append(contentsOf: $0) }
                case .bf16:
                    // Round to nearest even.
                    let bits = v.bitPattern
                    let r = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
                    withUnsafeBytes(of: r.littleEndian) { b.append(contentsOf: $0) }
                default: withUnsafeBytes(of: v.bitPattern.littleEndian) { b.append(contentsOf: $0) }
                }
            }
            self.init(name: name, dtype: dtype, shape: shape, bytes: b)
        }
    }

    /// The whole file as bytes. Tensors are laid out in the given order.
    public static func serialize(_ entries: [Entry], metadata: [String: String] = [:]) throws -> [UInt8] {
        var header: [String: Any] = [:]
        var offset = 0
        for e in entries {
            guard e.bytes.count == e.shape.reduce(1, *) * e.dtype.size else {
                throw WeightsError.invalidSafetensors("entry '\(e.name)' has \(e.bytes.count) bytes for \(e.dtype.rawValue)\(e.shape)")
            }
            guard header[e.name] == nil, e.name != "__metadata__" else {
                throw WeightsError.invalidSafetensors("duplicate or reserved name '\(e.name)'")
            }
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.bytes.count]]
            offset += e.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned.
        while (json.count % 8) != 0 { json.append(UInt8(ascii: " ")) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        for e in entries { out.append(contentsOf: e.bytes) }
        return out
    }

    public static func write(_ entries: [Entry], metadata: [String: String] = [:], to path: String) throws {
        let bytes = try serialize(entries, metadata: metadata)
        do { try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw WeightsError.io(path: path, reason: "\(error.localizedDescription)")
        }
    }
}
