package tokenizer

import (
	"bytes"
	_ "embed" // for the embedded BERT vocabulary
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// BERT's special tokens.
const (
	ClsToken  = "[CLS]"
	SepToken  = "[SEP]"
	PadToken  = "[PAD]"
	UnkToken  = "[UNK]"
	MaskToken = "[MASK]"
)

// wordPieceVocabFile is the vocabulary's file name in a BERT model directory.
const wordPieceVocabFile = "vocab.txt"

// maxInputCharsPerWord is WordpieceTokenizer's limit: a longer word (in
// runes) becomes [UNK].
const maxInputCharsPerWord = 100

// continuationPrefix marks a WordPiece that continues a word.
const continuationPrefix = "##"

//go:embed data/bert-base-uncased/vocab.txt
var bertBaseUncasedVocab string

// WordPiece is BERT's tokenizer. It reproduces Hugging Face's BertTokenizer
// (a BasicTokenizer followed by a WordpieceTokenizer) exactly. A WordPiece is
// safe for concurrent use.
type WordPiece struct {
	vocab     map[string]int // token → id
	tokens    []string       // id → token
	lowercase bool
	specials  map[string]int // special token → id
	cls, sep  int
	pad, unk  int
	mask      int
}

// DefaultBERT returns the uncased tokenizer of bert-base-uncased (30,522
// tokens), built from the vocabulary embedded in this package.
func DefaultBERT() (*WordPiece, error) {
	return NewWordPiece([]byte(bertBaseUncasedVocab), true)
}

// LoadWordPieceDir returns the tokenizer described by the file vocab.txt in
// dir, as found in a Hugging Face BERT model directory. lowercase selects an
// uncased model (lower-casing and accent stripping).
func LoadWordPieceDir(dir string, lowercase bool) (*WordPiece, error) {
	path := filepath.Join(dir, wordPieceVocabFile)
	vocab, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := NewWordPiece(vocab, lowercase)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	return t, nil
}

// NewWordPiece returns a WordPiece tokenizer built from the contents of a
// vocab.txt file: one token per line, the token on line n (counting from 0)
// having id n. The vocabulary must hold the special tokens [CLS], [SEP],
// [PAD], [UNK] and [MASK]. If lowercase is true the tokenizer is uncased: it
// lower-cases text and strips accents, as bert-base-uncased expects.
//
// As in Hugging Face's load_vocab, a token that appears on more than one
// line maps to its last line.
func NewWordPiece(vocabTxt []byte, lowercase bool) (*WordPiece, error) {
	if len(vocabTxt) > 0 && vocabTxt[len(vocabTxt)-1] == '\n' {
		vocabTxt = vocabTxt[:len(vocabTxt)-1]
	}
	if len(vocabTxt) == 0 {
		return nil, fmt.Errorf("tokenizer: %s: empty vocabulary", wordPieceVocabFile)
	}
	lines := bytes.Split(vocabTxt, []byte("\n"))
	t := &WordPiece{
		vocab:     make(map[string]int, len(lines)),
		tokens:    make([]string, len(lines)),
		lowercase: lowercase,
		specials:  make(map[string]int),
	}
	for id, line := range lines {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if !utf8.Valid(line) {
			return nil, fmt.Errorf("tokenizer: %s line %d: invalid UTF-8", wordPieceVocabFile, id+1)
		}
		tok := string(line)
		t.tokens[id] = tok
		t.vocab[tok] = id
	}
	for _, s := range []struct {
		tok string
		id  *int
	}{
		{ClsToken, &t.cls}, {SepToken, &t.sep}, {PadToken, &t.pad}, {UnkToken, &t.unk}, {MaskToken, &t.mask},
	} {
		id, ok := t.vocab[s.tok]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: no special token %s", wordPieceVocabFile, s.tok)
		}
		*s.id = id
		t.specials[s.tok] = id
	}
	return t, nil
}

// Encode returns the token ids of text, without [CLS] and [SEP]. Special
// tokens written literally in text, such as "[MASK]", are kept whole and
// encoded as themselves, as Hugging Face does.
func (t *WordPiece) Encode(text string) []int {
	ids := make([]int, 0, len(text)/4+1)
	for _, tok := range t.Tokenize(text) {
		ids = append(ids, t.vocab[tok])
	}
	return ids
}

// EncodeForModel returns the token ids of text framed for a BERT model:
// [CLS], the ids of Encode, then [SEP].
func (t *WordPiece) EncodeForModel(text string) []int {
	ids := t.Encode(text)
	out := make([]int, 0, len(ids)+2)
	out = append(out, t.cls)
	out = append(out, ids...)
	return append(out, t.sep)
}

// EncodePair returns the token ids of a sentence pair framed for a BERT
// model, [CLS] a [SEP] b [SEP], with the matching token type ids: 0 for
// [CLS], a and the first [SEP], 1 for b and the last [SEP].
func (t *WordPiece) EncodePair(a, b string) (ids, typeIDs []int) {
	ia, ib := t.Encode(a), t.Encode(b)
	n := len(ia) + len(ib) + 3
	ids = make([]int, 0, n)
	typeIDs = make([]int, n)
	ids = append(ids, t.cls)
	ids = append(ids, ia...)
	ids = append(ids, t.sep)
	for i := len(ids); i < n; i++ {
		typeIDs[i] = 1
	}
	ids = append(ids, ib...)
	ids = append(ids, t.sep)
	return ids, typeIDs
}

