import Foundation

/// A multipart/form-data body (RFC 7578 over RFC 2046's framing) split into its parts, as the
/// request body arrived: part contents are ranges of it, nothing is copied. Written here rather than
/// taken from MultipartKit, which brought swift-nio (a second network stack) into a libuv binary for
/// this one job and trapped on a non-ASCII header name; `make fuzz` (target http) runs it.
///
/// What it accepts: an optional preamble; each part opened by `--boundary` at the start or after
/// CRLF, then optional spaces or tabs and CRLF; header lines `Name: value` (names are tokens; a line
/// starting with a space or tab continues the previous value) up to an empty line; the content up to
/// the next CRLF `--boundary`; `--boundary--` closes the body (an epilogue is ignored). Anything else
/// is a `Problem(400)` that says what was wrong. Linear in the body: every byte is looked at a
/// bounded number of times, whatever the boundary.
package struct FormData {
    package struct Part {
        /// Header names lowercased, values with surrounding whitespace removed, in order.
        package var headers: [(name: String, value: String)] = []
        package var content: Range<Int> = 0..<0

        package func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
        /// The `name` parameter of Content-Disposition.
        package var name: String? { header("content-disposition").flatMap { RequestImage.parameter("name", in: $0) } }
    }

    package static let maxParts = 64
    package static let maxHeaderBytes = 8 << 10

    package let parts: [Part]

    package init(body: [UInt8], boundary: String) throws {
        let delimiter = Array("--\(boundary)".utf8)
        let cr: UInt8 = 13, lf: UInt8 = 10
        func malformed(_ why: String) -> Problem { Problem(400, "malformed multipart/form-data body: \(why)") }

        // The first delimiter: at the very start, or after a CRLF that ends the preamble.
        var at: Int
        if body.starts(with: delimiter) {
            at = 0
        } else if let i = RequestImage.find([cr, lf] + delimiter, in: body) {
            at = i + 2
        } else {
            throw malformed("no part starts with the boundary '\(boundary.prefix(70))'")
        }
        let next = [cr, lf] + delimiter
        var parts: [Part] = []
        while true {
            // After a delimiter: "--" closes the body; otherwise padding, then CRLF, opens a part.
            var i = at + delimiter.count
            if i + 1 < body.count, body[i] == 45, body[i + 1] == 45 {
                guard !parts.isEmpty else { throw malformed("it closes before its first part (RFC 2046 needs one)") }
                break
            }
            while i < body.count, body[i] == 32 || body[i] == 9 { i += 1 }
            guard i + 1 < body.count, body[i] == cr, body[i + 1] == lf else {
                throw i >= body.count - 1 ? malformed("the closing boundary is missing (truncated body?)")
                                          : malformed("a boundary line goes on after the boundary")
            }
            i += 2
            guard parts.count < Self.maxParts else { throw malformed("more than \(Self.maxParts) parts") }
            var part = Part()
            let headerStart = i
            while true {
                guard let end = RequestImage.find([cr, lf], in: body, from: i), end - headerStart <= Self.maxHeaderBytes else {
                    throw malformed(body.count - headerStart > Self.maxHeaderBytes ? "a part's headers are over \(Self.maxHeaderBytes) bytes"
                                                                                     : "the closing boundary is missing (truncated body?)")
                }
                if end == i { i += 2; break } // the empty line: content follows
                let line = body[i..<end]
                if line.first == 32 || line.first == 9 {
                    guard let last = part.headers.indices.last else { throw malformed("a part's first header line starts with a space") }
                    part.headers[last].value += " " + String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)
                } else {
                    guard let colon = line.firstIndex(of: 58), colon > line.startIndex else {
                        throw malformed("a part header line has no name and colon")
                    }
                    guard line[..<colon].allSatisfy(Self.isTokenByte) else {
                        throw malformed(line[..<colon].contains { $0 >= 0x80 } ? "a part header name has a non-ASCII byte"
                                                                               : "a part header name is not a token")
                    }
                    part.headers.append((String(decoding: line[..<colon], as: UTF8.self).lowercased(),
                                         String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingCharacters(in: .whitespaces)))
                }
                i = end + 2
            }
            guard let end = RequestImage.find(next, in: body, from: i) else {
                throw malformed("the closing boundary is missing (truncated body?)")
            }
            part.content = i..<end
            parts.append(part)
            at = end + 2
        }
        self.parts = parts
    }

    /// RFC 9110's tchar.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 48...57, 65...90, 97...122: return true
        case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: return true
        default: return false
        }
    }
}
