// Package tokenizer implements the two tokenizers that fx needs to run its
// reference models: GPT-2's byte-level byte-pair encoding and BERT's
// WordPiece.
//
// Both reproduce the reference implementations token for token:
//
//   - [GPT2] follows OpenAI's encoder.py (and Hugging Face's GPT2Tokenizer):
//     the same pre-tokenizer pattern, the same byte-to-unicode table and the
//     same merge loop. [GPT2.EncodeOrdinary] treats all text as ordinary
//     text, as OpenAI's encoder does; [GPT2.Encode] additionally maps the
//     literal string "<|endoftext|>" to its special token, as Hugging Face
//     does.
//   - [WordPiece] follows Hugging Face's BertTokenizer (BasicTokenizer and
//     WordpieceTokenizer): text cleaning, CJK splitting, lower-casing and
//     accent stripping for uncased models, punctuation splitting and greedy
//     longest-match-first WordPiece.
//
// The vocabularies of GPT-2 and bert-base-uncased are embedded, so
// [DefaultGPT2] and [DefaultBERT] need no files at run time. Other
// vocabularies load with [NewGPT2], [LoadGPT2Dir], [NewWordPiece] and
// [LoadWordPieceDir].
//
// Tokenizers are safe for concurrent use by multiple goroutines.
package tokenizer
