// N concurrent streaming chat completions spread over pods (or one
// endpoint); every stream must end with [DONE] after exactly `tokens`
// content deltas. Plain node:http, one connection per stream.
//   node concurrent_streams.mjs HOST FIRST_PORT NPORTS N TOKENS MODEL
import http from "node:http";

const [host, firstPort, nports, n, tokens, model] = process.argv.slice(2);
const body = (i) => JSON.stringify({
  model, stream: true, max_tokens: +tokens, ignore_eos: true,
  messages: [{ role: "user", content: `stream ${i} ` + "x".repeat(200 + i) }],
});

function one(i) {
  return new Promise((resolve) => {
    const req = http.request({
      host, port: +firstPort + (i % +nports), path: "/v1/chat/completions", method: "POST",
      headers: { "content-type": "application/json" }, agent: false,
    }, (res) => {
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { buf += d; });
      res.on("end", () => {
        const events = buf.split("\n\n").filter((e) => e.startsWith("data: "));
        const done = events.at(-1) === "data: [DONE]";
        let deltas = 0;
        for (const e of events.slice(0, -1)) {
          const c = JSON.parse(e.slice(6)).choices[0];
          if (c?.delta?.content) deltas++;
        }
        resolve(res.statusCode === 200 && done && deltas === +tokens ? null
          : `stream ${i}: status ${res.statusCode} done ${done} deltas ${deltas}`);
      });
    });
    req.on("error", (e) => resolve(`stream ${i}: ${e.message}`));
    req.end(body(i));
  });
}

const t0 = Date.now();
const errs = (await Promise.all(Array.from({ length: +n }, (_, i) => one(i)))).filter(Boolean);
console.log(`${n} streams, ${errs.length} failed, ${Date.now() - t0} ms`);
for (const e of errs.slice(0, 10)) console.log(e);
process.exit(errs.length ? 1 : 0);
