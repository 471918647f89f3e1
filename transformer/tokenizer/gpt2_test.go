package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newGPT2 returns the default GPT-2 tokenizer or stops the test.
func newGPT2(tb testing.TB) *GPT2 {
	tb.Helper()
	tok, err := DefaultGPT2()
	require.NoError(tb, err)
	return tok
}

// readJSON decodes a testdata file into v.
func readJSON(tb testing.TB, name string, v any) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(tb, err)
	require.NoError(tb, json.Unmarshal(data, v), name)
}

func TestGPT2PublishedFacts(t *testing.T) {
	tok := newGPT2(t)
	// From OpenAI's GPT-2 vocabulary, as listed in shared/data/README.md.
	tests := []struct {
		text string
		want []int
	}{
		{"Hello world", []int{15496, 995}},
		{"Hello, world!", []int{15496, 11, 995, 0}},
		{"The dog", []int{464, 3290}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			assert.Equal(t, tt.want, tok.EncodeOrdinary(tt.text))
			assert.Equal(t, tt.want, tok.Encode(tt.text))
		})
	}
	assert.Equal(t, 50257, tok.VocabSize())
	assert.Equal(t, 50256, tok.EOT())
	assert.Equal(t, EndOfText, tok.TokenString(50256))
	assert.Equal(t, "Hello", tok.TokenString(15496))
	assert.Equal(t, "Ġworld", tok.TokenString(995))
	assert.Equal(t, "", tok.TokenString(-1))
	assert.Equal(t, "", tok.TokenString(50257))
}

// gpt2Golden is one entry of testdata/gpt2_golden.json, made by
// testdata/gen/gpt2_golden.js with gpt-3-encoder (OpenAI's encoder in
// JavaScript) and cross-checked against Tokenizers.js.
type gpt2Golden struct {
	Text string `json:"text"`
	IDs  []int  `json:"ids"` // gpt-3-encoder
	// HFIDs, where present, are the reference ids (Python regex /
	// Hugging Face semantics) for a string on which gpt-3-encoder
	// differs; Note says why. The only such strings hold U+0085 or
	// U+FEFF, which JavaScript's \s, unlike Python regex's, respectively
	// omits and includes.
	HFIDs []int  `json:"hf_ids"`
	Note  string `json:"note"`
	// EncodeIDs, for text holding "<|endoftext|>", are Hugging Face's
	// ids, with the special token read as such.
	EncodeIDs []int `json:"encode_ids"`
}

func TestGPT2Golden(t *testing.T) {
	tok := newGPT2(t)
	var golden []gpt2Golden
	readJSON(t, "gpt2_golden.json", &golden)
	require.GreaterOrEqual(t, len(golden), 300)
	quirks := 0
	for _, g := range golden {
		want := g.IDs
		if g.HFIDs != nil {
			quirks++
			want = g.HFIDs
			assert.NotEmpty(t, g.Note, "%q", g.Text)
			assert.True(t, strings.ContainsAny(g.Text, "\u0085\ufeff"),
				"gpt-3-encoder differs from the reference on %q, which has neither U+0085 nor U+FEFF", g.Text)
		}
		got := tok.EncodeOrdinary(g.Text)
		if !assert.Equal(t, want, got, "EncodeOrdinary(%q)", g.Text) {
			continue
		}
		text, err := tok.Decode(got)
		require.NoError(t, err)
		assert.Equal(t, g.Text, text, "Decode(EncodeOrdinary(%q))", g.Text)
		if g.EncodeIDs != nil {
			assert.Equal(t, g.EncodeIDs, tok.Encode(g.Text), "Encode(%q)", g.Text)
		} else {
			assert.NotContains(t, g.Text, EndOfText)
			assert.Equal(t, want, tok.Encode(g.Text), "Encode(%q)", g.Text)
		}
	}
	assert.Positive(t, quirks, "the golden file should keep its gpt-3-encoder quirk cases")
}

// gpt2DecodeGolden is one entry of testdata/gpt2_decode_golden.json: ids
// and their text as the WHATWG TextDecoder decodes their bytes.
type gpt2DecodeGolden struct {
	IDs  []int  `json:"ids"`
	Text string `json:"text"`
}

func TestGPT2DecodeGolden(t *testing.T) {
	tok := newGPT2(t)
	var golden []gpt2DecodeGolden
	readJSON(t, "gpt2_decode_golden.json", &golden)
	require.NotEmpty(t, golden)
	for _, g := range golden {
		got, err := tok.Decode(g.IDs)
		require.NoError(t, err, "%v", g.IDs)
		assert.Equal(t, g.Text, got, "Decode(%v)", g.IDs)
	}
}

