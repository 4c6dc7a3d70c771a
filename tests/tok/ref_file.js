// ref_file.js: encodes with transformers.js (@lenml/tokenizers) from a tokenizer.json on disk.
//
//   node ref_file.js DIR < texts.jsonl      one JSON string per line in, one line of ids out
//
// DIR holds tokenizer.json (+ tokenizer_config.json). No special tokens are
// added. Used by tests/test_bpe_train.c to check trained tokenizers.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { TokenizerLoader } = require('@lenml/tokenizers');

const dir = process.argv[2];
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const cfgPath = path.join(dir, 'tokenizer_config.json');
const tokenizerConfig = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, 'utf8')) : {};
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
rl.on('line', (line) => {
  out.push(tok.encode(JSON.parse(line), { add_special_tokens: false }).join(' '));
  if (out.length >= 256) { process.stdout.write(out.join('\n') + '\n'); out.length = 0; }
});
rl.on('close', () => { if (out.length) process.stdout.write(out.join('\n') + '\n'); });
