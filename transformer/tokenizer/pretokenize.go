package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// charClass is the class of a rune for GPT-2's pre-tokenizer pattern.
type charClass uint8

const (
	classLetter charClass = iota // \p{L}
	classNumber                  // \p{N}
	classSpace                   // \s (Unicode White_Space)
	classOther                   // [^\s\p{L}\p{N}]
)

// classOf returns the pre-tokenizer class of r. The classes follow Python
// regex's \p{L}, \p{N} and \s: \s is the Unicode White_Space property, which
// is what unicode.IsSpace tests. An invalid UTF-8 byte arrives here as
// utf8.RuneError (U+FFFD, a symbol) and so counts as classOther.
func classOf(r rune) charClass {
	if r < utf8.RuneSelf {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
			return classLetter
		case '0' <= r && r <= '9':
			return classNumber
		case r == ' ', '\t' <= r && r <= '\r':
			return classSpace
		}
		return classOther
	}
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// contractionLen returns the length of the contraction suffix ("s", "t",
// "re", "ve", "m", "ll" or "d") that rest starts with, or 0 if there is
// none. The match is case-sensitive, as in GPT-2's pattern.
func contractionLen(rest string) int {
	if rest == "" {
		return 0
	}
	switch rest[0] {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(rest) >= 2 && rest[1] == 'e' {
			return 2
		}
	case 'l':
		if len(rest) >= 2 && rest[1] == 'l' {
			return 2
		}
	}
	return 0
}

// gpt2Split returns the byte offset at which the pre-token starting at byte
// offset i of s ends; i must be less than len(s). It reproduces the leftmost
// match of GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// with the alternatives tried in order, including the backtracking that the
// lookahead in \s+(?!\S) causes: a run of two or more whitespace runes
// followed by a non-space leaves its last rune to start the next pre-token.
func gpt2Split(s string, i int) int {
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == '\'' {
		if n := contractionLen(s[i+w:]); n > 0 {
			return i + w + n
		}
	}
	start, c := i, classOf(r)
	if r == ' ' && i+w < len(s) {
		r2, _ := utf8.DecodeRuneInString(s[i+w:])
		if c2 := classOf(r2); c2 != classSpace {
			start, c = i+w, c2
		}
	}
	if c != classSpace {
		// ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`: a maximal run of
		// one class, which starts at start.
		end := start
		for end < len(s) {
			r, w := utf8.DecodeRuneInString(s[end:])
			if classOf(r) != c {
				break
			}
			end += w
		}
		return end
	}
	// \s+(?!\S) or \s+.
	end, last := i, i
	for end < len(s) {
		r, w := utf8.DecodeRuneInString(s[end:])
		if classOf(r) != classSpace {
			break
		}
		last = end
		end += w
	}
	if end == len(s) || last == i {
		// The run reaches the end of the text, or it is one rune
		// followed by a non-space (only \s+ matches then).
		return end
	}
	return last
}
