package tokenizer

import (
	"strings"
	"testing"
)

// benchText returns about 10 KB of mixed English prose, code and numbers.
func benchText() string {
	paragraphs := []string{
		"The transformer architecture, introduced in 2017, replaced recurrence with attention. ",
		"Each layer computes queries, keys and values; the softmax of QK^T/sqrt(d) weights the values. ",
		"GPT-2 was trained on 40 GB of web text (WebText) and has 1.5 billion parameters. ",
		"It's remarkable how well it generalizes—though it doesn't always tell the truth!\n\n",
		"func attention(q, k, v []float32) []float32 {\n\treturn softmax(dot(q, k)) * v\n}\n",
		"Prices rose 3.7% in Q3 2023, to $1,234.56 per unit; see https://example.com/report?id=42.\n",
		"Naïve café owners in Zürich said: «Ça va?» — and then 東京 and 서울 replied. 😀\n",
	}
	var b strings.Builder
	for b.Len() < 10_000 {
		for _, p := range paragraphs {
			b.WriteString(p)
		}
	}
	return b.String()
}

func BenchmarkGPT2Encode(b *testing.B) {
	tok := newGPT2(b)
	text := benchText()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(text)
	}
}

func BenchmarkWordPieceEncode(b *testing.B) {
	tok := newBERT(b)
	text := benchText()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(text)
	}
}