// Tokenize returns the WordPiece tokens of text, without [CLS] and [SEP]:
// for example "unaffable" gives "un", "##aff", "##able". A word that has no
// segmentation into vocabulary pieces, or is longer than 100 runes, becomes
// [UNK].
func (t *WordPiece) Tokenize(text string) []string {
	var out []string
	for text != "" {
		// Special tokens written in the text are split off first, as
		// Hugging Face's added-tokens trie does.
		k, special := t.nextSpecial(text)
		if k < 0 {
			return t.appendPieces(out, text)
		}
		out = t.appendPieces(out, text[:k])
		out = append(out, special)
		text = text[k+len(special):]
	}
	return out
}

// nextSpecial returns the byte offset and text of the leftmost special token
// in text, or -1 and "" if there is none.
func (t *WordPiece) nextSpecial(text string) (int, string) {
	for i := 0; i < len(text); {
		k := strings.IndexByte(text[i:], '[')
		if k < 0 {
			return -1, ""
		}
		i += k
		best := ""
		for tok := range t.specials {
			if len(tok) > len(best) && strings.HasPrefix(text[i:], tok) {
				best = tok
			}
		}
		if best != "" {
			return i, best
		}
		i++
	}
	return -1, ""
}

// appendPieces appends the WordPiece tokens of text, which holds no special
// token, to out.
func (t *WordPiece) appendPieces(out []string, text string) []string {
	if text == "" {
		return out
	}
	if t.lowercase {
		text = bertLower(text)
	}
	for _, word := range t.basicTokenize(text) {
		out = t.appendWordPieces(out, word)
	}
	return out
}

// appendWordPieces appends the greedy longest-match-first WordPiece
// segmentation of word to out, or [UNK] if it has none.
func (t *WordPiece) appendWordPieces(out []string, word string) []string {
	if _, ok := t.specials[word]; ok {
		return append(out, word)
	}
	if utf8.RuneCountInString(word) > maxInputCharsPerWord {
		return append(out, UnkToken)
	}
	n := len(out)
	buf := make([]byte, 0, len(continuationPrefix)+len(word))
	for start := 0; start < len(word); {
		end := len(word)
		found := ""
		for start < end {
			buf = buf[:0]
			if start > 0 {
				buf = append(buf, continuationPrefix...)
			}
			buf = append(buf, word[start:end]...)
			if id, ok := t.vocab[string(buf)]; ok {
				found = t.tokens[id]
				break
			}
			// Step back one rune.
			_, w := utf8.DecodeLastRuneInString(word[start:end])
			end -= w
		}
		if found == "" {
			return append(out[:n], UnkToken)
		}
		out = append(out, found)
		start = end
	}
	return out
}

// Decode returns the tokens of ids joined by spaces, with each "##"
// continuation joined to the piece before it. This is Hugging Face's decode
// with clean_up_tokenization_spaces=False: " ".join(tokens).replace(" ##",
// "").strip(). Special tokens decode as their text ("[CLS]"). Decode returns
// an error, naming the id, if an id is out of range.
func (t *WordPiece) Decode(ids []int) (string, error) {
	toks := make([]string, len(ids))
	for i, id := range ids {
		if id < 0 || id >= len(t.tokens) {
			return "", fmt.Errorf("tokenizer: WordPiece token id %d out of range [0, %d)", id, len(t.tokens))
		}
		toks[i] = t.tokens[id]
	}
	s := strings.ReplaceAll(strings.Join(toks, " "), " "+continuationPrefix, "")
	return strings.TrimSpace(s), nil
}

// TokenString returns the vocabulary string of id, or "" if id is out of
// range.
func (t *WordPiece) TokenString(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// ID returns the id of a vocabulary token and whether it is in the
// vocabulary.
func (t *WordPiece) ID(token string) (int, bool) {
	id, ok := t.vocab[token]
	return id, ok
}

// VocabSize returns the number of token ids (lines of vocab.txt), 30,522 for
// bert-base-uncased.
func (t *WordPiece) VocabSize() int { return len(t.tokens) }

// CLS returns the id of [CLS], which starts every model input.
func (t *WordPiece) CLS() int { return t.cls }

// SEP returns the id of [SEP], which ends each sentence of a model input.
func (t *WordPiece) SEP() int { return t.sep }

// PAD returns the id of [PAD], which pads a model input.
func (t *WordPiece) PAD() int { return t.pad }

// UNK returns the id of [UNK], which stands for a word with no WordPiece
// segmentation.
func (t *WordPiece) UNK() int { return t.unk }

// MASK returns the id of [MASK], the masked-language-model token.
func (t *WordPiece) MASK() int { return t.mask }

// DefaultBERTVocab returns the embedded bert-base-uncased vocab.txt, as
// published, for writing a model directory.
func DefaultBERTVocab() []byte { return []byte(bertBaseUncasedVocab) }