func TestGPT2Encode(t *testing.T) {
	tok := newGPT2(t)
	hello := []int{15496}
	tests := []struct {
		name     string
		text     string
		encode   []int
		ordinary []int
	}{
		{"empty", "", []int{}, []int{}},
		{"only eot", EndOfText, []int{50256}, []int{27, 91, 437, 1659, 5239, 91, 29}},
		{"eot between", "Hello" + EndOfText + "Hello", []int{15496, 50256, 15496}, nil},
		{"eot twice", EndOfText + EndOfText, []int{50256, 50256}, nil},
		{"word", "Hello", hello, hello},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.encode, tok.Encode(tt.text))
			if tt.ordinary != nil {
				assert.Equal(t, tt.ordinary, tok.EncodeOrdinary(tt.text))
			}
		})
	}
}

func TestGPT2InvalidUTF8(t *testing.T) {
	tok := newGPT2(t)
	tests := []struct {
		text string
		want string
	}{
		{"\xff", "\uFFFD"},
		{"a\xffb", "a\uFFFDb"},
		{"\xe2\x82", "\uFFFD"}, // one maximal subpart
		{"\xc0\xaf", "\uFFFD\uFFFD"},
		{"ok \xf0\x9f\x98 ok", "ok \uFFFD ok"},
	}
	for _, tt := range tests {
		ids := tok.EncodeOrdinary(tt.text)
		got, err := tok.Decode(ids)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%q", tt.text)
	}
}

func TestGPT2DecodeErrors(t *testing.T) {
	tok := newGPT2(t)
	for _, id := range []int{-1, 50257, 1 << 40} {
		_, err := tok.Decode([]int{15496, id})
		require.Error(t, err)
		assert.Contains(t, err.Error(), " "+itoa(id)+" ")
	}
	got, err := tok.Decode(nil)
	require.NoError(t, err)
	assert.Equal(t, "", got)
}

// itoa formats n in decimal, for matching error messages.
func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// gpt2Pretokens returns the pre-tokens of text.
func gpt2Pretokens(text string) []string {
	var out []string
	for i := 0; i < len(text); {
		j := gpt2Split(text, i)
		out = append(out, text[i:j])
		i = j
	}
	return out
}

func TestGPT2Pretokenize(t *testing.T) {
	// Expected splits worked out by hand from the regex
	// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	tests := []struct {
		text string
		want []string
	}{
		{"", nil},
		{"Hello world", []string{"Hello", " world"}},
		{"a  b", []string{"a", " ", " b"}},
		{"a   b", []string{"a", "  ", " b"}},
		{"a\tb", []string{"a", "\t", "b"}},
		{"a\t\tb", []string{"a", "\t", "\t", "b"}},
		{"a \tb", []string{"a", " ", "\t", "b"}},
		{"a\t b", []string{"a", "\t", " b"}},
		{"a\n\n b", []string{"a", "\n\n", " b"}},
		{"end  ", []string{"end", "  "}},
		{"   ", []string{"   "}},
		{" ", []string{" "}},
		{"don't", []string{"don", "'t"}},
		{"DON'T", []string{"DON", "'", "T"}},
		{"it’s", []string{"it", "’", "s"}},
		{"we're 'll", []string{"we", "'re", " '", "ll"}},
		{"?'s", []string{"?'", "s"}},
		{"abc123 456", []string{"abc", "123", " 456"}},
		{" !!", []string{" !!"}},
		{"x\u00a0y", []string{"x", "\u00a0", "y"}},
		{"x \u00a0 y", []string{"x", " \u00a0", " y"}},
		{"x\u0085  y", []string{"x", "\u0085 ", " y"}},
		{"x\ufeffy", []string{"x", "\ufeff", "y"}},
		{"中文 text", []string{"中文", " text"}},
		{"½²", []string{"½²"}},
		{"e\u0301", []string{"e", "\u0301"}},
		{"a\xffb", []string{"a", "\xff", "b"}},
		{" \xff\xfe", []string{" \xff\xfe"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, gpt2Pretokens(tt.text), "%q", tt.text)
	}
}

