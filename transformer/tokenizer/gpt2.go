package tokenizer

import (
	"bytes"
	_ "embed" // for the embedded GPT-2 vocabulary
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"
)

// EndOfText is GPT-2's end-of-text special token.
const EndOfText = "<|endoftext|>"

// File names of a GPT-2 model directory.
const (
	gpt2VocabFile  = "vocab.json"
	gpt2MergesFile = "merges.txt"
)

// The BPE cache holds the ids of pre-tokens up to bpeCacheMaxWord bytes
// long, at most bpeCacheMax of them.
const (
	bpeCacheMax     = 1 << 15
	bpeCacheMaxWord = 256
)

//go:embed data/gpt2/vocab.json
var gpt2VocabJSON string

//go:embed data/gpt2/merges.txt
var gpt2Merges string

// GPT2 is GPT-2's byte-level byte-pair-encoding tokenizer. It reproduces
// OpenAI's encoder.py and Hugging Face's GPT2Tokenizer exactly. A GPT2 is
// safe for concurrent use.
type GPT2 struct {
	tokens     []string           // id → vocabulary string
	tokenBytes [][]byte           // id → the bytes the token stands for
	merges     map[uint64]bpeRule // pair of ids → merge rule
	byteToken  [256]int           // byte → id of its one-byte token
	eot        int                // id of EndOfText
	cache      *bpeCache
}

// bpeRule is one line of merges.txt: merging the pair gives token id, and
// rules with lower ranks apply first.
type bpeRule struct {
	rank int
	id   int
}

// bpeCache memoizes the ids of pre-tokens.
type bpeCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

// DefaultGPT2 returns the tokenizer of OpenAI's GPT-2 models (50,257 tokens),
// built from the vocabulary and merges embedded in this package.
func DefaultGPT2() (*GPT2, error) {
	return NewGPT2([]byte(gpt2VocabJSON), []byte(gpt2Merges))
}

// LoadGPT2Dir returns the tokenizer described by the files vocab.json and
// merges.txt in dir, as found in a Hugging Face GPT-2 model directory.
func LoadGPT2Dir(dir string) (*GPT2, error) {
	vocabPath := filepath.Join(dir, gpt2VocabFile)
	vocab, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	mergesPath := filepath.Join(dir, gpt2MergesFile)
	merges, err := os.ReadFile(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := NewGPT2(vocab, merges)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	return t, nil
}

// NewGPT2 returns a byte-level BPE tokenizer built from the contents of a
// vocab.json file (a JSON object mapping each token to its id, with ids
// 0..n-1) and a merges.txt file (an optional "#version" line, then one merge
// rule "left right" per line, highest priority first).
//
// The vocabulary must hold a token for each of the 256 bytes and the token
// "<|endoftext|>", and every token a merge rule names or produces.
func NewGPT2(vocabJSON, merges []byte) (*GPT2, error) {
	var vocab map[string]int
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", gpt2VocabFile, err)
	}
	n := len(vocab)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: %s: empty vocabulary", gpt2VocabFile)
	}
	t := &GPT2{
		tokens:     make([]string, n),
		tokenBytes: make([][]byte, n),
		merges:     make(map[uint64]bpeRule),
		cache:      &bpeCache{m: make(map[string][]int)},
	}
	seen := make([]bool, n)
	for tok, id := range vocab {
		if id < 0 || id >= n {
			return nil, fmt.Errorf("tokenizer: %s: token %q has id %d, outside 0..%d", gpt2VocabFile, tok, id, n-1)
		}
		if seen[id] {
			return nil, fmt.Errorf("tokenizer: %s: tokens %q and %q share id %d", gpt2VocabFile, t.tokens[id], tok, id)
		}
		seen[id] = true
		t.tokens[id] = tok
	}

	enc := bytesToUnicode()
	var dec [2 * 256]int16 // rune → byte+1; 0 where the rune stands for no byte
	for b, r := range enc {
		dec[r] = int16(b) + 1
		id, ok := vocab[string(r)]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: no token for byte 0x%02x (%q)", gpt2VocabFile, b, r)
		}
		t.byteToken[b] = id
	}
	for id, tok := range t.tokens {
		bs := make([]byte, 0, len(tok))
		for _, r := range tok {
			if r >= 0 && int(r) < len(dec) && dec[r] != 0 {
				bs = append(bs, byte(dec[r]-1))
			} else {
				// Not a byte-level character: an added token
				// stands for its own UTF-8 text.
				bs = utf8.AppendRune(bs, r)
			}
		}
		t.tokenBytes[id] = bs
	}
	eot, ok := vocab[EndOfText]
	if !ok {
		return nil, fmt.Errorf("tokenizer: %s: no token %q", gpt2VocabFile, EndOfText)
	}
	t.eot = eot

	if err := t.parseMerges(vocab, merges); err != nil {
		return nil, err
	}
	return t, nil
}

