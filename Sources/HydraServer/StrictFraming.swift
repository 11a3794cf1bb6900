/// The parts of RFC 9112 framing that Debian's http-parser 2.9 lets through when built without
/// HTTP_PARSER_STRICT: bare LF line endings, obsolete line folding, whitespace before a header's
/// colon, anything after a chunk size, and any two bytes in place of the CRLF after chunk data.
/// Each of these lets a lenient server see a request boundary where a strict proxy sees none.
///
/// `RequestReader` runs every byte through this check before http-parser sees it, so a request
/// is only ever served when both agree on its framing. It keeps no bytes, only a small state,
/// and gives the same verdict however the stream is split.
struct StrictFraming {
    enum Body {
        /// No body, or a Content-Length body: http-parser counts it, nothing here to check.
        case counted
        /// chunked: every size line, data CRLF and trailer line is checked.
        case chunked
    }

    enum Verdict: Equatable {
        /// The first `n` bytes are well framed; the head ended at the last of them.
        case headEnds(Int)
        /// The first `n` bytes are well framed; the message (chunked) ended at the last of them.
        case messageEnds(Int)
        /// All bytes given are well framed so far.
        case fine
        /// The byte at `offset` breaks the framing.
        case bad(offset: Int, reason: String)
    }

    /// Where a line's CR leads once its LF follows.
    private enum AfterLine: Equatable { case beforeRequestLine, fieldLine, headEnd, trailerLine, messageEnd }

    private enum State: Equatable {
        // The head: leading empty lines, the request line, field lines.
        case lineStart(first: Bool), requestLine, fieldName, fieldValue, cr(then: AfterLine)
        // A chunked body.
        case sizeStart, size(digits: Int), extBWS(afterSemicolon: Bool), extName, extAfterName, extValueStart,
             extToken, extQuoted, extQuotedEscape, extAfterValue, sizeCR
        case data(remaining: UInt64), dataCR, dataLF
        case trailerLineStart, trailerName, trailerValue
        case counted
    }

    /// Longest chunk size line (size and extensions) accepted.
    static let maxChunkLine = 4096

    private var state = State.lineStart(first: true)
    private var lineLength = 0
    private var chunkSize: UInt64 = 0

    /// Starts over for the next request on the connection.
    mutating func reset() {
        state = .lineStart(first: true)
        lineLength = 0
    }

