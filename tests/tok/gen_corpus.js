#!/usr/bin/env node
// gen_corpus.js: the deterministic corpus the tokenizer is compared on
// (tests/tok/test_reference.sh). Same seed, same bytes, on any machine.
//   node tests/tok/gen_corpus.js [--seed N] [--strings N] [--convs N] > corpus.jsonl
//   node tests/tok/gen_corpus.js --mixed BYTES > text   (bench/micro/tok_bench: plain
//       text as prompts look: prose, chat turns, code, numbers, some other
//       scripts and emoji; none of the corpus's adversarial runs)
// Lines: {"t": text} | {"b": base64 bytes, "bos": bool} | {"m": messages, "g": bool}
// (formats: tests/tok/tok_ref.c). What it draws from: many scripts, combining
// marks (NFC), whitespace runs, digits, code, emoji (ZWJ, flags, skin tones),
// very long words, contractions in any case, special-token look-alikes,
// bytes that are not UTF-8.
//
// Left out, on purpose, as known differences between the JavaScript reference
// and the model server (documented in tests/tok/README.md): U+FEFF and
// U+0085 (JavaScript's regex \s and String.trim disagree with PCRE2/Python)
// and U+001C..U+001F (Python's strip takes them, JavaScript's trim not).
'use strict';
const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? Number(args[i + 1]) : d; };
let seed = opt('--seed', 11) >>> 0;
const NSTR = opt('--strings', 10000), NCONV = opt('--convs', 10000);

function rnd() { // mulberry32
  seed = (seed + 0x6D2B79F5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const cp = (lo, hi) => String.fromCodePoint(lo + ri(hi - lo + 1));

const WORDS = ('the quick brown fox jumps over lazy dog tokenizer gateway routing cache prefix ' +
  'model server request token block hash Hello World HTTP JSON Llama Qwen vLLM kvgate ' +
  'internationalization antidisestablishmentarianism naïve café résumé coöperate').split(' ');
const CONTR = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M",
  "'LL", "'D", "'x", "''", "'"];
const SCRIPTS = [
  [0x41, 0x5A], [0x61, 0x7A], [0xC0, 0xFF], [0x100, 0x17F], [0x391, 0x3C9], [0x410, 0x44F],
  [0x5D0, 0x5EA], [0x627, 0x64A], [0x905, 0x939], [0xE01, 0xE2E], [0x3041, 0x3096],
  [0x30A1, 0x30FA], [0x4E00, 0x9FA5], [0xAC00, 0xD7A3], [0x10A0, 0x10FA], [0x531, 0x556],
  [0x1100, 0x1112], [0x1161, 0x1175], [0xFF10, 0xFF19], [0xFF21, 0xFF3A], [0x2070, 0x2079],
  [0x0660, 0x0669], [0x0966, 0x096F], [0x2160, 0x217F], [0x2200, 0x22FF], [0x2190, 0x21FF],
  [0x20A0, 0x20BF], [0x2500, 0x257F], [0x1F600, 0x1F64F], [0x1F300, 0x1F5FF],
  [0x1F680, 0x1F6C5], [0x300, 0x36F], [0x1D400, 0x1D4FF], [0x10000, 0x1005D],
];
const WS = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n', '\n ', '\t\t', '\u00A0',
  '\u3000', '\u2003', '\u2028', '\u202F', ' \t \n', '\n\n\n   ', '\r', '\v', '\f'];
const SPECIAL = ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>',
  '<|end_header_id|>', '<|reserved_special_token_5|>', '<|reserved_special_token_250|>',
  '<|python_tag|>', '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>',
  '<tool_call>', '</tool_call>', '<|vision_pad|>', '<|fim_prefix|>',
  '<|im_start', '<|eot_id', '|>', '<|', '< |im_end|>', '<|IM_END|>', '<<|eot_id|>>',
  '<|eot_id|><|eot_id|>', '<|begin_of_text|', '<think', '<|reserved_special_token_999|>'];
const CODE = ['int main(void) {\n    return 0;\n}\n', 'for (i = 0; i < n; i++) x += a[i];',
  'def f(x):\n\tif x:\n\t\treturn [y**2 for y in x]\n', '{"key": [1, 2.5, -3e10], "v": null}',
  '#include <stdio.h>\n', 'SELECT * FROM t WHERE a >= 10 AND b <> \'x\';', '    }\n  }\n}',
  'x=>x*2; // comment', '/* block */', '$ ls -la | grep "\\.c$"', '<div class="a">&amp;</div>',
  '!!!???...,,,;;;', '---->>>', '==', '::', '0x1F3Ac', 'a_b_c', '__init__'];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷', '🇯🇵', '❤️', '🏳️‍🌈', '🤷‍♀️', '✊🏿', '🧑🏻‍💻', '©', '™', '⌘'];
const COMBINING = ['e\u0301', 'a\u0308', 'n\u0303', 'o\u0302\u0323', '\u1100\u1161\u11A8',
  'A\u030A', '\u0915\u093C', 'e\u0301\u0301', '>\u0338', '=\u0338', 'u\u031B\u0301'];