// parseMerges fills t.merges from the contents of merges.txt.
func (t *GPT2) parseMerges(vocab map[string]int, merges []byte) error {
	rank := 0
	for i, line := range bytes.Split(merges, []byte("\n")) {
		lineNo := i + 1
		line = bytes.TrimSuffix(line, []byte("\r"))
		if i == 0 && bytes.HasPrefix(line, []byte("#version")) {
			continue
		}
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return fmt.Errorf("tokenizer: %s line %d: want 2 tokens, got %d", gpt2MergesFile, lineNo, len(fields))
		}
		left, ok := vocab[fields[0]]
		if !ok {
			return fmt.Errorf("tokenizer: %s line %d: token %q is not in %s", gpt2MergesFile, lineNo, fields[0], gpt2VocabFile)
		}
		right, ok := vocab[fields[1]]
		if !ok {
			return fmt.Errorf("tokenizer: %s line %d: token %q is not in %s", gpt2MergesFile, lineNo, fields[1], gpt2VocabFile)
		}
		merged, ok := vocab[fields[0]+fields[1]]
		if !ok {
			return fmt.Errorf("tokenizer: %s line %d: merged token %q is not in %s", gpt2MergesFile, lineNo, fields[0]+fields[1], gpt2VocabFile)
		}
		// As in the reference's dict(zip(merges, range(...))), a
		// repeated rule takes the rank of its last line.
		t.merges[pairKey(left, right)] = bpeRule{rank: rank, id: merged}
		rank++
	}
	return nil
}

// pairKey packs two token ids into a map key.
func pairKey(left, right int) uint64 {
	return uint64(uint32(left))<<32 | uint64(uint32(right))
}

// bytesToUnicode returns GPT-2's reversible map from bytes to runes: the
// printable bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' map to themselves, and the
// other 68 bytes, in increasing order, to U+0100, U+0101, and so on.
func bytesToUnicode() [256]rune {
	var t [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			t[b] = rune(b)
		} else {
			t[b] = rune(256 + n)
			n++
		}
	}
	return t
}

// Encode returns the token ids of text, reading each occurrence of the
// literal string "<|endoftext|>" as the end-of-text token, as Hugging Face's
// GPT2Tokenizer does. The text between occurrences is encoded as by
// EncodeOrdinary.
func (t *GPT2) Encode(text string) []int {
	ids := make([]int, 0, len(text)/4+1)
	for {
		k := strings.Index(text, EndOfText)
		if k < 0 {
			break
		}
		ids = t.appendOrdinary(ids, text[:k])
		ids = append(ids, t.eot)
		text = text[k+len(EndOfText):]
	}
	return t.appendOrdinary(ids, text)
}

