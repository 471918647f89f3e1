package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// bertLower lower-cases s one rune at a time, with Python's str.lower()
// mapping for single characters: the simple Unicode lower-case mapping,
// except that U+0130 (İ) becomes "i" followed by U+0307. Hugging Face's
// PreTrainedTokenizer.tokenize lower-cases uncased text character by
// character before the BasicTokenizer sees it, so Greek capital sigma
// always becomes σ, never the final form ς.
func bertLower(s string) string {
	if !strings.ContainsRune(s, '\u0130') {
		// strings.ToLower maps each rune with unicode.ToLower.
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 1)
	for _, r := range s {
		if r == '\u0130' {
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// bertIsWhitespace reports whether r is whitespace for BERT's _clean_text:
// space, tab, newline, carriage return or a space separator (Zs).
func bertIsWhitespace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r':
		return true
	}
	return unicode.Is(unicode.Zs, r)
}

// bertIsControl reports whether r is a control character for BERT's
// _clean_text: any character of general category C (Cc, Cf, Co, Cs, or Cn,
// unassigned) other than tab, newline and carriage return. Go's unicode.C
// table covers the unassigned code points too.
func bertIsControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	return unicode.Is(unicode.C, r)
}

// bertIsPunctuation reports whether r is punctuation for BERT: every ASCII
// character that is neither a letter, a digit, a space nor a control
// character (33-47, 58-64, 91-96 and 123-126), and every character of
// general category P.
func bertIsPunctuation(r rune) bool {
	if r < utf8.RuneSelf {
		return (33 <= r && r <= 47) || (58 <= r && r <= 64) || (91 <= r && r <= 96) || (123 <= r && r <= 126)
	}
	return unicode.IsPunct(r)
}

// bertIsCJK reports whether r is in one of the CJK Unified Ideographs blocks
// that BERT's _is_chinese_char lists.
func bertIsCJK(r rune) bool {
	return (0x4E00 <= r && r <= 0x9FFF) ||
		(0x3400 <= r && r <= 0x4DBF) ||
		(0x20000 <= r && r <= 0x2A6DF) ||
		(0x2A700 <= r && r <= 0x2B73F) ||
		(0x2B740 <= r && r <= 0x2B81F) ||
		(0x2B820 <= r && r <= 0x2CEAF) ||
		(0xF900 <= r && r <= 0xFAFF) ||
		(0x2F800 <= r && r <= 0x2FA1F)
}

// basicTokenize splits text into words as Hugging Face's BasicTokenizer
// does. The text is already lower-cased (by bertLower) when the tokenizer
// is uncased.
func (t *WordPiece) basicTokenize(text string) []string {
	// _clean_text and _tokenize_chinese_chars. Invalid UTF-8 bytes
	// arrive as U+FFFD and are dropped with it.
	var b strings.Builder
	b.Grow(len(text))
	for _, r := range text {
		if r < utf8.RuneSelf {
			switch {
			case r == ' ', r == '\t', r == '\n', r == '\r':
				b.WriteByte(' ')
			case r < 0x20, r == 0x7F:
				// Cc, with NUL: removed.
			default:
				b.WriteByte(byte(r))
			}
			continue
		}
		switch {
		case r == 0 || r == '\uFFFD' || bertIsControl(r):
		case bertIsWhitespace(r):
			b.WriteByte(' ')
		case bertIsCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	// BasicTokenizer normalizes to NFC before splitting on whitespace.
	cleaned := norm.NFC.String(b.String())

	var out []string
	for _, tok := range strings.FieldsFunc(cleaned, unicode.IsSpace) {
		if _, special := t.specials[tok]; special {
			// never_split: a special token stays whole.
			out = append(out, tok)
			continue
		}
		if t.lowercase {
			// token.lower() is a no-op on text that bertLower
			// has lower-cased; then strip accents.
			tok = stripAccents(tok)
		}
		out = appendSplitOnPunc(out, tok)
	}
	return out
}

// stripAccents decomposes s (NFD) and drops the nonspacing marks (Mn).
func stripAccents(s string) string {
	if isASCII(s) {
		return s
	}
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendSplitOnPunc appends the pieces of tok to out, each punctuation rune
// a piece of its own, skipping empty pieces and splitting again on
// whitespace (as BasicTokenizer's final whitespace_tokenize does).
func appendSplitOnPunc(out []string, tok string) []string {
	start := 0
	for i, r := range tok {
		if bertIsPunctuation(r) {
			out = appendFields(out, tok[start:i])
			out = append(out, string(r))
			start = i + utf8.RuneLen(r)
		}
	}
	return appendFields(out, tok[start:])
}

// appendFields appends the whitespace-separated fields of s to out.
func appendFields(out []string, s string) []string {
	if s == "" {
		return out
	}
	if strings.IndexFunc(s, unicode.IsSpace) < 0 {
		return append(out, s)
	}
	return append(out, strings.FieldsFunc(s, unicode.IsSpace)...)
}