function number() {
  const k = ri(6);
  if (k === 0) return String(ri(10));
  if (k === 1) return String(ri(1000000));
  if (k === 2) return (rnd() * 1e6).toFixed(ri(5));
  if (k === 3) return '1,234,567.89';
  if (k === 4) return '9'.repeat(1 + ri(40));
  return String(ri(100)) + '%';
}
function scriptRun() {
  const [lo, hi] = pick(SCRIPTS);
  let s = '';
  for (let i = 1 + ri(12); i > 0; i--) s += cp(lo, hi);
  return s;
}
function piece() {
  const k = ri(100);
  if (k < 25) return pick(WORDS);
  if (k < 32) return pick(WORDS) + pick(CONTR);
  if (k < 40) return number();
  if (k < 50) return pick(WS);
  if (k < 62) return scriptRun();
  if (k < 68) return pick(CODE);
  if (k < 73) return pick(EMOJI);
  if (k < 78) return pick(COMBINING);
  if (k < 83) return pick(SPECIAL);
  if (k < 86) return ' '.repeat(1 + ri(40)) + (rnd() < 0.5 ? '' : pick(WORDS));
  if (k < 88) return '\n'.repeat(1 + ri(6)) + ' '.repeat(ri(5));
  if (k < 90) return pick(['a', 'x', 'Z', 'é', '中', '1', '-', ' ']).repeat(1 + ri(rnd() < 0.05 ? 3000 : 200));
  if (k < 93) return cp(0x21, 0x7E).repeat(1 + ri(5));
  if (k < 96) return cp(0x01, 0x1B); // controls (not the 0x1C..0x1F left out; NUL only in raw bytes)
  return pick(WORDS).toUpperCase();
}
function text(maxPieces) {
  let s = '';
  for (let i = ri(maxPieces) + 1; i > 0; i--) s += (rnd() < 0.5 ? ' ' : '') + piece();
  return s;
}
function badBytes() {
  const parts = [];
  for (let i = 1 + ri(8); i > 0; i--) {
    if (rnd() < 0.5) parts.push(Buffer.from(text(4), 'utf8'));
    else {
      const k = ri(8);
      const bad = [[0x80], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80],
        [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0x00, 0xFE, 0x41]][k];
      parts.push(Buffer.from(bad));
    }
  }
  return Buffer.concat(parts);
}
function content() {
  const k = ri(20);
  if (k === 0) return null;
  if (k === 1) return [{ type: 'text', text: text(6) }, { type: 'text', text: text(4) }];
  if (k === 2) return '<think>\n' + text(5) + '\n</think>\n\n' + text(5);
  if (k === 3) return '<tool_response>' + text(3) + '</tool_response>';
  if (k === 4) return (rnd() < 0.5 ? '  \n' : '\t') + text(6) + (rnd() < 0.5 ? '\n\n ' : ' ');
  return text(rnd() < 0.03 ? 40 : 8);
}
function conversation() {
  const msgs = [];
  if (rnd() < 0.4) msgs.push({ role: 'system', content: content() });
  const n = 1 + ri(6);
  for (let i = 0; i < n; i++) {
    const roles = ['user', 'assistant', 'user', 'assistant', 'tool', 'system', 'user'];
    const role = i === n - 1 && rnd() < 0.8 ? 'user' : pick(roles);
    const m = { role, content: content() };
    if (role === 'assistant' && rnd() < 0.1) m.reasoning_content = text(4);
    msgs.push(m);
  }
  return msgs;
}

const MIXED = opt('--mixed', 0);
if (MIXED > 0) {
  const parts = [];
  let n = 0;
  const PROSE = ('In this paper we study how prefix caching interacts with load balancing . ' +
    'The gateway routes each request to the pod that already holds its prefix , unless that ' +
    'pod is saturated . We measured a 3.2x speedup at 120 requests per second , while ' +
    "tail latency stayed within 15% of the baseline . It's not free : don't forget the cost " +
    'of tokenizing every prompt , which must stay well below the time of a decision .').split(' ');
  while (n < MIXED) {
    const k = ri(100);
    let p;
    if (k < 55) { p = ''; for (let i = 20 + ri(80); i > 0; i--) p += (p && rnd() < 0.97 ? ' ' : '') + pick(PROSE); p += '\n\n'; }
    else if (k < 75) p = pick(CODE) + '\n' + pick(CODE) + '\n';
    else if (k < 83) p = 'User: ' + pick(WORDS) + ' ' + number() + '?\nAssistant: ' + pick(WORDS) + ' ' + pick(WORDS) + '.\n';
    else if (k < 90) { p = ''; for (let i = 5 + ri(20); i > 0; i--) p += scriptRun() + (rnd() < 0.6 ? ' ' : ''); p += '\n'; }
    else if (k < 95) p = '| ' + number() + ' | ' + number() + ' | ' + pick(WORDS) + ' |\n';
    else p = pick(EMOJI) + ' ' + pick(WORDS) + ' ' + pick(EMOJI) + '\n';
    parts.push(p);
    n += Buffer.byteLength(p, 'utf8');
  }
  require('fs').writeSync(1, parts.join(''));
  process.exit(0);
}
const out = [];
for (let i = 0; i < NSTR; i++) {
  if (i % 10 === 9) out.push(JSON.stringify({ b: badBytes().toString('base64'), bos: i % 20 === 19 }));
  else out.push(JSON.stringify({ t: text(i % 50 === 0 ? 120 : 12) }));
}
for (let i = 0; i < NCONV; i++) out.push(JSON.stringify({ m: conversation(), g: rnd() < 0.85 }));
process.stdout.write(out.join('\n') + '\n');
