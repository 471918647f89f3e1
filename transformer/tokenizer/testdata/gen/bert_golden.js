#!/usr/bin/env node
// bert_golden.js writes ../bert_golden.json, the BERT golden file that the Go
// tests compare against: for every entry of bert_strings.json (a string, or
// {"text": a, "pair": b} for a sentence pair) the token ids of
// bert-base-uncased with [CLS] and [SEP] added, plus the token type ids of
// pairs.
//
// Run it from this directory (see README.md):
//
//   npm install --no-audit --no-fund && node bert_golden.js
//
// The oracle is @huggingface/tokenizers (Tokenizers.js), Hugging Face's
// JavaScript port of its tokenizers library, configured exactly as
// bert-base-uncased's tokenizer.json: the special tokens as added tokens, a
// BertNormalizer (clean_text, handle_chinese_chars, lowercase, accents
// stripped), the BertPreTokenizer, a WordPiece model over
// data/bert-base-uncased/vocab.txt ("##" continuations, [UNK] past 100
// characters) and BertProcessing for [CLS] and [SEP].
//
// Tokenizers.js departs from Hugging Face's Python BertTokenizer (and its
// Rust tokenizers) in three places. For an entry that touches one, the
// script feeds the oracle an "oracle_input" (and "oracle_pair") that undoes
// the departure, and records why in "note"; the Go test still encodes the
// original text:
//
//   1. It walks text in UTF-16 code units when it puts spaces around CJK
//      ideographs, so it misses the ideographs outside the Basic Multilingual
//      Plane (CJK Extensions B-E, U+20000 and up). oracle_input puts the
//      spaces in.
//   2. It lower-cases with String.prototype.toLowerCase, which maps a final
//      capital sigma to ς. Python's BertTokenizer lower-cases uncased text
//      one character at a time (PreTrainedTokenizer.tokenize), so Σ always
//      becomes σ. oracle_input writes σ for Σ.
//   3. Its control-character test leaves out unassigned code points
//      (category Cn), which BertTokenizer's _is_control removes as category
//      C. oracle_input drops them.
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@huggingface/tokenizers');

const vocabPath = path.join(__dirname, '..', '..', 'data', 'bert-base-uncased', 'vocab.txt');
const lines = fs.readFileSync(vocabPath, 'utf8').split('\n');
if (lines[lines.length - 1] === '') lines.pop();
const vocab = {};
lines.forEach((tok, id) => { vocab[tok] = id; });
assert.strictEqual(lines.length, 30522);

const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const tokenizer = new Tokenizer({
  added_tokens: specials.map((content) => ({
    id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  })),
  normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
  pre_tokenizer: { type: 'BertPreTokenizer' },
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  post_processor: { type: 'BertProcessing', sep: ['[SEP]', vocab['[SEP]']], cls: ['[CLS]', vocab['[CLS]']] },
  decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
}, {});

const SUPPLEMENTARY_CJK = '\\u{20000}-\\u{2A6DF}\\u{2A700}-\\u{2B73F}\\u{2B740}-\\u{2B81F}\\u{2B820}-\\u{2CEAF}\\u{2F800}-\\u{2FA1F}';
const fixes = [
  {
    has: new RegExp(`[${SUPPLEMENTARY_CJK}]`, 'u'),
    fix: (t) => t.replace(new RegExp(`[${SUPPLEMENTARY_CJK}]`, 'gu'), (c) => ` ${c} `),
    note: 'Tokenizers.js misses CJK ideographs beyond U+FFFF when spacing CJK characters; oracle_input spaces them.',
  },
  {
    has: /\u03A3/,
    fix: (t) => t.replace(/\u03A3/g, '\u03C3'),
    note: 'Tokenizers.js lower-cases a final capital sigma to final sigma; BertTokenizer lower-cases character by character (always σ); oracle_input writes σ.',
  },
  {
    has: /\p{Cn}/u,
    fix: (t) => t.replace(/\p{Cn}/gu, ''),
    note: "Tokenizers.js keeps unassigned code points (Cn), which BertTokenizer's _is_control removes; oracle_input drops them.",
  },
];

// oracleInput returns text with the departures undone, and their notes.
function oracleInput(text) {
  const notes = [];
  for (const f of fixes) {
    if (f.has.test(text)) {
      text = f.fix(text);
      notes.push(f.note);
    }
  }
  return { input: text, notes };
}

const entries = JSON.parse(fs.readFileSync(path.join(__dirname, 'bert_strings.json'), 'utf8'));
const golden = [];
let fixed = 0;
for (const e of entries) {
  const text = typeof e === 'string' ? e : e.text;
  const pair = typeof e === 'string' ? null : e.pair;
  assert.ok(pair === null || pair !== '', 'Tokenizers.js reads an empty pair as no pair');
  const a = oracleInput(text);
  const b = pair === null ? { input: null, notes: [] } : oracleInput(pair);
  const enc = tokenizer.encode(a.input, { text_pair: b.input, add_special_tokens: true, return_token_type_ids: true });
  const out = { text };
  if (pair !== null) out.pair = pair;
  out.ids = enc.ids;
  out.tokens = enc.tokens;
  if (pair !== null) out.type_ids = enc.token_type_ids;
  const notes = [...new Set([...a.notes, ...b.notes])];
  if (notes.length > 0) {
    out.oracle_input = a.input;
    if (pair !== null) out.oracle_pair = b.input;
    out.note = notes.join(' ');
    fixed++;
  }
  golden.push(out);
}

// writeLines writes entries as a JSON array, one entry per line, with
// invisible characters (categories C and Z other than the space) escaped.
function writeLines(file, list) {
  const escape = (json) => json.replace(/[\p{C}\p{Z}]/gu, (c) => {
    if (c === ' ') return c;
    let s = '';
    for (let i = 0; i < c.length; i++) s += '\\u' + c.charCodeAt(i).toString(16).padStart(4, '0');
    return s;
  });
  fs.writeFileSync(file, '[\n' + list.map((e) => escape(JSON.stringify(e))).join(',\n') + '\n]\n');
}
writeLines(path.join(__dirname, '..', 'bert_golden.json'), golden);
console.log(`bert_golden.json: ${golden.length} entries (${fixed} with oracle_input)`);
