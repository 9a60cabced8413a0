// The official OpenAI SDK (npm "openai") against an OpenAI-compatible
// endpoint: a real client nobody here wrote.
//   node openai_sdk.mjs BASE_URL MODEL CASE
// CASE: stream | nonstream | completion | models | notfound
// Exits 0 when the case holds, else prints why and exits 1.
import OpenAI from "openai";

const [baseURL, model, which] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 30000 });
const fail = (msg) => { console.error(msg); process.exit(1); };

const cases = {
  async stream() {
    const stream = await client.chat.completions.create({
      model, stream: true, stream_options: { include_usage: true },
      max_tokens: 12, ignore_eos: true,
      messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "Count to three." }],
    });
    let text = "", role = null, deltas = 0, usage = null, finish = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices[0];
      if (!c) continue;
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) { text += c.delta.content; deltas++; }
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (role !== "assistant") fail(`role ${role}`);
    if (deltas !== 12 || text.length !== 48) fail(`deltas ${deltas} text ${JSON.stringify(text)}`);
    if (finish !== "length") fail(`finish_reason ${finish}`);
    if (!usage || usage.completion_tokens !== 12 || usage.total_tokens !== usage.prompt_tokens + 12)
      fail(`usage ${JSON.stringify(usage)}`);
    if (typeof usage.prompt_tokens_details?.cached_tokens !== "number") fail("no cached_tokens");
    console.log(`streamed ${deltas} deltas, usage ${JSON.stringify(usage)}`);
  },
  async nonstream() {
    const r = await client.chat.completions.create({
      model, max_tokens: 5, ignore_eos: true, messages: [{ role: "user", content: "hi" }],
    });
    if (r.object !== "chat.completion" || r.choices[0].message.content.length !== 20) fail(JSON.stringify(r));
    if (r.usage.completion_tokens !== 5) fail(JSON.stringify(r.usage));
  },
  async completion() {
    const r = await client.completions.create({ model, prompt: "Hello", max_tokens: 3, ignore_eos: true });
    if (r.choices[0].text.length !== 12 || r.usage.completion_tokens !== 3) fail(JSON.stringify(r));
  },
  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    if (!ids.includes(model)) fail(`models ${ids}`);
  },
  async notfound() {
    try {
      await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
    } catch (e) {
      if (e instanceof OpenAI.NotFoundError && e.status === 404 && /no-such-model/.test(e.message)) return;
      fail(`wrong error: ${e.constructor.name} ${e.status} ${e.message}`);
    }
    fail("no error for an unknown model");
  },
};

if (!cases[which]) fail(`unknown case ${which}`);
cases[which]().catch((e) => fail(`${e.constructor.name}: ${e.message}`));
