# bench/baselines/nginx.sh (sourced by bench/run): the nginx baselines.
#
# nginx_conf DIR WORKERS PORT_RR PORT_LC POD_URL...
#   writes DIR/nginx.conf: one nginx, two listeners on 127.0.0.1,
#   PORT_RR -> upstream "rr" (nginx's default round-robin),
#   PORT_LC -> upstream "lc" (least_conn). Both keep up to 64 idle keep-alive
#   connections per worker to the pods (HTTP/1.1, Connection header cleared),
#   do not buffer responses (SSE streams through event by event), keep
#   request bodies (~30 KB prompts) in memory, and allow 10-minute streams.
#   The upstreams live in shared memory (`zone`), so round-robin order and
#   least_conn's active-request counts are global across the worker
#   processes, as one balancer would be. Run it with
#     nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'
#   pid file, error log and every temp path are inside DIR.
nginx_conf() {
    local dir=$1 workers=$2 prr=$3 plc=$4 u servers=""
    shift 4
    for u in "$@"; do servers+="        server ${u#http://} max_fails=0;"$'\n'; done
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<CONF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    client_max_body_size 32m;
    client_body_buffer_size 1m;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    upstream rr {
        zone rr 256k;
$servers        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 120s;
    }
    upstream lc {
        zone lc 256k;
        least_conn;
$servers        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 120s;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_request_buffering on;
    proxy_connect_timeout 5s;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;
    proxy_next_upstream error;
    server { listen 127.0.0.1:$prr; location / { proxy_pass http://rr; } }
    server { listen 127.0.0.1:$plc; location / { proxy_pass http://lc; } }
}
CONF
}
