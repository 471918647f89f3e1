package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzSeeds returns seed inputs shared by the fuzz tests; more live in
// testdata/fuzz.
func fuzzSeeds() []string {
	return []string{
		"",
		"Hello, world!",
		"  multiple   spaces\t\ttabs\n\nnewlines  ",
		"don't I'M we're 'll",
		"<|endoftext|>x<|endoftext|>",
		"[CLS] a [MASK] b [SEP]",
		"naïve café 中文 😀 👨\u200d👩\u200d👧",
		"\x00\xff\xfe invalid \xe2\x82",
		"\u0085\ufeff\u00a0\u3000\u2028",
	}
}

func FuzzGPT2Encode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	tok := newGPT2(f)
	f.Fuzz(func(t *testing.T, s string) {
		// The heap merge must agree with the reference loop on any
		// word, short or long.
		for _, w := range gpt2Pretokens(s) {
			syms := make([]int, len(w))
			for i := 0; i < len(w); i++ {
				syms[i] = tok.byteToken[w[i]]
			}
			heap := tok.bpeHeap(append([]int(nil), syms...))
			require.Equal(t, tok.bpeLoop(syms), heap, "%q", w)
		}
		for _, ids := range [][]int{tok.EncodeOrdinary(s), tok.Encode(s)} {
			for _, id := range ids {
				require.True(t, 0 <= id && id < tok.VocabSize(), "id %d", id)
			}
			got, err := tok.Decode(ids)
			require.NoError(t, err)
			if utf8.ValidString(s) {
				require.Equal(t, s, got)
			} else {
				require.True(t, utf8.ValidString(got))
			}
		}
	})
}

func FuzzWordPiece(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	uncased := newBERT(f)
	cased, err := NewWordPiece([]byte(bertBaseUncasedVocab), false)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range []*WordPiece{uncased, cased} {
			ids := tok.EncodeForModel(s)
			require.GreaterOrEqual(t, len(ids), 2)
			for _, id := range ids {
				require.True(t, 0 <= id && id < tok.VocabSize(), "id %d", id)
			}
			_, err := tok.Decode(ids)
			require.NoError(t, err)
			pair, typeIDs := tok.EncodePair(s, s)
			require.Len(t, typeIDs, len(pair))
			assert.Equal(t, 2*len(ids)-1, len(pair))
			for _, piece := range tok.Tokenize(s) {
				require.NotEmpty(t, piece)
				require.False(t, strings.ContainsFunc(piece, func(r rune) bool { return r == ' ' }), "%q", piece)
			}
		}
	})
}
