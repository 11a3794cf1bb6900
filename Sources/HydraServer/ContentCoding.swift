import CZlib

/// HTTP content codings (RFC 9110 8.4) through zlib: compressed request bodies are inflated by the
/// worker under a byte budget, and /v2 answers are compressed when the client's Accept-Encoding asks.
package enum ContentCoding: String, Sendable {
    case identity, gzip, deflate

    /// The coding a request's Content-Encoding names; a 415 problem for one not taken.
    package static func of(contentEncoding header: String?) throws -> ContentCoding {
        let codings = (header ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        guard !codings.isEmpty else { return .identity }
        guard codings.count == 1, let c = ContentCoding(rawValue: codings[0] == "x-gzip" ? "gzip" : codings[0]) else {
            throw Problem(415, "Content-Encoding \(header!.prefix(40)) is not supported; send gzip, deflate or an uncompressed body",
                          headers: [("Accept-Encoding", "gzip, deflate")])
        }
        return c
    }

    /// The coding to answer with for an Accept-Encoding header: gzip, else deflate, when the client
    /// accepts it with a non-zero q-value; identity otherwise (no header: identity, RFC 9110 12.5.3).
    static func preferred(acceptEncoding header: String?) -> ContentCoding {
        guard let header else { return .identity }
        var q: [String: Double] = [:]
        for item in header.split(separator: ",") {
            let fields = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let name = fields.first, !name.isEmpty else { continue }
            var weight = 1.0
            for f in fields.dropFirst() where f.hasPrefix("q=") { weight = Double(f.dropFirst(2)) ?? 0 }
            q[name] = weight
        }
        func accepted(_ name: String) -> Bool { (q[name] ?? q["*"] ?? 0) > 0 }
        if accepted("gzip") { return .gzip }
        if accepted("deflate") { return .deflate }
        return .identity
    }

    /// The decoded body; throws a problem (413 past `limit` bytes, 400 for data that is not this coding).
    /// Inflation stops as soon as the output passes the limit: a small bomb costs little.
    package func decode(_ body: [UInt8], limit: Int) throws -> [UInt8] {
        guard self != .identity else { return body }
        // gzip: a gzip header (31 + 16); deflate is the zlib format (RFC 9110 8.4.1.2), but some
        // clients send a raw deflate stream: told apart by the zlib header's check bits.
        let zlibHeader = body.count >= 2 && body[0] & 0x0F == 8 && (Int(body[0]) << 8 | Int(body[1])) % 31 == 0
        let windowBits: Int32 = self == .gzip ? 31 : (zlibHeader ? 15 : -15)
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Problem(500, "zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        out.reserveCapacity(min(limit, max(body.count * 4, 1 << 16)))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var status: Int32 = Z_OK
        try body.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = UInt32(input.count)
            while true {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { c in
                    stream.next_out = c.baseAddress
                    stream.avail_out = UInt32(c.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return c.count - Int(stream.avail_out)
                }
                guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                    throw Problem(400, "the body is not valid \(rawValue) data")
                }
                guard out.count + produced <= limit else {
                    throw Problem(413, "the \(rawValue) body inflates to more than the limit of \(limit) bytes")
                }
                out += chunk[..<produced]
                if status == Z_STREAM_END { break }
                // Room was left for output, so no progress (or all input taken with room to spare)
                // means the input ended inside the stream.
                if status == Z_BUF_ERROR || (stream.avail_in == 0 && produced < chunk.count) {
                    throw Problem(400, "the \(rawValue) body ends before its compressed stream does")
                }
            }
            guard stream.avail_in == 0 else {
                throw Problem(400, "\(stream.avail_in) bytes follow the end of the \(rawValue) stream")
            }
        }
        return out
    }

    /// The body compressed at zlib level 1 (fast: the answers are mostly float tensors).
    package func encode(_ body: [UInt8]) -> [UInt8] {
        guard self != .identity else { return body }
        var stream = z_stream()
        let windowBits: Int32 = self == .gzip ? 31 : 15
        guard deflateInit2_(&stream, 1, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return body }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(body.count))) + 32)
        let written: Int = body.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { o in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = UInt32(input.count)
                stream.next_out = o.baseAddress
                stream.avail_out = UInt32(o.count)
                return CZlib.deflate(&stream, Z_FINISH) == Z_STREAM_END ? o.count - Int(stream.avail_out) : -1
            }
        }
        guard written >= 0 else { return body }
        out.removeSubrange(written...)
        return out
    }
}

extension HTTPResponse {
    /// The response with its body in `coding`, when that makes it smaller (small bodies stay as they are).
    func encoded(_ coding: ContentCoding) -> HTTPResponse {
        guard coding != .identity, body.count >= 1024 else { return self }
        let compressed = coding.encode(body)
        guard compressed.count < body.count else { return self }
        var r = self
        r.body = compressed
        r.headers += [("Content-Encoding", coding.rawValue), ("Vary", "Accept-Encoding")]
        return r
    }
}
