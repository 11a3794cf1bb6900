/// A value produced by `Unpickler`. Lists and dicts are classes because the pickle memo
/// shares them and later opcodes mutate them in place.
public indirect enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too large for Int: little-endian two's complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// Items, and the nesting depth (kept so that depth checks never walk a structure).
    case tuple([PickleValue], depth: Int)
    case list(PickleList)
    case dict(PickleDict)
    /// A global that the allow-list admitted, not yet called.
    case global(module: String, name: String)
    case storage(StorageRef)
    case tensor(TensorRef)

    public var description: String {
        switch self {
        case .none: return "None"
        case let .bool(b): return "\(b)"
        case let .int(i): return "\(i)"
        case .bigInt: return "<big int>"
        case let .float(f): return "\(f)"
        case let .string(s): return "'\(s)'"
        case let .bytes(b): return "<\(b.count) bytes>"
        case let .tuple(t, depth): return depth > 2 ? "(\(t.count)-tuple)" : "(\(t.map(\.description).joined(separator: ", ")))"
        case let .list(l): return "[\(l.items.count) items]"
        case let .dict(d): return "{\(d.pairs.count) entries}"
        case let .global(m, n): return "\(m).\(n)"
        case let .storage(s): return "<storage \(s.key)>"
        case let .tensor(t): return "<tensor \(t.shape)>"
        }
    }
}

extension PickleValue {
    /// How deeply containers nest inside this value (0 for a scalar); O(1).
    public var depth: Int {
        switch self {
        case let .tuple(_, d): return d
        case let .list(l): return l.depth
        case let .dict(d): return d.depth
        default: return 0
        }
    }

    /// A tuple of `items`, one level deeper than the deepest of them.
    static func makeTuple(_ items: [PickleValue]) -> PickleValue {
        .tuple(items, depth: 1 + (items.map(\.depth).max() ?? 0))
    }
}

/// Lists and dicts keep their nesting depth up to date as items are added (the unpickler bounds it).
public final class PickleList {
    public private(set) var items: [PickleValue] = []
    public private(set) var depth = 1
    func append(contentsOf values: [PickleValue]) {
        items.append(contentsOf: values)
        depth = max(depth, 1 + (values.map(\.depth).max() ?? 0))
    }
}

public final class PickleDict {
    public private(set) var pairs: [(PickleValue, PickleValue)] = []
    public private(set) var depth = 1
    func append(_ key: PickleValue, _ value: PickleValue) {
        pairs.append((key, value))
        depth = max(depth, 1 + key.depth, 1 + value.depth)
    }
}

/// A torch storage named by a pickle's persistent id.
public struct StorageRef: Sendable {
    public var key: String
    public var dtype: DType
    /// Element offset into the root storage (legacy views), usually 0.
    public var viewOffset: Int = 0
}

/// A tensor rebuilt by `torch._utils._rebuild_tensor(_v2)`: a strided view of a storage.
public struct TensorRef: Sendable {
    public var storage: StorageRef
    public var offset: Int
    public var shape: [Int]
    public var strides: [Int]
}

/// A pickle virtual machine that never executes anything. It knows the opcodes of protocols
/// 0-5 that data uses, and admits only the globals that rebuilding torch tensors needs; any
/// other global stops it with `WeightsError.forbiddenGlobal` before anything else happens.
public struct Unpickler {
    /// Storage classes by the dtype of their elements.
    static let storageTypes: [String: DType] = [
        "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
    ]
    static let callables: Set<String> = [
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
        "collections.OrderedDict",
    ]

    public static func isAllowed(module: String, name: String) -> Bool {
        if module == "torch", storageTypes[name] != nil { return true }
        return callables.contains("\(module).\(name)")
    }

    private let data: [UInt8]
    public private(set) var position: Int
    /// Maps a persistent id (BINPERSID) to a value, typically `.storage`.
    var persistentLoad: (PickleValue) throws -> PickleValue

