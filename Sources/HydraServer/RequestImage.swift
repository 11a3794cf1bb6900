import Foundation
import MultipartKit
import NIOCore

/// Finds the image in a predict request's body: the body itself, or the single `image` field of a
/// multipart/form-data body (parsed by MultipartKit).
package enum RequestImage {
    /// The image bytes; throws a 400/422 `Problem` saying what is wrong with the body.
    package static func bytes(body: [UInt8], contentType: String) throws -> [UInt8] {
        guard mediaType(contentType) == "multipart/form-data" else { return body }
        guard let boundary = parameter("boundary", in: contentType), !boundary.isEmpty, boundary.count <= 200 else {
            throw Problem(400, "multipart/form-data without a boundary parameter")
        }
        // The parser skips what it cannot frame, so check the delimiters themselves.
        let delimiter = Array("--\(boundary)".utf8)
        guard body.starts(with: delimiter) || find(Array("\r\n--\(boundary)".utf8), in: body) != nil else {
            throw Problem(400, "malformed multipart/form-data body: no part starts with the boundary '\(boundary.prefix(70))'")
        }
        guard find(delimiter + Array("--".utf8), in: body) != nil else {
            throw Problem(400, "malformed multipart/form-data body: the closing boundary is missing (truncated body?)")
        }
        guard partHeaderNamesAreASCII(body, delimiter: delimiter) else {
            throw Problem(400, "malformed multipart/form-data body: a part header name has a non-ASCII byte")
        }
        var images: [[UInt8]] = []
        var fields: [String] = []
        var name: String?
        var current: [UInt8] = []
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { field, value in
            if field.lowercased() == "content-disposition" { name = parameter("name", in: value) }
        }
        parser.onBody = { buffer in current += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        parser.onPartComplete = {
            if name == "image" { images.append(current) } else { fields.append(name ?? "(unnamed)") }
            current = []
            name = nil
        }
        do { try parser.execute(body) } catch {
            throw Problem(400, "malformed multipart/form-data body: \(error)")
        }
        guard images.count == 1 else {
            if images.isEmpty {
                let seen = fields.isEmpty ? "no fields" : "fields \(fields.prefix(5).joined(separator: ", "))"
                throw Problem(422, "multipart/form-data body has no 'image' file field (found \(seen))")
            }
            throw Problem(422, "multipart/form-data body has \(images.count) 'image' fields; send one image per request")
        }
        guard !images[0].isEmpty else { throw Problem(422, "the 'image' field is empty") }
        return images[0]
    }

    /// MultipartKit 4.7.1 looks a header name's bytes up in a 128-entry table, so a byte >= 0x80
    /// there traps and would take the whole process down (found by `make fuzz`, target http).
    /// Every header block that follows a delimiter line is checked here first: a name is the bytes
    /// from a line's start to its first colon. Linear in the body: each block is scanned once, and a
    /// delimiter line inside a scanned block starts no new scan (its lines were already checked).
    static func partHeaderNamesAreASCII(_ body: [UInt8], delimiter: [UInt8]) -> Bool {
        let cr: UInt8 = 13, lf: UInt8 = 10, colon: UInt8 = 58
        // Only a delimiter that ends its line opens a header block (anything else is a parse error).
        let opening = delimiter + [cr, lf]
        var from = 0
        while let at = find(opening, in: body, from: from) {
            var i = at + opening.count
            var lineStart = i
            var inName = true
            while i < body.count {
                let b = body[i]
                if b == cr, i + 1 < body.count, body[i + 1] == lf {
                    let empty = i == lineStart
                    i += 2
                    if empty { break }
                    lineStart = i
                    inName = true
                    continue
                }
                if inName {
                    if b == colon { inName = false } else if b >= 0x80 { return false }
                }
                i += 1
            }
            from = i
        }
        return true
    }

    /// The first index of `needle` in `haystack` at or after `from`. Knuth-Morris-Pratt, so linear:
    /// a naive search lets a crafted body cost boundary-length times its size.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int = 0) -> Int? {
        guard !needle.isEmpty, from >= 0, haystack.count - from >= needle.count else { return nil }
        var fallback = [Int](repeating: 0, count: needle.count)
        var k = 0
        for i in 1..<needle.count {
            while k > 0, needle[i] != needle[k] { k = fallback[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            fallback[i] = k
        }
        k = 0
        for i in from..<haystack.count {
            while k > 0, haystack[i] != needle[k] { k = fallback[k - 1] }
            if haystack[i] == needle[k] { k += 1 }
            if k == needle.count { return i - needle.count + 1 }
        }
        return nil
    }

    /// A parameter of a header value such as `form-data; name="image"` or `...; boundary=xyz`.
    static func parameter(_ key: String, in header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let kv = piece.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces).lowercased() == key else { continue }
            var v = kv[1].trimmingCharacters(in: .whitespaces)
            if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
            return v
        }
        return nil
    }
}