// EncodeOrdinary returns the token ids of text, treating all of it as
// ordinary text, as OpenAI's encoder does: "<|endoftext|>" in text is
// encoded as its characters, not as the special token.
//
// Invalid UTF-8 in text is encoded byte for byte (each invalid byte counts
// as a symbol for pre-tokenization), so Decode then yields U+FFFD for it.
func (t *GPT2) EncodeOrdinary(text string) []int {
	return t.appendOrdinary(make([]int, 0, len(text)/4+1), text)
}

// appendOrdinary appends the ids of text, all of it ordinary, to ids.
func (t *GPT2) appendOrdinary(ids []int, text string) []int {
	for i := 0; i < len(text); {
		j := gpt2Split(text, i)
		ids = t.appendWord(ids, text[i:j])
		i = j
	}
	return ids
}

// appendWord appends the ids of one pre-token to ids.
func (t *GPT2) appendWord(ids []int, word string) []int {
	cacheable := len(word) <= bpeCacheMaxWord
	if cacheable {
		t.cache.mu.RLock()
		cached, ok := t.cache.m[word]
		t.cache.mu.RUnlock()
		if ok {
			return append(ids, cached...)
		}
	}
	symbols := make([]int, len(word))
	for i := 0; i < len(word); i++ {
		symbols[i] = t.byteToken[word[i]]
	}
	symbols = t.bpe(symbols)
	if cacheable {
		t.cache.mu.Lock()
		if len(t.cache.m) >= bpeCacheMax {
			clear(t.cache.m)
		}
		t.cache.m[word] = symbols
		t.cache.mu.Unlock()
	}
	return append(ids, symbols...)
}

// bpeShortWord is the longest word, in symbols, that bpe merges with the
// quadratic loop; longer words use the heap.
const bpeShortWord = 32

// bpe applies the merge rules to symbols, reusing its storage, exactly as
// the reference's bpe(): while some adjacent pair has a rule, take the pair
// whose rule ranks lowest and merge all its non-overlapping occurrences from
// left to right.
func (t *GPT2) bpe(symbols []int) []int {
	if len(symbols) <= bpeShortWord {
		return t.bpeLoop(symbols)
	}
	return t.bpeHeap(symbols)
}

// bpeLoop is bpe as the reference writes it, in time quadratic in the
// length of symbols.
func (t *GPT2) bpeLoop(symbols []int) []int {
	for len(symbols) > 1 {
		best := bpeRule{rank: math.MaxInt}
		var left, right int
		for i := 0; i+1 < len(symbols); i++ {
			if r, ok := t.merges[pairKey(symbols[i], symbols[i+1])]; ok && r.rank < best.rank {
				best, left, right = r, symbols[i], symbols[i+1]
			}
		}
		if best.rank == math.MaxInt {
			break
		}
		j := 0
		for i := 0; i < len(symbols); j++ {
			if i+1 < len(symbols) && symbols[i] == left && symbols[i+1] == right {
				symbols[j] = best.id
				i += 2
			} else {
				symbols[j] = symbols[i]
				i++
			}
		}
		symbols = symbols[:j]
	}
	return symbols
}

// bpeNode is a symbol of a word being merged by bpeHeap, in a linked list.
type bpeNode struct {
	id         int
	prev, next int // neighbouring nodes, -1 at the ends
	dead       bool
}

// bpeCand is a pair of adjacent nodes that a rule may merge, as it was when
// found; it is stale once either node has changed.
type bpeCand struct {
	rank, merged    int
	left, right     int // nodes
	leftID, rightID int
}