    /// Once the head has ended, how its body is framed.
    mutating func beginBody(_ body: Body) {
        state = body == .chunked ? .sizeStart : .counted
        lineLength = 0
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    private static func hexValue(_ b: UInt8) -> UInt64? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt64(b - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// A field value may hold visible bytes, obs-text, space and tab; no other control byte.
    private static func isFieldValueByte(_ b: UInt8) -> Bool { b == 9 || (b >= 0x20 && b != 0x7F) }

    /// Checks `bytes` in order. Stops at the end of the head (so that the caller can tell how the
    /// body is framed) and at the end of a chunked message; otherwise consumes everything.
    mutating func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Verdict {
        let cr: UInt8 = 13, lf: UInt8 = 10, sp: UInt8 = 32, ht: UInt8 = 9
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            func bad(_ reason: String) -> Verdict { .bad(offset: i, reason: reason) }
            switch state {
            case .counted:
                return .fine
            // MARK: head
            case let .lineStart(first):
                if b == cr {
                    // Empty lines before the request line are skipped (RFC 9112 2.2); after it, one ends the head.
                    state = .cr(then: first ? .beforeRequestLine : .headEnd)
                } else if b == lf {
                    return bad("bare LF line ending (lines must end in CRLF)")
                } else if first {
                    state = .requestLine
                } else if b == sp || b == ht {
                    return bad("obsolete line folding (a field line starts with whitespace)")
                } else if !Self.isTokenByte(b) {
                    return bad("invalid header field name")
                } else {
                    state = .fieldName
                }
            case .requestLine:
                if b == cr { state = .cr(then: .fieldLine) }
                else if b == lf { return bad("bare LF line ending (lines must end in CRLF)") }
            case .fieldName:
                if b == UInt8(ascii: ":") { state = .fieldValue }
                else if b == sp || b == ht { return bad("whitespace between a header field name and its colon") }
                else if !Self.isTokenByte(b) { return bad("invalid header field name") }
            case .fieldValue:
                if b == cr { state = .cr(then: .fieldLine) }
                else if b == lf { return bad("bare LF line ending (lines must end in CRLF)") }
                else if !Self.isFieldValueByte(b) { return bad("control character in a header field value") }
            case let .cr(then):
                guard b == lf else { return bad("CR not followed by LF") }
                switch then {
                case .beforeRequestLine: state = .lineStart(first: true)
                case .fieldLine: state = .lineStart(first: false)
                case .trailerLine: state = .trailerLineStart
                case .headEnd: return .headEnds(i + 1)
                case .messageEnd:
                    state = .counted
                    return .messageEnds(i + 1)
                }
            // MARK: chunked body
            case .sizeStart:
                guard let v = Self.hexValue(b) else { return bad("invalid chunk size line (expected a hexadecimal size)") }
                chunkSize = v
                lineLength = 1
                state = .size(digits: 1)
            case let .size(digits):
                lineLength += 1
                if let v = Self.hexValue(b) {
                    guard digits < 15 else { return bad("chunk size too large") }
                    chunkSize = chunkSize << 4 | v
                    state = .size(digits: digits + 1)
                } else if b == cr {
                    state = .sizeCR
                } else if b == sp || b == ht {
                    state = .extBWS(afterSemicolon: false)
                } else if b == UInt8(ascii: ";") {
                    state = .extBWS(afterSemicolon: true)
                } else {
                    return bad("invalid chunk size line (unexpected byte after the size)")
                }
            case .extBWS, .extName, .extAfterName, .extValueStart, .extToken, .extQuoted, .extQuotedEscape, .extAfterValue:
                lineLength += 1
                guard lineLength <= Self.maxChunkLine else { return bad("chunk size line longer than \(Self.maxChunkLine) bytes") }
                if let problem = chunkExtension(b) { return bad(problem) }
            case .sizeCR:
                guard b == lf else { return bad("CR not followed by LF in a chunk size line") }
                state = chunkSize == 0 ? .trailerLineStart : .data(remaining: chunkSize)
            case let .data(remaining):
                // Skip the chunk's bytes in one step.
                let n = UInt64(bytes.count - i)
                if n >= remaining {
                    i += Int(remaining)
                    state = .dataCR
                } else {
                    i = bytes.count
                    state = .data(remaining: remaining - n)
                }
                continue
            case .dataCR:
                guard b == cr else { return bad("chunk data not followed by CRLF") }
                state = .dataLF
            case .dataLF:
                guard b == lf else { return bad("chunk data not followed by CRLF") }
                state = .sizeStart
            case .trailerLineStart:
                if b == cr { state = .cr(then: .messageEnd) }
                else if b == lf { return bad("bare LF line ending in the trailer section") }
                else if b == sp || b == ht { return bad("obsolete line folding in the trailer section") }
                else if !Self.isTokenByte(b) { return bad("invalid trailer field name") }
                else { state = .trailerName }
            case .trailerName:
                if b == UInt8(ascii: ":") { state = .trailerValue }
                else if !Self.isTokenByte(b) { return bad("invalid trailer field name") }
            case .trailerValue:
                if b == cr { state = .cr(then: .trailerLine) }
                else if b == lf { return bad("bare LF line ending in the trailer section") }
                else if !Self.isFieldValueByte(b) { return bad("control character in a trailer field value") }
            }
            i += 1
        }
        return .fine
    }

    /// chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ), then CRLF.
    private mutating func chunkExtension(_ b: UInt8) -> String? {
        let whitespace = b == 32 || b == 9
        switch state {
        case let .extBWS(afterSemicolon):
            if whitespace { return nil }
            if afterSemicolon {
                guard Self.isTokenByte(b) else { return "invalid chunk extension name" }
                state = .extName
            } else {
                guard b == UInt8(ascii: ";") else { return "invalid chunk size line (unexpected byte after the size)" }
                state = .extBWS(afterSemicolon: true)
            }
        case .extName:
            if Self.isTokenByte(b) { return nil }
            return afterNameOrValue(b, allowEquals: true, whitespace: whitespace)
        case .extAfterName:
            return afterNameOrValue(b, allowEquals: true, whitespace: whitespace)
        case .extValueStart:
            if whitespace { return nil }
            if b == UInt8(ascii: "\"") { state = .extQuoted }
            else if Self.isTokenByte(b) { state = .extToken }
            else { return "invalid chunk extension value" }
        case .extToken:
            if Self.isTokenByte(b) { return nil }
            return afterNameOrValue(b, allowEquals: false, whitespace: whitespace)
        case .extQuoted:
            if b == UInt8(ascii: "\"") { state = .extAfterValue }
            else if b == UInt8(ascii: "\\") { state = .extQuotedEscape }
            else if b != 9, b < 0x20 || b == 0x7F { return "control character in a chunk extension" }
        case .extQuotedEscape:
            guard b == 9 || (b >= 0x20 && b != 0x7F) else { return "control character in a chunk extension" }
            state = .extQuoted
        case .extAfterValue:
            return afterNameOrValue(b, allowEquals: false, whitespace: whitespace)
        default:
            break
        }
        return nil
    }

    /// After an extension's name or value: whitespace, "=" (after a name), ";" or the line's CR.
    private mutating func afterNameOrValue(_ b: UInt8, allowEquals: Bool, whitespace: Bool) -> String? {
        if whitespace {
            state = allowEquals ? .extAfterName : .extAfterValue
        } else if b == UInt8(ascii: "="), allowEquals {
            state = .extValueStart
        } else if b == UInt8(ascii: ";") {
            state = .extBWS(afterSemicolon: true)
        } else if b == 13 {
            state = .sizeCR
        } else {
            return "invalid chunk extension"
        }
        return nil
    }
}
