import Foundation
import ZIPFoundation

/// A tensor read from a PyTorch checkpoint, materialised contiguous (row-major).
public struct CheckpointTensor: Sendable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var values: [Float]
}

/// Reads the tensors of a PyTorch checkpoint without Python: the zip format of torch >= 1.6
/// and the legacy format of `torch.save` before it (and with `_use_new_zipfile_serialization=False`).
/// The pickles are read by `Unpickler`, so a checkpoint that would run code is refused.
public enum TorchCheckpoint {
    public enum Format: String, Sendable { case zip, legacy }

    public struct Contents: Sendable {
        public var format: Format
        /// Tensors in the order the state dict lists them, names as stored (prefixes removed).
        public var tensors: [CheckpointTensor]
        /// Which entry held the weights: "state_dict" or "(top level)".
        public var source: String
        /// Names dropped because they are bookkeeping, not weights (num_batches_tracked).
        public var dropped: [String]
    }

    static let legacyMagic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19] // 0x1950a86a20f9469cfc6c

    public static func read(path: String) throws -> Contents {
        let data: [UInt8]
        do { data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw WeightsError.unreadable(path)
        }
        if data.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            try ZipBounds.check(data)
            return try readZip(path: path, fileSize: data.count)
        }
        if data.first == 0x80 { return try readLegacy(data) }
        throw WeightsError.invalidCheckpoint("not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    }

    // MARK: zip format

    /// Deflate cannot expand data more than about 1032 times, so larger declared sizes are lies.
    static let maxExpansion: UInt64 = 1032

    static func readZip(path: String, fileSize: Int) throws -> Contents {
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw WeightsError.invalidCheckpoint("corrupt zip archive")
        }
        guard let pkl = archive.first(where: { $0.path == "data.pkl" || $0.path.hasSuffix("/data.pkl") }) else {
            throw WeightsError.invalidCheckpoint("zip archive has no data.pkl")
        }
        let prefix = String(pkl.path.dropLast("data.pkl".count))
        func extract(_ entry: Entry) throws -> [UInt8] {
            let declared = entry.uncompressedSize
            guard declared <= UInt64(fileSize) * maxExpansion else {
                throw WeightsError.invalidCheckpoint("entry \(entry.path) claims \(declared) bytes, more than a \(fileSize)-byte archive can hold")
            }
            var out = [UInt8]()
            out.reserveCapacity(Int(min(declared, UInt64(fileSize))))
            var overrun = false
            do {
                _ = try archive.extract(entry, skipCRC32: false) { chunk in
                    guard UInt64(out.count + chunk.count) <= declared else { overrun = true; throw WeightsError.invalidCheckpoint("overrun") }
                    out.append(contentsOf: chunk)
                }
            } catch {
                throw WeightsError.invalidCheckpoint(overrun ? "entry \(entry.path) holds more than its declared \(declared) bytes"
                                                             : "cannot extract \(entry.path) (truncated or corrupt archive)")
            }
            return out
        }
        var unpickler = Unpickler(data: try extract(pkl)) { pid in
            // ('storage', storage_type, key, location, numel)
            guard case let .tuple(t, _) = pid, t.count >= 3, case .string("storage") = t[0],
                  case let .global(_, typeName) = t[1], case let .string(key) = t[2],
                  let dtype = Unpickler.storageTypes[typeName]
            else { throw WeightsError.invalidCheckpoint("unexpected persistent id \(pid)") }
            return .storage(StorageRef(key: key, dtype: dtype))
        }
        let root = try unpickler.load()
        var cache: [String: [UInt8]] = [:]
        return try collect(root, format: .zip) { ref in
            if let b = cache[ref.key] { return b }
            guard let entry = archive[prefix + "data/" + ref.key] else {
                throw WeightsError.invalidCheckpoint("storage \(ref.key) missing from the archive")
            }
            let b = try extract(entry)
            cache[ref.key] = b
            return b
        }
    }

    // MARK: legacy format

    static func readLegacy(_ data: [UInt8]) throws -> Contents {
        var header = Unpickler(data: data)
        guard case let .bigInt(magic) = try header.load(), magic == legacyMagic else {
            throw WeightsError.invalidCheckpoint("not a legacy torch.save file (bad magic number)")
        }
        guard case let .int(version) = try header.load(), version == 1001 else {
            throw WeightsError.invalidCheckpoint("unsupported legacy protocol version")
        }
        guard case let .dict(sysInfo) = try header.load() else { throw WeightsError.invalidCheckpoint("missing sys_info") }
        for (k, v) in sysInfo.pairs {
            if case .string("little_endian") = k, case .bool(false) = v {
                throw WeightsError.invalidCheckpoint("big-endian checkpoints are not supported")
            }
        }
        var main = Unpickler(data: data, position: header.position) { pid in
            // ('storage', storage_type, root_key, location, numel, view_metadata)
            guard case let .tuple(t, _) = pid, t.count >= 5, case .string("storage") = t[0],
                  case let .global(_, typeName) = t[1], case let .string(key) = t[2],
                  let dtype = Unpickler.storageTypes[typeName]
            else { throw WeightsError.invalidCheckpoint("unexpected persistent id \(pid)") }
            var ref = StorageRef(key: key, dtype: dtype)
            if t.count >= 6, case let .tuple(view, _) = t[5], view.count >= 2, case let .int(off) = view[1] {
                ref.viewOffset = off
            }
            return .storage(ref)
        }
        let root = try main.load()
        var keysReader = Unpickler(data: data, position: main.position)
        guard case let .list(keyList) = try keysReader.load() else {
            throw WeightsError.invalidCheckpoint("missing storage key list")
        }
        let keys = try keyList.items.map { v -> String in
            guard case let .string(s) = v else { throw WeightsError.invalidCheckpoint("bad storage key") }
            return s
        }
        // Storages follow in key order, each as an 8-byte element count and the raw elements.
        // Element sizes come from the tensors that use them, so collect those first.
        var sizes: [String: Int] = [:]
        walkTensors(root) { ref in sizes[ref.storage.key] = ref.storage.dtype.size }
        var storages: [String: [UInt8]] = [:]
        var pos = keysReader.position
        for key in keys {
            guard data.count - pos >= 8 else { throw WeightsError.invalidCheckpoint("truncated: storage \(key) missing") }
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(data[pos + i]) << (8 * UInt64(i)) }
            pos += 8
            let elem = sizes[key] ?? 1
            guard n <= UInt64(data.count), Int(n) * elem <= data.count - pos else {
                throw WeightsError.invalidCheckpoint("truncated: storage \(key) is cut short")
            }
            let len = Int(n) * elem
            storages[key] = Array(data[pos..<(pos + len)])
            pos += len
        }
        return try collect(root, format: .legacy) { ref in
            guard let b = storages[ref.key] else { throw WeightsError.invalidCheckpoint("storage \(ref.key) missing") }
            return b
        }
    }

    // MARK: common

    /// Every tensor in `v`. The unpickler bounds nesting, but the memo lets a list or dict contain
    /// itself, so each one is visited once.
    static func walkTensors(_ v: PickleValue, _ body: (TensorRef) -> Void) {
        var seen = Set<ObjectIdentifier>()
        func walk(_ v: PickleValue) {
            switch v {
            case let .tensor(t): body(t)
            case let .dict(d): if seen.insert(ObjectIdentifier(d)).inserted { for (_, x) in d.pairs { walk(x) } }
            case let .list(l): if seen.insert(ObjectIdentifier(l)).inserted { for x in l.items { walk(x) } }
            case let .tuple(t, _): for x in t { walk(x) }
            default: break
            }
        }
        walk(v)
    }

    /// Finds the state dict (a top-level `state_dict` entry, or the top-level dict itself),
    /// strips `module.` prefixes, drops `num_batches_tracked` and materialises each tensor.
    static func collect(_ root: PickleValue, format: Format, storage: (StorageRef) throws -> [UInt8]) throws -> Contents {
        guard case let .dict(top) = root else { throw WeightsError.invalidCheckpoint("the checkpoint is not a dict") }
        var dict = top
        var source = "(top level)"
        for (k, v) in top.pairs {
            if case .string("state_dict") = k {
                guard case let .dict(sd) = v else { throw WeightsError.invalidCheckpoint("state_dict is not a dict") }
                dict = sd
                source = "state_dict"
            }
        }
        var tensors: [CheckpointTensor] = []
        var dropped: [String] = []
        var seen = Set<String>()
        for (k, v) in dict.pairs {
            guard case var .string(name) = k else { throw WeightsError.invalidCheckpoint("a state dict key is not a string") }
            guard case let .tensor(ref) = v else {
                if source == "state_dict" { throw WeightsError.invalidCheckpoint("state_dict entry '\(name)' is not a tensor") }
                continue // other top-level entries (epoch, args...) of a bare checkpoint
            }
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }
            if name.hasSuffix("num_batches_tracked") { dropped.append(name); continue }
            guard seen.insert(name).inserted else { throw WeightsError.invalidCheckpoint("duplicate tensor '\(name)'") }
            let bytes = try storage(ref.storage)
            tensors.append(try materialise(name: name, ref: ref, storage: bytes))
        }
        guard !tensors.isEmpty else { throw WeightsError.invalidCheckpoint("no tensors found") }
        return Contents(format: format, tensors: tensors, source: source, dropped: dropped)
    }

    static func materialise(name: String, ref: TensorRef, storage: [UInt8]) throws -> CheckpointTensor {
        let dtype = ref.storage.dtype
        guard dtype.isFloat else { throw WeightsError.invalidCheckpoint("tensor '\(name)' has non-float dtype \(dtype.rawValue)") }
        let count = storage.count / dtype.size
        guard ref.shape.allSatisfy({ $0 >= 0 }), ref.strides.allSatisfy({ $0 >= 0 }), ref.offset >= 0 else {
            throw WeightsError.invalidCheckpoint("tensor '\(name)' has a negative size, stride or offset")
        }
        guard ref.strides.count == ref.shape.count else {
            throw WeightsError.invalidCheckpoint("tensor '\(name)' has \(ref.shape.count) sizes but \(ref.strides.count) strides")
        }
        // Sizes, strides and offsets come from the file: every product is checked for overflow, and a
        // tensor may not have more elements than its storage (weights never overlap themselves).
        let bad = WeightsError.invalidCheckpoint("tensor '\(name)' has sizes, strides or an offset that do not fit its \(count)-element storage")
        var n = 1
        for d in ref.shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o else { throw bad }
            n = p
        }
        guard n <= count else { throw bad }
        let (base, o) = ref.storage.viewOffset.addingReportingOverflow(ref.offset)
        guard !o, ref.storage.viewOffset >= 0 else { throw bad }
        if n > 0 {
            var last = base
            for (d, s) in zip(ref.shape, ref.strides) {
                let (step, o1) = (d - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = last.addingReportingOverflow(step)
                guard !o1, !o2 else { throw bad }
                last = sum
            }
            guard last < count else {
                throw WeightsError.invalidCheckpoint("tensor '\(name)' reaches element \(last) of a \(count)-element storage")
            }
        }
        let all = storage.withUnsafeBytes { dtype.floats($0, count: count) }
        var values = [Float](repeating: 0, count: n)
        // Gather by strides (checkpoints are normally contiguous, but views are legal).
        var index = [Int](repeating: 0, count: ref.shape.count)
        for i in 0..<n {
            var src = base
            for (j, x) in index.enumerated() { src += x * ref.strides[j] }
            values[i] = all[src]
            var d = ref.shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < ref.shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return CheckpointTensor(name: name, dtype: dtype, shape: ref.shape, values: values)
    }
}