// bpeHeap is bpe in O(n log n) time. It keeps the candidate pairs in a heap
// ordered by rank, then position. A phase pops every candidate of the lowest
// rank in left-to-right order, merging those still current, which is the
// reference's left-to-right scan; the pairs that the merges create join the
// heap only when the phase ends, as they join the reference's next
// iteration.
func (t *GPT2) bpeHeap(symbols []int) []int {
	if len(symbols) < 2 {
		return symbols
	}
	nodes := make([]bpeNode, len(symbols))
	for i, id := range symbols {
		nodes[i] = bpeNode{id: id, prev: i - 1, next: i + 1}
	}
	nodes[len(nodes)-1].next = -1
	var h []bpeCand
	push := func(left int) {
		if left < 0 {
			return
		}
		right := nodes[left].next
		if right < 0 {
			return
		}
		if r, ok := t.merges[pairKey(nodes[left].id, nodes[right].id)]; ok {
			h = heapPush(h, bpeCand{rank: r.rank, merged: r.id, left: left, right: right, leftID: nodes[left].id, rightID: nodes[right].id})
		}
	}
	current := func(c bpeCand) bool {
		l, r := &nodes[c.left], &nodes[c.right]
		return !l.dead && !r.dead && l.next == c.right && l.id == c.leftID && r.id == c.rightID
	}
	for i := range nodes {
		push(i)
	}
	var merged []int
	for len(h) > 0 {
		rank := h[0].rank
		merged = merged[:0]
		for len(h) > 0 && h[0].rank == rank {
			var c bpeCand
			h, c = heapPop(h)
			if !current(c) {
				continue
			}
			l, r := &nodes[c.left], &nodes[c.right]
			l.id = c.merged
			l.next = r.next
			r.dead = true
			if r.next >= 0 {
				nodes[r.next].prev = c.left
			}
			merged = append(merged, c.left)
		}
		for _, m := range merged {
			push(nodes[m].prev)
			push(m)
		}
	}
	symbols = symbols[:0]
	for i := 0; i >= 0; i = nodes[i].next {
		symbols = append(symbols, nodes[i].id)
	}
	return symbols
}

// candLess orders candidates by rank, then by position.
func candLess(a, b bpeCand) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}

// heapPush adds c to the binary heap h.
func heapPush(h []bpeCand, c bpeCand) []bpeCand {
	h = append(h, c)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !candLess(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

// heapPop removes and returns the least candidate of the binary heap h,
// which must not be empty.
func heapPop(h []bpeCand) ([]bpeCand, bpeCand) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, least := 2*i+1, i
		if l < n && candLess(h[l], h[least]) {
			least = l
		}
		if r := l + 1; r < n && candLess(h[r], h[least]) {
			least = r
		}
		if least == i {
			break
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
	return h, top
}

// Decode returns the text that ids stand for. Byte sequences that are not
// valid UTF-8 (as when ids end inside a multi-byte character) decode to
// U+FFFD, one per maximal ill-formed subpart, as Python's
// errors="replace" does. Decode returns an error, naming the id, if an id is
// out of range.
func (t *GPT2) Decode(ids []int) (string, error) {
	n := 0
	for _, id := range ids {
		if id < 0 || id >= len(t.tokens) {
			return "", fmt.Errorf("tokenizer: GPT-2 token id %d out of range [0, %d)", id, len(t.tokens))
		}
		n += len(t.tokenBytes[id])
	}
	buf := make([]byte, 0, n)
	for _, id := range ids {
		buf = append(buf, t.tokenBytes[id]...)
	}
	return decodeUTF8Replace(buf), nil
}

// TokenString returns the vocabulary string of id, in GPT-2's byte-level
// alphabet (a leading space shows as "Ġ"), or "" if id is out of range.
func (t *GPT2) TokenString(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// VocabSize returns the number of tokens, 50,257 for GPT-2.
func (t *GPT2) VocabSize() int { return len(t.tokens) }

// EOT returns the id of the end-of-text token "<|endoftext|>", 50,256 for
// GPT-2.
func (t *GPT2) EOT() int { return t.eot }

// DefaultGPT2Files returns the embedded GPT-2 vocab.json and merges.txt, as
// published, for writing a model directory.
func DefaultGPT2Files() (vocabJSON, merges []byte) {
	return []byte(gpt2VocabJSON), []byte(gpt2Merges)
}
