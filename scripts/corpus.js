// corpus.js: renders ptune's pretraining corpus (called by scripts/corpus.sh; see docs/corpus.md).
//
//   node scripts/corpus.js OUTDIR TASKDIR
//
// Reads the text sources (Debian fortunes + wordnet-base, npm @stdlib Moby Dick
// and State of the Union) and the task JSONL files that corpus.sh generated in
// TASKDIR, and writes OUTDIR/{train,valid}/<source>.jsonl: one document per
// line, {"text": ...} for the text sources, the generator's own records
// ({"input", "target", ...}) for the tasks, which `ptune pretrain` / `ptune
// data bpe` read as input + " " + target. Inputs are read in sorted order and
// the split is by document index, so the output is the same byte for byte on
// every run. sizes.tsv counts the bytes of the rendered text (what the model
// reads), not of the JSON.
'use strict';
const fs = require('fs');
const path = require('path');

const EOT = '<|endoftext|>'; // removed from the sources: it is the BOS/EOS token
const HOLD = 50; // every 50th document (index % 50 == 25) is held out: 2 %
const [outDir, taskDir] = process.argv.slice(2);
if (!outDir || !taskDir) {
  console.error('usage: node scripts/corpus.js OUTDIR TASKDIR');
  process.exit(2);
}
const root = path.resolve(__dirname, '..');
const FORTUNES = '/usr/share/games/fortunes';
const WORDNET = '/usr/share/wordnet';
const STDLIB = path.join(root, 'corpus', 'node_modules', '@stdlib');

// Text cleanup shared by every source: CRLF -> LF, overstrike (x\bx) and other
// control characters (but tab and newline) removed, no EOT string inside,
// trailing spaces dropped, blank-line runs at most one, trimmed.
function clean(s) {
  s = s.replace(/\r\n?/g, '\n').replace(/[^\n]\x08/g, '').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
  s = s.split(EOT).join('');
  s = s.replace(/[ \t]+\n/g, '\n').replace(/\n{3,}/g, '\n\n');
  return s.trim();
}

function sortedFiles(dir, re) {
  return fs.readdirSync(dir).filter((f) => re.test(f)).sort();
}

function fortunes() {
  // A fortune file is one with a strfile index beside it (NAME.dat); entries are separated by "%" lines.
  // ascii-art is pictures, not text: left out.
  const docs = [];
  for (const f of sortedFiles(FORTUNES, /\.dat$/)) {
    const name = f.slice(0, -4);
    if (name === 'ascii-art') continue;
    const p = path.join(FORTUNES, name);
    if (!fs.existsSync(p)) continue;
    const text = fs.readFileSync(p, 'utf8');
    for (const e of text.split(/^%$/m)) {
      const c = clean(e);
      if (c) docs.push(c);
    }
  }
  return docs;
}

function wordnet() {
  // data.POS lines: offset lex_filenum ss_type w_cnt(hex) word lex_id ... | gloss
  // Rendered as "word, word (pos): gloss" (underscores as spaces, adjective
  // markers like "(a)" dropped), 40 synsets to a document, in file order.
  const posName = { noun: 'noun', verb: 'verb', adj: 'adjective', adv: 'adverb' };
  const lines = [];
  for (const pos of ['adj', 'adv', 'noun', 'verb']) {
    const text = fs.readFileSync(path.join(WORDNET, 'data.' + pos), 'utf8');
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('  ')) continue; // licence header
      const bar = line.indexOf(' | ');
      if (bar < 0) continue;
      const f = line.slice(0, bar).split(' ');
      const n = parseInt(f[3], 16);
      if (!(n > 0)) continue;
      const words = [];
      for (let i = 0; i < n; i++) {
        const w = (f[4 + 2 * i] || '').replace(/\([a-z]+\)$/, '').replace(/_/g, ' ');
        if (w && !words.includes(w)) words.push(w);
      }
      const gloss = clean(line.slice(bar + 3));
      if (words.length && gloss) lines.push(words.join(', ') + ' (' + posName[pos] + '): ' + gloss);
    }
  }
  const docs = [];
  for (let i = 0; i < lines.length; i += 40) docs.push(lines.slice(i, i + 40).join('\n'));
  return docs;
}

function mobyDick() {
  // The book in reading order: etymology, extracts, chapters 1..135, epilogue
  // (data.txt, the whole book again, and contents.txt are left out).
  const dir = path.join(STDLIB, 'datasets-moby-dick', 'data');
  const ch = sortedFiles(dir, /^chapter_\d+\.txt$/).sort(
    (a, b) => parseInt(a.slice(8), 10) - parseInt(b.slice(8), 10));
  const order = ['etymology.txt', 'extracts.txt', ...ch, 'epilogue.txt'];
  return order.map((f) => clean(fs.readFileSync(path.join(dir, f), 'utf8'))).filter((d) => d);
}

function sotu() {
  // One speech a document, by file name (year first).
  const dir = path.join(STDLIB, 'datasets-sotu', 'data');
  return sortedFiles(dir, /\.txt$/).map((f) => clean(fs.readFileSync(path.join(dir, f), 'utf8'))).filter((d) => d);
}

// A record as the model reads it: input + " " + target (data.md's joining rule), or the text.
function render(r) {
  if (typeof r.text === 'string') return r.text;
  const inp = r.input, tgt = String(r.target);
  const sep = inp === '' || /\s$/.test(inp) || /^\s/.test(tgt) ? '' : ' ';
  return inp + sep + tgt;
}

function readTask(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

// Writes records as JSON Lines; returns the bytes of their rendered text.
function write(file, recs) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const s = recs.map((r) => JSON.stringify(r) + '\n').join('');
  fs.writeFileSync(file + '.tmp', s);
  fs.renameSync(file + '.tmp', file);
  return recs.reduce((n, r) => n + Buffer.byteLength(render(r)), 0);
}

const rows = [];
const text = { fortunes, wordnet, 'moby-dick': mobyDick, sotu };
for (const [name, fn] of Object.entries(text)) {
  const docs = fn().map((d) => ({ text: d }));
  const tr = docs.filter((_, i) => i % HOLD !== 25), va = docs.filter((_, i) => i % HOLD === 25);
  rows.push([name, tr.length, write(path.join(outDir, 'train', name + '.jsonl'), tr),
    va.length, write(path.join(outDir, 'valid', name + '.jsonl'), va)]);
}
for (const kind of ['arithmetic', 'qa', 'cloze', 'text']) {
  const tr = readTask(path.join(taskDir, kind + '.train.jsonl'));
  const va = readTask(path.join(taskDir, kind + '.valid.jsonl'));
  rows.push(['task-' + kind, tr.length, write(path.join(outDir, 'train', 'task-' + kind + '.jsonl'), tr),
    va.length, write(path.join(outDir, 'valid', 'task-' + kind + '.jsonl'), va)]);
}
const total = rows.reduce((s, r) => s + r[2], 0);
const lines = ['source\ttrain_docs\ttrain_bytes\ttrain_share\tvalid_docs\tvalid_bytes'];
for (const r of rows) lines.push([r[0], r[1], r[2], (100 * r[2] / total).toFixed(1) + '%', r[3], r[4]].join('\t'));
lines.push(['total', rows.reduce((s, r) => s + r[1], 0), total, '100.0%', rows.reduce((s, r) => s + r[3], 0),
  rows.reduce((s, r) => s + r[4], 0)].join('\t'));
fs.writeFileSync(path.join(outDir, 'sizes.tsv'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
