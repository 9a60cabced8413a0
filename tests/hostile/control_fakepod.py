#!/usr/bin/env python3
"""A fake vLLM pod for the hostile control tests: /health, /metrics,
/v1/models, nothing else.

  control_fakepod.py PORT [--http10] [--page-bytes N] [--chunked]

--http10      answer as HTTP/1.0 and close after each response (every probe
              then needs a new connection, hence a new socket)
--page-bytes  pad /metrics with valid series to about N bytes (the page is
              built once; serving it is a memcpy)
--chunked     send /metrics chunked, without a Content-Length
Prints "ready" once listening.
"""
import argparse
import http.server
import json
import socketserver
import sys

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--http10", action="store_true")
ap.add_argument("--page-bytes", type=int, default=0)
ap.add_argument("--chunked", action="store_true")
ap.add_argument("--model", default="fake-model")
a = ap.parse_args()

m = a.model
base = (
    "# TYPE vllm:num_requests_running gauge\n"
    f'vllm:num_requests_running{{engine="0",model_name="{m}"}} 0.0\n'
    "# TYPE vllm:num_requests_waiting gauge\n"
    f'vllm:num_requests_waiting{{engine="0",model_name="{m}"}} 0.0\n'
    "# TYPE vllm:kv_cache_usage_perc gauge\n"
    f'vllm:kv_cache_usage_perc{{engine="0",model_name="{m}"}} 0.1\n'
    "# TYPE vllm:cache_config_info gauge\n"
    f'vllm:cache_config_info{{block_size="16",num_gpu_blocks="27000",engine="0",model_name="{m}"}} 1.0\n'
)
parts = [base]
size = len(base)
i = 0
if a.page_bytes:
    parts.append("# TYPE vllm:request_success_total counter\n")
while size < a.page_bytes:
    line = (f'vllm:request_success_total{{engine="0",finished_reason="stop",'
            f'model_name="{m}",shard="{i:08d}"}} {i}.0\n')
    parts.append(line)
    size += len(line)
    i += 1
PAGE = "".join(parts).encode()
MODELS = json.dumps({"object": "list", "data": [
    {"id": m, "object": "model", "root": m, "parent": None}]}).encode()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0" if a.http10 else "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, body, ctype, chunked=False):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for off in range(0, len(body), 1 << 20):
                piece = body[off:off + (1 << 20)]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            if self.path == "/health":
                self.send(b"", "application/json")
            elif self.path == "/metrics":
                self.send(PAGE, "text/plain; version=0.0.4", a.chunked and not a.http10)
            elif self.path == "/v1/models":
                self.send(MODELS, "application/json")
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


srv = S(("127.0.0.1", a.port), H)
print("ready", len(PAGE), flush=True)
srv.serve_forever()
