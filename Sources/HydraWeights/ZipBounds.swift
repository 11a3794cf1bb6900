/// A check of a zip archive's 64-bit numbers before ZIPFoundation reads it. ZIPFoundation 0.9.20
/// converts offsets to `off_t` with a trapping conversion, so a ZIP64 offset above Int64.max took
/// the process down (found by `make fuzz`, target checkpoint). In an archive that is not lying every
/// ZIP64 offset, size and count is at most the file's length; this walks the structures the way
/// ZIPFoundation finds them and refuses the archive when one is larger.
enum ZipBounds {
    static func check(_ data: [UInt8]) throws {
        let limit = UInt64(data.count)
        func bad(_ what: String) -> WeightsError { .invalidCheckpoint("corrupt zip archive: \(what) points past the end of the file") }
        func u16(_ at: Int) -> Int { Int(little(data, at, 2) ?? 0) }
        func u32(_ at: Int) -> UInt32 { UInt32(little(data, at, 4) ?? 0) }
        func u64(_ at: Int) -> UInt64 { little(data, at, 8) ?? .max }

        // End of central directory: the last signature, searched backwards from 22 bytes before the end.
        guard data.count >= 22 else { return }
        var eocd = -1
        var i = data.count - 22
        while i >= 0 {
            if u32(i) == 0x0605_4b50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { return } // ZIPFoundation refuses it itself
        var entries = UInt64(u16(eocd + 10))
        var directory = UInt64(u32(eocd + 16))
        // ZIP64: its record sits right before the 20-byte locator, which sits right before the EOCD.
        let record = eocd - 20 - 56
        if record >= 0, u32(eocd - 20) == 0x0706_4b50, u32(record) == 0x0606_4b50 {
            for (field, at) in [("the ZIP64 record size", 4), ("the ZIP64 entry count", 24), ("the ZIP64 entry count", 32),
                                ("the ZIP64 directory size", 40), ("the ZIP64 directory offset", 48)] where u64(record + at) > limit {
                throw bad(field)
            }
            if u64(eocd - 20 + 8) > limit { throw bad("the ZIP64 locator") }
            if entries == 0xFFFF { entries = u64(record + 32) }
            if directory == 0xFFFF_FFFF { directory = u64(record + 48) }
            entries = max(entries, u64(record + 32))
        }
        // Central directory entries, in order; every ZIP64 extra field's numbers are bounded, and
        // every local header they point to is checked the same way.
        var at = Int(min(directory, limit))
        var seen: UInt64 = 0
        while seen < entries, at + 46 <= data.count, u32(at) == 0x0201_4b50 {
            let nameLength = u16(at + 28), extraLength = u16(at + 30), commentLength = u16(at + 32)
            let zip64 = try checkExtra(data, from: at + 46 + nameLength, count: extraLength, limit: limit, bad: bad)
            // The local header is at the 32-bit offset or at one the ZIP64 block gives.
            for local in [Int(u32(at + 42))] + zip64.map({ Int($0) }) where local + 30 <= data.count && u32(local) == 0x0403_4b50 {
                _ = try checkExtra(data, from: local + 30 + u16(local + 26), count: u16(local + 28), limit: limit, bad: bad)
            }
            at += 46 + nameLength + extraLength + commentLength
            seen += 1
        }
    }

    /// The little-endian unsigned number of `count` bytes at `at`, or nil past the end.
    private static func little(_ data: [UInt8], _ at: Int, _ count: Int) -> UInt64? {
        guard at >= 0, at + count <= data.count else { return nil }
        return (0..<count).reduce(UInt64(0)) { $0 | UInt64(data[at + $1]) << (8 * UInt64($1)) }
    }

    /// The ZIP64 extended information blocks (id 1) in an extra field: each 8-byte number in bounds.
    /// Returns those numbers.
    private static func checkExtra(_ data: [UInt8], from start: Int, count: Int, limit: UInt64,
                                   bad: (String) -> WeightsError) throws -> [UInt64] {
        let end = min(start + count, data.count)
        var values: [UInt64] = []
        var at = start
        while at + 4 <= end {
            let id = little(data, at, 2)!
            let size = Int(little(data, at + 2, 2)!)
            if id == 1 {
                var v = at + 4
                while v + 8 <= min(at + 4 + size, end) {
                    let value = little(data, v, 8)!
                    if value > limit { throw bad("a ZIP64 extra field") }
                    values.append(value)
                    v += 8
                }
            }
            at += 4 + size
        }
        return values
    }
}