    public init(data: [UInt8], position: Int = 0, persistentLoad: @escaping (PickleValue) throws -> PickleValue = { _ in
        throw WeightsError.invalidCheckpoint("unexpected persistent id")
    }) {
        self.data = data
        self.position = position
        self.persistentLoad = persistentLoad
    }

    static let maxContainer = 50_000_000
    /// Checkpoints nest a few levels; deeper structures are refused so that nothing that walks or frees
    /// them can run out of stack (found by `make fuzz`, target checkpoint).
    static let maxDepth = 64

    /// Runs one pickle to its STOP opcode and returns its value; `position` is then just past it.
    public mutating func load() throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]

        func fail(_ s: String) -> WeightsError { .invalidCheckpoint("pickle: \(s) at byte \(position)") }
        func pop() throws -> PickleValue {
            guard let v = stack.popLast() else { throw fail("stack underflow") }
            return v
        }
        func popMark() throws -> [PickleValue] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("missing MARK") }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }
        func top() throws -> PickleValue {
            guard let v = stack.last else { throw fail("stack underflow") }
            return v
        }
        func checked(_ v: PickleValue) throws -> PickleValue {
            guard v.depth <= Self.maxDepth else { throw fail("containers nested deeper than \(Self.maxDepth) levels") }
            return v
        }

        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte() // PROTO
            case 0x95: _ = try bytes(8) // FRAME: framing is only a hint
            case 0x2E: // STOP
                return try pop()
            case 0x28: marks.append(stack.count) // MARK
            case 0x29: stack.append(.makeTuple([])) // EMPTY_TUPLE
            case 0x5D: stack.append(.list(PickleList())) // EMPTY_LIST
            case 0x7D: stack.append(.dict(PickleDict())) // EMPTY_DICT
            case 0x4E: stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: UInt32(try uint(4)))))) // BININT
            case 0x4B: stack.append(.int(Int(try byte()))) // BININT1
            case 0x4D: stack.append(.int(Int(try uint(2)))) // BININT2
            case 0x8A: stack.append(try long(Int(try byte()))) // LONG1
            case 0x8B: // LONG4
                let n = Int(Int32(bitPattern: UInt32(try uint(4))))
                guard n >= 0 else { throw fail("negative LONG4 length") }
                stack.append(try long(n))
            case 0x47: stack.append(.float(Double(bitPattern: try uintBE(8)))) // BINFLOAT
            case 0x49: // INT (text); "00"/"01" are False/True in protocol 0
                let s = try line()
                if s == "00" { stack.append(.bool(false)) } else if s == "01" { stack.append(.bool(true)) } else {
                    guard let i = Int(s) else { throw fail("bad INT") }
                    stack.append(.int(i))
                }
            case 0x4C: // LONG (text)
                var s = try line()
                if s.hasSuffix("L") { s.removeLast() }
                guard let i = Int(s) else { throw fail("LONG too large") }
                stack.append(.int(i))
            case 0x46: // FLOAT (text)
                guard let d = Double(try line()) else { throw fail("bad FLOAT") }
                stack.append(.float(d))
            case 0x58: stack.append(.string(try utf8(Int(try uint(4))))) // BINUNICODE
            case 0x8C: stack.append(.string(try utf8(Int(try byte())))) // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try utf8(try length(try uint(8))))) // BINUNICODE8
            case 0x54: stack.append(.string(try latin1(Int(Int32(bitPattern: UInt32(try uint(4))))))) // BINSTRING
            case 0x55: stack.append(.string(try latin1(Int(try byte())))) // SHORT_BINSTRING
            case 0x56: stack.append(.string(try line())) // UNICODE (raw-unicode-escape; ASCII in practice)
            case 0x53: // STRING (quoted repr)
                var s = try line()
                if s.count >= 2, let f = s.first, f == "'" || f == "\"", s.last == f { s = String(s.dropFirst().dropLast()) }
                stack.append(.string(s))
            case 0x42: stack.append(.bytes(try bytes(Int(try uint(4))))) // BINBYTES
            case 0x43: stack.append(.bytes(try bytes(Int(try byte())))) // SHORT_BINBYTES
            case 0x8E: stack.append(.bytes(try bytes(try length(try uint(8))))) // BINBYTES8
            case 0x96: stack.append(.bytes(try bytes(try length(try uint(8))))) // BYTEARRAY8
            case 0x74: stack.append(try checked(.makeTuple(try popMark()))) // TUPLE
            case 0x85: stack.append(try checked(.makeTuple([try pop()]))) // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(try checked(.makeTuple([a, b]))) // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(try checked(.makeTuple([a, b, c]))) // TUPLE3
            case 0x6C: let l = PickleList(); l.append(contentsOf: try popMark()); stack.append(try checked(.list(l))) // LIST
            case 0x64: // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("odd DICT items") }
                let d = PickleDict()
                for i in stride(from: 0, to: items.count, by: 2) { d.append(items[i], items[i + 1]) }
                stack.append(try checked(.dict(d)))
            case 0x8F: stack.append(.list(PickleList())) // EMPTY_SET: kept as a list
            case 0x90: // ADDITEMS
                let items = try popMark()
                guard case let .list(l) = try top() else { throw fail("ADDITEMS on a non-set") }
                l.append(contentsOf: items)
                _ = try checked(.list(l))
            case 0x91: let l = PickleList(); l.append(contentsOf: try popMark()); stack.append(try checked(.list(l))) // FROZENSET
            case 0x61: // APPEND
                let v = try pop()
                guard case let .list(l) = try top() else { throw fail("APPEND to a non-list") }
                l.append(contentsOf: [v])
                _ = try checked(.list(l))
            case 0x65: // APPENDS
                let items = try popMark()
                guard case let .list(l) = try top() else { throw fail("APPENDS to a non-list") }
                guard l.items.count + items.count <= Self.maxContainer else { throw fail("list too long") }
                l.append(contentsOf: items)
                _ = try checked(.list(l))
            case 0x73: // SETITEM
                let v = try pop(), k = try pop()
                guard case let .dict(d) = try top() else { throw fail("SETITEM on a non-dict") }
                d.append(k, v)
                _ = try checked(.dict(d))
            case 0x75: // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("odd SETITEMS items") }
                guard case let .dict(d) = try top() else { throw fail("SETITEMS on a non-dict") }
                for i in stride(from: 0, to: items.count, by: 2) { d.append(items[i], items[i + 1]) }
                _ = try checked(.dict(d))
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: stack.append(try top()) // DUP
            case 0x71: memo[Int(try byte())] = try top() // BINPUT
            case 0x72: memo[Int(try uint(4))] = try top() // LONG_BINPUT
            case 0x70: // PUT
                guard let i = Int(try line()) else { throw fail("bad PUT") }
                memo[i] = try top()
            case 0x94: memo[memo.count] = try top() // MEMOIZE
            case 0x68, 0x6A, 0x67: // BINGET, LONG_BINGET, GET
                let i: Int
                if op == 0x68 { i = Int(try byte()) } else if op == 0x6A { i = Int(try uint(4)) } else {
                    guard let j = Int(try line()) else { throw fail("bad GET") }
                    i = j
                }
                guard let v = memo[i] else { throw fail("memo \(i) not set") }
                stack.append(v)
            case 0x63: // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93: // STACK_GLOBAL
                guard case let .string(name) = try pop(), case let .string(module) = try pop() else {
                    throw fail("STACK_GLOBAL needs two strings")
                }
                stack.append(try global(module, name))
            case 0x52: // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try checked(try call(callable, args)))
            case 0x81: // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try checked(try call(cls, args)))
            case 0x62: // BUILD: only the state torch attaches to dicts and parameters, which loading ignores
                _ = try pop()
                switch try top() {
                case .dict, .tensor: break
                default: throw fail("BUILD on an unsupported object")
                }
            case 0x51: stack.append(try persistentLoad(try pop())) // BINPERSID
            case 0x50: stack.append(try persistentLoad(.string(try line()))) // PERSID
            default:
                throw fail(String(format: "unsupported opcode 0x%02x", op))
            }
            guard stack.count <= Self.maxContainer, memo.count <= Self.maxContainer else { throw fail("pickle too large") }
        }
    }

    private func global(_ module: String, _ name: String) throws -> PickleValue {
        guard Self.isAllowed(module: module, name: name) else { throw WeightsError.forbiddenGlobal("\(module).\(name)") }
        return .global(module: module, name: name)
    }

    private func call(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case let .global(module, name) = callable, case let .tuple(a, _) = args else {
            throw WeightsError.invalidCheckpoint("pickle: REDUCE on something that is not an allowed global")
        }
        switch "\(module).\(name)" {
        case "collections.OrderedDict":
            let d = PickleDict()
            if let first = a.first, case let .list(l) = first {
                for item in l.items {
                    guard case let .tuple(kv, _) = item, kv.count == 2 else { throw WeightsError.invalidCheckpoint("OrderedDict item") }
                    d.append(kv[0], kv[1])
                }
            }
            return .dict(d)
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard a.count >= 4, case let .storage(s) = a[0], case let .int(offset) = a[1],
                  let shape = ints(a[2]), let strides = ints(a[3]), shape.count == strides.count
            else { throw WeightsError.invalidCheckpoint("malformed tensor record") }
            return .tensor(TensorRef(storage: s, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter":
            guard let t = a.first, case .tensor = t else { throw WeightsError.invalidCheckpoint("malformed parameter record") }
            return t
        default:
            // Storage classes are admitted as values inside persistent ids, never as callables.
            throw WeightsError.forbiddenGlobal("\(module).\(name) (called)")
        }
    }

    private func ints(_ v: PickleValue) -> [Int]? {
        guard case let .tuple(t, _) = v else { return nil }
        var out: [Int] = []
        for x in t {
            guard case let .int(i) = x else { return nil }
            out.append(i)
        }
        return out
    }

    // MARK: reading bytes

    private mutating func byte() throws -> UInt8 {
        guard position < data.count else { throw WeightsError.invalidCheckpoint("pickle: truncated data") }
        defer { position += 1 }
        return data[position]
    }

    private mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n >= 0, n <= data.count - position else { throw WeightsError.invalidCheckpoint("pickle: truncated data") }
        defer { position += n }
        return Array(data[position..<(position + n)])
    }

    private func length(_ v: UInt64) throws -> Int {
        guard v <= UInt64(data.count) else { throw WeightsError.invalidCheckpoint("pickle: truncated data") }
        return Int(v)
    }

    private mutating func uint(_ n: Int) throws -> UInt64 {
        let b = try bytes(n)
        var v: UInt64 = 0
        for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
        return v
    }

    private mutating func uintBE(_ n: Int) throws -> UInt64 {
        try bytes(n).reduce(0) { ($0 << 8) | UInt64($1) }
    }

    private mutating func long(_ n: Int) throws -> PickleValue {
        let b = try bytes(n)
        if n == 0 { return .int(0) }
        if n <= 8 {
            var v: UInt64 = 0
            for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
            if n < 8, b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) } // sign-extend
            return .int(Int(Int64(bitPattern: v)))
        }
        return .bigInt(b)
    }

    private mutating func utf8(_ n: Int) throws -> String {
        let b = try bytes(n)
        guard let s = String(validating: b, as: UTF8.self) else { throw WeightsError.invalidCheckpoint("pickle: invalid UTF-8") }
        return s
    }

    private mutating func latin1(_ n: Int) throws -> String {
        String(decoding: try bytes(n).map { UInt16($0) }, as: UTF16.self)
    }

    private mutating func line() throws -> String {
        guard let end = data[position...].firstIndex(of: 0x0A) else { throw WeightsError.invalidCheckpoint("pickle: truncated data") }
        defer { position = end + 1 }
        return String(decoding: data[position..<end], as: UTF8.self)
    }
}
