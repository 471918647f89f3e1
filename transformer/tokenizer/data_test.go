package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEmbeddedDataChecksums(t *testing.T) {
	// The published sums of the reference files (data/README.md), over the
	// bytes the exported accessors hand out.
	vocabJSON, merges := DefaultGPT2Files()
	tests := []struct {
		name string
		data []byte
		sum  string
	}{
		{"gpt2/vocab.json", vocabJSON, "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"},
		{"gpt2/merges.txt", merges, "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
		{"bert-base-uncased/vocab.txt", DefaultBERTVocab(), "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
	}
	for _, tt := range tests {
		sum := sha256.Sum256(tt.data)
		assert.Equal(t, tt.sum, hex.EncodeToString(sum[:]), tt.name)
	}
}