func TestNewGPT2Errors(t *testing.T) {
	merges := []byte(gpt2Merges)
	// A small byte-level vocabulary: the 256 byte tokens, "ab" and
	// "<|endoftext|>".
	small := map[string]int{}
	for b, r := range bytesToUnicode() {
		small[string(r)] = b
	}
	small["ab"] = 256
	small[EndOfText] = 257
	smallJSON, err := json.Marshal(small)
	require.NoError(t, err)
	noEOT := map[string]int{}
	for b, r := range bytesToUnicode() {
		noEOT[string(r)] = b
	}
	noEOTJSON, err := json.Marshal(noEOT)
	require.NoError(t, err)

	tests := []struct {
		name   string
		vocab  []byte
		merges []byte
		want   string
	}{
		{"bad json", []byte("{"), merges, "vocab.json"},
		{"empty vocab", []byte("{}"), merges, "vocab.json: empty"},
		{"id out of range", []byte(`{"a": 5}`), merges, "vocab.json: token \"a\" has id 5"},
		{"shared id", []byte(`{"a": 0, "b": 0}`), merges, "share id 0"},
		{"missing byte", []byte(`{"a": 0}`), merges, "vocab.json: no token for byte 0x00"},
		{"missing eot", noEOTJSON, []byte("#version: 0.2\n"), "vocab.json: no token \"<|endoftext|>\""},
		{"three fields", smallJSON, []byte("#version: 0.2\na b\na b c\n"), "merges.txt line 3: want 2 tokens, got 3"},
		{"unknown left", smallJSON, []byte("#version: 0.2\nq! b\n"), "merges.txt line 2: token \"q!\" is not in vocab.json"},
		{"unknown right", smallJSON, []byte("#version: 0.2\na b\na q!\n"), "merges.txt line 3: token \"q!\" is not in vocab.json"},
		{"unknown merged after rank 0", smallJSON, []byte("#version: 0.2\na b\nab c\n"), "merges.txt line 3: merged token \"abc\""},
		{"unknown merged", smallJSON, []byte("a c\n"), "merges.txt line 1: merged token \"ac\""},
		{"gpt2 merges on small vocab", smallJSON, merges, "merges.txt line 2: merged token \"Ġt\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGPT2(tt.vocab, tt.merges)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestNewGPT2Small(t *testing.T) {
	small := map[string]int{}
	for b, r := range bytesToUnicode() {
		small[string(r)] = b
	}
	small["ab"] = 256
	small["abab"] = 257
	small[EndOfText] = 258
	vocab, err := json.Marshal(small)
	require.NoError(t, err)
	// CRLF line ends, blank lines and no #version line are accepted.
	tok, err := NewGPT2(vocab, []byte("a b\r\n\r\nab ab\r\n"))
	require.NoError(t, err)
	assert.Equal(t, 259, tok.VocabSize())
	assert.Equal(t, 258, tok.EOT())
	assert.Equal(t, []int{257, 256, int('!')}, tok.EncodeOrdinary("ababab!"))
	// "aaa" has no merges; "aab" merges once.
	assert.Equal(t, []int{'a', 'a', 'a'}, tok.EncodeOrdinary("aaa"))
	assert.Equal(t, []int{'a', 256}, tok.EncodeOrdinary("aab"))
}

func TestLoadGPT2Dir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vocab.json"), []byte(gpt2VocabJSON), 0o644))
	_, err := LoadGPT2Dir(dir)
	require.Error(t, err, "merges.txt is missing")
	assert.Contains(t, err.Error(), "merges.txt")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "merges.txt"), []byte(gpt2Merges), 0o644))
	tok, err := LoadGPT2Dir(dir)
	require.NoError(t, err)
	assert.Equal(t, []int{15496, 995}, tok.Encode("Hello world"))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\nx y z\n"), 0o644))
	_, err = LoadGPT2Dir(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "merges.txt line 2")
	assert.Contains(t, err.Error(), dir)

	_, err = LoadGPT2Dir(filepath.Join(dir, "nope"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "vocab.json")
}

func TestGPT2Concurrent(t *testing.T) {
	tok := newGPT2(t)
	text := strings.Repeat("The quick brown fox jumps over the lazy dog; 1234 émoji 😀. ", 20)
	want := tok.EncodeOrdinary(text)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				assert.Equal(t, want, tok.EncodeOrdinary(text))
			}
		}()
	}
	wg.Wait()
}

func TestBPEHeapMatchesLoop(t *testing.T) {
	tok := newGPT2(t)
	symbolsOf := func(word string) []int {
		s := make([]int, len(word))
		for i := 0; i < len(word); i++ {
			s[i] = tok.byteToken[word[i]]
		}
		return s
	}
	check := func(word string) {
		t.Helper()
		if len(word) < 2 {
			return
		}
		assert.Equal(t, tok.bpeLoop(symbolsOf(word)), tok.bpeHeap(symbolsOf(word)), "%q", word)
	}
	// Every pre-token of the golden strings.
	var golden []gpt2Golden
	readJSON(t, "gpt2_golden.json", &golden)
	for _, g := range golden {
		for _, w := range gpt2Pretokens(g.Text) {
			check(w)
		}
	}
	// Random words over small alphabets, which repeat pairs and so give
	// many merges, overlapping runs and ties between positions.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"ab", "aab", "eht ", "0123456789", "!?.,-", "abcdefghijklmnopqrstuvwxyz", " \n\t", "ing", "\xc3\xa9\xe2\x80\x94"}
	for range 400 {
		alpha := alphabets[rng.IntN(len(alphabets))]
		n := 2 + rng.IntN(300)
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		check(string(b))
	}
}
