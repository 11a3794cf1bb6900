import Foundation

/// Finds the image in a predict request's body: the body itself, or the single `image` field of a
/// multipart/form-data body (`FormData`).
package enum RequestImage {
    /// The image bytes; throws a 400/422 `Problem` saying what is wrong with the body.
    package static func bytes(body: [UInt8], contentType: String) throws -> [UInt8] {
        guard mediaType(contentType) == "multipart/form-data" else { return body }
        guard let boundary = parameter("boundary", in: contentType), !boundary.isEmpty, boundary.count <= 200 else {
            throw Problem(400, "multipart/form-data without a boundary parameter")
        }
        let form = try FormData(body: body, boundary: boundary)
        let images = form.parts.filter { $0.name == "image" }
        guard images.count == 1 else {
            if images.isEmpty {
                let fields = form.parts.map { $0.name ?? "(unnamed)" }
                let seen = fields.isEmpty ? "no fields" : "fields \(fields.prefix(5).joined(separator: ", "))"
                throw Problem(422, "multipart/form-data body has no 'image' file field (found \(seen))")
            }
            throw Problem(422, "multipart/form-data body has \(images.count) 'image' fields; send one image per request")
        }
        guard !images[0].content.isEmpty else { throw Problem(422, "the 'image' field is empty") }
        return Array(body[images[0].content])
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
