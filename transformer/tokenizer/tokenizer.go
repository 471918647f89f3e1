package tokenizer

// Tokenizer is the behaviour shared by [GPT2] and [WordPiece]: text to token
// ids and back.
type Tokenizer interface {
	// Encode converts text to token ids. It adds no model-specific
	// framing tokens such as BERT's [CLS] and [SEP].
	Encode(text string) []int
	// Decode converts token ids back to text. It returns an error if an
	// id is outside [0, VocabSize()).
	Decode(ids []int) (string, error)
	// VocabSize is the number of token ids.
	VocabSize() int
}

// Compile-time checks that both tokenizers satisfy Tokenizer.
var (
	_ Tokenizer = (*GPT2)(nil)
	_ Tokenizer = (*WordPiece)(nil)
)
